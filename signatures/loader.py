"""Loads the signature packs and the provider catalog into a ``Library``.

A warm start reads the on-disk cache: the data that a previous load validated, kept as JSON and keyed
by the files' contents, the package and Python versions and a digest of the code that derived it,
built into plain objects (``signatures.runtime``) without YAML or pydantic.
A cold start (no cache, a stale or damaged one) reads and validates the YAML (``signatures.validate``)
and fills the cache; every problem is a ``SignatureError`` line "path:line: message".
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from contract import __version__
from signatures import runtime
from signatures.errors import SignatureError
from signatures.matching import Library
from signatures.trusted_files import is_trusted, me

PACKS_DIR = Path(__file__).with_name("packs")
CATALOG_PATH = Path(__file__).with_name("providers.yaml")


def shipped_packs() -> list[Path]:
    return sorted(PACKS_DIR.glob("*.yaml"))


def load_files(pack_paths: Iterable[Path], catalog_path: Path = CATALOG_PATH, *,
               cache_dir: Path | None = None) -> Library:
    """A Library from the given packs and catalog; raises SignatureError listing every problem.

    With ``cache_dir``, the validated data of a clean load is kept there as JSON, keyed by the files'
    contents, so that the next process skips YAML parsing and validation (a cache file not owned by
    this user, or writable by others, is ignored).
    """
    pack_paths = list(pack_paths)
    key = _cache_key(pack_paths, catalog_path) if cache_dir is not None else None
    if cache_dir is not None and key is not None:
        cached = _read_cache(cache_dir, key)
        if cached is not None:
            return cached
    # YAML and pydantic cost tens of milliseconds to import: only a cold start pays them
    from signatures.validate import read_all

    packs, catalog, problems = read_all(pack_paths, catalog_path)
    if problems or catalog is None:
        raise SignatureError(problems or [f"{catalog_path}:1: no catalog"])
    pack_data = [pack.model_dump(mode="json", exclude_defaults=True) for pack, _ in packs]
    catalog_data = catalog[0].model_dump(mode="json", exclude_defaults=True)
    library = _library(pack_data, catalog_data)
    if cache_dir is not None and key is not None:
        _write_cache(cache_dir, key, pack_data, catalog_data, library)
    return library


def _library(packs: Sequence[Mapping[str, Any]], catalog: Mapping[str, Any],
             anchors: Mapping[str, frozenset[str] | None] | None = None) -> Library:
    signatures, providers, kinds = runtime.build(packs, catalog)
    return Library(signatures, providers, kinds, anchors=anchors)


# -- cache -----------------------------------------------------------------------------------------

_CACHE_FORMAT = "agentroster.signatures-cache/2"

#: the modules whose code makes what the cache keeps: the validated pack data (schema and validate) and
#: the anchor words of every process pattern (anchors, reading patterns through regex_tree); a change to any of them is a new cache key
DERIVING_CODE: tuple[Path, ...] = tuple(Path(__file__).with_name(name)
                                        for name in ("anchors.py", "regex_tree.py", "schema.py", "validate.py"))


def default_cache_dir() -> Path | None:
    """AGENTROSTER_CACHE_DIR (empty: no cache), else the platform's per-user cache folder (the system's,
    /var/cache/agentroster, for root on Linux and the other Unixes)."""
    configured = os.environ.get("AGENTROSTER_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    import platformdirs  # a few ms (it imports tempfile): only when no folder is configured

    if sys.platform not in ("win32", "darwin") and os.geteuid() == 0:
        return Path(platformdirs.site_cache_dir("agentroster", appauthor=False))
    return Path(platformdirs.user_cache_dir("agentroster", appauthor=False))


def _cache_key(pack_paths: Sequence[Path], catalog_path: Path) -> str | None:
    """The files' contents and everything that could make a cached value differ from a fresh one: the
    package version, the code that derives what the cache keeps, and the Python version (``re``'s parser,
    which the anchor words are read from, changes between versions). None when any of it is unreadable."""
    code = code_digest(DERIVING_CODE)
    if code is None:
        return None
    digest = hashlib.sha256(_CACHE_FORMAT.encode())
    digest.update(f"\0{__version__}\0{sys.version}\0{code}\0".encode())
    try:
        for path in [*pack_paths, catalog_path]:
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return None
    return str(digest.hexdigest())[:40]


@functools.lru_cache(maxsize=8)
def code_digest(sources: tuple[Path, ...]) -> str | None:
    """A digest of the source files of the code that derives cached values, read once per process; None
    when one cannot be read (a build without sources then starts without the cache, never from a stale one)."""
    digest = hashlib.sha256()
    try:
        for path in sources:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()


def _trusted(path: Path) -> bool:
    # Only the user that runs the scan may have written what it reads: a root daemon must not take
    # its signatures from a file that anyone else could edit to hide an agent.
    return is_trusted(path, {me()}, root_group_may_write=False)


def _read_cache(cache_dir: Path, key: str) -> Library | None:
    path = cache_dir / f"signatures-{key}.json"
    if not (_trusted(cache_dir) and _trusted(path)):
        return None
    try:
        doc = json.loads(path.read_bytes())
        if doc.get("format") != _CACHE_FORMAT:
            return None
        anchors = {p: (frozenset(w) if w is not None else None) for p, w in doc["anchors"].items()}
        return _library(doc["packs"], doc["catalog"], anchors)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a stale or damaged cache is only a slower start


def _write_cache(cache_dir: Path, key: str, packs: Sequence[Mapping[str, Any]], catalog: Mapping[str, Any],
                 library: Library) -> None:
    doc = {
        "format": _CACHE_FORMAT,
        "packs": list(packs),
        "catalog": catalog,
        "anchors": {p: (sorted(w) if w is not None else None) for p, w in library.anchors().items()},
    }
    import tempfile

    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _trusted(cache_dir):
            return  # someone else's folder: what we wrote there would never be read back
        for old in cache_dir.glob("signatures-*.json"):
            old.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".signatures-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out, separators=(",", ":"))
        os.replace(tmp, cache_dir / f"signatures-{key}.json")
    except OSError:
        pass  # no cache, no harm: the next start parses the YAML again


@functools.cache
def load() -> Library:
    """The shipped packs and catalog, loaded once per process (through the on-disk cache if any)."""
    return load_files(shipped_packs(), CATALOG_PATH, cache_dir=default_cache_dir())
