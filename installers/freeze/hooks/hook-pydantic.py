"""pydantic for the frozen endpoint: every v2 submodule (pydantic imports them by name on first use),
but not the v1 compatibility layer or the mypy and hypothesis plugins, which the endpoint never uses."""

from __future__ import annotations

from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules(
    "pydantic", filter=lambda name: not name.startswith(("pydantic.v1", "pydantic.mypy")))
