"""The endpoint's one error root: every error the endpoint raises on purpose is an ``EndpointError``.

Each error class has a stable ``code`` (snake_case, never reworded) that logs, tests and the command
line's messages can rely on; the message is for people and may change. A few errors carry a finer code
per instance (a parser's "syntax" or "too_deep", a refused read's "not_found"), which is then the code
of that one error. Errors that were ``ValueError`` or ``OSError`` before stay so too, for callers that
catch those.
"""

from __future__ import annotations


class EndpointError(Exception):
    """Something the endpoint (scan, daemon, registration) could not do; ``code`` says what, stably."""

    code: str = "endpoint_error"
