"""POST /api/v1/enroll: a device trades the org's enroll secret for its own key (osquery's shape).

The enroll secret is shared by the whole fleet, so it proves only that a caller belongs to the org, not
which device it is. Enrolling again with an identity whose key is live therefore needs that key as well
(``device_key`` in the request): then the device gets a new key, the old one stops working and the
device's report sequence restarts. Without it the caller enrolls as a separate device flagged as an
identity conflict (``identity_conflict``: the device it claimed to be), which an admin accepts or
revokes; the live device's key and data are never touched. A revoked device cannot enroll again.

The secret is checked on a read session before the store's write lock is taken, so an unauthenticated
caller never waits for the writer nor holds it; enrollments are rate limited per client address.
The answer carries the organisation's fingerprint key, for the device's credential fingerprints.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import secrets
import time

from fastapi import APIRouter, Request
from sqlalchemy import delete
from sqlmodel import Session, col, select

from console.server import auth
from console.server.deps import StateDep, client_address, not_blocked, refuse
from console.server.limits import too_many
from console.server.models import CONFLICT_MARK, Device, ReportEpoch
from console.server.routes import API
from contract.validation import EnrollRequest, EnrollResponse

router = APIRouter(prefix=API, tags=["devices"])


@router.post("/enroll", responses={401: {"description": "wrong or no enroll secret"},
                                   403: {"description": "the device is revoked"},
                                   429: {"description": "too many enrollments from this address"}})  # fmt: skip
def enroll(body: EnrollRequest, request: Request, state: StateDep) -> EnrollResponse:
    """Enroll (or re-enroll) a device; the key in the answer is shown only this once."""
    address = client_address(request)
    wait = state.enroll_limiter.take(address)
    if wait:
        raise too_many("too_many_enrollments", wait)
    not_blocked(request, state)  # an address that keeps failing token checks does not guess secrets here
    if body["host_identifier"] != body["device"]["id"]:
        raise refuse(422, "host_identifier_mismatch")
    if CONFLICT_MARK in body["host_identifier"]:
        raise refuse(422, "invalid_host_identifier")
    with state.db.session() as session:  # no write lock for a caller not yet known to be of the org
        if not auth.check_enroll_secret(session, body["enroll_secret"]):
            state.failure_limiter.take(address)
            reason = "invalid_enroll_secret" if auth.enroll_secret_state(session) == "ok" else "no_enroll_secret"
            raise refuse(401, reason)
        fingerprint_key = auth.fingerprint_key(session)
    shown_key = body.get("device_key")
    proof = auth.parse(shown_key) if shown_key else None
    made = auth.issue(auth.DEVICE_PREFIX)
    with state.db.write_session() as session:
        device = session.exec(select(Device).where(Device.host_identifier == body["host_identifier"])).first()
        if device is not None and device.revoked_at is not None:
            raise refuse(403, "device_revoked")
        if device is None:
            device = _new_device(body, body["host_identifier"])
        elif not _proves(device, proof):
            device = _conflicting(session, body, device, proof)
            if device.revoked_at is not None:
                raise refuse(403, "device_revoked")
        old_key = device.key_id
        device.key_id, device.key_salt, device.key_hash = made.key_id, made.salt, made.hash
        device.hardware_id = body.get("hardware_id", "")
        # A new key starts the sequence anew (its first report must be a snapshot): the old key's
        # reports can no longer be replayed, and a reinstalled daemon may well reuse an epoch name.
        device.epoch, device.seq = None, 0
        session.exec(delete(ReportEpoch).where(col(ReportEpoch.device_id) == device.id))
        device.enrolled_at = time.time()
        session.add(device)
        session.commit()
        device_id, conflict = device.id, device.identity_conflict is not None
    state.forget_device_key(old_key)
    return {"device_id": device_id, "device_key": made.token, "fingerprint_key": fingerprint_key,
            "identity_conflict": conflict}


def _new_device(body: EnrollRequest, host_identifier: str, *, device_id: str | None = None) -> Device:
    device = body["device"]
    return Device(id=device_id or secrets.token_hex(8), host_identifier=host_identifier, enrolled_at=time.time(),
                  hostname=device["hostname"], os=device["os"], os_version=device.get("os_version", ""),
                  arch=device.get("arch", ""), agentroster_version=device["agentroster_version"])


def _proves(device: Device, proof: auth.Presented | None) -> bool:
    """Whether ``proof`` is the device's live key."""
    return (proof is not None and proof.kind == "device" and device.key_id is not None
            and secrets.compare_digest(proof.key_id, device.key_id)
            and auth.matches(device.key_salt, device.key_hash, proof.secret))


def _conflicting(session: Session, body: EnrollRequest, claimed: Device, proof: auth.Presented | None) -> Device:
    """The separate device for a caller that claims ``claimed``'s identity without its key: the one it
    was given before (when it shows that device's key), or a new one flagged as a conflict."""
    if proof is not None and proof.kind == "device":
        earlier = session.exec(select(Device).where(Device.key_id == proof.key_id)).first()
        if earlier is not None and earlier.identity_conflict == claimed.id and _proves(earlier, proof):
            return earlier
    device_id = secrets.token_hex(8)
    device = _new_device(body, f"{body['host_identifier']}{CONFLICT_MARK}{device_id}", device_id=device_id)
    device.identity_conflict = claimed.id
    return device
