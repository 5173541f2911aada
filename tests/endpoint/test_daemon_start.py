"""The daemon's start under systemd: READY=1 as soon as it can serve, the first full scan after it, and a
long scan that keeps the watchdog pinged, the status row fresh and a stop prompt.

Real parts: a real Daemon over a real tree of 200 homes (each with a Cursor config and five projects,
watched: a few seconds of first scan on this machine, built once for the module), a real
``Notifier`` made from ``NOTIFY_SOCKET``/``WATCHDOG_USEC`` as systemd sets them, sending to an AF_UNIX
datagram socket the test binds and reads from a thread that timestamps every message. The end of the
first scan is the daemon's own log line, timestamped when it is emitted.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from endpoint.service import daemon as daemon_mod
from endpoint.service import status as status_mod
from endpoint.service.daemon import Daemon
from endpoint.service.sdnotify import Notifier
from endpoint.service.settings import load_daemon_settings

if sys.platform == "win32":  # pragma: no cover - the daemon's tests run on Linux and macOS
    pytest.skip("AF_UNIX datagram sockets", allow_module_level=True)

HOMES = 200
WATCHDOG_USEC = 200_000  # the daemon pings every 0.1 s


class SystemdSocket:
    """What systemd would be: a datagram socket the Notifier sends to; (monotonic time, message) each."""

    def __init__(self) -> None:
        self.address = f"@agentroster-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:])
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), dict(line.split("=", 1) for line in data.decode().splitlines())))

    def first(self, key: str, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, message in list(self.messages):
                if message.get(key) == "1":
                    return at
            time.sleep(0.02)
        raise AssertionError(f"no {key}=1 among {self.messages}")

    def times(self, key: str) -> list[float]:
        return [at for at, message in list(self.messages) if message.get(key) == "1"]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self.sock.close()


class LogTimes(logging.Handler):
    """When the daemon logged a message starting with one of these words (time.monotonic at emit)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.setdefault(record.getMessage().split(" in ")[0], time.monotonic())


@pytest.fixture(scope="module")
def big_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "r"
    config = json.dumps({"mcpServers": {f"s{j}": {"command": "npx", "args": ["-y", f"pkg-{j}"]} for j in range(5)}})
    project = json.dumps({"mcpServers": {"tool": {"command": "uvx", "args": ["tool"]}}})
    for i in range(HOMES):
        home = root / "home" / f"user{i:04d}"
        (home / ".cursor").mkdir(parents=True)
        (home / ".cursor" / "mcp.json").write_text(config)
        for p in range(5):
            (home / "src" / f"p{p}").mkdir(parents=True)
            (home / "src" / f"p{p}" / ".mcp.json").write_text(project)
    return root


@pytest.fixture
def systemd() -> Iterator[SystemdSocket]:
    sock = SystemdSocket()
    yield sock
    sock.close()


@pytest.fixture
def log_times() -> Iterator[LogTimes]:
    handler = LogTimes()
    logger = logging.getLogger("agentroster.daemon")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _daemon(tmp_path: Path, root: Path, systemd: SystemdSocket) -> Daemon:
    loaded = load_daemon_settings({"data_dir": str(tmp_path / "data"), "root": str(root)},
                                  env={"AGENTROSTER_SENSORS": "files", "AGENTROSTER_FULL_SCAN_INTERVAL_S": "3600"})
    notifier = Notifier.from_env({"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    daemon = Daemon(loaded.settings, loaded=loaded, notifier=notifier)
    daemon.start_local_socket = lambda: None  # type: ignore[method-assign]  # the socket has tests of its own
    return daemon


def _wait(check: object, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.02)
    raise AssertionError(f"never: {what}")


def test_ready_comes_before_a_long_first_scan_and_the_watchdog_is_pinged_through_it(
        tmp_path: Path, big_root: Path, systemd: SystemdSocket, log_times: LogTimes,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "STATUS_EVERY_S", 0.2)  # the status row's period, short enough to see here
    daemon = _daemon(tmp_path, big_root, systemd)
    progressed: list[float] = []
    real_progress = daemon.scan_progress

    def progress() -> None:
        progressed.append(time.monotonic())
        real_progress()

    daemon.scan_progress = progress  # type: ignore[method-assign]  # the real one, timed: when the file scan moved
    thread = threading.Thread(target=daemon.run)
    thread.start()
    updates: set[float] = set()
    try:
        ready = systemd.first("READY")
        # while the scan runs, `agentroster status` reads a fresh row that says it runs and scans
        while "first scan done" not in log_times.seen and thread.is_alive():
            doc = status_mod.read_status(tmp_path / "data")
            if "first scan done" not in log_times.seen:
                assert doc["running"] and doc["last_scan_at"] is None
                updates.add(doc["status_updated_at"])
            time.sleep(0.05)
        _wait(lambda: "first scan done" in log_times.seen, "the first scan's end was logged")
        scanned = log_times.seen["first scan done"]
    finally:
        daemon.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert ready < scanned, "READY=1 must not wait for the first scan"
    assert daemon.last_sightings and len(daemon.files.homes) == HOMES
    during = [at for at in systemd.times("WATCHDOG") if ready <= at <= scanned]
    took = scanned - ready
    # a ping every 0.1 s while the scan moves on; half of them is plenty of slack for a loaded machine
    assert len(during) >= max(3, int(took / 0.1) // 2), (took, len(during))
    # while the files were scanned, no stretch went without a ping for long (the bound leaves room for a
    # loaded machine; without the pings from the scan's progress the count above fails first), then comes
    # the fingerprint of every sighting at once, which is not pinged from within
    pings = [at for at in during if at <= progressed[-1]]
    gaps = [b - a for a, b in zip([ready, *pings], [*pings, progressed[-1]], strict=True)]
    assert max(gaps) < 5.0, gaps
    assert len(updates) >= 2, "the status row was not written again during the scan"
    statuses = [m.get("STATUS", "") for _at, m in systemd.messages if "STATUS" in m]
    assert statuses[0].startswith("first scan under way") and f"{len(daemon.last_sightings)} sightings" in statuses[-1]


def test_a_stop_in_the_middle_of_the_first_scan_ends_it_and_spools_nothing(
        tmp_path: Path, big_root: Path, systemd: SystemdSocket, log_times: LogTimes) -> None:
    daemon = _daemon(tmp_path, big_root, systemd)
    started = threading.Event()
    real_progress = daemon.scan_progress

    def progress() -> None:
        started.set()
        real_progress()

    daemon.scan_progress = progress  # type: ignore[method-assign]  # the real one, and a sign the scan began
    thread = threading.Thread(target=daemon.run)
    thread.start()
    assert started.wait(60)
    stop_at = time.monotonic()
    daemon.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert time.monotonic() - stop_at < 5.0
    assert "first scan done" not in log_times.seen, "the stop waited for the whole scan"
    assert len(daemon.files.records) < HOMES + 1
    assert systemd.first("STOPPING", timeout=5)
    # nothing was spooled from a half scan: the collector would read every other sighting as removed
    assert daemon.inventory.pending() is None and daemon.inventory.stored_hashes() == {}
    assert status_mod.read_status(tmp_path / "data")["last_scan_at"] is None
