"""The ingest code is cut in two: ``ingest`` decides and prepares (pure: no database, no SQLAlchemy),
``ingest_store`` writes; and SQLite's index hints are rendered by the collector's own engines only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).parents[3]


def test_deciding_and_preparing_import_no_database_code() -> None:
    code = ("import sys, console.server.ingest as i; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'psycopg')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_index_hints_are_the_collector_engines_own(tmp_path: Path) -> None:
    import console.server.app  # noqa: F401  (every route module loaded, as in a running collector)
    from console.server.db import make_engine
    from console.server.models import Sighting

    query = select(Sighting.id).with_hint(Sighting, "INDEXED BY ix_no_such_index", "sqlite")  # type: ignore[arg-type]
    # a plain SQLite dialect (anyone else's engine in the process) is left as SQLAlchemy made it
    assert "INDEXED BY" not in str(query.compile(dialect=sqlite.dialect()))
    engine = make_engine(f"sqlite:///{tmp_path / 'hints.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE sighting (device_id TEXT, id TEXT)")
        assert "INDEXED BY ix_no_such_index" in str(query.compile(dialect=engine.dialect))
        with engine.connect() as conn, pytest.raises(OperationalError, match="no such index"):
            conn.execute(query)  # the hint reaches SQLite itself
    finally:
        engine.dispose()
