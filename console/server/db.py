"""The collector's database: engine (SQLite in WAL mode, or PostgreSQL through psycopg 3), sessions,
the write path, and schema migrations run from code (``alembic upgrade head`` without an alembic.ini).

SQLite allows one writer at a time, and its busy handler sleeps in whole milliseconds, so writers
queue on a lock instead (a thread lock in the process, an ``flock`` on ``<database>.lock`` across
processes: several uvicorn workers can serve, one writes at a time) and open their transactions with
``BEGIN IMMEDIATE``. A server's Database checkpoints the WAL from a thread of its own (``start_checkpoints``),
so that copying pages back into the database and its fsync happen outside the write lock rather than
in whichever commit crosses the WAL's size limit. PostgreSQL needs neither: concurrent reports of one
device serialize on its row (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

try:
    import fcntl
except ImportError:  # Windows: one process, the thread lock alone
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from console.server.planning import render_index_hints

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 0x61677274  # pg_advisory lock id: one migrating process at a time
# With background checkpoints, a commit checkpoints by itself only if the WAL outgrows this (pages),
# e.g. while the checkpointer is starved; SQLite's default is 1,000.
_DEFERRED_AUTOCHECKPOINT = 20_000
_WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the WAL file keeps once reset (it is truncated to this)
log = logging.getLogger("agentroster.server")
_SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",  # durable at checkpoints; a power cut can lose the last reports, devices resend
    "foreign_keys=ON",
    "busy_timeout=30000",
    "temp_store=MEMORY",
    "cache_size=-65536",  # 64 MiB
)


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy's default would be psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 8) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, pool_size)
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_engine(url: str, pool_size: int) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # tokens' hashes live here: owner only
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           pool_size=pool_size, max_overflow=pool_size)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    render_index_hints(engine)  # the roster's queries name their indexes (see console/server/planning.py)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit transactions are turned off so that we emit BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute("PRAGMA " + pragma)
    cursor.close()


def _defer_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={_DEFERRED_AUTOCHECKPOINT}")
    dbapi_connection.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")  # the WAL is reset by a writer


def _on_sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class WriteLock:
    """One SQLite writer at a time, among this process's threads and among processes."""

    def __init__(self, database_path: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        if fcntl is not None and database_path and database_path != ":memory:":
            self._fd = os.open(database_path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks without holding the GIL

    def __exit__(self, *_exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Checkpointer:
    """Checkpoints a SQLite database's WAL every ``interval`` seconds from its own thread and connection.

    PASSIVE checkpoints neither wait for nor block the writers and readers; each process of a multi-worker
    server runs one, and SQLite lets one checkpoint run at a time.
    """

    def __init__(self, path: str, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agentroster-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        conn = sqlite3.connect(self.path, timeout=1, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # e.g. another process's checkpoint is running: the next one
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Database:
    """An engine plus the write discipline its dialect needs."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._lock: Any = WriteLock(self.engine.url.database) if self.is_sqlite else nullcontext()
        self._writer = self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        self._checkpointer: Checkpointer | None = None

    def start_checkpoints(self, interval: float) -> None:
        """SQLite: checkpoint the WAL every ``interval`` seconds from a thread rather than in commits. For a
        long-lived server; a one-off command keeps SQLite's own checkpoints. ``dispose`` stops it."""
        path = self.engine.url.database
        if not self.is_sqlite or self._checkpointer is not None or not path or path == ":memory:":
            return
        event.listen(self.engine, "connect", _defer_checkpoints)
        self.engine.dispose()  # the pooled connections reopen with it
        self._checkpointer = Checkpointer(path, interval)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction on a Core connection: committed on success, rolled back on error."""
        with self._lock, self._writer.begin() as conn:
            yield conn

    def write_lock(self) -> AbstractContextManager[Any]:
        """The store's write lock alone (SQLite: one writer among threads and processes; nothing on
        PostgreSQL), for a caller that runs several ``transaction``s under one holding."""
        return cast(AbstractContextManager[Any], self._lock)

    def transaction(self) -> AbstractContextManager[Connection]:
        """One write transaction, for a caller that holds ``write_lock``."""
        return self._writer.begin()

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A Session for admin writes, under the same discipline; commit it yourself."""
        with self._lock, Session(self._writer) as session:
            yield session

    def session(self) -> Session:
        return Session(self.engine)

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()
        if isinstance(self._lock, WriteLock):
            self._lock.close()


def migrate(db: Database) -> None:
    """Bring the schema to the newest revision (creates every table on a new database)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.writing() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
