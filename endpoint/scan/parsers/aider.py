"""aider: ``.aider.conf.yml`` in the home, the git root or the current directory.

Keys are aider's long option names: ``model``, ``weak-model``, ``editor-model``, ``openai-api-base``;
``api-key`` entries are ``provider=key`` (only the provider is kept) and ``set-env`` entries are
``NAME=value`` (read through the shared table of model and base-URL variables).
"""

from __future__ import annotations

from typing import Any

from endpoint.scan.parsers.envvars import note_env
from endpoint.scan.parsers.findings import Findings


def extract_aider_yaml(document: dict[str, Any], out: Findings) -> None:
    """The ``aider_yaml`` dialect."""
    for key in ("model", "weak-model", "editor-model"):
        out.model(document.get(key))
    out.base_url(document.get("openai-api-base"))
    for entry in _strings(document.get("api-key")):
        if "=" in entry:
            out.provider(entry.split("=", 1)[0])
    note_env(dict(_assignment(e) for e in _strings(document.get("set-env")) if "=" in e), out)


def _strings(value: object) -> list[str]:
    """An option given once (a string) or many times (a list)."""
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, str)]


def _assignment(entry: str) -> tuple[str, str]:
    name, _, value = entry.partition("=")
    return name.strip(), value.strip()
