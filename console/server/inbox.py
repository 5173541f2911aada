"""The device inbox in the store: what travels back from the collector to the employee whose agent it is.

Three kinds of item, each addressed to one device and to the user of one sighting on it:

- ``request``: an admin asked for a registration (a ``request_registration`` triage action);
- ``decision``: a registration of that device was approved or rejected, with the admin's comment;
- ``question``: an admin asks something about the agent ("which data systems does it touch?");
- ``notify`` and ``remind``: the nudge ladder (console/server/lifecycle.py) reached that rung for an
  ungoverned agent of theirs; a reminder's text names its deadline. One of each per sighting and spell
  ungoverned (``ungoverned_since``): an agent that becomes ungoverned again is nudged again. The unique
  index ``ix_inbox_item_nudge`` keeps it one when two collector processes gather the same device at once;
- ``review``: an approved registration of theirs came up for review (the policy's ``reattest_days``): they
  are asked to re-attest it, by the ladder's deadline after that. Once per registration.
- ``policy``: an admin saved the policy (or undid a save) and it flipped an agent of theirs: now governed
  (``status`` ``governed``: nothing to do) or no longer covered (``ungoverned``: register it or stop using
  it); the text names the policy's version. One per flipped sighting and save, written by the save itself
  (``policy_changes``) in its transaction, from the verdicts it changed: a save that flips nothing adds
  nothing, and two saves are never interleaved (the store's write lock, PostgreSQL's policy lock).

Whether the employee is nudged at all is the policy's: with its ladder at ``report_only`` the device is
told not to show notifications (``notifies``), and no nudge is made; the items still arrive (a policy
change too: it is news, not a nudge).

Requests and decisions are not written by the triage and registration routes: they are *gathered* here
from the triage actions and registrations when the device next asks for its inbox (one indexed pass per
device, nothing at all on the admin's write path), so that every decision reaches the device whichever
route made it. A question is written as an item at once. Each item gets an id in the order it entered
the inbox; the device acknowledges with the highest id it has stored (``ack``), and is given again
everything after it until it does: exactly once at the device, which also drops an id it holds already.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, false, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from console.server import lifecycle
from console.server.models import InboxItem, Registration, Sighting, TriageAction

X = InboxItem.__table__  # type: ignore[attr-defined]
A = TriageAction.__table__  # type: ignore[attr-defined]
R = Registration.__table__  # type: ignore[attr-defined]
S = Sighting.__table__  # type: ignore[attr-defined]

#: requests and decisions older than this when first gathered are history, not news: a device that
#: enrolls, or a collector upgraded to this version, does not flood its users with old decisions
HORIZON_S = 30 * 86400
MAX_PAGE = 200  # items in one answer; the device asks again after acknowledging them
MAX_GATHERED = 1000  # source rows turned into items in one pass (the rest at the next)


def acknowledge(conn: Connection, device_id: str, up_to: int, now: float | None = None) -> int:
    """Mark the device's items with ids up to ``up_to`` delivered; returns how many were waiting."""
    if up_to <= 0:
        return 0
    now = time.time() if now is None else now
    result = conn.execute(update(X).where(X.c.device_id == device_id, X.c.delivered_at.is_(None),
                                          X.c.id <= up_to).values(delivered_at=now))
    return int(result.rowcount or 0)


def unacknowledged(conn: Connection, device_id: str, up_to: int) -> bool:
    """Whether ``acknowledge(…, up_to)`` would mark anything (a read: most requests acknowledge nothing)."""
    return up_to > 0 and conn.execute(select(X.c.id).where(X.c.device_id == device_id, X.c.delivered_at.is_(None),
                                                           X.c.id <= up_to).limit(1)).first() is not None


def gather(conn: Connection, device_id: str, now: float | None = None) -> int:
    """Turn the device's registration requests and decided registrations not in its inbox yet into items;
    returns how many it found (another process may have added some of them first)."""
    return add(conn, device_id, gatherable(conn, device_id, now))


def gatherable(conn: Connection, device_id: str, now: float | None = None) -> list[dict[str, Any]]:
    """The device's registration requests and decided registrations not in its inbox yet, as items to add
    (a read: the route writes only when there is something)."""
    now = time.time() if now is None else now
    since = now - HORIZON_S

    def already(kind: str, source: Any) -> Any:
        return exists().where(X.c.device_id == device_id, X.c.kind == kind, X.c.source_id == source)

    requests = conn.execute(
        select(A.c.id, A.c.sighting_id, A.c.note, A.c.actor, A.c.at)
        .where(A.c.device_id == device_id, A.c.action == "request_registration", A.c.at >= since,
               ~already("request", A.c.id))
        .order_by(A.c.id).limit(MAX_GATHERED)).all()
    # a registration superseded after it was approved keeps its decision (only approved ones are
    # superseded with a decided_at: a pending one superseded by a newer one was never decided)
    decisions = conn.execute(
        select(R.c.id, R.c.sighting_id, R.c.status, R.c.decision_note, R.c.decided_by, R.c.decided_at)
        .where(R.c.device_id == device_id, R.c.decided_at.is_not(None), R.c.decided_at >= since,
               ~already("decision", R.c.id))
        .order_by(R.c.decided_at, R.c.id).limit(MAX_GATHERED)).all()
    rows: list[dict[str, Any]] = []
    for source, sid, note, actor, at in requests:
        rows.append({"kind": "request", "source_id": source, "sighting_id": sid, "status": None, "text": note,
                     "sent_by": actor, "created_at": at})
    for source, sid, status, note, actor, at in decisions:
        rows.append({"kind": "decision", "source_id": source, "sighting_id": sid,
                     "status": "approved" if status == "superseded" else status, "text": note,
                     "sent_by": actor or "", "created_at": at})
    settings = lifecycle.settings(conn)  # read once for both: devices ask after every report
    rows += _reviews(conn, device_id, now, settings)
    rows += _nudges(conn, device_id, now, settings)
    rows.sort(key=lambda r: (r["created_at"], r["kind"], r["source_id"] or 0, r["sighting_id"]))
    return rows


def _nudges(conn: Connection, device_id: str, now: float, settings: lifecycle.Settings) -> list[dict[str, Any]]:
    """A ``notify`` (and later a ``remind``) item for each ungoverned sighting of the device the ladder
    has brought to that rung, once per sighting, rung and spell ungoverned."""
    rows: list[dict[str, Any]] = []
    for rung in ("notify", "remind"):
        if not settings.reaches(rung):
            continue
        # at this rung or above: an age of at least the rung's start
        low = settings.notify_at if rung == "notify" else settings.remind_at
        if settings.since > now - low:
            continue
        already = exists().where(X.c.device_id == device_id, X.c.kind == rung, X.c.sighting_id == S.c.id,
                                 X.c.ungoverned_since == S.c.ungoverned_since)
        found = conn.execute(
            select(S.c.id, S.c.ungoverned_since)
            .where(S.c.device_id == device_id, S.c.gone == false(), S.c.governed == false(),
                   S.c.ungoverned_since <= now - low, ~already)
            .order_by(S.c.ungoverned_since, S.c.id).limit(MAX_GATHERED)).all()
        for sid, since in found:
            standing = lifecycle.rung_of(settings, since, now)
            deadline = lifecycle.clock_start(settings, since) + settings.deadline_at
            text = ("An agent of yours was found that nobody has registered yet: please register it."
                    if rung == "notify" else
                    f"Reminder: please register this agent by {_when(deadline)}"
                    f"{'; the deadline has passed and IT has been told' if standing.rung == 'escalate' else ''}.")
            rows.append({"kind": rung, "source_id": None, "sighting_id": sid, "status": standing.rung, "text": text,
                         "sent_by": "", "created_at": now, "ungoverned_since": since})
    return rows


def _reviews(conn: Connection, device_id: str, now: float, settings: lifecycle.Settings) -> list[dict[str, Any]]:
    """A ``review`` item for each approved registration of the device that came up for review (within the
    horizon: an upgraded collector does not ask about reviews long past), once per registration."""
    if settings.reattest_s <= 0:
        return []
    already = exists().where(X.c.device_id == device_id, X.c.kind == "review", X.c.source_id == R.c.id)
    found = conn.execute(
        select(R.c.id, R.c.sighting_id, R.c.decided_at)
        .where(R.c.device_id == device_id, R.c.status == "approved", R.c.decided_at.is_not(None),
               R.c.decided_at <= now - settings.reattest_s, R.c.decided_at >= now - HORIZON_S - settings.reattest_s,
               ~already)
        .order_by(R.c.decided_at, R.c.id).limit(MAX_GATHERED)).all()
    rows: list[dict[str, Any]] = []
    for source, sid, decided_at in found:
        due = decided_at + settings.reattest_s
        text = (f"Your registration #{source} of this agent came up for review on {_when(due)}: it needs "
                f"re-attesting by {_when(due + settings.deadline_s)}. Register it again, saying what it does now.")
        rows.append({"kind": "review", "source_id": source, "sighting_id": sid, "status": "review_due", "text": text,
                     "sent_by": "", "created_at": due})
    return rows


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def notifies(conn: Connection) -> bool:
    """Whether the device's users are to be shown notifications: not when the policy's ladder only reports."""
    return lifecycle.settings(conn).on


def add(conn: Connection, device_id: str, rows: list[dict[str, Any]]) -> int:
    """Add gathered items, each addressed to its sighting's user; how many were given."""
    if not rows:
        return 0
    _address(conn, device_id, rows)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # another collector process may gather the same device at the same moment: its rows win, ours go. No
    # conflict target: a request or decision meets ix_inbox_item_source, a nudge ix_inbox_item_nudge
    statement = dialect.insert(X).on_conflict_do_nothing()
    conn.execute(statement, [{"ungoverned_since": None, **r, "device_id": device_id} for r in rows])
    return len(rows)


def policy_changes(conn: Connection, flips: list[tuple[str, str, str | None, str, bool]], version: int,
                   actor: str, now: float) -> int:
    """A ``policy`` item for each sighting a policy save flipped, ``(device_id, sighting_id, user, name,
    governed now)``, addressed to that sighting's user; inserted in one statement. How many."""
    if not flips:
        return 0
    rows = []
    for device_id, sighting_id, user, name, governed in flips:
        shown = (name or "an agent of yours")[:200]
        text = (f"IT's policy (version {version}) now allows {shown}: nothing to do." if governed else
                f"IT's policy (version {version}) no longer covers {shown}: register it (agentroster register) "
                "or stop using it.")
        rows.append({"device_id": device_id, "sighting_id": sighting_id, "sighting_name": (name or "")[:256],
                     "user": user or None, "kind": "policy", "source_id": None,
                     "status": "governed" if governed else "ungoverned", "text": text, "sent_by": actor[:128],
                     "created_at": now, "ungoverned_since": None})
    conn.execute(insert(X), rows)
    return len(rows)


def ask(conn: Connection, device_id: str, sighting_id: str, question: str, sent_by: str,
        now: float | None = None) -> int | None:
    """Store an admin's question about a sighting as an item for its user; None when no such sighting."""
    now = time.time() if now is None else now
    row = {"kind": "question", "source_id": None, "sighting_id": sighting_id, "status": None, "text": question,
           "sent_by": sent_by, "created_at": now}
    if not _address(conn, device_id, [row]):
        return None
    return int(conn.execute(insert(X).values(device_id=device_id, **row).returning(X.c.id)).scalar_one())


def waiting(conn: Connection, device_id: str, after: int, limit: int = MAX_PAGE) -> list[dict[str, Any]]:
    """The device's items not acknowledged yet, after id ``after``, oldest first."""
    return [dict(r) for r in conn.execute(
        select(X).where(X.c.device_id == device_id, X.c.delivered_at.is_(None), X.c.id > after)
        .order_by(X.c.id).limit(limit)).mappings()]


def items_of(conn: Connection, device_id: str, sighting_id: str | None, limit: int) -> list[dict[str, Any]]:
    """What was sent to a device (about one sighting), newest first, delivered or not: for admins."""
    where = [X.c.device_id == device_id] + ([X.c.sighting_id == sighting_id] if sighting_id else [])
    return [dict(r) for r in conn.execute(select(X).where(and_(*where)).order_by(X.c.id.desc()).limit(limit))
            .mappings()]


def _address(conn: Connection, device_id: str, rows: list[dict[str, Any]]) -> bool:
    """Give each row its sighting's user and name as stored now; False when some sighting is unknown."""
    ids = sorted({r["sighting_id"] for r in rows})
    found = {sid: (user, name) for sid, user, name in conn.execute(
        select(S.c.id, S.c.user, S.c.name).where(S.c.device_id == device_id, S.c.id.in_(ids)))}
    for row in rows:
        user, name = found.get(row["sighting_id"], (None, ""))
        row["user"], row["sighting_name"] = user or None, (name or "")[:256]
    return len(found) == len(ids)
