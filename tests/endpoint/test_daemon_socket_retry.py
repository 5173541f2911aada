"""A local socket the daemon could not serve at start is tried again while it runs (a real daemon in a
thread, over a real data dir and a real Unix socket).

The refusal here is the one an attacker can cause: the socket's folder is another user's (on Windows the
same comes from a pipe name another process holds). The daemon runs on without it, `agentroster status`
says why, the log says it once, and once the folder is the daemon's again users are served.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from endpoint.service import daemon as daemon_mod
from endpoint.service import localsock
from endpoint.service import status as status_mod
from endpoint.service.daemon import Daemon
from endpoint.service.sdnotify import Notifier
from endpoint.service.settings import load_daemon_settings

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the socket's folder to another user")]

NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ar-retry-", dir="/tmp"))  # short: a socket path is at most 107 bytes
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def wait(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def test_a_socket_folder_another_user_held_at_start_is_served_once_it_is_the_daemons(
        base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "LOCAL_SOCKET_RETRY_S", 0.3)
    monkeypatch.setattr(daemon_mod, "STATUS_EVERY_S", 0.2)
    data, root = base / "data", base / "root"
    root.mkdir()
    path = localsock.socket_path(data)
    path.parent.mkdir(mode=0o755)
    os.chown(path.parent, NOBODY, NOBODY)  # another user's folder: they could swap the socket for their own
    loaded = load_daemon_settings({"data_dir": str(data), "root": str(root)},
                                  env={"AGENTROSTER_SENSORS": "files", "AGENTROSTER_FULL_SCAN_INTERVAL_S": "3600"})
    daemon = Daemon(loaded.settings, loaded=loaded, notifier=Notifier.from_env({}))
    warnings = Warnings()
    logger = logging.getLogger("agentroster.daemon")
    logger.addHandler(warnings)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        def refused() -> bool:
            try:
                doc = status_mod.read_status(data)
            except Exception:  # no state yet
                return False
            return bool(doc.get("last_scan_at")) and "owned by uid 65534" in (doc.get("local_socket_error") or "")

        wait(refused, "status says why the socket is not served")
        time.sleep(1.0)  # several retries, all refused the same way
        assert daemon.local_socket is None
        assert sum("local socket" in line for line in warnings.lines) == 1, warnings.lines  # said once
        with pytest.raises(OSError, match="belongs to uid 65534"):  # nor does a client trust that folder
            localsock.call(path, {"op": "list"}, timeout_s=2)
        shown = status_mod.render(status_mod.read_status(data))
        assert "local socket: " in shown and "owned by uid 65534" in shown

        os.chown(path.parent, 0, 0)  # the folder is the daemon's again

        def served() -> bool:
            try:
                return localsock.call(path, {"op": "list"}, timeout_s=2)["ok"] is True
            except (localsock.DaemonNotListening, OSError):
                return False

        wait(served, "the socket served after a retry")
        wait(lambda: status_mod.read_status(data).get("local_socket_error") is None, "status clears the error")
    finally:
        logger.removeHandler(warnings)
        daemon.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert not path.exists()  # removed at stop, as ever
