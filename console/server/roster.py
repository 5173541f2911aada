"""The roster's filter, once: what ``GET /agents`` takes as query parameters, what the fleet by kind
(``GET /agents/fleet``) groups, and what an action on a whole filter (``POST /agents/actions/filter``)
applies to, so that a fleet row and the roster filtered to it count the same sightings.

``RosterFilter`` is the filter (a body model for POST; ``roster_filter`` reads it from query
parameters); ``conditions`` words it as SQL for a page (each tag filter a per-row EXISTS, "fenced") or for
a count (an IN over the tag index); ``count`` counts it; ``chunks`` lists the sightings it matches.
``signature_names`` names the kinds the fleet and the policy choices list: the signature library's name
(``catalog``, read once per process), not one sighting's.

Several ``type`` values match any of them; several ``flag`` values match the sightings carrying all of
them. ``device`` is a device id or a hostname; ``signature=""`` is the sightings no signature matched.
"""

# No ``from __future__ import annotations``: FastAPI reads ``roster_filter``'s signature at runtime.

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from pydantic import ConfigDict, Field
from sqlalchemy import ColumnElement, Select, and_, exists, func, literal_column, or_, select, tuple_
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel, col

from console.server import search
from console.server.deps import refuse
from console.server.models import Sighting, SightingTag, SightingTriage, TriageState
from console.server.planning import unindexed
from contract.scan import Flag, SightingType

NO_NUL = r"^[^\x00]*$"  # neither PostgreSQL text nor an FTS5 query can hold a NUL
_TRIAGE = SightingTriage.__table__  # type: ignore[attr-defined]
_Text = Annotated[str | None, Field(default=None, max_length=256, pattern=NO_NUL)]
_CHUNK = 2000
WIDE_TEXT = 2000  # free text matching more sightings than this pages along the sort index
log = logging.getLogger("agentroster.server")


class RosterFilter(SQLModel):
    """Which sightings: the roster's filters (all optional; each narrows)."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    type: list[SightingType] = Field(default_factory=list, max_length=6)
    flag: list[Flag] = Field(default_factory=list, max_length=9)
    governed: bool | None = None
    device: _Text = None  # a device id or a hostname
    user: _Text = None  # "" for machine-wide installs
    provider: _Text = None
    signature: _Text = None  # "" for the sightings no signature matched
    q: _Text = None  # free text: name, signature, user, hostname, providers, MCP servers' names and commands
    parent: _Text = None  # the sighting id of the agent that spawned it
    state: Literal["present", "gone", "all"] = "present"
    owner: _Text = None
    triage_state: TriageState | None = None
    include_hidden: bool = False  # false positives are left out unless true (or triage_state=false_positive)
    min_risk: int | None = Field(default=None, ge=0, le=100)

    @property
    def hide(self) -> bool:
        return not self.include_hidden and self.triage_state != "false_positive"

    def params(self) -> dict[str, Any]:
        """The filter as ``GET /agents`` query parameters (lists as lists)."""
        return {k: v for k, v in self.model_dump().items()
                if v not in (None, [], False) and not (k == "state" and v == "present")}


def roster_filter(
    type: Annotated[list[SightingType] | None, Query(description="repeat for several: any of them")] = None,
    flag: Annotated[list[Flag] | None, Query(description="repeat for several: all of them")] = None,
    governed: bool | None = None,
    device: Annotated[str | None, Query(max_length=256, pattern=NO_NUL, description="a device id or hostname")] = None,
    user: Annotated[str | None, Query(max_length=256, pattern=NO_NUL, description='"" for machine-wide installs')] = None,
    provider: Annotated[str | None, Query(max_length=256, pattern=NO_NUL)] = None,
    signature: Annotated[str | None, Query(max_length=256, pattern=NO_NUL,
                                           description='"" for the sightings no signature matched')] = None,
    q: Annotated[str | None, Query(max_length=256, pattern=NO_NUL,
                                   description="free text: name, signature, user, hostname, providers, "
                                               "MCP servers' names, commands and arguments")] = None,
    parent: Annotated[str | None, Query(max_length=256, pattern=NO_NUL,
                                        description="the sighting id of the agent that spawned it")] = None,
    state: Literal["present", "gone", "all"] = "present",
    owner: Annotated[str | None, Query(max_length=256, pattern=NO_NUL)] = None,
    triage_state: TriageState | None = None,
    include_hidden: bool = False,
    min_risk: Annotated[int | None, Query(ge=0, le=100, description="risk score at least this")] = None,
) -> RosterFilter:
    """The roster filter from query parameters (``type`` and ``flag`` may repeat)."""
    if len(type or ()) > 6 or len(flag or ()) > 9:
        raise refuse(422, "too_many_values", message="Name each type and each flag at most once.")
    return RosterFilter(type=list(dict.fromkeys(type or ())), flag=list(dict.fromkeys(flag or ())),
                        governed=governed, device=device, user=user, provider=provider, signature=signature, q=q,
                        parent=parent, state=state, owner=owner, triage_state=triage_state,
                        include_hidden=include_hidden, min_risk=min_risk)


Filter = Annotated[RosterFilter, Depends(roster_filter)]


class Plan:
    """How one filter is asked of the store: which index finds its rows, and how a count reads them."""

    def __init__(self, session: Session, f: RosterFilter) -> None:
        self.f = f
        self.session = session
        self.extra: list[ColumnElement[bool]] = []  # conditions a route adds (the nudge ladder's rung)
        self.sqlite = session.get_bind().dialect.name == "sqlite"
        self.text = search.Text(f.q, indexed=search.indexed(session)) if f.q else None
        self.providers = tuple(providers_holding(session, f.q)) if f.q else ()
        self._picked = f.triage_state not in (None, "new") or f.owner is not None  # the triage side finds them
        # an index of its own finds them (free text: the search index, where the store has one)
        self.by_index = (self._picked or f.device is not None or bool(f.signature)
                         or bool(self.text and self.text.narrowed))
        self.tagged = bool(f.flag) or f.provider is not None
        # counts read the covering roster index, unless a filter names columns it lacks or finds rows by itself
        self.roster = not (self.by_index or f.user is not None or f.parent is not None or f.q
                           or f.signature is not None)

    def page_along_sort(self, matches: int) -> None:
        """Free text matching many sightings (``matches``, counted): a page walks the sort index and checks
        the text row by row, stopping after the page, rather than sort every candidate the search index
        lists (20,000 candidates: 110 ms sorted, against a few ms walked)."""
        if self.text is not None and self.text.narrowed and matches > WIDE_TEXT and self.sqlite:
            self.text.narrowed = False
            self.by_index = self._picked or self.f.device is not None or bool(self.f.signature)

    def conditions(self, fenced: bool, seek: bool = False, listed: bool = True) -> list[ColumnElement[bool]]:
        return _conditions(self.f, self.text, fenced=fenced, seek=seek, listed=listed, providers=self.providers) \
            + _triage_conditions(self.f, fenced=fenced) + self.extra

    def count(self) -> int:
        """How many sightings the filter matches (the roster's ``count``)."""
        # SQLite counts tagged sightings by looking each one the tag index lists up in the roster index, by
        # (gone, governed, device_id, id), reading no wide row; a tag on most of the fleet is cheaper checked
        # along the roster index instead. PostgreSQL plans its semi-join from statistics.
        tags = tuple(("flag", v) for v in self.f.flag) + (("provider", self.f.provider),)
        listed = not (self.roster and self.tagged and self.sqlite) or _few(self.session, tags)
        seek = self.roster and self.tagged and listed and self.sqlite
        return _count(self.session, self.conditions(fenced=False, seek=seek, listed=listed), self.f.hide,
                      self.roster, hidden_conditions=self.conditions(fenced=False) if seek else None)

    def chunks(self) -> Iterator[list[tuple[str, str]]]:
        """Every (device_id, sighting_id) the filter matches, a chunk at a time, in key order."""
        where = self.conditions(fenced=False) + ([~hidden()] if self.f.hide else [])
        last: tuple[str, str] = ("", "")
        while True:
            rows = [(d, s) for d, s in self.session.execute(
                select(col(Sighting.device_id), col(Sighting.id)).where(
                    *where, tuple_(col(Sighting.device_id), col(Sighting.id)) > tuple_(*last))
                .order_by(col(Sighting.device_id), col(Sighting.id)).limit(_CHUNK))]
            if not rows:
                return
            yield rows
            last = rows[-1]


def _conditions(f: RosterFilter, text: "search.Text | None", *, fenced: bool = False, seek: bool = False,
                listed: bool = True, providers: tuple[str, ...] = ()) -> list[ColumnElement[bool]]:
    """The filters. ``fenced``: for a page, each tag filter stays a per-row EXISTS (see ``_fence``);
    unfenced (a count), it is an IN over the tag index, read from the tag side (or, not ``listed``, an
    EXISTS checked along the roster index, for a tag on most of the fleet). ``seek``: ``gone`` and
    ``governed`` are both constrained, plainly, so that SQLite seeks the roster index on its first four
    columns (a count of tagged sightings)."""
    conditions: list[ColumnElement[bool]] = []
    if seek:
        gone, ruled = col(Sighting.gone), col(Sighting.governed)
        conditions.append(gone.in_((False, True)) if f.state == "all" else gone == (f.state == "gone"))
        conditions.append(ruled.in_((False, True)) if f.governed is None else ruled == f.governed)
    if f.state != "all" and not seek:
        # "=", not "IS" (PostgreSQL indexes "="); unindexed: SQLite would take any index on gone
        conditions.append(unindexed(col(Sighting.gone)) == (f.state == "gone"))
    if f.governed is not None and not seek:  # two values: an index on it is never worth reading (SQLite would)
        conditions.append(unindexed(col(Sighting.governed)) == f.governed)
    if len(f.type) == 1:
        conditions.append(col(Sighting.type) == f.type[0])
    elif f.type:
        conditions.append(col(Sighting.type).in_(f.type))
    if f.device is not None:  # an id or a hostname: each has an index
        conditions.append(or_(col(Sighting.device_id) == f.device, col(Sighting.hostname) == f.device))
    if f.signature == "":
        conditions.append(col(Sighting.signature).is_(None))
    elif f.signature is not None:
        conditions.append(col(Sighting.signature) == f.signature)
    for column, value in ((Sighting.user, f.user), (Sighting.parent, f.parent)):
        if value is not None:
            conditions.append(col(column) == value)
    if f.min_risk is not None:
        conditions.append(col(Sighting.risk) >= f.min_risk)
    for kind, value in [*(("flag", v) for v in f.flag), ("provider", f.provider)]:
        if value is not None:
            conditions.append(_tagged(kind, value, fenced, listed))
    if text is not None:
        found = text.condition()
        if providers:  # the providers whose id holds the text: their sightings, through the tag index
            found = or_(found, tuple_(col(Sighting.device_id), col(Sighting.id)).in_(
                select(col(SightingTag.device_id), col(SightingTag.sighting_id))
                .where(col(SightingTag.kind) == "provider", col(SightingTag.value).in_(providers)).correlate(None)))
        conditions.append(found)
    return conditions


def providers_holding(session: Session, text: str) -> list[str]:
    """The provider ids sightings carry that hold ``text`` (in any case): tens of distinct values, read
    from the tag index, so that free text finds a provider's callers without every report indexing it."""
    g = SightingTag.__table__  # type: ignore[attr-defined]
    return sorted(session.scalars(select(g.c.value).where(g.c.kind == "provider",
                                                          g.c.value.icontains(text, autoescape=True)).distinct()))


def triage_of_sighting() -> ColumnElement[bool]:
    return and_(col(SightingTriage.device_id) == col(Sighting.device_id),
                col(SightingTriage.sighting_id) == col(Sighting.id))


def _fence(query: Select[Any], fenced: bool) -> Select[Any]:
    """``OFFSET 0`` keeps PostgreSQL from turning an EXISTS into a join: it misjudges how many rows a join
    on (device_id, id) yields, then hashes the whole fleet and sorts it for one page, where walking the
    sort index and checking each row stops after the page (500 ms against 2 ms at 100,000 sightings)."""
    return query.offset(0) if fenced else query


def _triaged(where: Callable[[Any], ColumnElement[bool]], fenced: bool = False) -> ColumnElement[bool]:
    """EXISTS a triage row of the sighting meeting ``where`` (a function of the row's alias)."""
    t = _TRIAGE.alias("t")
    return exists(_fence(select(1).select_from(t).where(
        t.c.device_id == col(Sighting.device_id), t.c.sighting_id == col(Sighting.id), where(t),
    ).correlate(Sighting), fenced))


def _in_triage(where: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
    """The sighting is among those whose triage row meets ``where``: read from the triage side, through
    its owner or state index, rather than asked row by row."""
    t = _TRIAGE.alias("tf")
    return tuple_(col(Sighting.device_id), col(Sighting.id)).in_(
        select(t.c.device_id, t.c.sighting_id).where(where(t)).correlate(None))


def _triage_conditions(f: RosterFilter, fenced: bool = False) -> list[ColumnElement[bool]]:
    """Triage filters; a sighting without a triage row is ``new`` and has no owner."""
    conditions: list[ColumnElement[bool]] = []
    if f.owner is not None:
        owner = f.owner
        conditions.append(_in_triage(lambda t: t.c.owner == owner))
    if f.triage_state == "new":
        conditions.append(~_triaged(lambda t: t.c.state != "new", fenced))
    elif f.triage_state is not None:
        wanted = f.triage_state
        conditions.append(_in_triage(lambda t: t.c.state == wanted))
    return conditions


def _count(session: Session, conditions: list[ColumnElement[bool]], hide: bool, roster: bool,
           hidden_conditions: list[ColumnElement[bool]] | None = None) -> int:
    """How many sightings meet the conditions; hidden ones are counted apart, from the triage side, and
    taken off (cheaper than asking, row by row, whether each of 100,000 sightings is hidden). The hidden
    ones are counted under ``hidden_conditions`` where given: the same filters, worded for that side."""
    query = select(func.count()).select_from(Sighting).where(*conditions)
    if roster:
        query = query.with_hint(Sighting, "INDEXED BY ix_sighting_roster", "sqlite")
    count = session.scalar(query) or 0
    if hide and any_hidden(session):
        # from the triage side: each false positive looked up by primary key (SQLite, without statistics, would
        # rather walk an index of a filtered column, such as every tool server, and look up its triage)
        count -= session.scalar(select(func.count()).select_from(_TRIAGE).join(Sighting, and_(
            _TRIAGE.c.device_id == col(Sighting.device_id), _TRIAGE.c.sighting_id == col(Sighting.id)))
            .where(_TRIAGE.c.state == "false_positive", *(conditions if hidden_conditions is None
                                                          else hidden_conditions))
            .with_hint(Sighting, "INDEXED BY sqlite_autoindex_sighting_1", "sqlite")) or 0
    return count


def any_hidden(session: Session) -> bool:
    """Whether any sighting is a false positive (one look at the triage state index)."""
    return session.scalar(select(_TRIAGE.c.device_id).where(_TRIAGE.c.state == "false_positive").limit(1)) is not None


def not_hidden_joined() -> ColumnElement[bool]:
    """Not a false positive, from the outer-joined triage row (none: not hidden)."""
    return or_(col(SightingTriage.state).is_(None), col(SightingTriage.state) != "false_positive")


def hidden(fenced: bool = False) -> ColumnElement[bool]:
    """A sighting an admin marked a false positive."""
    return _triaged(lambda t: t.c.state == "false_positive", fenced)


def hidden_keys() -> ColumnElement[bool]:
    """A sighting an admin marked a false positive, read from the triage side (few rows, once)."""
    return _in_triage(lambda t: t.c.state == "false_positive")


def _few(session: Session, tags: tuple[tuple[str, str | None], ...]) -> bool:
    """Whether a tag filter lists at most half the fleet (its rows counted from the tag index, the fleet
    bounded by the largest rowid: both cheap), so that looking its sightings up beats checking them all."""
    fleet = session.scalar(select(func.max(literal_column("rowid"))).select_from(Sighting)) or 0
    listed = [session.scalar(select(func.count()).select_from(SightingTag).where(
        col(SightingTag.kind) == kind, col(SightingTag.value) == value)) or 0 for kind, value in tags if value]
    return min(listed, default=0) * 2 <= fleet


def _tagged(kind: str, value: str, fenced: bool = False, listed: bool = True) -> ColumnElement[bool]:
    if not fenced and listed:  # a count: the sightings listed under the tag, through ix_sighting_tag_kind_value
        return tuple_(col(Sighting.device_id), col(Sighting.id)).in_(
            select(col(SightingTag.device_id), col(SightingTag.sighting_id))
            .where(col(SightingTag.kind) == kind, col(SightingTag.value) == value).correlate(None))
    return exists(_fence(select(1).where(and_(col(SightingTag.device_id) == col(Sighting.device_id),
                                              col(SightingTag.sighting_id) == col(Sighting.id),
                                              col(SightingTag.kind) == kind, col(SightingTag.value) == value)),
                         fenced))


# -- names ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def catalog() -> tuple[dict[str, str], dict[str, str]]:
    """The signature library's signature ids and provider ids, each with its display name, read once per
    process; empty if it cannot be read."""
    try:
        from signatures.loader import load_files, shipped_packs

        library = load_files(shipped_packs())
    except Exception as exc:  # a broken library must not stop the collector: the fleet's ids and names still count
        log.warning("the signature library could not be read (%s): names and policy ids come from the fleet only",
                    type(exc).__name__)
        return {}, {}
    return ({s.id: getattr(s, "name", s.id) for s in library.signatures},
            {p.id: getattr(p, "name", p.id) for p in library.providers})


def signature_names(db: Session | Connection, signatures: Iterable[str]) -> dict[str, str]:
    """A display name for each signature id: the library's ("LangChain / LangGraph"), never one sighting's,
    since a framework's sightings are named after their projects ("app.worker in /srv/invoice-triage").
    An id the library does not know (a custom pack's) takes the name one of its sightings carries: every
    such id asked in one statement that reads one row of each (a GROUP BY would read all its rows)."""
    wanted = list(dict.fromkeys(signatures))
    known = catalog()[0]
    names = {sig: known[sig] for sig in wanted if sig in known}
    unknown = sorted({sig for sig in wanted if sig not in known})
    s = Sighting.__table__  # type: ignore[attr-defined]
    for start in range(0, len(unknown), 500):
        ids = select(s.c.signature).where(s.c.signature.in_(unknown[start:start + 500])).distinct().subquery("ids")
        n = s.alias("n")
        one = select(n.c.name).where(n.c.signature == ids.c.signature).limit(1).scalar_subquery()
        names.update((str(sig), str(name or sig)) for sig, name in db.execute(select(ids.c.signature, one)))
    return {sig: names.get(sig, sig) for sig in wanted}
