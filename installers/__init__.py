"""Builds what IT deploys: the frozen endpoint (``installers.freeze``) wrapped in each platform's package.

``python -m installers deb|rpm|msi|macos|all`` (``./dev package …``) is the one entry point; each
platform's wrapper is a module with ``build(payload, out, version) -> list[Path]``
(``installers.linux.deb``, ``installers.linux.rpm``, ``installers.macos.build``,
``installers.windows.build``). Nothing here ships inside a package: it runs on the build machine.
"""

from __future__ import annotations
