"""POST /api/v1/reports: a device's report in, a ReportAck out.

The body is read here rather than by FastAPI so that the device is authenticated and rate-limited
before a byte of it is read, and so that pydantic validates the raw JSON in one pass: the contract's
``Report`` adapter, strict, which answers the plain dicts ingest works on.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import functools
import time

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError

from console.server import ingest, messages
from console.server.deps import State, get_device_key, invalid_device_key, refuse
from console.server.limits import retry_after
from console.server.routes import API
from console.server.writer import StoreUnavailable
from contract.report import Report
from contract.validation import REPORT, ReportAck

router = APIRouter(prefix=API, tags=["devices"])
MAX_ERRORS_SHOWN = 20

REPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}}},
    }
}


@router.post(
    "/reports",
    response_model=ReportAck,
    openapi_extra=REPORT_BODY,
    responses={401: {"description": "unknown or revoked device key: enroll again"},
               403: {"description": "the report is about another device"},
               413: {"description": "body over the cap"}, 429: {"description": "rate limited"}},
)  # fmt: skip
async def post_report(request: Request) -> Response:
    """Apply a report exactly once per (device, epoch, seq); see ReportAck for the answer."""
    # The device key is checked by a direct call rather than as a dependency: resolving dependencies
    # costs this route, the busiest of all, more than the check itself.
    state: State = request.app.state.collector
    key = await get_device_key(request, state)
    wait = state.limiter.take(key.key_id)
    if wait:
        state.metrics.count_report("rate_limited")
        raise HTTPException(429, detail={"reason": "rate_limited", "retry_after": wait}, headers=retry_after(wait))
    body = await request.body()
    data = _validated(body, state)
    now, policy = time.time(), ingest.cached_policy()
    prepared = ingest.prepare_report(data, policy, now) if policy is not None else None
    try:
        outcome = await state.writer.apply(key, data, now=now, prepared=prepared)
    except StoreUnavailable:
        state.metrics.count_report("error")
        raise refuse(503, "store_unavailable", retry=True) from None
    except ingest.InvalidDeviceKey:
        state.forget_device_key(key.key_id)
        state.metrics.count_report("rejected")
        raise invalid_device_key(request, state) from None
    except ingest.IngestError as exc:
        state.metrics.count_report("rejected")
        raise HTTPException(exc.status, detail=exc.detail) from None
    state.metrics.count_report(outcome.result)
    return Response(orjson.dumps(outcome.ack()), media_type="application/json")


@functools.cache
def _report_names() -> frozenset[str]:
    """The field names of the report contract: what a refusal's ``loc`` may repeat."""
    return messages.field_names(REPORT.json_schema())


def _validated(body: bytes, state: State) -> Report:
    """The report, once pydantic has checked it against the contract (strictly: no coercion, so what was
    sent is what is stored)."""
    try:
        data = REPORT.validate_json(body, strict=True)
    except ValidationError as exc:
        state.metrics.count_report("rejected")
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise refuse(400, "invalid_json") from None
        detail = messages.invalid(errors, _report_names(), reason="invalid_report", shown=MAX_ERRORS_SHOWN)
        raise HTTPException(422, detail=detail) from None
    try:
        ingest.check_parts(data)
        ingest.check_sizes(data["upserts"], data["removed"])
    except ingest.ReportRejected as exc:
        state.metrics.count_report("rejected")
        raise HTTPException(exc.status, detail=exc.detail) from None
    return data
