"""The registration lifecycle and the nudge ladder, computed at read time from the policy and the store's
timestamps: nothing runs on a schedule.

Lifecycle: a registration is ``pending``; an admin approves it, rejects it (with a comment) or asks a
question (``more_information``: the question goes to the employee through the device inbox, and their
next registration of the sighting supersedes the asked one, as it does a pending one). An approved
registration is ``review_due`` once the policy's re-attestation period (``reattest_days``) has passed
since it was approved; a new registration of the sighting, once approved, supersedes it.

Ladder: an ungoverned sighting climbs ``report_only`` → ``notify`` (its employee is told, through the
inbox) → ``remind`` (told again, with a deadline) → ``escalate`` (the admin's to chase), up to the rung
the policy's ``ladder`` names. Its clock starts when it became ungoverned, the last time it did
(``Sighting.ungoverned_since``: first stored ungoverned, an approval or registration rejected or superseded,
a drift that ungoverns an approved agent, a policy change that no longer covers it), or when the policy
turned the ladder on (``ladder_since``), whichever is later, so that turning the ladder on does not escalate
a whole fleet at once. Each spell ungoverned climbs from the bottom again.

The column is kept where ``governed`` is written: the ingest's upsert and in-place update (console/server/ingest_store.py) and
``triage.write_verdicts``, which every re-assessment (a decision, a policy change, an accepted drift) goes
through; a sighting stored governed has its own too (when it was stored). An approved registration that comes up for review
keeps governing (the admins' queue shows it ``review_due``); its employee is asked to re-attest through
the inbox (console/server/inbox.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, and_, exists, false, func, select
from sqlmodel import col

from console.server.models import Policy, Sighting, SightingTriage

DAY = 86400.0
Rung = Literal["report_only", "notify", "remind", "escalate"]
RUNGS: tuple[Rung, ...] = ("report_only", "notify", "remind", "escalate")
#: what ``GET /agents?ladder=`` accepts: a rung, or every sighting whose deadline has passed
LadderFilter = Literal["report_only", "notify", "remind", "escalate", "overdue"]


@dataclass(frozen=True, slots=True)
class Settings:
    """The policy's lifecycle settings, in seconds."""

    top: Rung = "report_only"
    since: float = 0.0  # no sighting's clock starts before this
    notify_s: float = 0.0
    remind_s: float = 7 * DAY
    deadline_s: float = 7 * DAY
    escalate_s: float = 0.0
    reattest_s: float = 180 * DAY  # 0: approvals never come up for review

    @property
    def on(self) -> bool:
        return self.top != "report_only"

    def reaches(self, rung: Rung) -> bool:
        return RUNGS.index(rung) <= RUNGS.index(self.top)

    # offsets from a sighting's start
    @property
    def notify_at(self) -> float:
        return self.notify_s

    @property
    def remind_at(self) -> float:
        return self.notify_s + self.remind_s

    @property
    def deadline_at(self) -> float:
        return self.remind_at + self.deadline_s

    @property
    def escalate_at(self) -> float:
        return self.deadline_at + self.escalate_s


def settings(conn: Connection) -> Settings:
    """The lifecycle settings of the stored policy (the defaults where there is none)."""
    row = conn.execute(select(col(Policy.ladder), col(Policy.ladder_since), col(Policy.notify_after_days),
                              col(Policy.remind_after_days), col(Policy.deadline_days),
                              col(Policy.escalate_after_days), col(Policy.reattest_days))
                       .where(col(Policy.id) == 1)).first()
    if row is None:
        return Settings()
    top, since, notify, remind, deadline, escalate, reattest = row
    return Settings(top=top if top in RUNGS else "report_only", since=since or 0.0, notify_s=notify * DAY,
                    remind_s=remind * DAY, deadline_s=deadline * DAY, escalate_s=escalate * DAY,
                    reattest_s=reattest * DAY)


@dataclass(frozen=True, slots=True)
class Standing:
    """Where one ungoverned sighting stands on the ladder."""

    rung: Rung
    due: float | None  # when it climbs to the next rung; at the top, its deadline (None: no deadline)
    overdue: bool  # its deadline has passed


def clock_start(s: Settings, ungoverned_since: float) -> float:
    """Where the ladder's clock of a sighting ungoverned since then starts."""
    return max(ungoverned_since, s.since)


def rung_of(s: Settings, ungoverned_since: float, now: float) -> Standing:
    """The rung of a sighting ungoverned since ``ungoverned_since`` (``Sighting.ungoverned_since``)."""
    if not s.on:
        return Standing("report_only", None, False)
    start = clock_start(s, ungoverned_since)
    age = now - start
    deadline = start + s.deadline_at if s.reaches("remind") else None
    overdue = deadline is not None and now >= deadline
    if age < s.notify_at:
        return Standing("report_only", start + s.notify_at, False)
    if age < s.remind_at or not s.reaches("remind"):
        return Standing("notify", start + s.remind_at if s.reaches("remind") else None, False)
    if age < s.escalate_at or not s.reaches("escalate"):
        # before its deadline it is due at the deadline; past it, at its escalation (if the ladder goes on)
        escalates = start + s.escalate_at if s.reaches("escalate") else None
        return Standing("remind", escalates if overdue and escalates is not None else deadline, overdue)
    return Standing("escalate", deadline, True)


def condition(s: Settings, wanted: LadderFilter, now: float) -> ColumnElement[bool]:
    """The sightings ``GET /agents?ladder=wanted`` lists: ungoverned ones whose age puts them on that rung.

    A sighting's age is ``now - max(ungoverned_since, since)``; it is at least ``a`` exactly when
    ``ungoverned_since <= now - a`` and ``since <= now - a``, so each rung is a range on ``ungoverned_since``
    (indexed)."""
    ungoverned = col(Sighting.governed) == false()
    if not s.on:
        return ungoverned if wanted == "report_only" else false()
    bounds: dict[str, tuple[float | None, float | None]] = {  # (age at least, age below)
        "report_only": (None, s.notify_at),
        "notify": (s.notify_at, s.remind_at if s.reaches("remind") else None),
        "remind": (s.remind_at, s.escalate_at if s.reaches("escalate") else None),
        "escalate": (s.escalate_at, None),
        "overdue": (s.deadline_at, None),
    }
    if wanted in ("remind", "overdue") and not s.reaches("remind") or wanted == "escalate" and not s.reaches(
            "escalate"):
        return false()
    low, high = bounds[wanted]
    parts: list[ColumnElement[bool]] = [ungoverned]
    if low is not None:
        if s.since > now - low:  # the ladder was turned on too recently for any sighting to be this old
            return false()
        parts.append(col(Sighting.ungoverned_since) <= now - low)
    if high is not None and s.since <= now - high:  # else every sighting is younger than high
        parts.append(col(Sighting.ungoverned_since) > now - high)
    return and_(*parts)


def review_due_at(s: Settings, status: str, decided_at: float | None) -> float | None:
    """When an approved registration comes up for review (None: not approved, or never)."""
    if status != "approved" or decided_at is None or s.reattest_s <= 0:
        return None
    return decided_at + s.reattest_s


def review_due_condition(s: Settings, now: float, status_column: Any, decided_column: Any) -> ColumnElement[bool]:
    """The registrations that are ``review_due`` now."""
    if s.reattest_s <= 0:
        return false()
    return and_(status_column == "approved", decided_column <= now - s.reattest_s)


@dataclass(frozen=True, slots=True)
class Escalated:
    """One ungoverned sighting the ladder escalated to the admins."""

    device_id: str
    id: str
    name: str
    type: str
    hostname: str
    user: str | None
    ungoverned_since: float
    deadline: float
    escalated_at: float


def escalated(conn: Connection, s: Settings, now: float, limit: int) -> tuple[int, list[Escalated]]:
    """How many present ungoverned sightings the ladder has escalated now (false positives apart), and the
    ``limit`` that were escalated first: what the admins have to chase, without sorting anything."""
    if not s.reaches("escalate") or s.since > now - s.escalate_at:
        return 0, []
    t = SightingTriage.__table__  # type: ignore[attr-defined]
    false_positive = exists().where(t.c.device_id == col(Sighting.device_id), t.c.sighting_id == col(Sighting.id),
                                    t.c.state == "false_positive")
    where = (col(Sighting.gone) == false(), col(Sighting.governed) == false(),
             col(Sighting.ungoverned_since) <= now - s.escalate_at, ~false_positive)
    count = conn.execute(select(func.count()).select_from(Sighting).where(*where)).scalar_one()
    rows = conn.execute(select(col(Sighting.device_id), col(Sighting.id), col(Sighting.name), col(Sighting.type),
                               col(Sighting.hostname), col(Sighting.user), col(Sighting.ungoverned_since))
                        .where(*where).order_by(col(Sighting.ungoverned_since), col(Sighting.device_id),
                                                col(Sighting.id)).limit(limit)).all()
    out = []
    for device_id, sid, name, kind, hostname, user, since in rows:
        if since is None:  # not so: the condition above is on it
            continue
        start = clock_start(s, since)
        out.append(Escalated(device_id, sid, name, kind, hostname, user or None, since, start + s.deadline_at,
                             start + s.escalate_at))
    return int(count), out
