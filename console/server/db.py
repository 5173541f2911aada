"""The collector's database: engine (SQLite in WAL mode, or PostgreSQL through psycopg 3), sessions,
the write path, and schema migrations run from code (``alembic upgrade head`` without an alembic.ini).

SQLite allows one writer at a time, and its busy handler sleeps in whole milliseconds, so writers
queue on a lock instead (a thread lock in the process, an ``flock`` on ``<database>.lock`` across
processes: several uvicorn workers can serve, one writes at a time) and open their transactions with
``BEGIN IMMEDIATE``. PostgreSQL needs neither: concurrent reports of one device serialize on its row
(``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: one process, the thread lock alone
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 0x61677274  # pg_advisory lock id: one migrating process at a time
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
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit transactions are turned off so that we emit BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute("PRAGMA " + pragma)
    cursor.close()


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


class Database:
    """An engine plus the write discipline its dialect needs."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._lock: Any = WriteLock(self.engine.url.database) if self.is_sqlite else nullcontext()
        self._writer = self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction on a Core connection: committed on success, rolled back on error."""
        with self._lock, self._writer.begin() as conn:
            yield conn

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
