"""Free-text search over the roster (name, signature, user, hostname, and ``reach``: its MCP servers'
names, commands and arguments): a case-insensitive substring,
as ``LIKE '%...%'``, found through a trigram index instead of a scan of every sighting.

- SQLite: an FTS5 table ``sighting_fts`` with the trigram tokenizer over those four columns, an external
  content table on ``sighting`` kept in step by triggers (migration 0003; 0008 added ``reach``). A search of three characters
  or more reads the candidates from it; the ``LIKE`` is still checked on them, so the answer is the
  ``LIKE``'s exactly (the trigram tokenizer folds case beyond ASCII, SQLite's ``LIKE`` does not). Shorter
  text, or a SQLite without the trigram tokenizer (before 3.34), scans.
- PostgreSQL: a GIN index over ``column gin_trgm_ops`` serves the same search as is (SQLAlchemy words a
  case-insensitive ``LIKE`` as ``ILIKE`` there, which the trigram operator class supports). It needs
  the ``pg_trgm`` extension; where the collector's role may not create it the search scans, and the
  start-up log and ``/healthz`` say so. Created by an administrator later, the index follows at the next
  start.

After a manual ``VACUUM`` of a SQLite store (which may renumber rows), rebuild the FTS table:
``INSERT INTO sighting_fts(sighting_fts) VALUES ('rebuild')``.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, literal_column, or_, text
from sqlmodel import Session, col

from console.server.models import Sighting

log = logging.getLogger("agentroster.server")

FTS_TABLE = "sighting_fts"
PG_INDEX = "ix_sighting_search"
COLUMNS = ("name", "signature", "user", "hostname", "reach")  # reach: MCP servers (migration 0008)
MIN_INDEXED = 3  # characters: a trigram index finds nothing shorter
PG_INDEX_SQL = (f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON sighting USING gin "
                f"({', '.join(f'{chr(34)}{c}{chr(34)} gin_trgm_ops' for c in COLUMNS)})")

_kinds: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def outside_models(name: str | None, type_: str, _parent: Any = None) -> bool:
    """False for the search's own tables and indexes, which the models do not describe (for Alembic's
    ``include_name``: autogenerate and the schema check leave them alone)."""
    return not (name and (name.startswith(FTS_TABLE) or name == PG_INDEX))


def kind_of(conn: Connection) -> str:
    """What serves free text on this store: ``fts5_trigram``, ``pg_trgm`` or ``scan``."""
    if conn.dialect.name == "sqlite":
        found = conn.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n"),
                             {"n": FTS_TABLE}).first()
        return "fts5_trigram" if found else "scan"
    found = conn.execute(text("SELECT 1 FROM pg_indexes WHERE indexname = :n"), {"n": PG_INDEX}).first()
    return "pg_trgm" if found else "scan"


def kind(engine: Engine) -> str:
    """``kind_of`` for an engine, remembered (it changes only with a migration, before serving)."""
    found = _kinds.get(engine)
    if found is None:
        with engine.connect() as conn:
            found = _kinds[engine] = kind_of(conn)
    return found


def prepare(conn: Connection) -> str:
    """At start-up, after the migrations: on PostgreSQL, build the trigram index if ``pg_trgm`` is there
    now; log what serves free text. Returns ``kind_of``."""
    if (conn.dialect.name == "postgresql" and kind_of(conn) == "scan"
            and conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first()):
        conn.execute(text(PG_INDEX_SQL))
    found = kind_of(conn)
    if found == "scan":
        log.warning("free-text search scans every sighting: %s", "the pg_trgm extension is not installed "
                    "(CREATE EXTENSION pg_trgm needs a privileged role)" if conn.dialect.name == "postgresql"
                    else "this SQLite has no FTS5 trigram tokenizer (3.34 or newer has it)")
    else:
        log.info("free-text search through %s", found)
    _kinds.pop(conn.engine, None)
    return found


def indexed(session: Session) -> bool:
    """Whether the SQLite FTS table is there to narrow a search (PostgreSQL's index needs nothing)."""
    bind = session.get_bind()
    if isinstance(bind, Connection):  # a session on a transaction's connection (an action on a filter): ask it,
        return kind_of(bind) == "fts5_trigram"  # as another connection of a writing engine would wait for its lock
    return kind(bind) == "fts5_trigram"


class Text:
    """One free-text filter."""

    def __init__(self, q: str, *, indexed: bool) -> None:
        self.q = q
        self.narrowed = indexed and len(q) >= MIN_INDEXED

    def like(self) -> ColumnElement[bool]:
        return or_(*(col(getattr(Sighting, c)).icontains(self.q, autoescape=True) for c in COLUMNS))

    def condition(self) -> ColumnElement[bool]:
        if not self.narrowed:
            return self.like()
        phrase = '"' + self.q.replace('"', '""') + '"'  # one FTS5 string: the text, literally
        found = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :phrase").bindparams(
            bindparam("phrase", phrase)).columns(literal_column("rowid"))
        return and_(literal_column("sighting.rowid").in_(found), self.like())
