"""The resource guard: shed levels from the daemon's own CPU and RSS, with hysteresis and a reason.

The decision logic is fed sample series (what psutil would report at each tick); the sampler is
checked against real processes."""

from __future__ import annotations

import re
import sys
import time

import pytest

from endpoint.service.guard import NO_NETWORK, NORMAL, SLOWER, Decision, Guard, Limits, ProcessSampler, Sample
from endpoint.service.settings import Settings

MB = 1024 * 1024
LIMITS = Limits(max_cpu_percent=2.0, max_rss_mb=150.0)


class Feed:
    """Feeds a guard samples every ``step`` seconds of a daemon using ``cpu`` % of a core and ``rss`` MB."""

    def __init__(self, guard: Guard, step: float = 5.0) -> None:
        self.guard, self.step = guard, step
        self.at, self.cpu_s = 1000.0, 12.0

    def run(self, seconds: float, cpu: float, rss: float = 60.0) -> list[Decision]:
        decisions = []
        for _ in range(int(seconds / self.step)):
            self.at += self.step
            self.cpu_s += self.step * cpu / 100
            decisions.append(self.guard.observe(Sample(self.at, self.cpu_s, int(rss * MB))))
        return decisions


def levels(decisions: list[Decision]) -> list[int]:
    """The levels in order, repeats collapsed."""
    out: list[int] = []
    for d in decisions:
        if not out or out[-1] != d.level:
            out.append(d.level)
    return out


def until(feed: Feed, level: int, cpu: float, rss: float = 60.0) -> list[Decision]:
    """Run until the guard reaches ``level`` (an hour at most)."""
    decisions: list[Decision] = []
    while feed.guard.level != level and len(decisions) < 3600 / feed.step:
        decisions += feed.run(feed.step, cpu, rss)
    assert feed.guard.level == level
    return decisions


def warmed(guard: Guard | None = None) -> Feed:
    feed = Feed(guard or Guard(LIMITS))
    feed.run(130, cpu=0.2)
    return feed


def test_stays_normal_within_the_limits():
    decisions = warmed().run(3600, cpu=0.3, rss=60)
    assert levels(decisions) == [NORMAL]
    last = decisions[-1]
    assert last.reason == "normal: CPU 0.30% of one core over 300 s (limit 2%), RSS 60 MB (limit 150 MB)"
    assert last.cpu_percent == pytest.approx(0.3)
    assert not last.shedding and last.network_allowed and last.interval_factor == 1.0


def test_first_scan_burst_during_warm_up_is_not_judged():
    feed = Feed(Guard(LIMITS))
    first = feed.run(30, cpu=80)
    rest = feed.run(600, cpu=0.3)
    assert levels(first + rest) == [NORMAL]
    assert first[0].reason == "warming up: nothing judged for the first 120 s"


def test_time_not_yet_measured_counts_as_idle():
    feed = Feed(Guard(LIMITS, warmup_s=0))
    first, second, third = feed.run(15, cpu=50)
    assert first.cpu_percent is None
    assert first.reason == "normal: CPU measuring, RSS 60 MB (limit 150 MB)"
    assert second.cpu_percent == pytest.approx(100 * 2.5 / 300)  # 2.5 CPU-seconds of a 300 s budget
    assert third.cpu_percent == pytest.approx(100 * 5.0 / 300)


def test_sustained_cpu_excess_sheds_one_step_at_a_time():
    feed = warmed()
    decisions = feed.run(600, cpu=5)
    assert levels(decisions) == [NORMAL, SLOWER, NO_NETWORK]
    changes = [d for d in decisions if d.changed]
    assert [d.level for d in changes] == [SLOWER, NO_NETWORK]
    assert re.fullmatch(r"over the limit: CPU 2\.\d\d% of one core over 300 s \(limit 2%\); longer intervals",
                        changes[0].reason)
    assert re.fullmatch(r"still over the limit: CPU 2\.\d\d% of one core over 300 s \(limit 2%\); "
                        r"network sensor off, longer intervals", changes[1].reason)
    assert changes[1].interval_factor > 1 and not changes[1].network_allowed
    # a step waits for the previous one to work: at least hold_s between changes
    assert decisions.index(changes[1]) - decisions.index(changes[0]) >= 60 / feed.step


def test_excess_shorter_than_sustain_does_not_shed():
    feed = warmed(Guard(LIMITS, window_s=10))
    decisions = feed.run(10, cpu=10) + feed.run(600, cpu=0.3)
    assert levels(decisions) == [NORMAL]
    assert any("over the limit" in d.reason for d in decisions)  # it was seen, and held off


def test_a_brief_spike_averaged_over_the_window_does_not_shed():
    feed = warmed()
    decisions = feed.run(5, cpu=40) + feed.run(600, cpu=0.3)  # 2 CPU-seconds among minutes of calm
    assert levels(decisions) == [NORMAL]


def test_between_calm_and_limit_the_level_holds():
    feed = warmed()
    until(feed, SLOWER, cpu=5)
    decisions = feed.run(3600, cpu=1.5)  # under the 2 % limit, above the 1 % calm threshold
    assert levels(decisions) == [SLOWER]
    assert decisions[-1].reason.startswith("shedding: longer intervals: CPU 1.50% of one core over 300 s")


def test_long_calm_brings_the_level_down_one_step_at_a_time():
    feed = warmed()
    until(feed, NO_NETWORK, cpu=5)
    decisions = feed.run(1200, cpu=0.2)
    assert levels(decisions) == [NO_NETWORK, SLOWER, NORMAL]
    changes = [d for d in decisions if d.changed]
    assert changes[0].reason.startswith("calm for 300 s (CPU 0.20% of one core")
    assert changes[0].reason.endswith("; network sensor back on, longer intervals")
    assert changes[1].reason.endswith("; normal intervals")
    assert decisions.index(changes[1]) - decisions.index(changes[0]) >= 300 / feed.step


def test_memory_over_the_limit_sheds_even_while_cpu_is_low():
    feed = warmed()
    decisions = feed.run(300, cpu=0.2, rss=200)
    assert levels(decisions) == [NORMAL, SLOWER, NO_NETWORK]
    first, second = (i for i, d in enumerate(decisions) if d.changed)
    assert first == 15 / feed.step  # over from the first sample (index 0), for sustain_s
    assert second - first == 60 / feed.step  # then the first step is given hold_s to work
    assert decisions[-1].reason == ("shedding: network sensor off, longer intervals; "
                                    "over the limit: RSS 200 MB (limit 150 MB)")


def test_memory_just_under_the_limit_is_not_calm():
    feed = warmed()
    until(feed, SLOWER, cpu=0.2, rss=200)
    assert levels(feed.run(1800, cpu=0.2, rss=145)) == [SLOWER]  # above 90 % of the limit
    assert levels(feed.run(600, cpu=0.2, rss=100)) == [SLOWER, NORMAL]


def test_clock_or_counter_going_back_starts_the_window_afresh():
    feed = warmed()
    feed.run(60, cpu=0.3)
    guard = feed.guard
    back_in_time = guard.observe(Sample(feed.at - 500, feed.cpu_s + 100, 60 * MB))
    assert back_in_time.cpu_percent is None and back_in_time.level == NORMAL
    fewer_seconds = guard.observe(Sample(feed.at + 5, 1.0, 60 * MB))
    assert fewer_seconds.cpu_percent is None and fewer_seconds.level == NORMAL


def test_limits_come_from_settings():
    assert Limits.from_settings(Settings(max_cpu_percent=1.0, max_rss_mb=80)) == Limits(1.0, 80.0)


@pytest.mark.parametrize("limits", [Limits(0, 150), Limits(2, -1)])
def test_limits_must_be_positive(limits):
    with pytest.raises(ValueError):
        Guard(limits)


# ---- the psutil sampler, on real processes -------------------------------------------------------------


def test_sampler_reads_this_process():
    sampler = ProcessSampler()
    before = sampler.sample()
    total = 0
    for i in range(2_000_000):  # spend some CPU so the counter moves
        total += i * i
    after = sampler.sample()
    assert total > 0
    assert after.at > before.at
    assert after.cpu_s > before.cpu_s
    assert after.rss_bytes > 10 * MB


@pytest.mark.timeout(120)
def test_real_busy_process_is_shed_and_a_quiet_one_recovers(spawn):
    busy = ProcessSampler(spawn([sys.executable, "-c", "while True: pass"]).pid)
    quiet = ProcessSampler(spawn([sys.executable, "-c", "import time; time.sleep(600)"]).pid)
    guard = Guard(Limits(max_cpu_percent=10, max_rss_mb=1024), window_s=0.5, warmup_s=0, sustain_s=0, hold_s=0,
                  calm_s=0)
    seen = []
    while guard.level < NO_NETWORK:
        seen.append(guard.observe(busy.sample()))
        time.sleep(0.02)
    assert levels(seen) == [NORMAL, SLOWER, NO_NETWORK]
    assert all(d.cpu_percent > 10 for d in seen if d.changed)
    while guard.level > NORMAL:
        seen.append(guard.observe(quiet.sample()))
        time.sleep(0.02)
    assert levels(seen) == [NORMAL, SLOWER, NO_NETWORK, SLOWER, NORMAL]
