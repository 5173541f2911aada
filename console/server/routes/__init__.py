"""One router per resource of the collector API, all under ``API``."""

from console.server.planning import enable_sqlite_hints

API = "/api/v1"

enable_sqlite_hints()  # the roster's queries name their indexes on SQLite (see console/server/planning.py)
