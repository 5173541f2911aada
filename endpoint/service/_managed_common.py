"""Reading the files an administrator controls (managed config, the enroll secret file), as root.

A managed file decides where the daemon reports and with what secret, so it is trusted only when no
one but root could have written it: a regular file (not a symlink, FIFO or device), owned by root,
not writable by group or others, in directories that only root can change; and it is size-capped.
A secret file must also be unreadable by group and others. Refusals are ``SettingsError``s that say
what is wrong and how to fix it, and never quote the file's contents.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Collection
from pathlib import Path

from endpoint.scan.platforms import PLATFORM, normalize_platform
from endpoint.scan.safeio import file_kind
from endpoint.service._acl_windows import AclReader, private_acl_problem
from endpoint.service.settings import ManagedValues, SettingsError
from signatures.trusted_files import Untrusted, me_or_root, problem, read_trusted

MAX_MANAGED_BYTES = 256 << 10  # a settings file is a few hundred bytes
MAX_SECRET_BYTES = 16 << 10
ROOT_ONLY = (0,)

_Refuse = Callable[[str], SettingsError]


def read_managed_file(path: str | os.PathLike[str], *, root: str | os.PathLike[str] = "/",
                      limit: int = MAX_MANAGED_BYTES, trusted_uids: Collection[int] = ROOT_ONLY,
                      private: bool = False, field: str | None = None) -> bytes | None:
    """The bytes of an administrator's file, or ``None`` when it does not exist.

    Directories from the file's up to ``root`` (exclusive) are checked too: a directory others can
    write lets them swap the file. ``private`` also refuses a file that group or others can read.
    """
    where = str(path)

    def refuse(reason: str) -> SettingsError:
        return SettingsError(field, where, reason)

    try:
        pre = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as exc:
        raise refuse(f"cannot be read: {os.strerror(exc.errno or errno.EIO)}") from None
    if stat.S_ISLNK(pre.st_mode):
        raise refuse("is a symbolic link; it must be a regular file (symlinks are not followed)")
    if not stat.S_ISREG(pre.st_mode):
        raise refuse(f"is {file_kind(pre.st_mode)}, not a regular file; not opened")
    _check_dirs(Path(path).parent, Path(root), trusted_uids, refuse)
    try:
        return read_trusted(path, trusted_uids, limit=limit, private=private)
    except Untrusted as exc:
        raise refuse(_why(exc, limit, private)) from None


def _why(exc: Untrusted, limit: int, private: bool) -> str:
    """What is wrong with a managed file, and how to fix it, in words."""
    st = exc.st
    if st is None:  # the open (the file swapped or removed since lstat) or a read failed
        verb = "read" if exc.code == "unreadable" else "opened"
        return f"cannot be {verb}: {os.strerror(exc.errno or errno.ENOENT)}"
    mode = stat.S_IMODE(st.st_mode)
    hint = "0600" if private else "0644"
    return {
        "not_regular": f"is {file_kind(st.st_mode)}, not a regular file",  # swapped between lstat and open
        "owner": f"is owned by uid {st.st_uid}, not root; refused (chown root)",
        "world_writable": f"is world-writable (mode {mode:04o}); refused (chmod {hint})",
        "group_writable": f"is writable by group {st.st_gid} (mode {mode:04o}); refused (chmod {hint})",
        "exposed": f"can be read by group or others (mode {mode:04o}); refused (chmod 0600)",
        "too_large": f"is {st.st_size} bytes, over the {limit}-byte cap; not read",
        "grew": f"grew over the {limit}-byte cap while being read",
    }[exc.code]


def read_secret_file(path: str | os.PathLike[str], *, trusted_uids: Collection[int] | None = None,
                     platform: str | None = None, acl_reader: AclReader | None = None) -> str:
    """The text of an enroll secret file: owned by root (or the user the daemon runs as), mode 0600
    or stricter; on Windows, an ACL that lets only SYSTEM and Administrators in (read through
    ``acl_reader``, Windows' ``icacls`` by default). A missing file is an error (the setting names it)."""
    if trusted_uids is None:
        trusted_uids = me_or_root()
    data = read_managed_file(path, root=Path(path).anchor or "/", limit=MAX_SECRET_BYTES,
                             trusted_uids=trusted_uids, private=True, field="enroll_secret_file")
    if data is None:
        raise SettingsError("enroll_secret_file", str(path), "no such file")
    if normalize_platform(platform) == "windows":  # mode bits mean nothing there: the ACL says who reads
        problem_found = private_acl_problem(str(path), acl_reader)
        if problem_found is not None:
            raise SettingsError("enroll_secret_file", str(path), problem_found)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SettingsError("enroll_secret_file", str(path), "is not UTF-8 text") from None


def _check_dirs(directory: Path, root: Path, trusted_uids: Collection[int], refuse: _Refuse) -> None:
    if PLATFORM == "windows":
        return
    stop = os.path.abspath(root)
    current = os.path.abspath(directory)
    while True:
        if current == stop or os.path.dirname(current) == current:
            return
        try:
            st = os.stat(current)
        except OSError as exc:
            raise refuse(f"its directory {current} cannot be checked: {os.strerror(exc.errno or errno.EIO)}") from None
        mode = stat.S_IMODE(st.st_mode)
        found = problem(st, trusted_uids)
        if found == "owner":
            raise refuse(f"its directory {current} is owned by uid {st.st_uid}, not root; refused")
        if found is not None and not mode & stat.S_ISVTX:  # in a sticky directory no one else can swap the file
            raise refuse(f"its directory {current} can be written by others (mode {mode:04o}); refused")
        current = os.path.dirname(current)


def _exposed(path: Path) -> str | None:
    """Who besides root can read a managed file, in words; None when no one can. The file was found
    root-owned and not writable by others, so only root can change this after it was read."""
    try:
        mode = stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)
    except OSError:
        return "it could not be checked"
    if PLATFORM == "windows":
        return None  # mode bits say nothing there; a managed file is not a Windows source
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"other users can read it (mode {mode:04o})"
    return None


class ManagedFileSource:
    """A managed-settings file under ``root`` (``/`` on a live machine), read with ``read_managed_file``'s
    checks; a subclass names the file (``RELATIVE_PATH``) and turns its bytes into settings (``parse``)."""

    RELATIVE_PATH = ""

    def __init__(self, root: str | os.PathLike[str] = "/", *, trusted_uids: tuple[int, ...] = ROOT_ONLY) -> None:
        self.root = Path(root)
        self.path = self.root / self.RELATIVE_PATH
        self.trusted_uids = trusted_uids

    @property
    def where(self) -> str:
        return str(self.path)

    def read(self) -> ManagedValues:
        data = read_managed_file(self.path, root=self.root, trusted_uids=self.trusted_uids)
        if data is None:
            return ManagedValues({}, self.where)
        found = self.parse(data)
        return ManagedValues(found.values, found.where, found.warnings, exposed=_exposed(self.path))

    def parse(self, data: bytes) -> ManagedValues:
        raise NotImplementedError
