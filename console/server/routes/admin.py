"""Admin-only routes: admin and viewer tokens, and the enroll secret (each shown once, stored hashed)."""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from fastapi import APIRouter

from console.server import auth
from console.server.deps import AdminCaller, SessionDep, StateDep, refuse
from console.server.models import (
    ApiToken,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    ApiTokensPublic,
    EnrollSecretCreated,
    iso,
)
from console.server.routes import API

router = APIRouter(prefix=f"{API}/admin", tags=["admin"])


@router.post("/tokens", status_code=201)
def create_token(body: ApiTokenCreate, caller: AdminCaller, state: StateDep) -> ApiTokenCreated:
    """A new admin or viewer token; its value is in this answer only."""
    with state.db.write_session() as session:
        row, token = auth.create_api_token(session, body.role, body.name)
        return ApiTokenCreated(**public(row).model_dump(), token=token)


@router.get("/tokens")
def list_tokens(session: SessionDep, caller: AdminCaller) -> ApiTokensPublic:
    rows = auth.list_api_tokens(session)
    return ApiTokensPublic(data=[public(r) for r in rows], count=len(rows))


@router.delete("/tokens/{token_id}", responses={404: {"description": "no such token, or already revoked"}})
def revoke_token(token_id: str, caller: AdminCaller, state: StateDep) -> ApiTokenPublic:
    with state.db.write_session() as session:
        if not auth.revoke_api_token(session, token_id):
            raise refuse(404, "token_not_found")
        row = session.get(ApiToken, token_id)
        assert row is not None
        return public(row)


@router.post("/enroll-secret", status_code=201)
def rotate_enroll_secret(caller: AdminCaller, state: StateDep) -> EnrollSecretCreated:
    """A new enroll secret; the previous one stops working now. Enrolled devices keep their keys."""
    with state.db.write_session() as session:
        return EnrollSecretCreated(enroll_secret=auth.rotate_enroll_secret(session))


def public(row: ApiToken) -> ApiTokenPublic:
    return ApiTokenPublic(id=row.id, name=row.name, role=row.role, created_at=iso(row.created_at),
                          revoked=row.revoked_at is not None)
