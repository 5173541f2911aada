"""POST /api/v1/enroll: a device trades the org's enroll secret for its own key (osquery's shape).

Enrolling again with the same host identifier gives a new key, invalidates the old one and restarts
the device's report sequence; a revoked device cannot enroll again.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import secrets
import time

from fastapi import APIRouter
from sqlalchemy import delete
from sqlmodel import col, select

from console.server import auth
from console.server.deps import StateDep, refuse
from console.server.models import Device, ReportEpoch
from console.server.routes import API
from endpoint.protocol import EnrollRequest, EnrollResponse

router = APIRouter(prefix=API, tags=["devices"])


@router.post("/enroll", responses={401: {"description": "wrong or no enroll secret"},
                                   403: {"description": "the device is revoked"}})  # fmt: skip
def enroll(body: EnrollRequest, state: StateDep) -> EnrollResponse:
    """Enroll (or re-enroll) a device; the key in the answer is shown only this once."""
    if body.host_identifier != body.device.id:
        raise refuse(422, "host_identifier_mismatch")
    made = auth.issue(auth.DEVICE_PREFIX)
    with state.db.write_session() as session:
        if not auth.check_enroll_secret(session, body.enroll_secret):
            reason = "invalid_enroll_secret" if auth.enroll_secret_state(session) == "ok" else "no_enroll_secret"
            raise refuse(401, reason)
        device = session.exec(select(Device).where(Device.host_identifier == body.host_identifier)).first()
        if device is not None and device.revoked_at is not None:
            raise refuse(403, "device_revoked")
        if device is None:
            device = Device(id=secrets.token_hex(8), host_identifier=body.host_identifier, enrolled_at=time.time(),
                            **body.device.model_dump(include={"hostname", "os", "os_version", "arch",
                                                              "agentroster_version"}))
        old_key = device.key_id
        device.key_id, device.key_salt, device.key_hash = made.key_id, made.salt, made.hash
        # A new key starts the sequence anew (its first report must be a snapshot): the old key's
        # reports can no longer be replayed, and a reinstalled daemon may well reuse an epoch name.
        device.epoch, device.seq = None, 0
        session.exec(delete(ReportEpoch).where(col(ReportEpoch.device_id) == device.id))
        device.enrolled_at = time.time()
        session.add(device)
        session.commit()
        device_id = device.id
    state.forget_device_key(old_key)
    return EnrollResponse(device_id=device_id, device_key=made.token)
