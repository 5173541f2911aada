"""The daemon's pure parts: the event queue that drops repeats, the watch plan (nearest existing
directory, the names that matter in it), jittered timers, the signature-match memory."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from endpoint.service.daemon import jittered
from endpoint.service.trackers.events import EventQueue
from endpoint.service.trackers.files import WatchPlan
from endpoint.service.trackers.processes import MatchCache


def test_event_queue_drops_an_event_that_is_already_waiting():
    events = EventQueue()
    for _ in range(100):
        events.put(("files", "/home/alice"))
    events.put(("network",))
    events.put(("files", "/home/bob"))
    assert events.get_all(0) == [("files", "/home/alice"), ("network",), ("files", "/home/bob")]
    assert events.get_all(0) == []


def test_event_queue_wakes_its_consumer():
    events = EventQueue()
    got: list[list[tuple[str, ...]]] = []
    consumer = threading.Thread(target=lambda: got.append(events.get_all(30)))
    consumer.start()
    events.put(("stop",))
    consumer.join(30)
    assert got == [[("stop",)]]


def test_watch_plan_watches_the_file_directory_when_it_exists(tmp_path: Path):
    (tmp_path / ".cursor").mkdir()
    plan = WatchPlan()
    plan.add(str(tmp_path / ".cursor" / "mcp.json"), str(tmp_path))
    assert plan.dirs == {str(tmp_path / ".cursor"): {"mcp.json"}}
    assert plan.matches(str(tmp_path / ".cursor"), "mcp.json")
    assert not plan.matches(str(tmp_path / ".cursor"), "other.json")


def test_watch_plan_watches_the_nearest_existing_parent_for_the_next_component(tmp_path: Path):
    plan = WatchPlan()
    plan.add(str(tmp_path / ".codeium" / "windsurf" / "mcp_config.json"), str(tmp_path))
    assert plan.dirs == {str(tmp_path): {".codeium"}} and not plan.stale()
    (tmp_path / ".codeium").mkdir()
    assert plan.stale()  # made after the plan: the daemon looks again  # re-armed after the rescan the creation causes
    plan = WatchPlan()
    plan.add(str(tmp_path / ".codeium" / "windsurf" / "mcp_config.json"), str(tmp_path))
    assert plan.dirs == {str(tmp_path / ".codeium"): {"windsurf"}}


def test_watch_plan_stops_at_a_glob_and_stays_inside_its_boundary(tmp_path: Path):
    (tmp_path / "ws").mkdir()
    plan = WatchPlan()
    plan.add(str(tmp_path / "ws" / "*" / "workspace.json"), str(tmp_path))
    plan.add("/etc/elsewhere/x.json", str(tmp_path))
    assert plan.dirs == {str(tmp_path / "ws"): {"*"}}
    assert plan.matches(str(tmp_path / "ws"), "0a1b2c")


def test_watch_plan_does_not_follow_a_symlinked_directory(tmp_path: Path):
    (tmp_path / "real").mkdir()
    (tmp_path / ".cursor").symlink_to(tmp_path / "real")
    plan = WatchPlan()
    plan.add(str(tmp_path / ".cursor" / "mcp.json"), str(tmp_path))
    assert plan.dirs == {str(tmp_path): {".cursor"}}


def test_jitter_never_makes_an_interval_longer():
    rng = random.Random(3)
    waits = [jittered(10.0, rng) for _ in range(1000)]
    assert all(8.0 <= w <= 10.0 for w in waits) and len({round(w, 3) for w in waits}) > 100


class _Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.providers = ["p"]

    def match_process(self, facts, read_script=None):
        self.calls += 1
        return [facts.name]

    def match_command(self, command, args):
        self.calls += 1
        return command


def test_match_cache_remembers_matches_and_passes_the_rest_through():
    from signatures.launchers import ProcessFacts

    lib = _Counting()
    cache = MatchCache(lib)  # type: ignore[arg-type]
    facts = ProcessFacts(name="node", exe="/usr/bin/node", cmdline=["node", "x.js"])
    assert cache.match_process(facts) == cache.match_process(facts) == ["node"]
    assert cache.match_command("npx", ["-y", "a"]) == cache.match_command("npx", ("-y", "a")) == "npx"
    assert lib.calls == 2 and cache.providers == ["p"]
    cache.clear()
    cache.match_process(facts)
    assert lib.calls == 3


def test_the_resource_guard_sheds_work_and_the_status_says_why(tmp_path: Path):
    """The real guard on this process's real CPU time: a daemon over its (tiny) CPU limit goes to longer
    intervals, then turns its network sensor off, and says so in its status."""
    import time

    from endpoint.service.daemon import Daemon
    from endpoint.service.guard import Guard, Limits
    from endpoint.service.settings import load_settings

    settings, _ = load_settings({"data_dir": str(tmp_path / "d"), "root": str(tmp_path), "sensors": "files"}, env={})
    daemon = Daemon(settings)
    daemon.guard = Guard(Limits(max_cpu_percent=0.001, max_rss_mb=100_000), window_s=0.5, warmup_s=0,
                         sustain_s=0, hold_s=0, calm_s=3600)
    daemon.network.state = "ok"
    levels = []
    for _ in range(6):
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:  # work, as a scan would
            pass
        time.sleep(0.05)
        daemon.check_resources()
        levels.append(daemon.shed_level)
    assert levels[-1] == 2 and sorted(levels) == levels
    assert daemon.interval_factor > 1
    status = daemon.status()
    assert status["shedding"] and "over the limit" in status["shed_reason"]
    assert daemon.device_status()["shedding"] is True
    daemon.inventory.close()


def test_a_config_edited_after_it_was_read_and_before_its_watch_is_read_again(tmp_path: Path):
    """A home's file is read, then edited, then its watch is set up (the window of a long first scan):
    the edit must not wait for the next full scan. Real files, a real watcher (inotify), the real library."""
    import signatures
    from endpoint.service.trackers.files import FileTracker

    home = tmp_path / "home" / "alice"
    (home / ".cursor").mkdir(parents=True)
    config = home / ".cursor" / "mcp.json"
    config.write_text('{"mcpServers": {"before": {"command": "npx", "args": ["before"]}}}')
    events = EventQueue()
    tracker = FileTracker(signatures.load(), str(tmp_path), events)
    tracker.start_watching()
    calls = 0

    def edit_while_reading() -> None:  # the daemon's progress callback, here the moment of the edit
        nonlocal calls
        calls += 1
        if calls == 2:  # the machine's files, then the first record of alice's home: read, not yet watched
            config.write_text('{"mcpServers": {"after": {"command": "npx", "args": ["after"]}}}')

    try:
        tracker.scan(progress=edit_while_reading)
        assert calls >= 2
        assert ("files", str(home)) in events.get_all(5), "the edit in the window was lost"
        # a scan in which nothing changes asks for nothing more (past the mtime clock's slack)
        time.sleep(0.1)
        tracker.scan()
        assert ("files", str(home)) not in events.get_all(1)
    finally:
        tracker.stop()


def test_a_file_stamped_in_the_future_does_not_make_its_home_be_read_again_and_again(tmp_path: Path):
    """A user can stamp a watched file with any mtime (``touch -d 2099-01-01``). An edit made while a home
    was read carries the time of that edit, never a future one: a future stamp must not count as one, or
    every rescan of the home would queue the next, and the root daemon would read it in a loop."""
    import os

    import signatures
    from endpoint.service.trackers.files import FileTracker

    home = tmp_path / "home" / "alice"
    (home / ".cursor").mkdir(parents=True)
    config = home / ".cursor" / "mcp.json"
    config.write_text('{"mcpServers": {"one": {"command": "npx", "args": ["one"]}}}')
    future = time.time_ns() + 10 * 365 * 86400 * 10**9
    os.utime(config, ns=(future, future))
    events = EventQueue()
    tracker = FileTracker(signatures.load(), str(tmp_path), events)
    tracker.start_watching()
    try:
        tracker.scan()
        events.get_all(1)  # whatever the first scan's arming asked for
        tracker.scan([str(home)])
        assert ("files", str(home)) not in events.get_all(1), "a future mtime made the home be read again"
    finally:
        tracker.stop()
