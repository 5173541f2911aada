"""FastAPI dependencies: the database session, and who is calling (admin, viewer or device).

Every refusal carries a reason: 401 when the caller is unknown, 403 when it is known but not allowed.
A client address whose token checks keep failing is answered 429 with Retry-After, before any look-up.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from console.server import auth
from console.server.db import Database
from console.server.limits import RateLimiter, too_many
from console.server.metrics import Metrics
from console.server.models import ApiToken, Device
from console.server.settings import Settings
from console.server.writer import Writer

_BEARER = {"WWW-Authenticate": "Bearer"}


@dataclass
class State:
    """What the app holds for its routes (``app.state.collector``)."""

    settings: Settings
    db: Database
    metrics: Metrics
    limiter: RateLimiter
    writer: Writer
    enroll_limiter: RateLimiter  # per client address
    failure_limiter: RateLimiter  # failed token checks, per client address
    device_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # key id -> (salt, hash)

    def forget_device_key(self, key_id: str | None) -> None:
        if key_id:
            self.device_keys.pop(key_id, None)


async def get_state(request: Request) -> State:  # async: no thread hop for a lookup
    return request.app.state.collector  # type: ignore[no-any-return]


StateDep = Annotated[State, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def refuse(status: int, reason: str, **extra: object) -> HTTPException:
    return HTTPException(status, detail={"reason": reason, **extra}, headers=_BEARER if status == 401 else None)


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def not_blocked(request: Request, state: State) -> None:
    """429 for an address over its failed-token budget, before its token is looked at."""
    wait = state.failure_limiter.waiting(client_address(request))
    if wait > 0:
        raise too_many("too_many_failed_tokens", wait)


def failed_token(request: Request, state: State, reason: str, **extra: object) -> HTTPException:
    """A 401 for a token that did not check out, counted against the caller's address."""
    state.failure_limiter.take(client_address(request))
    return refuse(401, reason, **extra)


def presented_token(request: Request, state: StateDep) -> auth.Presented:
    token = auth.bearer(request.headers.get("authorization"))
    if token is None:
        raise refuse(401, "missing_token")
    not_blocked(request, state)
    presented = auth.parse(token)
    if presented is None:
        raise failed_token(request, state, "invalid_token")
    return presented


PresentedDep = Annotated[auth.Presented, Depends(presented_token)]


# -- admins and viewers -----------------------------------------------------------------------------


def get_caller(request: Request, state: StateDep, session: SessionDep, presented: PresentedDep) -> ApiToken:
    if presented.kind == "device":
        raise refuse(403, "device_token_not_allowed")
    row = auth.find_api_token(session, presented)
    if row is None:
        raise failed_token(request, state, "invalid_token")
    return row


Caller = Annotated[ApiToken, Depends(get_caller)]


def get_admin(caller: Caller) -> ApiToken:
    if caller.role != "admin":
        raise refuse(403, "admin_role_required", role=caller.role)
    return caller


AdminCaller = Annotated[ApiToken, Depends(get_admin)]


# -- devices ----------------------------------------------------------------------------------------


def invalid_device_key(request: Request, state: State) -> HTTPException:
    return failed_token(request, state, "invalid_device_key", reenroll=True)


async def get_device_key(request: Request, state: StateDep) -> auth.Presented:
    """A device key that is known now; the ingest transaction checks it again under the device's lock."""
    token = auth.bearer(request.headers.get("authorization"))
    presented = auth.parse(token) if token else None
    if token is None:
        raise refuse(401, "missing_token", reenroll=True)
    not_blocked(request, state)
    if presented is None:
        raise invalid_device_key(request, state)
    if presented.kind != "device":
        raise refuse(403, "not_a_device_key")
    known = state.device_keys.get(presented.key_id)
    if known is None:
        known = await run_in_threadpool(_load_device_key, state.db, presented.key_id)
        if known is None:
            raise invalid_device_key(request, state)
        state.device_keys[presented.key_id] = known
    if not auth.matches(known[0], known[1], presented.secret):
        raise invalid_device_key(request, state)
    return presented


def _load_device_key(db: Database, key_id: str) -> tuple[str, str] | None:
    with db.session() as session:
        row = session.exec(select(Device.key_salt, Device.key_hash, Device.revoked_at)
                           .where(Device.key_id == key_id)).first()
    if row is None or row[2] is not None:
        return None
    return row[0], row[1]


DeviceKey = Annotated[auth.Presented, Depends(get_device_key)]


# -- either: routes where a device reads its own rows -----------------------------------------------


def get_reader(request: Request, state: StateDep, session: SessionDep,
               presented: PresentedDep) -> ApiToken | auth.Presented:
    """An admin or viewer token (its row), or a device key that is known now (as presented); the route
    limits a device to its own rows."""
    if presented.kind != "device":
        return get_caller(request, state, session, presented)
    known = state.device_keys.get(presented.key_id) or _load_device_key(state.db, presented.key_id)
    if known is None or not auth.matches(known[0], known[1], presented.secret):
        raise invalid_device_key(request, state)
    state.device_keys[presented.key_id] = known
    return presented


Reader = Annotated[ApiToken | auth.Presented, Depends(get_reader)]
