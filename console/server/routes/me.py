"""GET /api/v1/me: the caller's token, its name and role (the console shows viewer or admin controls)."""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from fastapi import APIRouter

from console.server.deps import Caller
from console.server.models import Me
from console.server.routes import API

router = APIRouter(prefix=API, tags=["admin"])


@router.get("/me")
def me(caller: Caller) -> Me:
    return Me(name=caller.name, role=caller.role)
