"""One daemon per data dir: an exclusive lock on ``daemon.lock`` in the data dir, held for the process's life.

Two daemons over one state file would send the same reports twice and fight over the device key. The
lock is the kernel's (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows), so it goes away with the
process, however it ends: a daemon killed with SIGKILL leaves nothing stale behind. The file holds the
holder's pid, for the message the second daemon prints.

Taking the lock is the first thing the daemon does in its data dir, so it also refuses a data dir and a
lock file it did not make: the daemon runs as root, and writing its pid through a file a local user
planted (a hard link to /etc/shadow, a symbolic link, a FIFO), or keeping its key in a folder a user owns,
would hand that user root's write or the device's key. One clear error, and the daemon does not start.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from endpoint.errors import EndpointError
from endpoint.scan.platforms import PLATFORM
from endpoint.service.inventory import StateError, make_private_dir

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


class RefusedLockFile(StateError):
    """The data dir or its lock file is not one the daemon made: it does not start (exit 2, as for any
    state it cannot use: a restart would not mend it)."""

    code = "refused_lock_file"


def _owner() -> int | None:
    """Who must own the data dir and the lock file: this process's user (on Windows, the data dir's ACL
    decides, ``endpoint/service/_acl_windows.py``)."""
    return os.geteuid() if hasattr(os, "geteuid") else None


def _reparse_point(st: os.stat_result) -> bool:
    return bool(getattr(st, "st_file_attributes", 0) & stat.FILE_ATTRIBUTE_REPARSE_POINT)


def written_file_problem(st: os.stat_result, *, owner: int | None) -> str | None:
    """Why an existing file the daemon writes in its data dir (the lock; the Windows service's log), given
    its ``lstat``, is not one it may write to, in words; None when it is: a regular file, its only name,
    owned by the daemon's user (``owner``; None where ACLs decide)."""
    if stat.S_ISLNK(st.st_mode) or _reparse_point(st):
        return "it is a symbolic link (or another kind of link)"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_nlink > 1:
        return f"it has {st.st_nlink} names (hard links): writing it would write a file elsewhere"
    if owner is not None and st.st_uid != owner:
        return f"it belongs to uid {st.st_uid}, not to uid {owner} that runs the daemon"
    return None


def data_dir_problem(st: os.stat_result, *, owner: int | None) -> str | None:
    """Why an existing data dir (its ``lstat``) is not one the daemon may keep its key in; None when it is."""
    if stat.S_ISLNK(st.st_mode) or _reparse_point(st):
        return "it is a symbolic link (or another kind of link), not a folder"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a folder"
    if owner is not None and st.st_uid != owner:
        return (f"it belongs to uid {st.st_uid}, not to uid {owner} that runs the daemon: its owner could "
                "replace what the daemon keeps there")
    if owner is not None and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        # made 0700 now, it would still hold what others put there meanwhile (a link named like a state file)
        return (f"others could write in it (mode {stat.S_IMODE(st.st_mode):04o}), so what it holds may not be "
                "the daemon's: look at it, then chmod 700 it")
    return None


def ancestors_problem(data_dir: Path) -> str | None:
    """Why a folder above the data dir lets someone else replace it, in words; None when only root (or
    the daemon's user) can write each: owned by one of them, and written by no one else unless it is
    sticky (as /tmp is: then no one else may rename what root made there). Both the path as written and
    the one its links lead to are looked at: a link in a folder others write can be pointed elsewhere."""
    if PLATFORM == "windows":  # the data dir's ACL decides there (endpoint/service/_acl_windows.py)
        return None
    from signatures.trusted_files import me_or_root, problem

    written = Path(os.path.abspath(data_dir)).parent
    real = Path(os.path.realpath(written))
    folders = dict.fromkeys([written, *written.parents, real, *real.parents])
    for folder in folders:
        try:
            st = os.stat(folder)
        except OSError:  # not there yet: made by the daemon (root), below folders looked at here
            continue
        found = problem(st, me_or_root())
        if found is None or (found != "owner" and st.st_mode & stat.S_ISVTX):
            continue
        reason = {"owner": f"belongs to uid {st.st_uid}", "world_writable": "can be written by anyone",
                  "group_writable": f"can be written by its group (gid {st.st_gid})"}.get(found, found)
        return (f"{folder}, a folder above it, {reason}: whoever can write that folder can put another data "
                "dir in its place. Use a data dir whose folders only root can write (the default is)")
    return None


def _refuse(path: Path, why: str) -> RefusedLockFile:
    return RefusedLockFile(f"{path}: refused: {why}. Someone other than the daemon may have put it there: "
                           f"look at it, remove it (as root: rm -r {path}) or mend it, and start the daemon again")


class InstanceLock:
    """The data dir's lock; ``acquire()`` or raise ``AlreadyRunning``; ``release()`` (or exit) frees it."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> InstanceLock:
        owner = _owner()
        data_dir = self.path.parent
        above = ancestors_problem(data_dir)
        if above is not None:
            raise RefusedLockFile(f"{data_dir}: refused: {above}")
        try:
            self._check(data_dir, data_dir_problem, owner)  # before it is made private: chmod follows a link
            make_private_dir(data_dir)
            self._check(data_dir, data_dir_problem, owner)
            self._check(self.path, written_file_problem, owner)
            # O_NOFOLLOW: a link put there between the check and the open is not followed either;
            # O_NONBLOCK: a FIFO put there does not hang the open
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                         | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0), 0o600)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot be created ({exc.strerror or exc}); "
                             "the data dir must be a directory root can write") from None
        why = written_file_problem(os.fstat(fd), owner=owner)  # the file opened is the one checked
        if why is not None:
            os.close(fd)
            raise _refuse(self.path, why)
        try:
            _lock(fd)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.path, pid) from None
        self._fd = fd
        _write_pid(fd)
        return self

    @staticmethod
    def _check(path: Path, problem: Callable[..., str | None], owner: int | None) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        why = problem(st, owner=owner)
        if why is not None:
            raise _refuse(path, why)

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
