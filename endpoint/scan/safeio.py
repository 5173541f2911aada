"""Reading files that any user can write, as root, without being tricked.

Only regular files are opened (never a FIFO, device or socket, so a read never blocks), symlinks are
followed only while they stay inside the directory the file belongs to, sizes are capped, and the
text must decode. Every refusal is a ``ReadRefused`` with a short code and a reason that never quotes
the file's contents.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from endpoint.errors import EndpointError
from signatures.trusted_files import Untrusted, me_or_root, read_capped, read_trusted

if TYPE_CHECKING:
    from pathlib import Path

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: the largest real agent config is a few hundred KiB
MAX_SCRIPT_BYTES = 64 << 10  # 64 KiB of a script is enough to see its imports

# Where /proc/self/fd names what a descriptor has open (Linux), a read can check where it really landed.
_OPENED_PATHS = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0)


#: asked where a file really lies before it is read: None, or the (code, detail) that refuses it
Refuse = Callable[[str], "tuple[str, str] | None"]
#: asked where the open file lies and what its ``fstat`` says (owner, group, mode) before a byte of it is read
Vet = Callable[[str, os.stat_result], "tuple[str, str] | None"]


class ReadRefused(EndpointError):
    """A file was not read; ``code`` says why (not_found, not_regular, too_large, binary, ...)."""

    code = "read_refused"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def is_within(path: str, boundary: str) -> bool:
    """True when ``path`` is ``boundary`` or below it (both already resolved)."""
    boundary = boundary.rstrip(os.sep) or os.sep
    return path == boundary or path.startswith(boundary + os.sep) or boundary == os.sep


def _resolve(path: str, boundary: str, resolver: Resolver | None) -> tuple[str, os.stat_result | None]:
    """The real path, and the file's own ``lstat`` when it was taken on the way (the file is no link)."""
    try:
        if resolver is None:
            real, own = os.path.realpath(path, strict=True), None
        else:
            real, own = resolver.realpath(path)
    except FileNotFoundError as exc:
        raise ReadRefused("not_found", "no such file") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ReadRefused("symlink_loop", "symbolic link loop") from exc
        raise ReadRefused("unreadable", os.strerror(exc.errno or errno.EIO)) from exc
    except RuntimeError as exc:  # older realpath reports loops this way
        raise ReadRefused("symlink_loop", "symbolic link loop") from exc
    real_boundary = os.path.realpath(boundary) if resolver is None else resolver.boundary(boundary)
    if not is_within(real, real_boundary):
        raise ReadRefused("symlink_escape", f"links outside {boundary}; not followed")
    return real, own


class Resolver:
    """Real paths of boundaries and folders, each resolved once: one scan reads many files below a home.

    A folder resolved early could be swapped for a symlink before a file in it is opened; where the
    kernel tells where an open file lies (Linux), ``read_bytes`` checks that after opening, and only
    there are folders remembered (elsewhere only boundaries are). Make one per scan.
    """

    def __init__(self) -> None:
        self._boundaries: dict[str, str] = {}
        self._folders: dict[str, str] = {}

    def boundary(self, boundary: str) -> str:
        real = self._boundaries.get(boundary)
        if real is None:
            real = self._boundaries[boundary] = os.path.realpath(boundary)
        return real

    def realpath(self, path: str) -> tuple[str, os.stat_result | None]:
        """``os.path.realpath(path, strict=True)``, and the file's ``lstat`` when it is no symlink."""
        head, tail = os.path.split(path)
        if not _OPENED_PATHS or not os.path.isabs(path) or tail in ("", ".", ".."):
            return os.path.realpath(path, strict=True), None
        own = os.lstat(path)  # raises as realpath would: missing, a loop on the way, no permission
        if stat.S_ISLNK(own.st_mode):
            return os.path.realpath(path, strict=True), None
        return os.path.join(self._folder(head), tail), own

    def _folder(self, folder: str) -> str:
        """The real path of a folder the caller just reached: one ``lstat`` per folder not yet known."""
        below: list[tuple[str, str]] = []
        real = self._folders.get(folder)
        while real is None:
            head, tail = os.path.split(folder)
            if tail in ("", ".", "..") or stat.S_ISLNK(os.lstat(folder).st_mode):
                real = self._folders[folder] = os.path.realpath(folder, strict=True)
                break
            below.append((folder, tail))
            folder = head
            real = self._folders.get(folder)
        for path, tail in reversed(below):
            real = self._folders[path] = os.path.join(real, tail)
        return real


def read_bytes(path: str, *, boundary: str, limit: int = MAX_CONFIG_BYTES, resolver: Resolver | None = None) -> bytes:
    """Read a regular file below ``boundary`` of at most ``limit`` bytes."""
    return _read(path, boundary, limit, resolver)[0]


def read_text_owned(path: str, *, boundary: str, limit: int = MAX_CONFIG_BYTES, resolver: Resolver | None = None,
                    refuse: Refuse | None = None, vet: Vet | None = None) -> tuple[str, int]:
    """``read_text``, and the uid that owns the file that was read (from the open file itself, so that a
    file swapped between a check and the read cannot be credited to someone else). ``refuse`` is asked
    where the open file really lies (as the kernel names it, on Linux): a (code, detail) it returns
    refuses the read, so that no link swapped in after a check can take it elsewhere. ``vet`` is asked
    the same with the open file's ``fstat`` (whose file it is, its mode), before anything is read."""
    data, uid = _read(path, boundary, limit, resolver, refuse, vet)
    return decode_text(data), uid


def read_bytes_owned(path: str, *, boundary: str, limit: int = MAX_CONFIG_BYTES, resolver: Resolver | None = None,
                     refuse: Refuse | None = None, vet: Vet | None = None) -> tuple[bytes, int]:
    """``read_bytes``, and the uid that owns the file that was read (from the open file, as in
    ``read_text_owned``): for a binary file (a SQLite store) read once and then used from memory."""
    return _read(path, boundary, limit, resolver, refuse, vet)


def _read(path: str, boundary: str, limit: int, resolver: Resolver | None,
          refuse: Refuse | None = None, vet: Vet | None = None) -> tuple[bytes, int]:
    real, pre = _resolve(path, boundary, resolver)
    if pre is None:
        try:
            # stat before open: opening a device node can have side effects even when we never read it
            pre = os.stat(real, follow_symlinks=False)
        except OSError as exc:
            raise ReadRefused("unreadable", os.strerror(exc.errno or errno.EIO)) from exc
    if not stat.S_ISREG(pre.st_mode):
        raise ReadRefused("not_regular", f"{file_kind(pre.st_mode)}, not a regular file; not opened")
    if pre.st_size > limit:
        raise ReadRefused("too_large", f"{pre.st_size} bytes, over the {limit}-byte cap")
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as exc:
        code = {errno.ENOENT: "not_found", errno.EACCES: "permission_denied", errno.EPERM: "permission_denied",
                errno.ELOOP: "symlink_loop", errno.ENXIO: "not_regular"}.get(exc.errno or 0, "unreadable")
        raise ReadRefused(code, os.strerror(exc.errno or errno.EIO)) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadRefused("not_regular", f"{file_kind(st.st_mode)}, not a regular file; not opened for reading")
        if st.st_size > limit:
            raise ReadRefused("too_large", f"{st.st_size} bytes, over the {limit}-byte cap")
        if resolver is not None and not _opened_within(fd, resolver.boundary(boundary)):
            raise ReadRefused("symlink_escape", f"links outside {boundary}; not followed")
        opened = (_opened_path(fd) or real) if refuse is not None or vet is not None else real
        refused = refuse(opened) if refuse is not None else None
        if refused is None and vet is not None:
            refused = vet(opened, st)
        if refused is not None:
            raise ReadRefused(*refused)
        data = read_capped(fd, limit)
        if data is None:  # grew while we read it
            raise ReadRefused("too_large", f"over the {limit}-byte cap")
        return data, st.st_uid
    except OSError as exc:
        raise ReadRefused("unreadable", os.strerror(exc.errno or errno.EIO)) from exc
    finally:
        os.close(fd)


def _opened_path(fd: int) -> str:
    """Where the file open as ``fd`` lies, as the kernel names it (Linux); "" when it cannot tell."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
    except OSError:
        return ""


def _opened_within(fd: int, real_boundary: str) -> bool:
    """Whether the file open as ``fd`` lies below ``real_boundary``, as the kernel names it (Linux)."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return True  # no /proc: the path was checked when it was resolved
    return is_within(opened.removesuffix(" (deleted)"), real_boundary)


def decode_text(data: bytes) -> str:
    """Decode a config file: UTF-8 (with or without BOM) or UTF-16 with a BOM; binary is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ReadRefused("encoding", f"invalid UTF-16 at byte {exc.start}") from exc
    if b"\x00" in data[:8192]:
        raise ReadRefused("binary", "contains NUL bytes; not a text config")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadRefused("encoding", f"not UTF-8 (invalid byte at offset {exc.start})") from exc


def read_text(path: str, *, boundary: str, limit: int = MAX_CONFIG_BYTES, resolver: Resolver | None = None) -> str:
    return decode_text(read_bytes(path, boundary=boundary, limit=limit, resolver=resolver))


def file_kind(mode: int) -> str:
    """What a non-regular file is, for an error message ("a FIFO", "a socket", …)."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


#: the largest root-only file of the daemon's own (an identity, a key) that is read
MAX_PRIVATE_BYTES = 4096


def read_private(path: Path) -> str | None:
    """The text of a root-only file: a regular file (no symlink) owned by root or this user, that no group
    or other can read or write; None when it is missing or is not such a file."""
    try:
        data = read_trusted(path, me_or_root(), limit=MAX_PRIVATE_BYTES, private=True)
    except Untrusted:
        return None
    try:
        return data.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        return None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600), whole, then renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink()  # whatever was there (a link someone left) is not followed
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
