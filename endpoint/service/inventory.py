"""The daemon's local state: what was last reported, the report sequence, and a bounded spool of reports.

One SQLite file (WAL) in the data dir holds the current sightings (id → canonical JSON and its hash),
the epoch (a new random one when the state is new), the next seq and the last acknowledged one, and the
spool of reports not yet acknowledged by the collector; each new report is written together with the
sightings it describes, in one transaction, so that a kill at any moment leaves state and spool in
step. The device key sits beside it in a file of its own (mode 0600), never in a log.

Reports come in three kinds (osquery's differential shape): a snapshot (every sighting), a delta (new
or changed sightings, removed ids) and a heartbeat (nothing changed). When the spool would pass its
byte cap, or the disk is full, everything spooled is replaced by one snapshot of the current state:
the spool stays bounded and nothing the collector needs is lost.

The diffing and hashing functions at the top are pure; ``Inventory`` is the I/O around them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.report import MAX_REPORT_BYTES, SEND_TIME_ROOM, Kind, SpoolHealth, split_report
from contract.scan import ScanError, Sighting
from endpoint.errors import EndpointError
from endpoint.scan.platforms import PLATFORM
from endpoint.scan.safeio import write_private

STATE_FILE = "state.sqlite3"
KEY_FILE = "device.key"
WARNING_RATIO = 0.9  # the spool is "warning" from 90 % of its cap


# -- pure: canonical form, hashes, diffs -------------------------------------------------------------


def canonical(sighting: Mapping[str, Any]) -> bytes:
    """The sighting as compact JSON with sorted keys: the same sighting gives the same bytes."""
    return json.dumps(sighting, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def clean_text(value: Any) -> Any:
    """``value`` with every string made valid UTF-8: a command line or path that is not (Python keeps its
    undecodable bytes as lone surrogates) gets U+FFFD in their place, as JSON on the wire requires."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") \
                if _escaped_only(value) else value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {clean_text(k): clean_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_text(v) for v in value]
    return value


def _escaped_only(value: str) -> bool:
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _valid_utf8(docs: Sequence[Any]) -> bool:
    try:
        json.dumps(docs, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError):  # not text, or not JSON at all: encodable() says which
        return False
    return True


def content_hash(sighting: Mapping[str, Any]) -> str:
    """A hash of what makes a sighting change: everything but its last_seen and its endpoints' counters
    (they move with every call; a change of them alone is not worth a report)."""
    material = {k: v for k, v in sighting.items() if k != "last_seen"}
    material["endpoints"] = sorted((e.get("host"), e.get("port"), e.get("provider"), e.get("via"))
                                   for e in sighting.get("endpoints", ()))
    return hashlib.sha256(canonical(material)).hexdigest()[:32]


class SpoolFull(EndpointError):
    """Not even one snapshot could be spooled: the disk is full."""

    code = "spool_full"


@dataclass(frozen=True, slots=True)
class Delta:
    """What changed between the stored sightings and the current ones."""

    upserts: list[Sighting] = field(default_factory=list)  # new or changed, in the current order
    removed: list[str] = field(default_factory=list)  # ids no longer there, sorted

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.removed


def carry_first_seen(current: Sequence[Sighting], first_seen: Mapping[str, str]) -> list[Sighting]:
    """The current sightings with the first_seen they were stored with (a sighting is as old as its
    first report, not as the scan that saw it last)."""
    out: list[Sighting] = []
    for s in current:
        known = first_seen.get(s["id"])
        out.append({**s, "first_seen": known} if known and known != s.get("first_seen") else s)
    return out


def encodable(sightings: Sequence[Sighting]) -> tuple[list[Sighting], list[ScanError]]:
    """The sightings that can be hashed and encoded, and one ``internal`` error entry for each that
    cannot (a bug upstream put something in it that JSON does not hold): one sighting that breaks
    the encoding is left out of the report, not every sighting of the device."""
    from endpoint.scan.faults import describe

    kept: list[Sighting] = []
    failed: list[ScanError] = []
    for sighting in sightings:
        try:
            if not isinstance(sighting.get("id"), str):
                raise TypeError("its id is not a string")
            content_hash(sighting)
            kept.append(sighting)
        except Exception as exc:
            sid = sighting.get("id") if isinstance(sighting, dict) else None
            failed.append({"where": f"sighting {sid if isinstance(sid, str) else '?'}", "error": "internal",
                           "detail": describe(exc)})
    return kept, failed


def diff(stored: Mapping[str, str], current: Sequence[Sighting]) -> Delta:
    """``stored`` maps id → content hash; ``current`` are the sightings now. The last copy of an id wins."""
    latest = {s["id"]: s for s in current}
    upserts = [s for sid, s in latest.items() if stored.get(sid) != content_hash(s)]
    removed = sorted(set(stored) - set(latest))
    return Delta(upserts, removed)


def spool_health(spool_bytes: int, cap: int) -> SpoolHealth:
    if spool_bytes >= cap:
        return "full"
    return "warning" if spool_bytes >= cap * WARNING_RATIO else "normal"


# -- the state file ----------------------------------------------------------------------------------


class StateError(EndpointError):
    """The state file cannot be opened or is not one of ours."""

    code = "bad_state"


@dataclass(frozen=True, slots=True)
class Spooled:
    """One report in the spool."""

    seq: int
    kind: Kind
    body: bytes
    created: float


@dataclass(frozen=True, slots=True)
class SpoolStats:
    reports: int
    bytes: int
    health: SpoolHealth
    coalesced: int  # times the spool was replaced by a snapshot since the state was made


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sighting (id TEXT PRIMARY KEY, hash TEXT NOT NULL, first_seen TEXT NOT NULL,
                                     doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, created REAL NOT NULL,
                                  size INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS status (id INTEGER PRIMARY KEY CHECK (id = 1), updated REAL NOT NULL, doc TEXT NOT NULL);
"""
STATE_VERSION = "1"


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc).lower())


def make_private_dir(path: Path) -> None:
    """The data dir, created (or tightened) to 0700: it holds the device key. On Windows, where modes
    mean nothing and any user may create the folder first, an explicit SYSTEM/Administrators ACL."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if PLATFORM == "windows":
        from endpoint.service._acl_windows import restrict_data_dir

        restrict_data_dir(str(path))
    elif path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)


class Inventory:
    """The state file of one data dir. Thread-safe: the daemon and the reporter share one."""

    def __init__(self, data_dir: str | os.PathLike[str], *, spool_max_bytes: int = 50 << 20,
                 readonly: bool = False, max_report_bytes: int = MAX_REPORT_BYTES) -> None:
        self.dir = Path(data_dir)
        self.path = self.dir / STATE_FILE
        self.spool_max_bytes = max(1, int(spool_max_bytes))
        self.unencodable = 0  # sightings the last record() left out: they could not be encoded
        self.max_report_bytes = max(2 * SEND_TIME_ROOM, int(max_report_bytes))
        self.readonly = readonly
        self._lock = threading.RLock()
        self.recovered = ""  # why a broken state file was set aside, if one was
        if readonly:
            try:
                if not self.path.is_file():
                    raise StateError(f"{self.path}: no state yet (the daemon has not run with this data dir)")
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                          timeout=5)
                self.db.execute("SELECT 1 FROM meta LIMIT 1")
            except PermissionError as exc:
                raise StateError(f"{self.path}: {exc.strerror} (the data dir is the daemon's: run as root)") from None
            except sqlite3.DatabaseError as exc:
                raise StateError(f"{self.path}: cannot be read ({exc})") from None
        else:
            make_private_dir(self.dir)
            try:
                self.db = self._open()
            except sqlite3.DatabaseError as exc:
                # A state file that is not one (a disk fault, a stray copy): keep it aside for a look,
                # and start a new state (a new epoch: the collector gets a snapshot; nothing is lost).
                aside = self.path.with_name(f"{STATE_FILE}.broken-{int(time.time())}")
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(str(self.path) + suffix)
                self.recovered = f"{self.path}: {exc}; moved to {aside.name}, starting a new state"
                self.db = self._open()
        try:
            self.epoch = self._meta("epoch") or ""
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: not an agentroster state file ({exc})") from None
        self.coalesced = int(self._meta("coalesced") or 0)

    def _open(self) -> sqlite3.Connection:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self.db = db
            self._init_meta()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    # -- meta ----------------------------------------------------------------------------------------
    def _init_meta(self) -> None:
        with self._tx():
            if self._meta("epoch") is None:
                # A new state starts a new epoch: the collector then expects a snapshot first.
                self._set("version", STATE_VERSION)
                self._set("epoch", secrets.token_hex(8))
                self._set("next_seq", "1")
                self._set("acked_seq", "0")
                self._set("last_snapshot_at", "0")
                self._set("created", repr(time.time()))
            elif self._meta("version") != STATE_VERSION:
                raise StateError(f"{self.path}: state version {self._meta('version')!r}, expected {STATE_VERSION}")

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                        "excluded.value", (key, value))

    def meta(self) -> dict[str, str]:
        with self._lock:
            return {str(k): str(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def _tx(self) -> _Transaction:
        return _Transaction(self.db, self._lock)

    @property
    def next_seq(self) -> int:
        with self._lock:
            return int(self._meta("next_seq") or 1)

    @property
    def acked_seq(self) -> int:
        with self._lock:
            return int(self._meta("acked_seq") or 0)

    @property
    def last_snapshot_at(self) -> float:
        with self._lock:
            return float(self._meta("last_snapshot_at") or 0)

    def snapshot_due(self, now: float, interval_s: float) -> bool:
        return now - self.last_snapshot_at >= interval_s

    # -- the device key and enrollment ---------------------------------------------------------------
    @property
    def key_path(self) -> Path:
        return self.dir / KEY_FILE

    def device_key(self) -> str | None:
        try:
            key = self.key_path.read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return key or None

    def save_enrollment(self, key: str, *, device_id: str, collector_url: str) -> None:
        """Keep the key (file 0600, made anew, never through a link left in its place, written whole then
        renamed) and whom it is for."""
        write_private(self.key_path, key)
        self._forget_proof()
        with self._tx():
            self._set("device_id", device_id)
            self._set("collector_url", collector_url)
            self._set("enrolled_at", repr(time.time()))

    @property
    def proof_path(self) -> Path:
        return self.dir / (KEY_FILE + ".previous")

    def previous_device_key(self) -> str | None:
        """The key forgotten with ``keep_as_proof``: shown at the next enrollment, it proves this is the
        device that held it (the collector gives an identity whose key is live to no one else)."""
        try:
            return self.proof_path.read_text(encoding="utf-8").strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _forget_proof(self) -> None:
        try:
            self.proof_path.unlink()
        except FileNotFoundError:
            pass

    def forget_device_key(self, *, keep_as_proof: bool = False) -> None:
        """Stop using the key; ``keep_as_proof`` keeps it (0600) for the next enrollment with the same
        collector (never for another one: that would hand it our key)."""
        if keep_as_proof and self.key_path.exists():
            os.replace(self.key_path, self.proof_path)
        else:
            self._forget_proof()
        try:
            self.key_path.unlink()
        except FileNotFoundError:
            pass
        with self._tx():
            self.db.execute("DELETE FROM meta WHERE key IN ('device_id', 'enrolled_at')")

    # -- sightings -----------------------------------------------------------------------------------
    def stored_hashes(self) -> dict[str, str]:
        with self._lock:
            return {str(i): str(h) for i, h in self.db.execute("SELECT id, hash FROM sighting")}

    def stored_sightings(self) -> list[Sighting]:
        with self._lock:
            return [json.loads(doc) for (doc,) in self.db.execute("SELECT doc FROM sighting ORDER BY id")]

    def _first_seen(self) -> dict[str, str]:
        return {str(i): str(f) for i, f in self.db.execute("SELECT id, first_seen FROM sighting")}

    # -- making reports ------------------------------------------------------------------------------
    def record(self, sightings: Sequence[Sighting], *, device: Mapping[str, Any],
               errors: Sequence[ScanError] = (), snapshot: bool = False, heartbeat: bool = False,
               now: float | None = None) -> Spooled | None:
        """Spool the report that brings the collector from the stored sightings to ``sightings``.

        A snapshot when asked for (or when nothing was ever reported), else a delta when something
        changed, else a heartbeat when ``heartbeat`` is set, else nothing. Raises ``SpoolFull`` only when
        not even a snapshot could be written (the disk is full): the state is then left as it was.
        """
        now = time.time() if now is None else now
        if not _valid_utf8([sightings, errors]):
            sightings, errors = clean_text(list(sightings)), clean_text(list(errors))
        sightings, unencodable = encodable(sightings)
        self.unencodable = len(unencodable)
        if unencodable:
            errors = [*errors, *unencodable]
        with self._lock:
            stored = self.stored_hashes()
            current = carry_first_seen(sightings, self._first_seen())
            errors_hash = hashlib.sha256(canonical({"e": list(errors)})).hexdigest()[:32]
            errors_changed = errors_hash != self._meta("errors_hash")
            if self._meta("last_snapshot_at") in (None, "0") or self._meta("snapshot_needed") == "1":
                snapshot = True
            delta = diff(stored, current)
            if snapshot:
                kind: Kind = "snapshot"
                upserts, removed = list({s["id"]: s for s in current}.values()), []
            elif not delta.empty:
                kind, upserts, removed = "delta", delta.upserts, delta.removed
            elif errors_changed or (heartbeat and not self._spool_bytes()):  # a waiting report says enough
                kind, upserts, removed = ("delta" if errors_changed else "heartbeat"), [], []
            else:
                return None
            sent_errors = list(errors) if (kind == "snapshot" or errors_changed) else []
            try:
                return self._spool(kind, device, upserts, removed, sent_errors, stored, current, errors_hash, now)
            except (sqlite3.OperationalError, OSError) as exc:
                if not _is_disk_full(exc):
                    raise
            return self._coalesce(device, current, sent_errors, errors_hash, now, disk_full=True)

    def _spool(self, kind: Kind, device: Mapping[str, Any], upserts: list[Sighting], removed: list[str],
               errors: list[ScanError], stored: Mapping[str, str], current: Sequence[Sighting],
               errors_hash: str, now: float) -> Spooled:
        seq = self.next_seq
        bodies = split_report(epoch=self.epoch, seq=seq, kind=kind, device=device, upserts=upserts,
                              removed=removed, errors=errors, max_bytes=self.max_report_bytes)
        if kind != "snapshot" and self._spool_bytes() + sum(len(b) for _, b in bodies) > self.spool_max_bytes:
            return self._coalesce(device, current, errors, errors_hash, now, disk_full=False)
        with self._tx():
            if kind == "snapshot":
                self.db.execute("DELETE FROM spool")  # a snapshot supersedes every report before it
                self._set("last_snapshot_at", repr(now))
                self._set("snapshot_needed", "0")
            self._write_sightings(stored, current, replace=kind == "snapshot")
            last = self._insert_all(seq, bodies, now)
            self._set("errors_hash", errors_hash)
        return last

    def _coalesce(self, device: Mapping[str, Any], current: Sequence[Sighting], errors: Sequence[ScanError],
                  errors_hash: str, now: float, *, disk_full: bool, forced: bool = True) -> Spooled:
        """Replace everything spooled by one snapshot of ``current``: the spool stays bounded."""
        stored = self.stored_hashes()
        snapshot = list({s["id"]: s for s in current}.values())
        try:
            with self._tx():
                self.db.execute("DELETE FROM spool")
                self._set("snapshot_needed", "1")  # until the snapshot below is written
            if disk_full:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # give the freed pages back
            seq = self.next_seq
            bodies = split_report(epoch=self.epoch, seq=seq, kind="snapshot", device=device, upserts=snapshot,
                                  removed=[], errors=errors, max_bytes=self.max_report_bytes)
            with self._tx():
                self._write_sightings(stored, snapshot, replace=True)
                last = self._insert_all(seq, bodies, now)
                self._set("last_snapshot_at", repr(now))
                self._set("snapshot_needed", "0")
                self._set("errors_hash", errors_hash)
                if forced:  # by the cap or a full disk, not asked for by the collector
                    self._set("coalesced", str(self.coalesced + 1))
            if forced:
                self.coalesced += 1
        except (sqlite3.OperationalError, OSError) as exc:
            if not _is_disk_full(exc):
                raise
            raise SpoolFull(f"{self.path}: the disk is full; nothing could be spooled") from None
        return last

    def resnapshot(self, device: Mapping[str, Any], *, now: float | None = None) -> Spooled:
        """The collector asked for a snapshot: replace the spool by one of the stored sightings."""
        with self._lock:
            current = self.stored_sightings()
            errors_hash = self._meta("errors_hash") or ""
            # the errors of the last scan are not kept: the next change or snapshot carries them again
            return self._coalesce(device, current, [], errors_hash, time.time() if now is None else now,
                                  disk_full=False, forced=False)

    def _write_sightings(self, stored: Mapping[str, str], current: Sequence[Sighting], *,
                         replace: bool) -> None:
        latest = {s["id"]: s for s in current}
        gone = set(stored) - set(latest)
        if gone:
            self.db.executemany("DELETE FROM sighting WHERE id = ?", [(sid,) for sid in gone])
        rows = []
        for sid, s in latest.items():
            digest = content_hash(s)
            if replace or stored.get(sid) != digest:
                rows.append((sid, digest, s.get("first_seen") or "", canonical(s)))
        self.db.executemany("INSERT INTO sighting (id, hash, first_seen, doc) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, doc = excluded.doc", rows)

    def _insert_all(self, seq: int, bodies: Sequence[tuple[Kind, bytes]], now: float) -> Spooled:
        """Spool the bodies of one report (several when it was split) from ``seq`` on; the last is returned."""
        for offset, (kind, body) in enumerate(bodies):
            self._insert(seq + offset, kind, body, now)
        kind, body = bodies[-1]
        return Spooled(seq + len(bodies) - 1, kind, body, now)

    def _insert(self, seq: int, kind: Kind, body: bytes, now: float) -> None:
        self.db.execute("INSERT INTO spool (seq, kind, created, size, body) VALUES (?, ?, ?, ?, ?)",
                        (seq, kind, now, len(body), body))
        self._set("next_seq", str(seq + 1))

    # -- draining the spool --------------------------------------------------------------------------
    def pending(self) -> Spooled | None:
        """The oldest unacknowledged report."""
        with self._lock:
            row = self.db.execute("SELECT seq, kind, body, created FROM spool ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else Spooled(int(row[0]), row[1], bytes(row[2]), float(row[3]))

    def acked(self, seq: int, *, now: float | None = None) -> None:
        """The collector holds every report up to ``seq`` (applied, or a duplicate): drop them."""
        with self._tx():
            self.db.execute("DELETE FROM spool WHERE seq <= ?", (seq,))
            if seq > int(self._meta("acked_seq") or 0):
                self._set("acked_seq", str(seq))
            self._set("acked_at", repr(time.time() if now is None else now))

    def _spool_bytes(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM spool").fetchone()[0])

    def spool_stats(self) -> SpoolStats:
        with self._lock:
            count, size = self.db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool").fetchone()
        return SpoolStats(int(count), int(size), spool_health(int(size), self.spool_max_bytes), self.coalesced)

    # -- status for `agentroster status` ---------------------------------------------------------------
    def write_status(self, doc: Mapping[str, Any], *, now: float | None = None) -> None:
        try:
            with self._tx():
                self.db.execute("INSERT INTO status (id, updated, doc) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE "
                                "SET updated = excluded.updated, doc = excluded.doc",
                                (time.time() if now is None else now, json.dumps(dict(doc), sort_keys=True)))
        except (sqlite3.OperationalError, OSError) as exc:
            if not _is_disk_full(exc):
                raise  # a status that cannot be written on a full disk waits for space

    def read_status(self) -> tuple[float, dict[str, Any]] | None:
        with self._lock:
            row = self.db.execute("SELECT updated, doc FROM status WHERE id = 1").fetchone()
        return None if row is None else (float(row[0]), json.loads(row[1]))

    def close(self) -> None:
        with self._lock:
            self.db.close()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT under the inventory's lock (ROLLBACK on any error)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db = db
        self.lock = lock
        self.depth_owner = False

    def __enter__(self) -> _Transaction:
        self.lock.acquire()
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.depth_owner = True
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            if self.depth_owner:
                if exc is None:
                    self.db.execute("COMMIT")
                elif self.db.in_transaction:
                    self.db.execute("ROLLBACK")
        finally:
            self.lock.release()
