"""The console's one error tree: every failure the console shows is a ``ConsoleError`` with a message fit to
show to a person and a stable ``code`` (what logs and tests match on; the message may be reworded).

The API client's errors (``console.app.api.ApiError`` and its kinds) are one branch of it; the others are
here. No Qt here.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Something the console could not do."""

    code = "console_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ExportFailed(ConsoleError):
    """An export's file could not be written (the folder, the disk, the permissions)."""

    code = "export_failed"


class EmbeddedCollectorFailed(ConsoleError):
    """The embedded collector did not start, or gave no admin token."""

    code = "embedded_collector_failed"


class UnexpectedError(ConsoleError):
    """A bug: an exception no part of the console expected (logged with its traceback)."""

    code = "unexpected_error"
