"""The collector's settings: where its data lives and the limits it enforces.

Settings travel to uvicorn worker processes through ``AGENTROSTER_SERVER_*`` environment variables
(``to_env``/``from_env``), since a multi-worker uvicorn builds the app from an import string.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
_ENV_PREFIX = "AGENTROSTER_SERVER_"


#: the collector's data dir when ``--data-dir`` is not given (the daemon's is ``AGENTROSTER_DATA_DIR``)
DATA_DIR_ENV = _ENV_PREFIX + "DATA_DIR"


def default_data_dir() -> Path:
    """$AGENTROSTER_SERVER_DATA_DIR, else /var/lib/agentroster/server for root, else
    $XDG_DATA_HOME/agentroster/server."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/agentroster/server")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "agentroster" / "server"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'collector.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    """Everything the app factory needs; the database URL is any SQLAlchemy URL (SQLite or PostgreSQL)."""

    database_url: str
    max_report_bytes: int = 8 * MIB  # a report body over this answers 413
    max_body_bytes: int = 1 * MIB  # any other request body
    stale_after_seconds: float = 24 * 3600.0  # a device not seen for this long is stale
    report_rate_per_second: float = 10.0  # per device, token bucket in each process
    report_burst: int = 50
    # per client address, token buckets in each process: enrollments, and failed token checks
    enroll_rate_per_second: float = 2.0
    enroll_burst: int = 60
    auth_failure_rate_per_second: float = 1.0
    auth_failure_burst: int = 30
    pool_size: int = 8

    @classmethod
    def for_data_dir(cls, data_dir: Path | None = None, **overrides: object) -> Settings:
        """SQLite in ``data_dir`` (created if missing, owner-only)."""
        directory = Path(data_dir) if data_dir else default_data_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(database_url=sqlite_url(directory), **overrides)  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def to_env(self) -> dict[str, str]:
        return {_ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(_ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f.type, raw)
        if "database_url" not in values:
            raise RuntimeError(f"{_ENV_PREFIX}DATABASE_URL is not set")
        return cls(**values)  # type: ignore[arg-type]


def _convert(kind: object, raw: str) -> object:
    if kind in ("int", int):
        return int(raw)
    if kind in ("float", float):
        return float(raw)
    return raw
