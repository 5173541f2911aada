"""GET/PUT /api/v1/policy: the org policy (viewers read it, admins write it).

Writing it re-assesses every stored sighting in the same transaction, so filters on ``governed`` and
flags agree with the new policy as soon as the PUT returns.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import time

from fastapi import APIRouter
from sqlalchemy import text, update
from sqlmodel import Session

from console import governance
from console.server import ingest_store, triage
from console.server.deps import AdminCaller, Caller, SessionDep, StateDep
from console.server.models import Policy, PolicyPublic, PolicyUpdate, iso
from console.server.routes import API

router = APIRouter(prefix=API, tags=["policy"])


@router.get("/policy")
def get_policy(session: SessionDep, caller: Caller) -> PolicyPublic:
    return public(session.get(Policy, 1) or Policy())


@router.put("/policy")
def put_policy(body: PolicyUpdate, caller: AdminCaller, state: StateDep) -> PolicyPublic:
    """Replace the policy; returns it with its new version."""
    clean = PolicyUpdate(**{k: sorted(set(v)) for k, v in body.model_dump().items()})
    with state.db.writing() as conn:
        if not state.db.is_sqlite:  # wait for ingests in flight, hold new ones until the re-assessment is in
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ingest_store.POLICY_LOCK_ID})
        conn.execute(update(Policy).where(Policy.id == 1)  # type: ignore[arg-type]
                     .values(**clean.model_dump(), version=Policy.version + 1, updated_at=time.time()))
        policy = governance.Policy.of(clean.sanctioned_signatures, clean.sanctioned_providers,
                                      clean.corporate_fingerprints, clean.risky_tools)
        ingest_store.recompute_governance(conn, policy)
        triage.reassess_standing(conn, policy)  # approvals and registrations, which that pass does not know
    with Session(state.db.engine) as session:
        row = session.get(Policy, 1)
        assert row is not None
        return public(row)


def public(row: Policy) -> PolicyPublic:
    return PolicyPublic(sanctioned_signatures=row.sanctioned_signatures, sanctioned_providers=row.sanctioned_providers,
                        corporate_fingerprints=row.corporate_fingerprints, risky_tools=row.risky_tools,
                        version=row.version,
                        updated_at=iso(row.updated_at))
