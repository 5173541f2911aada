"""The one rule for files agentroster trusts, and the one way to read them.

The endpoint runs as root over files users control, so a file that decides what it does (the signatures
cache, its own keys and identity, an administrator's managed settings or enroll secret) is trusted only
when it is owned by a trusted user and no one else could have written it: not others, and not its group
unless that group is root's. A private file (a key, a secret) may not even be read by group or others.

It lives here, under signatures, because that is the lowest layer that needs it: the signatures cache
uses it, and signatures may import nothing of the endpoint; the scan and the service import it from
here. On Windows ownership and mode bits mean nothing (ACLs protect those paths), so nothing is refused
for them there.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Collection
from typing import Literal

#: what makes a file untrusted, or unreadable as a trusted file
Problem = Literal["owner", "world_writable", "group_writable", "exposed"]

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0)


class Untrusted(Exception):
    """A file was not read. ``code`` says why: ``not_found``, ``unopenable`` (``errno`` set), ``not_regular``,
    one of the ``Problem`` codes, ``too_large``, ``grew`` or ``unreadable`` (``errno`` set); ``st`` is the
    open file's status when it was taken, for the caller's own message."""

    def __init__(self, code: str, *, st: os.stat_result | None = None, errno_: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.st = st
        self.errno = errno_


def me() -> int:
    """The user this process acts as (root on Windows, where there is no such number)."""
    return os.geteuid() if hasattr(os, "geteuid") else 0


def me_or_root() -> frozenset[int]:
    return frozenset({0, me()})


def problem(st: os.stat_result, owners: Collection[int], *, private: bool = False,
            root_group_may_write: bool = True) -> Problem | None:
    """What makes a file (or folder) with this status untrusted, or None when nothing does: it must be
    owned by one of ``owners``; others may not write it, nor may its group unless the group is root's
    (and ``root_group_may_write``); a ``private`` one may not be read by group or others either."""
    if sys.platform == "win32":
        return None
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in owners:
        return "owner"
    if mode & stat.S_IWOTH:
        return "world_writable"
    if mode & stat.S_IWGRP and not (root_group_may_write and st.st_gid == 0):
        return "group_writable"
    if private and mode & (stat.S_IRWXG | stat.S_IRWXO):
        return "exposed"
    return None


def is_trusted(path: str | os.PathLike[str], owners: Collection[int], *, private: bool = False,
               root_group_may_write: bool = True) -> bool:
    """True when ``path`` (a link followed) exists and ``problem`` finds nothing wrong with it."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return problem(st, owners, private=private, root_group_may_write=root_group_may_write) is None


def read_trusted(path: str | os.PathLike[str], owners: Collection[int], *, limit: int, private: bool = False,
                 root_group_may_write: bool = True) -> bytes:
    """The bytes of a trusted file: a regular file (never through a symlink, never blocking on a FIFO),
    passing ``problem``'s checks on the open file itself, at most ``limit`` bytes; else ``Untrusted``."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise Untrusted("not_found") from None
    except OSError as exc:
        raise Untrusted("unopenable", errno_=exc.errno or errno.EIO) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Untrusted("not_regular", st=st)
        found = problem(st, owners, private=private, root_group_may_write=root_group_may_write)
        if found is not None:
            raise Untrusted(found, st=st)
        if st.st_size > limit:
            raise Untrusted("too_large", st=st)
        data = read_capped(fd, limit)
        if data is None:
            raise Untrusted("grew", st=st)
        return data
    except OSError as exc:
        raise Untrusted("unreadable", errno_=exc.errno or errno.EIO) from None
    finally:
        os.close(fd)


def read_capped(fd: int, limit: int) -> bytes | None:
    """At most ``limit`` bytes from ``fd``; None when there are more (the file grew past the cap)."""
    chunks: list[bytes] = []
    remaining = limit + 1
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    data = b"".join(chunks)
    return None if len(data) > limit else data
