"""The collector's one error root: each error the collector raises for a request it refuses or cannot serve
is a ``CollectorError`` with a stable ``code`` (its kind, for logs and tests), an HTTP ``status`` and the
``detail`` the answer carries (``{"reason": ..., ...}``: the reason names the case within the kind).

The kinds live beside the code that raises them (``ingest``: a report refused; ``triage``: an action
refused; ``writer``: the store unavailable), all under this root.
"""

from __future__ import annotations

from typing import Any


class CollectorError(Exception):
    """A request the collector refuses or cannot serve."""

    code = "collector_error"
    status = 500

    def __init__(self, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.detail: dict[str, Any] = {"reason": reason, **extra}
