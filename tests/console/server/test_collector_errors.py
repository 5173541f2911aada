"""The collector's one error root: every error it raises for a request is a ``CollectorError`` with a
stable ``code`` of its own, an HTTP status and the answer's detail (pure: no server)."""

from __future__ import annotations

import inspect

from console.server import errors, ingest, triage, writer


def test_every_collector_error_has_the_one_root_and_a_code_of_its_own() -> None:
    classes = {cls for module in (errors, ingest, triage, writer) for _, cls in inspect.getmembers(module, inspect.isclass)
               if issubclass(cls, Exception) and cls.__module__.startswith("console.server")}
    assert {c.__name__ for c in classes} == {"CollectorError", "IngestError", "InvalidDeviceKey", "DeviceMismatch",
                                             "ReportRejected", "TriageError", "StoreUnavailable"}
    assert all(issubclass(c, errors.CollectorError) for c in classes)
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes)


def test_an_error_carries_its_status_and_the_answers_detail() -> None:
    rejected = ingest.ReportRejected("invalid_field", field="name", max_length=ingest.MAX_TEXT)
    assert (rejected.code, rejected.status) == ("report_rejected", 422)
    assert rejected.detail == {"reason": "invalid_field", "field": "name", "max_length": ingest.MAX_TEXT}
    assert ingest.InvalidDeviceKey().detail == {"reason": "invalid_device_key", "reenroll": True}
    refused = triage.TriageError(409, "registration_not_pending", status="approved")
    assert (refused.code, refused.status, refused.detail) == (
        "triage_refused", 409, {"reason": "registration_not_pending", "status": "approved"})
    assert (writer.StoreUnavailable("OperationalError").status, writer.StoreUnavailable.code) == (503, "store_unavailable")
