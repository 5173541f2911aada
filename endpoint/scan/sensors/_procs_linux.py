"""Linux: processes read straight from /proc, a few small reads each (psutil reads several more).

Each function takes a pid and raises ``ProcessLookupError`` when the process is gone and
``PermissionError`` when it may not be read; any other ``OSError`` is a real read problem. Text is
decoded as UTF-8 with undecodable bytes replaced, so that nothing a process puts in its argv or
environment can make the scan's JSON invalid.
"""

from __future__ import annotations

import os
import pwd

from endpoint.scan.evidence import RawProcess

PROC = "/proc"
CMDLINE_CAP = 256 << 10  # bytes of a command line read; a longer one loses its cut-off last argument
ENV_CAP = 256 << 10  # bytes of an environment read; the entry cut off at the cap is dropped
_PF_KTHREAD = 0x00200000  # task flag of a kernel thread (include/linux/sched.h)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_FIRST_READ = 8 << 10  # most command lines and environments fit; a larger buffer costs an mmap per read


def pids() -> list[int]:
    return [int(name) for name in os.listdir(PROC) if name.isdigit()]


def read(pid: int, users: dict[int, str]) -> RawProcess | None:
    """The process's facts; None for a kernel thread or a zombie. ``users`` caches uid -> user name."""
    base = f"{PROC}/{pid}/"
    fd = _open(base + "stat")
    try:
        stat = os.read(fd, 4096)
        uid = os.fstat(fd).st_uid  # the file's owner: the effective uid (root when not dumpable)
    finally:
        os.close(fd)
    close = stat.rfind(b")")
    fields = stat[close + 2:].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X") or int(fields[6]) & _PF_KTHREAD:
        return None
    name = _text(stat[stat.find(b"(") + 1:close])
    try:
        cmdline = _cmdline(_read(base + "cmdline", CMDLINE_CAP))
    except PermissionError:
        cmdline = []
    if len(name) >= 15 and cmdline:
        full = os.path.basename(cmdline[0])
        if full.startswith(name):
            name = full  # the kernel keeps 15 characters of a name; argv[0] usually has all of it
    return RawProcess(pid=pid, ppid=int(fields[1]), name=name, exe=_exe(base + "exe"), cmdline=cmdline,
                      user=user_name(uid, users), uid=uid,
                      create_time=boot_time() + int(fields[19]) / _CLOCK_TICKS)


def environ(pid: int) -> dict[str, str]:
    return parse_environ(environ_bytes(pid))


def environ_bytes(pid: int) -> bytes:
    """The raw environment (``parse_environ`` reads it): processes of one session share it byte for byte."""
    return _read(f"{PROC}/{pid}/environ", ENV_CAP + 1)


def parse_environ(data: bytes) -> dict[str, str]:
    entries = _text(data).split("\0")
    if len(data) > ENV_CAP:
        entries.pop()  # cut off at the cap
    env: dict[str, str] = {}
    for entry in entries:
        key, eq, value = entry.partition("=")
        if eq and key:
            env[key] = value
    return env


def cwd(pid: int) -> str:
    return _text(_readlink(f"{PROC}/{pid}/cwd"))


def real_uid(pid: int) -> int | None:
    """The real uid from /proc/<pid>/status (the owner of /proc/<pid>/stat is the effective one)."""
    data = b"\n" + _read(f"{PROC}/{pid}/status", 64 << 10)
    start = data.find(b"\nUid:")  # one search instead of splitting some fifty lines
    if start < 0:
        return None
    end = data.find(b"\n", start + 1)
    parts = data[start + 1:end if end >= 0 else len(data)].split()
    return int(parts[1]) if len(parts) > 1 else None


def user_name(uid: int, users: dict[int, str]) -> str:
    name = users.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        users[uid] = name
    return name


_boot_time: float | None = None


def boot_time() -> float:
    global _boot_time
    if _boot_time is None:
        for line in _read(f"{PROC}/stat", 1 << 20).splitlines():
            if line.startswith(b"btime"):
                _boot_time = float(line.split()[1])
                break
        else:
            _boot_time = 0.0
    return _boot_time


# -- reading ---------------------------------------------------------------------------------------


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ProcessLookupError(exc.errno, "no such process", path) from exc


def _read(path: str, cap: int) -> bytes:
    """Up to ``cap`` bytes of a /proc file."""
    fd = _open(path)
    try:
        data = os.read(fd, min(cap, _FIRST_READ))
        if len(data) < _FIRST_READ:
            return data  # these files give all they hold in one read: a short read is the end
        chunks = [data]
        size = len(data)
        while size < cap:
            chunk = os.read(fd, min(cap - size, 64 << 10))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _readlink(path: str) -> bytes:
    try:
        return os.readlink(path.encode())
    except FileNotFoundError as exc:
        raise ProcessLookupError(exc.errno, "no such process", path) from exc


def _exe(path: str) -> str:
    try:
        target = os.readlink(path.encode())
    except OSError:
        return ""  # a kernel thread, a process that is gone, or another user's (not root)
    target = target.split(b"\0", 1)[0]
    if target.endswith(b" (deleted)") and not os.path.exists(target):
        target = target[:-10]
    return _text(target)


def _cmdline(data: bytes) -> list[str]:
    # Arguments end in NUL; a process that rewrote its title (setproctitle) may use spaces instead.
    if len(data) >= CMDLINE_CAP:
        # Cut off mid-argument: drop the partial one, lest part of a secret slip past redaction.
        data = data[:max(data.rfind(b"\0"), data.rfind(b" ")) + 1]
    if not data:
        return []
    text = _text(data)
    sep = "\0" if text.endswith("\0") else " "
    args = text.removesuffix(sep).split(sep)
    if sep == "\0" and len(args) == 1 and " " in args[0]:
        args = args[0].split(" ")
    return args


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
