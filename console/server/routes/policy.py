"""The org policy: ``GET /policy`` (viewers read it), ``PUT /policy`` (admins write it), what it can name
(``GET /policy/choices``: the signatures, providers and corporate key fingerprints the fleet reports, with
counts), what a change would do before it is saved (``POST /policy/preview``), every version with who
saved it and what changed (``GET /policy/versions``), and ``POST /policy/undo`` back to the previous one.

Writing it re-assesses every stored sighting in the same transaction, so filters on ``governed`` and
flags agree with the new policy as soon as the PUT returns; the user of each agent it flips (now governed,
or no longer covered) gets a ``policy`` item in their device's inbox in the same transaction. A policy naming a signature or provider
neither the fleet nor the signature library knows, or a fingerprint of the wrong shape, is refused with
a sentence (an agent's display name, "Claude Code", is answered with its id).
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import logging
import re
import time
from collections import Counter
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import Connection, func, or_, select, text, tuple_, update
from sqlmodel import Session, col

from console import governance
from console.server import chains, inbox, ingest, ingest_store, roster, triage
from console.server.deps import AdminCaller, Caller, SessionDep, StateDep, refuse
from console.server.models import (
    GroupApproval,
    Policy,
    PolicyChange,
    PolicyChoice,
    PolicyChoices,
    PolicyPreview,
    PolicyPublic,
    PolicyUpdate,
    PolicyVersion,
    PolicyVersionPublic,
    PolicyVersionsPublic,
    Sighting,
    SightingTag,
    iso,
)
from console.server.routes import API
from console.server.routes.triage import actor_of
from contract.scan import FINGERPRINT_PATTERN

router = APIRouter(prefix=API, tags=["policy"])
log = logging.getLogger("agentroster.server")
LISTS = ("sanctioned_signatures", "sanctioned_providers", "corporate_fingerprints", "risky_tools")
#: the lifecycle's settings (console/server/lifecycle.py): kept, versioned and undone with the lists
SETTINGS = ("reattest_days", "ladder", "notify_after_days", "remind_after_days", "deadline_days",
            "escalate_after_days", "group_approvals")
CHOICES_SHOWN = 1000
_S = Sighting.__table__  # type: ignore[attr-defined]
_G = SightingTag.__table__  # type: ignore[attr-defined]


@router.get("/policy")
def get_policy(session: SessionDep, caller: Caller) -> PolicyPublic:
    return public(session.get(Policy, 1) or Policy())


@router.put("/policy", responses={422: {"description": "an id neither the fleet nor the library knows"}})
def put_policy(body: PolicyChange, caller: AdminCaller, state: StateDep) -> PolicyPublic:
    """Replace the policy; returns it with its new version. ``cover_servers``: also sanction the MCP servers
    declared in the configs of each signature it newly sanctions."""
    with state.db.writing() as conn:
        if not state.db.is_sqlite:  # wait for ingests in flight, hold new ones until the re-assessment is in
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ingest_store.POLICY_LOCK_ID})
        before = _current(conn)
        clean = _checked(conn, body, before)
        _save(conn, clean, before, actor_of(caller))
    return _read(state)


@router.post("/policy/preview", responses={422: {"description": "an id neither the fleet nor the library knows"}})
def preview_policy(body: PolicyChange, caller: Caller, session: SessionDep) -> PolicyPreview:
    """What the policy would do if saved, over the sightings it can concern (those of the signatures,
    providers and keys it adds or takes off; every sighting with MCP servers when the risky tools change):
    how many it governs, how many it leaves ungoverned and why. Nothing is saved."""
    conn = session.connection()
    before = _current(conn)
    clean = _checked(conn, body, before)
    covered = sorted(set(clean.sanctioned_signatures) - set(body.sanctioned_signatures))
    return _preview(conn, before, clean, covered)


@router.get("/policy/choices")
def policy_choices(session: SessionDep, caller: Caller) -> PolicyChoices:
    """The signatures, providers and credential fingerprints present sightings carry, most seen first, with
    how many sightings (and devices) carry each and whether the policy names it already."""
    conn = session.connection()
    policy = _current(conn)
    # counted along the covering index ix_sighting_fleet (signature, type, device), never the wide rows
    counted = conn.execute(
        select(_S.c.signature, func.max(_S.c.type), func.count(), func.count(_S.c.device_id.distinct()))
        .where(_S.c.gone == False, _S.c.signature.is_not(None))  # noqa: E712
        .group_by(_S.c.signature).order_by(func.count().desc(), _S.c.signature).limit(CHOICES_SHOWN)
        .with_hint(_S, "INDEXED BY ix_sighting_fleet", "sqlite")).all()
    names = roster.signature_names(conn, [sig for sig, *_ in counted])
    signatures = [PolicyChoice(id=sig, name=names[sig], type=kind or "", sightings=n,
                               devices=d, sanctioned=sig in policy.sanctioned_signatures)
                  for sig, kind, n, d in counted]
    provider_names = _library_providers()
    providers = [PolicyChoice(id=p, name=provider_names.get(p, p), sightings=n,
                              sanctioned=p in policy.sanctioned_providers)
                 for p, n in _provider_counts(conn)[:CHOICES_SHOWN]]
    fingerprints = [PolicyChoice(id=fp, sightings=n, devices=d, sanctioned=fp in policy.corporate_fingerprints)
                    for fp, n, d in conn.execute(text(_FINGERPRINTS[conn.dialect.name]), {"shown": CHOICES_SHOWN})]
    return PolicyChoices(signatures=signatures, providers=providers, fingerprints=fingerprints)


def _provider_counts(conn: Connection) -> list[tuple[str, int]]:
    """Each provider present sightings call, with how many call it, most called first. Counted from the tag
    index alone (every sighting's tags, gone ones too: 2 ms at 100,000 sightings), less the tags of the gone
    sightings, read from those; a store holding more gone sightings than provider tags joins the tags to the
    present sightings instead (each tag's sighting looked up in the covering roster index: 32 ms)."""
    dialect = conn.dialect.name
    gone = conn.scalar(select(func.count()).select_from(_S).where(_S.c.gone == True)) or 0  # noqa: E712
    tagged = conn.scalar(select(func.count()).select_from(_G).where(_G.c.kind == "provider")) or 0
    if gone > tagged:
        counts = Counter({p: n for p, n in conn.execute(
            select(_G.c.value, func.count()).select_from(_G)
            .join(_S, (_S.c.device_id == _G.c.device_id) & (_S.c.id == _G.c.sighting_id))
            .where(_G.c.kind == "provider", _S.c.gone == False, _S.c.governed.in_((False, True)))  # noqa: E712
            .group_by(_G.c.value).with_hint(_S, "INDEXED BY ix_sighting_roster", "sqlite"))})
    else:
        counts = Counter({p: n for p, n in conn.execute(
            select(_G.c.value, func.count()).where(_G.c.kind == "provider").group_by(_G.c.value))})
        if gone:
            counts.subtract({p: n for p, n in conn.execute(text(_GONE_PROVIDERS[dialect]))})
    return sorted(((p, n) for p, n in counts.items() if n > 0), key=lambda pn: (-pn[1], pn[0]))


#: the provider tags of gone sightings, read from those (SQLite: CROSS JOIN keeps that order)
_GONE_PROVIDERS = {
    "sqlite": "SELECT g.value, count(*) FROM sighting AS s INDEXED BY ix_sighting_roster CROSS JOIN sighting_tag AS g "
              "ON g.device_id = s.device_id AND g.sighting_id = s.id AND g.kind = 'provider' WHERE s.gone = 1 "
              "GROUP BY g.value",
    "postgresql": "SELECT g.value, count(*) FROM sighting AS s JOIN sighting_tag AS g ON g.device_id = s.device_id "
                  "AND g.sighting_id = s.id AND g.kind = 'provider' WHERE s.gone = true GROUP BY g.value",
}  # fmt: skip

#: each fingerprint present sightings use, with how many sightings and devices: counted by the database. SQLite
#: scans the table (55 ms at 100,000 sightings) rather than seek every present one by rowid from an index on
#: gone (140 ms), and tests gone only where there are fingerprints
_FINGERPRINTS = {
    "sqlite": "SELECT f.value, count(*), count(DISTINCT s.device_id) FROM sighting AS s NOT INDEXED, "
              "json_each(s.fingerprints) AS f WHERE s.fingerprints != '[]' AND s.gone = 0 GROUP BY f.value "
              "ORDER BY count(*) DESC, f.value LIMIT :shown",
    "postgresql": "SELECT f.value, count(*), count(DISTINCT s.device_id) FROM sighting AS s, "
                  "jsonb_array_elements_text(CAST(s.fingerprints AS jsonb)) AS f(value) WHERE s.gone = false "
                  "AND s.fingerprints != '[]' GROUP BY f.value ORDER BY count(*) DESC, f.value LIMIT :shown",
}  # fmt: skip


@router.get("/policy/versions")
def policy_versions(session: SessionDep, caller: Caller,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50) -> PolicyVersionsPublic:
    """Every version of the policy kept, newest first, with who saved it and what changed."""
    rows = session.scalars(select(PolicyVersion).order_by(col(PolicyVersion.version).desc()).limit(limit)).all()
    count = session.scalar(select(func.count()).select_from(PolicyVersion)) or 0
    return PolicyVersionsPublic(data=[PolicyVersionPublic(
        **{k: getattr(r, k) for k in LISTS + SETTINGS}, version=r.version, at=iso(r.at), actor=r.actor,
        changes=[c for c in r.changes.split("\n") if c]) for r in rows], count=count)


@router.post("/policy/undo", responses={409: {"description": "no earlier version to go back to"}})
def undo_policy(caller: AdminCaller, state: StateDep) -> PolicyPublic:
    """Go back to the version before the current one (saved as a new version, so it can be undone too)."""
    with state.db.writing() as conn:
        if not state.db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ingest_store.POLICY_LOCK_ID})
        before = _current(conn)
        version = conn.execute(select(Policy.version).where(Policy.id == 1)).scalar_one()  # type: ignore[call-overload]
        previous = conn.execute(select(PolicyVersion).where(col(PolicyVersion.version) < version)
                                .order_by(col(PolicyVersion.version).desc()).limit(1)).mappings().first()
        if previous is None:
            raise refuse(409, "no_earlier_policy", message="There is no earlier version of the policy to go back to.")
        restored = PolicyUpdate.model_validate({**{k: previous[k] or [] for k in LISTS},
                                                **{k: previous[k] for k in SETTINGS}})
        _save(conn, restored, before, actor_of(caller), note=f"undo: back to version {previous['version']}")
    return _read(state)


def public(row: Policy) -> PolicyPublic:
    return PolicyPublic(sanctioned_signatures=row.sanctioned_signatures, sanctioned_providers=row.sanctioned_providers,
                        corporate_fingerprints=row.corporate_fingerprints, risky_tools=row.risky_tools,
                        **{k: getattr(row, k) for k in SETTINGS}, version=row.version,
                        updated_at=iso(row.updated_at))


# -- checking and saving ------------------------------------------------------------------------------


def _current(conn: Connection) -> PolicyUpdate:
    row = conn.execute(select(*(getattr(Policy, k) for k in LISTS + SETTINGS)).where(Policy.id == 1)).first()  # type: ignore[arg-type]
    if row is None:
        return PolicyUpdate()
    return PolicyUpdate(**dict(zip(LISTS + SETTINGS, row, strict=True)))


def _checked(conn: Connection, body: PolicyChange, before: PolicyUpdate) -> PolicyUpdate:
    """The policy as it will be saved (sorted, deduplicated, the covered servers added); 422 with a sentence
    for an id nobody knows. Ids the policy names already stay accepted (the fleet may have moved on)."""
    # a setting the document leaves out keeps its value: an editor that knows only the lists loses nothing
    clean = PolicyUpdate.model_validate({
        **{k: sorted(set(getattr(body, k))) for k in LISTS},
        **{k: getattr(body if k in body.model_fields_set else before, k) for k in SETTINGS}})
    merged: dict[str, set[str]] = {}  # one entry per signature, its users sorted: saved as the admin meant
    for group in clean.group_approvals:
        merged.setdefault(group.signature, set()).update(group.users)
    clean.group_approvals = [GroupApproval(signature=sig, users=sorted(users)) for sig, users in sorted(merged.items())]
    problems = []
    new_signatures = [s for s in clean.sanctioned_signatures if s not in before.sanctioned_signatures]
    # a group approval names a signature as a sanction does: one nobody knows is a typo
    named_before = set(before.sanctioned_signatures) | {g.signature for g in before.group_approvals}
    new_in_groups = sorted({g.signature for g in clean.group_approvals} - named_before - set(new_signatures))
    # what the refusal names is what the admin typed, scrubbed: a key pasted into the wrong box is never sent back
    unknown = [_shown(u) for u in _unknown_signatures(conn, new_signatures + new_in_groups)]
    if unknown:
        hints = _signature_hints(conn, unknown)
        named = ", ".join(f"{u} (its id is {hints[u]})" if u in hints else u for u in unknown[:5])
        problems.append(f"no device reports, and the signature library does not know, the signature{_s(unknown)} "
                        f"{named}")
    new_providers = [p for p in clean.sanctioned_providers if p not in before.sanctioned_providers]
    reported = {p for (p,) in conn.execute(select(_G.c.value).where(_G.c.kind == "provider",
                                                                    _G.c.value.in_(new_providers)).distinct())}
    unknown_providers = [_shown(p) for p in new_providers
                         if p not in reported and p not in _library_providers()]
    if unknown_providers:
        problems.append(f"no device reports, and the provider catalog does not know, the provider"
                        f"{_s(unknown_providers)} {', '.join(unknown_providers[:5])}")
    malformed = [f for f in clean.corporate_fingerprints if not re.match(FINGERPRINT_PATTERN, f)]
    if malformed:
        problems.append(f"{len(malformed)} corporate key fingerprint{_s(malformed)} {'is' if len(malformed) == 1 else 'are'} "
                        "not of the form hmac-sha256:<32 hex digits> (copy them from the policy choices)")
    if problems:
        raise refuse(422, "unknown_ids", unknown_signatures=unknown[:100], unknown_providers=unknown_providers[:100],
                     malformed_fingerprints=len(malformed),
                     message="The policy was not saved: " + "; ".join(problems)
                             + ". Pick ids from GET /api/v1/policy/choices.")
    if body.cover_servers and new_signatures:
        servers = _declared_servers(conn, new_signatures)
        clean.sanctioned_signatures = sorted(set(clean.sanctioned_signatures) | set(servers))
    return clean


def _save(conn: Connection, clean: PolicyUpdate, before: PolicyUpdate, actor: str, note: str = "") -> None:
    now = time.time()
    # the ladder's clocks start when it is turned on, not when each sighting was first stored
    started = {"ladder_since": now} if before.ladder == "report_only" and clean.ladder != "report_only" else {}
    conn.execute(update(Policy).where(Policy.id == 1)  # type: ignore[arg-type]
                 .values(**clean.model_dump(), **started, version=Policy.version + 1, updated_at=now))
    version = conn.execute(select(Policy.version).where(Policy.id == 1)).scalar_one()  # type: ignore[call-overload]
    changes = ([note] if note else []) + _changes(before, clean)
    conn.execute(PolicyVersion.__table__.insert().values(  # type: ignore[attr-defined]
        version=version, at=now, actor=actor, changes="\n".join(changes), **clean.model_dump()))
    policy = governance.Policy.of(clean.sanctioned_signatures, clean.sanctioned_providers,
                                  clean.corporate_fingerprints, clean.risky_tools,
                                  [g.model_dump() for g in clean.group_approvals])
    _reassess(conn, policy, news=(version, actor, now))


def _reassess(conn: Connection, policy: governance.Policy, batch: int = 2000,
              news: tuple[int, str, float] | None = None) -> int:
    """Apply a saved policy to every stored sighting in one pass, each assessed once with its standing (an
    approval, a registration; for a sub-agent or tool server without one, its chain's root's where that
    covers it, ``console.server.chains``) and its user (whom a group approval names), and written only if
    its verdict changes; returns how many changed. A pass without them would judge a group-approved sighting
    ungoverned and a second one governed again: two writes, and two assessments, for nothing.

    ``news`` (the saved version, who saved it, when): each sighting still on its device whose ``governed``
    flips gets a ``policy`` inbox item for its user, inserted with the batch's verdicts."""
    s, t = triage.S, triage.T
    # the sightings a chain can cover: under a root whose standing covers (few; none in most fleets)
    roots = [(d, i) for d, i, a, r in conn.execute(select(t.c.device_id, t.c.sighting_id, t.c.approval,
                                                          t.c.registration).where(or_(t.c.approval != "",
                                                                                      t.c.registration != "")))
             if chains.covers(chains.standing_of(a, r))]
    under_roots = set(chains.descendants(conn, roots)) if roots else set()
    joined = s.outerjoin(t, (t.c.device_id == s.c.device_id) & (t.c.sighting_id == s.c.id))
    changed = 0
    last = ("", "")
    while True:
        rows = conn.execute(select(s.c.device_id, s.c.id, s.c.signature, s.c.providers, s.c.fingerprints, s.c.flags,
                                   s.c.governed, s.c.detail, s.c.user, t.c.approval, t.c.registration,
                                   s.c.gone, s.c.name)
                            .select_from(joined).where(tuple_(s.c.device_id, s.c.id) > tuple_(*last))
                            .order_by(s.c.device_id, s.c.id).limit(batch)).all()
        if not rows:
            return changed
        covering = chains.roots_of_stored(conn, [(r[0], r[1]) for r in rows if (r[0], r[1]) in under_roots
                                                 and not (r[9] or r[10])]) if under_roots else {}
        updates, tags = [], {}
        flips: list[tuple[str, str, str | None, str, bool]] = []
        for (d, i, signature, providers, fingerprints, flags, governed, detail, user, approval, registration,
             gone, name) in rows:
            provider_ids = orjson.loads(providers)
            # no standing: the policy alone, which reads the detail only where it can matter
            standing = triage.standing_of(approval, registration) if approval or registration else None
            root = covering[(d, i)][2] if (d, i) in covering else None
            verdict, recorded = triage.assess_stored_in_chain(signature, provider_ids, fingerprints, flags, detail,
                                                              policy, standing, root, user=user)
            new_flags = orjson.dumps(verdict.flags).decode()
            if new_flags != flags or verdict.governed != governed:
                updates.append({"d": d, "s": i, "g": verdict.governed, "f": new_flags,
                                "r": governance.risk_of(verdict.flags), **({"dt": recorded} if recorded else {})})
                tags[(d, i)] = ingest.tags_of(verdict.flags, provider_ids)
                if verdict.governed != bool(governed) and not gone:
                    flips.append((d, i, user, name or "", verdict.governed))
        triage.write_verdicts(conn, updates, tags)
        if news is not None:
            inbox.policy_changes(conn, flips, *news)
        changed += len(updates)
        last = (rows[-1][0], rows[-1][1])


def _read(state: StateDep) -> PolicyPublic:
    with Session(state.db.engine) as session:
        row = session.get(Policy, 1)
        assert row is not None
        return public(row)


_WORDS = {"sanctioned_signatures": ("sanctioned signature", "withdrew signature"),
          "sanctioned_providers": ("allowed provider", "disallowed provider"),
          "corporate_fingerprints": ("added corporate key", "removed corporate key"),
          "risky_tools": ("added risky-tool pattern", "removed risky-tool pattern")}


def _changes(before: PolicyUpdate, after: PolicyUpdate) -> list[str]:
    """One line per change, as the audit log shows it."""
    lines = []
    for key, (added, removed) in _WORDS.items():
        old, new = set(getattr(before, key)), set(getattr(after, key))
        lines += [f"{added} {v}" for v in sorted(new - old)] + [f"{removed} {v}" for v in sorted(old - new)]
    lines += [f"{k.replace('_', ' ')} {getattr(before, k)} -> {getattr(after, k)}" for k in SETTINGS
              if k != "group_approvals" and getattr(before, k) != getattr(after, k)]
    old_groups, new_groups = _groups(before), _groups(after)
    lines += [f"approved signature {sig} for {', '.join(users)}" for sig, users in sorted(new_groups - old_groups)]
    lines += [f"withdrew the approval of {sig} for {', '.join(users)}" for sig, users in sorted(old_groups - new_groups)]
    return lines


def _groups(policy: PolicyUpdate) -> set[tuple[str, tuple[str, ...]]]:
    return {(g.signature, tuple(g.users)) for g in policy.group_approvals}


#: a run of letters and digits no id or name has: what a key pasted into the wrong box holds
_KEY_LIKE = re.compile(r"[A-Za-z0-9]{16,}")


def _shown(typed: str) -> str:
    """An id the admin typed, as a refusal may name it: a credential value redacted, and anything that may be
    one (long, or with a long run of letters and digits) not shown at all, so a key pasted into the wrong box
    is never sent back; a typo ("not-a-provider") or a display name ("Claude Code") shown as typed."""
    scrubbed = str(ingest.scrub(typed))
    if scrubbed != typed:
        return scrubbed
    return "[not shown: it may be a key]" if len(typed) > 64 or _KEY_LIKE.search(typed) else typed


def _s(items: list[Any]) -> str:
    return "" if len(items) == 1 else "s"


def _unknown_signatures(conn: Connection, wanted: list[str]) -> list[str]:
    if not wanted:
        return []
    reported = {s for (s,) in conn.execute(select(_S.c.signature).where(_S.c.signature.in_(wanted)).distinct())}
    return [s for s in wanted if s not in reported and s not in _library_signatures()]


def _signature_hints(conn: Connection, names: list[str]) -> dict[str, str]:
    """A display name given where an id belongs ("Claude Code") -> the id its sightings carry."""
    hints: dict[str, str] = {}
    for name in names[:5]:
        found = conn.execute(select(_S.c.signature).where(func.lower(_S.c.name) == name.lower(),
                                                          _S.c.signature.is_not(None)).limit(1)).scalar()
        library = {n.lower(): i for i, n in _library_names().items()}.get(name.lower())
        if found or library:
            hints[name] = str(found or library)
    return hints


def _declared_servers(conn: Connection, signatures: list[str]) -> list[str]:
    """The signatures of the tool servers declared in the configs of sightings of ``signatures`` (the tool
    servers whose parent is one of those sightings)."""
    parent = _S.alias("p")
    return sorted({s for (s,) in conn.execute(
        select(_S.c.signature).select_from(_S).join(parent, (parent.c.device_id == _S.c.device_id)
                                                    & (parent.c.id == _S.c.parent))
        .where(parent.c.signature.in_(signatures), _S.c.type == "tool_server", _S.c.signature.is_not(None))
        .distinct())})


def _preview(conn: Connection, before: PolicyUpdate, after: PolicyUpdate, covered: list[str]) -> PolicyPreview:
    changed_signatures = set(before.sanctioned_signatures) ^ set(after.sanctioned_signatures)
    changed_providers = set(before.sanctioned_providers) ^ set(after.sanctioned_providers)
    changed_keys = set(before.corporate_fingerprints) ^ set(after.corporate_fingerprints)
    every = set(before.risky_tools) != set(after.risky_tools)
    policy = governance.Policy.of(after.sanctioned_signatures, after.sanctioned_providers,
                                  after.corporate_fingerprints, after.risky_tools,
                                  [g.model_dump() for g in after.group_approvals])
    # a group approval added, changed or withdrawn concerns its signature's sightings
    changed_signatures |= {sig for sig, _ in _groups(before) ^ _groups(after)}
    considered = governed_before = governs = newly = lost = 0
    because: Counter[str] = Counter()
    where = [_S.c.gone == False]  # noqa: E712
    keys: set[tuple[str, str]] = set()
    if every:  # risky-tool patterns can concern any sighting with an MCP server
        keys = {(d, i) for d, i in conn.execute(select(_S.c.device_id, _S.c.id).where(_S.c.servers > 0, *where))}
    else:
        if changed_signatures:
            keys |= {(d, i) for d, i in conn.execute(select(_S.c.device_id, _S.c.id).where(
                _S.c.signature.in_(sorted(changed_signatures)), *where))}
        if changed_providers:
            keys |= {(d, i) for d, i in conn.execute(select(_G.c.device_id, _G.c.sighting_id).where(
                _G.c.kind == "provider", _G.c.value.in_(sorted(changed_providers))))}
        if changed_keys:
            for fingerprint in sorted(changed_keys)[:200]:
                keys |= {(d, i) for d, i in conn.execute(select(_S.c.device_id, _S.c.id).where(
                    _S.c.fingerprints.contains(fingerprint), *where))}
    ordered = sorted(keys)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start:start + 500]
        standings = _standings(conn, chunk)
        query = select(_S.c.device_id, _S.c.id, _S.c.signature, _S.c.providers, _S.c.fingerprints, _S.c.flags,
                       _S.c.detail, _S.c.governed, _S.c.user).where(triage.among(conn, _S.c.device_id, _S.c.id, chunk),
                                                                     *where)
        for d, i, signature, providers, fingerprints, flags, detail, governed, user in conn.execute(query):
            verdict, _ = triage.assess_stored(signature, orjson.loads(providers), orjson.loads(fingerprints), flags,
                                              detail, policy, standings.get((d, i), governance.NO_STANDING), user=user)
            considered += 1
            governed_before += bool(governed)
            governs += verdict.governed
            newly += verdict.governed and not governed
            lost += bool(governed) and not verdict.governed
            if not verdict.governed:
                because.update(f for f, _ in verdict.reasons if f in ("unregistered", "pending", "drift"))
    ungoverned = considered - governs
    reasons = ", ".join(f"{n:,} {flag}" for flag, n in because.most_common()) if because else ""
    message = (f"Governs {governs:,} of the {considered:,} sightings it concerns"
               + (f", leaves {ungoverned:,} ungoverned ({reasons})" if ungoverned else "") + ".")
    return PolicyPreview(considered=considered, governed_before=governed_before, governs=governs,
                         ungoverned=ungoverned, ungoverned_because=dict(because), newly_governed=newly,
                         no_longer_governed=lost, covered_servers=covered, message=message)


def _standings(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], governance.Standing]:
    t = triage.T
    return {(d, s): triage.standing_of(a, r) for d, s, a, r in conn.execute(
        select(t.c.device_id, t.c.sighting_id, t.c.approval, t.c.registration)
        .where(triage.among(conn, t.c.device_id, t.c.sighting_id, keys)))}


# -- the signature library (what the endpoint can report), read once per process (roster.catalog) ----------


def _library_signatures() -> dict[str, str]:
    return roster.catalog()[0]


def _library_names() -> dict[str, str]:
    return roster.catalog()[0]


def _library_providers() -> dict[str, str]:
    return roster.catalog()[1]
