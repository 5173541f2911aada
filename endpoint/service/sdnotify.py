"""systemd's service notifications (``sd_notify``), in pure Python: readiness, status, watchdog pings.

Under a unit of ``Type=notify`` systemd sets ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket) and waits for ``READY=1``; with ``WatchdogSec=`` it also sets ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``) and restarts a service that goes longer than that without ``WATCHDOG=1``. Each
message is one datagram of ``KEY=value`` lines. Without ``NOTIFY_SOCKET`` (launchd, a Windows service,
a shell) every call does nothing, so the daemon calls them unconditionally.

The daemon pings from its own loop, never from a thread of its own: a wedged loop must stop the pings
so that systemd restarts it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("agentroster.daemon")

MAX_STATUS_CHARS = 200  # systemctl status shows one line


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares ``MONOTONIC_USEC`` with."""
    clock = getattr(time, "CLOCK_MONOTONIC", None)
    if clock is not None:
        return time.clock_gettime_ns(clock) // 1000
    return time.monotonic_ns() // 1000


class Notifier:
    """Sends notifications to the service manager's socket, if there is one (``from_env``)."""

    def __init__(self, address: str | None, *, watchdog_usec: int = 0) -> None:
        self.address = address
        #: how often to ping, in seconds (half the watchdog's timeout); 0 when there is no watchdog
        self.watchdog_interval_s = watchdog_usec / 2e6 if address and watchdog_usec > 0 else 0.0
        self._sock: socket.socket | None = None
        self._last_status = ""
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, pid: int | None = None) -> Notifier:
        """From ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (the watchdog is ours only when
        ``WATCHDOG_PID`` is unset or our pid: a child that inherited the variables must not ping)."""
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and not (address.startswith(("/", "@"))):
            log.warning("NOTIFY_SOCKET is neither a path nor an abstract @name: service notifications are off")
            address = None
        watchdog_usec = 0
        watchdog_pid = env.get("WATCHDOG_PID", "")
        mine = not watchdog_pid or watchdog_pid.strip() == str(os.getpid() if pid is None else pid)
        try:
            watchdog_usec = int(env.get("WATCHDOG_USEC", "0")) if mine else 0
        except ValueError:
            log.warning("WATCHDOG_USEC is not a number: no watchdog pings")
        return cls(address, watchdog_usec=max(0, watchdog_usec))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """One notification (``READY=1``, ``STATUS=…``…); False when there is no socket or it failed."""
        if self.address is None:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value).replace("\n", " ")  # one line per field: a newline would start another
            lines.append(f"{key}={text}")
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | getattr(socket, "SOCK_CLOEXEC", 0))
            self._sock.sendto("\n".join(lines).encode("utf-8", "replace"), target)
        except OSError as exc:
            if not self._failed:  # said once: the manager may be restarting; the next message tries again
                log.warning("service manager notification failed: %s", exc.strerror or exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str = "") -> bool:
        fields: dict[str, str | int] = {"READY": 1}
        if status:
            fields["STATUS"] = self._status_text(status)
            self._last_status = fields["STATUS"]  # type: ignore[assignment]
        return self.send(**fields)

    def status(self, text: str) -> bool:
        """``STATUS=`` when it differs from the last one sent."""
        line = self._status_text(text)
        if line == self._last_status:
            return False
        self._last_status = line
        return self.send(STATUS=line)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1) if self.watchdog_interval_s else False

    def reloading(self) -> bool:
        return self.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec())

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @staticmethod
    def _status_text(text: str) -> str:
        return " ".join(text.split())[:MAX_STATUS_CHARS]
