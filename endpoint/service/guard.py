"""The resource guard: keeps the daemon inside its CPU and memory limits by shedding work.

``Guard.observe`` takes successive samples of the daemon's own CPU time and RSS and decides a shed
level — 0 normal, 1 longer intervals, 2 also the network sensor off — with a one-line reason. It is
pure logic with hysteresis: a level goes up one step only after the excess has lasted and the last
change has had time to work, and comes down one step only after a long calm well below the limits.
``ProcessSampler`` is the thin psutil part that takes the samples.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from endpoint.service.settings import Settings

NORMAL, SLOWER, NO_NETWORK = 0, 1, 2
INTERVAL_FACTOR = {NORMAL: 1.0, SLOWER: 4.0, NO_NETWORK: 4.0}  # intervals are multiplied by this
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the daemon: monotonic time, cumulative own CPU seconds (user+system), RSS."""

    at: float
    cpu_s: float
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class Limits:
    max_cpu_percent: float  # of one core
    max_rss_mb: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_cpu_percent, settings.max_rss_mb)


@dataclass(frozen=True, slots=True)
class Decision:
    level: int
    reason: str
    cpu_percent: float | None  # over the current window; None while the window is too short
    rss_mb: float
    changed: bool  # the level differs from the previous decision's

    @property
    def interval_factor(self) -> float:
        return INTERVAL_FACTOR[self.level]

    @property
    def network_allowed(self) -> bool:
        return self.level < NO_NETWORK

    @property
    def shedding(self) -> bool:
        return self.level > NORMAL


class Guard:
    """Decides the shed level from samples; feed it one sample every few seconds.

    CPU is judged as a budget: the CPU seconds used in the last ``window_s`` seconds, as a share of
    that window (time not yet measured, after start or a change, counts as idle). So a burst of a
    second or two — a full scan — stays inside the budget, and a steady excess shows within minutes.

    warmup_s: after the first sample nothing is judged for this long (the first full scan says
    nothing about the steady state); the window starts when it ends;
    sustain_s: an excess must last this long before the level goes up;
    hold_s: after a change the level stays at least this long;
    calm_s: the level comes down one step after this long below the calm thresholds (at least
    ``window_s``, so that a window still filling up cannot pass for calm);
    calm_cpu_ratio / calm_rss_ratio: the calm thresholds, as fractions of the limits; between them
    and the limits lies the hysteresis band, where the level holds.
    """

    def __init__(self, limits: Limits, *, window_s: float = 300.0, warmup_s: float = 120.0,
                 sustain_s: float = 15.0, hold_s: float = 60.0, calm_s: float = 300.0,
                 calm_cpu_ratio: float = 0.5, calm_rss_ratio: float = 0.9) -> None:
        if limits.max_cpu_percent <= 0 or limits.max_rss_mb <= 0:
            raise ValueError("limits must be more than 0")
        if window_s <= 0:
            raise ValueError("window_s must be more than 0")
        if not 0 < calm_cpu_ratio < 1 or not 0 < calm_rss_ratio < 1:
            raise ValueError("calm ratios must be between 0 and 1")
        self.limits = limits
        self.window_s = window_s
        self.warmup_s = warmup_s
        self.sustain_s = sustain_s
        self.hold_s = hold_s
        self.calm_s = max(calm_s, window_s)
        self.calm_cpu_ratio = calm_cpu_ratio
        self.calm_rss_ratio = calm_rss_ratio
        self.level = NORMAL
        self._samples: deque[Sample] = deque()
        self._started_at: float | None = None
        self._changed_at = 0.0
        self._over_since: float | None = None
        self._calm_since: float | None = None

    def observe(self, sample: Sample) -> Decision:
        """Take one sample; return the level to run at and why."""
        rss_mb = sample.rss_bytes / _MB
        if self._started_at is None:
            self._started_at = self._changed_at = sample.at
        if sample.at - self._started_at < self.warmup_s:
            self._samples = deque([sample])  # the window starts with the last warm-up sample
            return Decision(NORMAL, f"warming up: nothing judged for the first {self.warmup_s:g} s", None,
                            rss_mb, False)
        if self._samples and (sample.at <= self._samples[-1].at or sample.cpu_s < self._samples[-1].cpu_s):
            # the clock or the counter went backwards (a restored snapshot, a new process): measure afresh
            self._samples.clear()
        self._samples.append(sample)
        while len(self._samples) > 1 and sample.at - self._samples[0].at > self.window_s:
            self._samples.popleft()

        cpu = self._cpu_percent()
        cpu_over = cpu is not None and cpu > self.limits.max_cpu_percent
        rss_over = rss_mb > self.limits.max_rss_mb
        calm = (cpu is not None and cpu <= self.limits.max_cpu_percent * self.calm_cpu_ratio
                and rss_mb <= self.limits.max_rss_mb * self.calm_rss_ratio)
        now = sample.at
        self._over_since = (self._over_since if self._over_since is not None else now) if cpu_over or rss_over else None
        self._calm_since = (self._calm_since if self._calm_since is not None else now) if calm else None

        previous = self.level
        if (self._over_since is not None and now - self._over_since >= self.sustain_s
                and now - self._changed_at >= self.hold_s and self.level < NO_NETWORK):
            self.level += 1
        elif self._calm_since is not None and now - self._calm_since >= self.calm_s and self.level > NORMAL:
            self.level -= 1
        changed = self.level != previous
        if changed:
            self._changed_at = now
            self._over_since = self._calm_since = None
            self._samples = deque([sample])  # judge the new level on what it does, not on the past
        return Decision(self.level, self._reason(previous, cpu, rss_mb, cpu_over, rss_over), cpu, rss_mb, changed)

    def _cpu_percent(self) -> float | None:
        """CPU seconds used in the window as a percentage of the window; None from a single sample."""
        if len(self._samples) < 2:
            return None
        first, last = self._samples[0], self._samples[-1]
        return 100.0 * (last.cpu_s - first.cpu_s) / max(last.at - first.at, self.window_s)

    def _reason(self, previous: int, cpu: float | None, rss_mb: float, cpu_over: bool, rss_over: bool) -> str:
        limits = self.limits
        cpu_text = ("CPU measuring" if cpu is None else
                    f"CPU {cpu:.2f}% of one core over {self.window_s:g} s (limit {limits.max_cpu_percent:g}%)")
        rss_text = f"RSS {rss_mb:.0f} MB (limit {limits.max_rss_mb:g} MB)"
        excess = " and ".join(t for t, over in ((cpu_text, cpu_over), (rss_text, rss_over)) if over)
        if self.level > previous:
            action = "longer intervals" if self.level == SLOWER else "network sensor off, longer intervals"
            still = "still " if previous > NORMAL else ""
            return f"{still}over the limit: {excess}; {action}"
        if self.level < previous:
            action = "normal intervals" if self.level == NORMAL else "network sensor back on, longer intervals"
            return f"calm for {self.calm_s:g} s ({cpu_text}, {rss_text}); {action}"
        state = {NORMAL: "normal", SLOWER: "shedding: longer intervals",
                 NO_NETWORK: "shedding: network sensor off, longer intervals"}[self.level]
        if excess:
            return f"{state}; over the limit: {excess}"
        return f"{state}: {cpu_text}, {rss_text}"


class ProcessSampler:
    """Samples a process (by default this one) with psutil: CPU of it and its reaped children, RSS."""

    def __init__(self, pid: int | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        import psutil

        self._process: Any = psutil.Process(pid)
        self._clock = clock

    def sample(self) -> Sample:
        with self._process.oneshot():
            times = self._process.cpu_times()
            rss = self._process.memory_info().rss
        cpu = times.user + times.system + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
        return Sample(at=self._clock(), cpu_s=cpu, rss_bytes=int(rss))
