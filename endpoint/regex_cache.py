"""Compiled regular expressions kept from one ``agentroster scan`` to the next.

Python compiles every pattern again in every process, and a scan compiles some eighty of them
(PyYAML's character classes, the signatures' process and credential patterns, tomllib's): 10 to
15 ms of a scan whose budget is 150. While a ``RegexCache`` is active, ``re`` hands each pattern it
has not met yet in this process to it; the cache answers from what the same Python produced before
(the sre code, a list of integers, kept with the pattern's flags and groups) and otherwise compiles
it and keeps the result, once ``re``'s own compiler agrees with it exactly.

The file sits beside the signatures cache and is trusted the same way: read only when this user
owns it and its folder and no one else may write either; ``_sre.compile`` checks any code it is
given. It is keyed by the exact Python version; anything unexpected only means compiling as usual.
"""

from __future__ import annotations

import _sre
import marshal
import os
import stat
import sys
from collections.abc import Callable
from re import _compiler, _parser  # type: ignore[attr-defined]
from typing import Any

FORMAT = f"agentroster.regex-cache/1 python {sys.hexversion:x} sre {_sre.MAGIC}"
MAX_ENTRIES = 4096  # patterns kept; a scan uses about a hundred
MAX_FILE_BYTES = 8 << 20

Key = tuple[bool, str | bytes, int]  # (bytes pattern, pattern, flags as given to re)
Compiled = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]  # _sre.compile's other arguments

_active: RegexCache | None = None


class RegexCache:
    """The patterns of one file; ``active()`` routes ``re``'s compiler through them."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.entries: dict[Key, Compiled] = {}
        self.added = False
        self._compile: Callable[..., Any] | None = None

    def compile(self, pattern: Any, flags: int = 0) -> Any:
        """``re._compiler.compile``, answered from the cache where it can be."""
        original = self._compile
        assert original is not None  # noqa: S101  (only called while active)
        if not isinstance(pattern, (str, bytes)) or flags & _compiler.SRE_FLAG_DEBUG:
            return original(pattern, flags)
        flags = int(flags)
        key = (isinstance(pattern, bytes), pattern, flags)
        kept = self.entries.get(key)
        if kept is not None:
            try:
                return _sre.compile(pattern, *kept)
            except (TypeError, ValueError, RuntimeError, OverflowError):
                del self.entries[key]  # not what this Python's sre accepts: compile as usual
        compiled = original(pattern, flags)
        if len(self.entries) < MAX_ENTRIES:
            made = _arguments(pattern, flags)
            if made is not None and _same(_sre.compile(pattern, *made), compiled):
                self.entries[key] = made
                self.added = True
        return compiled

    def load(self) -> None:
        data = _read_trusted(self.path) if self.path else None
        if data is None:
            return
        try:
            doc = marshal.loads(data)
            if isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(doc.get("entries"), dict):
                self.entries.update(doc["entries"])
        except (ValueError, EOFError, TypeError):
            pass  # damaged: compiled again, and written anew

    def save(self) -> None:
        """Write the entries (with those another process wrote meanwhile) when this process added some."""
        if not self.added or not self.path:
            return
        self.added = False
        merged = RegexCache(self.path)
        merged.load()
        merged.entries.update(self.entries)
        try:
            data = marshal.dumps({"format": FORMAT, "entries": merged.entries})
        except ValueError:  # something marshal cannot write: keep nothing rather than fail the scan
            return
        _write_trusted(self.path, data)


class active:  # noqa: N801  (used as a function: ``with regex_cache.active(path):``)
    """Route ``re``'s compiler through the cache in ``path`` (None: one kept in memory only) while the
    block runs, and write what was added at its end."""

    def __init__(self, path: str | None) -> None:
        self.cache = RegexCache(path)

    def __enter__(self) -> RegexCache:
        global _active
        cache = self.cache
        if _active is None and callable(getattr(_compiler, "compile", None)):
            cache.load()
            cache._compile = _compiler.compile
            _compiler.compile = cache.compile
            _active = cache
        return cache  # already active (a nested scan): the outer one keeps what is compiled

    def __exit__(self, *exc: object) -> None:
        global _active
        cache = self.cache
        if cache._compile is not None and _active is cache:
            _compiler.compile = cache._compile
            _active = None
            cache.save()


def save_active() -> None:
    """Write what the active cache added (a forked child calls this before it exits)."""
    if _active is not None:
        _active.save()


def default_path() -> str | None:
    """``regex-<python>.marshal`` in the signatures cache's folder; None where there is none."""
    from signatures.loader import default_cache_dir

    folder = default_cache_dir()
    return os.path.join(folder, f"regex-{sys.hexversion:x}.marshal") if folder is not None else None


def _arguments(pattern: str | bytes, flags: int) -> Compiled | None:
    """The arguments that ``re._compiler.compile`` gives ``_sre.compile`` for ``pattern`` (Python 3.11-3.13)."""
    try:
        parsed = _parser.parse(pattern, flags)
        code = _compiler._code(parsed, flags)
        groupindex = {str(name): int(index) for name, index in parsed.state.groupdict.items()}
        indexgroup: list[str | None] = [None] * parsed.state.groups
        for name, index in groupindex.items():
            indexgroup[index] = name
        # Plain ints: the compiler's opcodes are an int subclass, which marshal does not write.
        return (int(flags | parsed.state.flags), [int(c) for c in code], int(parsed.state.groups - 1), groupindex,
                tuple(indexgroup))
    except Exception:  # noqa: BLE001  (another Python's internals: then nothing is kept)
        return None


def _same(ours: Any, theirs: Any) -> bool:
    """Patterns compare equal when their flags, text and code are; groups are compared besides."""
    return bool(ours == theirs and ours.groups == theirs.groups and ours.groupindex == theirs.groupindex)


def _trusted(st: os.stat_result) -> bool:
    return not hasattr(os, "geteuid") or (st.st_uid == os.geteuid() and not st.st_mode & 0o022)


def _read_trusted(path: str) -> bytes | None:
    try:
        if not _trusted(os.stat(os.path.dirname(path))):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _trusted(st) or st.st_size > MAX_FILE_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _write_trusted(path: str, data: bytes) -> None:
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not _trusted(os.stat(folder)) or len(data) > MAX_FILE_BYTES:
            return  # someone else's folder: what we wrote there would never be read back
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".regex-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # no cache, no harm: the next scan compiles again
