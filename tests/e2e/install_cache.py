"""The cache the end-to-end tests install real frameworks and tools into (pytest's cache folder,
``agentroster-enterprise``): one installer at a time, each install keyed by what it holds."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

FOLDER = "agentroster-enterprise"  # under pytest's cache folder


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One installer at a time: parallel runs (and the background install) share the cache."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def key(specs: tuple[str, ...]) -> str:
    """The cache key of an install of ``specs`` by this Python."""
    return hashlib.sha256("\n".join((sys.version, *specs)).encode()).hexdigest()[:16]
