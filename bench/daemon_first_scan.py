"""The daemon's first start on a machine with many homes: when systemd hears READY, when the first full
scan is done, and whether the watchdog is pinged in between.

For each ``--homes`` count it builds that many homes (a Cursor config with five MCP servers and five
projects with a ``.mcp.json`` each), then:

- the file tracker's full scan alone, with the file watches armed and without (what arming costs);
- a real ``Daemon`` run in a thread under a ``Notifier`` made from ``NOTIFY_SOCKET``/``WATCHDOG_USEC``
  (a datagram socket this script binds, as systemd would, and a ping every 0.5 s): the seconds from
  ``run()`` to READY=1 and to the first status row with a scan in it, the WATCHDOG=1 pings in between,
  and the longest stretch without one (systemd restarts the unit past ``WatchdogSec=``, 120 s in the
  Linux unit; it times out a start past ``TimeoutStartSec=``, 300 s).

    .venv/bin/python bench/daemon_first_scan.py
    .venv/bin/python bench/daemon_first_scan.py --homes 200 700 1500

Nothing is asserted; the machine is shared, so its load average is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import signatures  # noqa: E402
from endpoint.service import status as status_mod  # noqa: E402
from endpoint.service.daemon import Daemon  # noqa: E402
from endpoint.service.sdnotify import Notifier  # noqa: E402
from endpoint.service.settings import load_daemon_settings  # noqa: E402
from endpoint.service.trackers.events import EventQueue  # noqa: E402
from endpoint.service.trackers.files import FileTracker  # noqa: E402

WATCHDOG_USEC = 1_000_000


def build(root: Path, homes: int) -> None:
    config = json.dumps({"mcpServers": {f"s{j}": {"command": "npx", "args": ["-y", f"pkg-{j}"]} for j in range(5)}})
    project = json.dumps({"mcpServers": {"tool": {"command": "uvx", "args": ["tool"]}}})
    for i in range(homes):
        home = root / "home" / f"user{i:05d}"
        (home / ".cursor").mkdir(parents=True)
        (home / ".cursor" / "mcp.json").write_text(config)
        for p in range(5):
            (home / "src" / f"p{p}").mkdir(parents=True)
            (home / "src" / f"p{p}" / ".mcp.json").write_text(project)


def tracker_scan(root: Path, *, watch: bool) -> float:
    tracker = FileTracker(signatures.load(), str(root), EventQueue())
    if watch:
        tracker.start_watching()
    started = time.perf_counter()
    tracker.scan()
    took = time.perf_counter() - started
    tracker.stop()
    return took


def daemon_start(root: Path, data: Path) -> dict[str, float]:
    address = f"@agentroster-bench-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:])
    sock.settimeout(0.05)
    messages: list[tuple[float, str]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                messages.append((time.monotonic(), sock.recv(4096).decode()))
            except (TimeoutError, BlockingIOError):
                continue

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    loaded = load_daemon_settings({"data_dir": str(data), "root": str(root)},
                                  env={"AGENTROSTER_SENSORS": "files", "AGENTROSTER_FULL_SCAN_INTERVAL_S": "3600"})
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    daemon = Daemon(loaded.settings, loaded=loaded, notifier=notifier)
    daemon.start_local_socket = lambda: None  # type: ignore[method-assign]  # not what is measured
    started = time.monotonic()
    runner = threading.Thread(target=daemon.run)
    runner.start()
    scanned = 0.0
    while runner.is_alive():
        try:
            if status_mod.read_status(data).get("last_scan_at"):
                scanned = time.monotonic()
                break
        except Exception:  # no state file yet
            pass
        time.sleep(0.05)
    daemon.stop()
    runner.join(timeout=120)
    done.set()
    reader.join(timeout=5)
    sock.close()
    ready = next((at for at, text in messages if "READY=1" in text.splitlines()), float("nan"))
    pings = [at for at, text in messages if "WATCHDOG=1" in text.splitlines() and at <= scanned]
    marks = [started, *pings, scanned]
    return {"ready_s": ready - started, "scanned_s": scanned - started,
            "pings_before_scanned": len(pings),
            "longest_without_ping_s": max(b - a for a, b in zip(marks, marks[1:], strict=False))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, nargs="+", default=[200, 700])
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; a ping every "
          f"{WATCHDOG_USEC / 2e6:.1f} s expected")
    print(f"{'homes':>6} {'scan':>8} {'scan+watch':>11} {'READY':>8} {'scanned':>8} {'pings':>6} {'longest gap':>12}")
    for homes in args.homes:
        base = Path(tempfile.mkdtemp(prefix="agentroster-bench-"))
        try:
            root = base / "root"
            build(root, homes)
            plain = tracker_scan(root, watch=False)
            watched = tracker_scan(root, watch=True)
            start = daemon_start(root, base / "data")
            print(f"{homes:>6} {plain:>7.2f}s {watched:>10.2f}s {start['ready_s']:>7.2f}s {start['scanned_s']:>7.2f}s "
                  f"{start['pings_before_scanned']:>6} {start['longest_without_ping_s']:>11.2f}s", flush=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
