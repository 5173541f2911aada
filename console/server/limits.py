"""Limits on what callers send: a body size cap (ASGI middleware) and rate limiting (per device for
reports; per client address for enrollments and for failed token checks, answered 429 with Retry-After).

The cap is checked twice: on ``Content-Length`` before anything is read, and while reading, for
chunked bodies that announce no length. Going over answers 413 and nothing is stored.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """A request body over the route's cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail={"reason": "body_too_large", "max_bytes": limit})


class BodyLimit:
    """Caps request bodies: ``report_limit`` for POST /api/v1/reports, ``default_limit`` elsewhere."""

    def __init__(self, app: ASGIApp, *, report_path: str, report_limit: int, default_limit: int) -> None:
        self.app = app
        self.report_path = report_path
        self.report_limit = report_limit
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.report_limit if scope["path"] == self.report_path else self.default_limit
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _reject(send, BodyTooLarge(limit))
            return
        await self.app(scope, _counting(receive, limit), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)  # FastAPI re-raises HTTPExceptions from body reading as they are
        return message

    return wrapped


async def _reject(send: Send, error: HTTPException) -> None:
    body = orjson.dumps({"detail": error.detail})
    await send({"type": "http.response.start", "status": error.status_code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per key (a device), in memory, per process: ``rate`` per second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 200_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed; otherwise the seconds to wait before the next try."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.clear()  # a flood of keys: forget them all rather than grow without bound
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def waiting(self, key: str, now: float | None = None) -> float:
        """Like ``take`` but spends nothing: 0 while ``key`` has a token left, else the seconds to wait
        (a failure limiter asks this before checking a token, and takes only when the check fails)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate


def retry_after(seconds: float) -> dict[str, Any]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def too_many(reason: str, seconds: float) -> HTTPException:
    """429 with a reason and Retry-After (whole seconds, at least 1)."""
    return HTTPException(429, detail={"reason": reason, "retry_after": max(1, math.ceil(seconds))},
                         headers=retry_after(seconds))
