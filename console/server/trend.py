"""The ungoverned trend: one row per hour (``ungoverned_trend``) with the ungoverned and all present
sightings, false positives left out, as last counted in that hour.

A task of the server's app counts every ``TREND_SECONDS`` (and at start-up) and rewrites the current
hour's row; ``/overview`` returns the last 30 days of rows. Counting apart from ingest keeps the report
path as it is; the hour's figure is at most ``TREND_SECONDS`` old. Several workers or collectors write
the same row with the same counts, so it does not matter which one wins; hours in which no collector ran
have no row (the chart draws a gap, not a zero).
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, and_, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from console.server.db import Database
from console.server.models import Sighting, SightingTriage, UngovernedTrend
from console.server.planning import unindexed

TREND_SECONDS = 300.0
HOUR = 3600.0
KEPT_SECONDS = 30 * 24 * HOUR
_S = Sighting.__table__  # type: ignore[attr-defined]
_T = SightingTriage.__table__  # type: ignore[attr-defined]
_R = UngovernedTrend.__table__  # type: ignore[attr-defined]


def hour_of(seconds: float) -> float:
    return seconds - seconds % HOUR


def count(conn: Connection) -> tuple[int, int]:
    """(ungoverned, present) sightings now, false positives left out."""
    present = _S.c.gone == False  # noqa: E712
    totals: dict[bool, int] = dict(conn.execute(select(_S.c.governed, func.count()).select_from(_S).where(present)
                               .group_by(_S.c.governed).with_hint(_S, "INDEXED BY ix_sighting_roster", "sqlite")).all())
    hidden: dict[bool, int] = dict(conn.execute(select(_S.c.governed, func.count()).select_from(_T)
                               .join(_S, and_(_S.c.device_id == _T.c.device_id, _S.c.id == _T.c.sighting_id))
                               .where(_T.c.state == "false_positive", unindexed(_S.c.gone) == False)  # noqa: E712
                               .group_by(_S.c.governed)).all())
    ungoverned = int(totals.get(False, 0)) - int(hidden.get(False, 0))
    return ungoverned, ungoverned + int(totals.get(True, 0)) - int(hidden.get(True, 0))


def record(db: Database, now: float | None = None) -> tuple[int, int]:
    """Count now and rewrite the current hour's row; rows older than 30 days go. Returns the counts."""
    now = time.time() if now is None else now
    with db.engine.connect() as conn:
        ungoverned, sightings = count(conn)
    at = hour_of(now)
    try:
        with db.writing() as conn:
            conn.execute(delete(_R).where((_R.c.at == at) | (_R.c.at < at - KEPT_SECONDS)))
            conn.execute(insert(_R).values(at=at, ungoverned=ungoverned, sightings=sightings))
    except IntegrityError:  # another collector wrote this hour's row meanwhile, with the same counts
        pass
    return ungoverned, sightings


def points(conn: Connection, now: float | None = None) -> list[tuple[float, int]]:
    """(hour, ungoverned) over the last 30 days, oldest first."""
    now = time.time() if now is None else now
    return [(float(at), int(n)) for at, n in conn.execute(
        select(_R.c.at, _R.c.ungoverned).where(_R.c.at >= hour_of(now) - KEPT_SECONDS).order_by(_R.c.at))]
