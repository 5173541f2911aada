"""One daemon per data dir: an exclusive lock on ``daemon.lock`` in the data dir, held for the process's life.

Two daemons over one state file would send the same reports twice and fight over the device key. The
lock is the kernel's (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows), so it goes away with the
process, however it ends: a daemon killed with SIGKILL leaves nothing stale behind. The file holds the
holder's pid, for the message the second daemon prints.
"""

from __future__ import annotations

import os
from pathlib import Path

from endpoint.errors import EndpointError
from endpoint.scan.platforms import PLATFORM

LOCK_FILE = "daemon.lock"
_PID_BYTES = 32  # the pid as text, padded; on Windows the locked byte comes after it, so the pid stays readable


class AlreadyRunning(EndpointError):
    """Another daemon holds the data dir's lock."""

    code = "already_running"

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid else "another process (its pid could not be read)"
        super().__init__(f"another agentroster daemon ({holder}) is already running with this data dir "
                         f"({path.parent}); stop it first, or give this one another --data-dir")


class InstanceLock:
    """The data dir's lock; ``acquire()`` or raise ``AlreadyRunning``; ``release()`` (or exit) frees it."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> InstanceLock:
        from endpoint.service.inventory import StateError, make_private_dir

        try:
            make_private_dir(self.path.parent)
            # O_NOFOLLOW: the data dir is root's 0700, but a link planted there must not be written through
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0), 0o600)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot be created ({exc.strerror or exc}); "
                             "the data dir must be a directory root can write") from None
        try:
            _lock(fd)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.path, pid) from None
        self._fd = fd
        _write_pid(fd)
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock

    @property
    def held(self) -> bool:
        return self._fd is not None


if PLATFORM == "windows":
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, _PID_BYTES, os.SEEK_SET)  # a byte past the pid (beyond the end is allowed) is the lock
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _write_pid(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, str(os.getpid()).ljust(_PID_BYTES).encode())
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _write_pid(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, _PID_BYTES).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 1 << 31 else None
