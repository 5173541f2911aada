"""Enrollment (``POST /api/v1/enroll``): a device trades the org's enroll secret for its own key, and is
given the organisation's credential fingerprint key."""

from __future__ import annotations

from typing import Annotated, NotRequired, TypedDict

from contract.bounds import Default, Doc, Length
from contract.scan import Device


class EnrollRequest(TypedDict):
    enroll_secret: Annotated[str, Length(1, 512)]
    host_identifier: Annotated[str, Length(1, 256), Doc("the device id: the daemon's per-install random identity")]
    device: Device
    hardware_id: NotRequired[Annotated[str, Length(max=256), Default(""),
                                       Doc("the OS's hardware identity (machine-id, IOPlatformUUID/serial, "
                                           "MachineGuid)")]]
    device_key: NotRequired[Annotated[str | None, Length(max=512), Default(None),
                                      Doc("proof of identity: the key this device was last given; without it, an "
                                          "identity whose key is live enrolls as a separate, conflicting device")]]


class EnrollResponse(TypedDict):
    device_id: str
    device_key: Annotated[str, Doc("the device's own bearer token; stored hashed by the collector")]
    fingerprint_key: NotRequired[Annotated[str | None, Default(None),
                                           Doc("the organisation's credential fingerprint key")]]
    identity_conflict: NotRequired[Annotated[bool, Default(False),
                                             Doc("enrolled apart: the identity's live key was not shown")]]
