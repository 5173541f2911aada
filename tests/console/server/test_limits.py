"""console.server.limits: the per-device token bucket (pure)."""

from __future__ import annotations

from console.server.limits import RateLimiter


def test_a_burst_is_allowed() -> None:
    limiter = RateLimiter(rate=10, burst=5)
    assert all(limiter.take("d", now=0.0) == 0 for _ in range(5))


def test_past_the_burst_the_caller_waits() -> None:
    limiter = RateLimiter(rate=10, burst=5)
    for _ in range(5):
        limiter.take("d", now=0.0)
    assert limiter.take("d", now=0.0) > 0


def test_tokens_come_back_at_the_rate() -> None:
    limiter = RateLimiter(rate=10, burst=5)
    for _ in range(5):
        limiter.take("d", now=0.0)
    assert limiter.take("d", now=0.1) == 0


def test_devices_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate=10, burst=1)
    limiter.take("a", now=0.0)
    assert limiter.take("b", now=0.0) == 0


def test_waiting_tells_without_spending() -> None:
    limiter = RateLimiter(rate=1, burst=2)
    assert limiter.waiting("addr", now=0.0) == 0  # an address never seen has its whole burst
    limiter.take("addr", now=0.0)
    assert limiter.waiting("addr", now=0.0) == 0 and limiter.waiting("addr", now=0.0) == 0  # asking spends nothing
    limiter.take("addr", now=0.0)
    assert limiter.waiting("addr", now=0.0) == 1.0
    assert limiter.waiting("addr", now=1.0) == 0
