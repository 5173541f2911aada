"""The reporter's answers to every kind of collector reply, with the network replaced by an httpx
MockTransport (the collector's side is a function here; tests/e2e/test_daemon_collector.py runs the
real one). The inventory is real: a SQLite file in tmp_path."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.validation import REPORT
from endpoint.errors import EndpointError
from endpoint.service.inventory import Inventory, SpoolFull
from endpoint.service.reporter import (
    Backoff,
    CollectorUnreachable,
    DeviceKeyRejected,
    EnrollmentRejected,
    Reporter,
    ReporterError,
    ReportRefused,
)

DEVICE = {"id": "host:test", "hostname": "test", "os": "linux", "os_version": "", "arch": "x86_64",
          "agentroster_version": "0.1.0"}
SECRET = "are_FAKE_ENROLL_SECRET"
KEY = "ard_FAKEKEYFAKEKEY"


def sighting(sid: str = "a" * 20, name: str = "Claude Code") -> dict[str, Any]:
    return {"id": sid, "signature": "claude-code", "name": name, "vendor": "Anthropic", "type": "coding",
            "user": "alice", "running": False, "confidence": 0.7, "parent": None, "processes": [], "configs": [],
            "mcp_servers": [], "endpoints": [], "credentials": [], "flags": [], "evidence": [],
            "first_seen": "2026-01-01T00:00:00+00:00", "last_seen": "2026-01-01T00:00:00+00:00"}


def ack(seq: int, result: str = "applied") -> httpx.Response:
    return httpx.Response(200, json={"seq": seq, "applied": result == "applied", "duplicate": result == "duplicate",
                                     "need_snapshot": result == "need_snapshot", "reason": ""})


def refuse(status: int, reason: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": {"reason": reason}}, headers=headers)


class Collector:
    """The collector as a function: records what it got and answers with ``answer(request, report)``."""

    def __init__(self, answer: Callable[[httpx.Request, dict[str, Any]], httpx.Response] | None = None) -> None:
        self.reports: list[dict[str, Any]] = []
        self.enrolls: list[dict[str, Any]] = []
        self.answer = answer or (lambda _req, report: ack(report["seq"]))
        self.enroll_answer: Callable[[], httpx.Response] = lambda: httpx.Response(
            200, json={"device_id": "d1", "device_key": KEY})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        doc = json.loads(request.content)
        if request.url.path == "/api/v1/enroll":
            self.enrolls.append(doc)
            return self.enroll_answer()
        assert request.headers["authorization"] == f"Bearer {KEY}"
        REPORT.validate_python(doc, strict=True)  # every report the reporter sends is a valid Report
        self.reports.append(doc)
        return self.answer(request, doc)


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    inv = Inventory(tmp_path / "data")
    inv.record([sighting()], device=DEVICE)
    return inv


def reporter(inventory: Inventory, collector: Any, **kw: Any) -> Reporter:
    transport = httpx.MockTransport(collector)
    kw.setdefault("enroll_secret", lambda: SECRET)
    return Reporter(inventory, collector_url="https://collector.example", device=lambda: DEVICE,
                    status=lambda: {"spool": "normal"}, transport=transport, **kw)


def test_enroll_then_send_removes_the_report_only_after_its_ack(inventory):
    collector = Collector()
    rep = reporter(inventory, collector)
    rep.enroll()
    assert collector.enrolls[0]["host_identifier"] == DEVICE["id"]
    assert inventory.device_key() == KEY and inventory.meta()["device_id"] == "d1"
    assert rep.send_next() is True
    assert collector.reports[0]["seq"] == 1 and collector.reports[0]["status"] == {"spool": "normal"}
    assert inventory.pending() is None and inventory.acked_seq == 1
    assert rep.send_next() is False


def test_a_duplicate_ack_counts_as_delivered(inventory):
    rep = reporter(inventory, Collector(lambda _r, doc: ack(doc["seq"] + 5, "duplicate")))
    rep.enroll()
    rep.send_next()
    assert inventory.pending() is None


def test_need_snapshot_replaces_the_spool_with_a_snapshot(inventory):
    inventory.acked(1)
    inventory.record([sighting(), sighting("b" * 20)], device=DEVICE)  # a delta
    answers = iter(["need_snapshot", "applied"])
    collector = Collector(lambda _r, doc: ack(doc["seq"], next(answers)))
    rep = reporter(inventory, collector)
    inventory.save_enrollment(KEY, device_id="d1", collector_url="x")
    rep.send_next()
    head = inventory.pending()
    assert head is not None and head.kind == "snapshot" and head.seq == 3
    rep.send_next()
    assert [r["kind"] for r in collector.reports] == ["delta", "snapshot"]
    assert sorted(s["id"] for s in collector.reports[1]["upserts"]) == ["a" * 20, "b" * 20]
    assert inventory.pending() is None


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                   httpx.RemoteProtocolError("cut"), httpx.ConnectTimeout("slow")])
def test_network_failures_are_collector_unreachable_and_keep_the_report(inventory, error):
    def fail(_request: httpx.Request) -> httpx.Response:
        raise error

    rep = Reporter(inventory, collector_url="https://collector.example", enroll_secret=lambda: SECRET,
                   device=lambda: DEVICE, transport=httpx.MockTransport(fail))
    inventory.save_enrollment(KEY, device_id="d1", collector_url="x")
    with pytest.raises(CollectorUnreachable):
        rep.send_next()
    assert inventory.pending().seq == 1


@pytest.mark.parametrize(("status", "retry_after"), [(503, "7"), (429, "2"), (500, None), (502, None)])
def test_busy_or_failing_collector_is_unreachable_with_its_retry_after(inventory, status, retry_after):
    headers = {"retry-after": retry_after} if retry_after else {}
    rep = reporter(inventory, Collector(lambda _r, _d: refuse(status, "store_unavailable", **headers)))
    inventory.save_enrollment(KEY, device_id="d1", collector_url="x")
    with pytest.raises(CollectorUnreachable) as caught:
        rep.send_next()
    assert caught.value.retry_after == (float(retry_after) if retry_after else None)
    assert inventory.pending().seq == 1


@pytest.mark.parametrize(("status", "reason"), [(401, "invalid_device_key"), (403, "device_mismatch"),
                                                (403, "not_a_device_key")])
def test_a_rejected_device_key_asks_for_enrollment(inventory, status, reason):
    rep = reporter(inventory, Collector(lambda _r, _d: refuse(status, reason)))
    inventory.save_enrollment(KEY, device_id="d1", collector_url="x")
    with pytest.raises(DeviceKeyRejected):
        rep.send_next()
    assert inventory.pending().seq == 1


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_report_the_collector_can_never_apply_is_dropped_for_a_snapshot(inventory, status):
    inventory.acked(1)
    inventory.record([sighting(), sighting("b" * 20)], device=DEVICE)
    rep = reporter(inventory, Collector(lambda _r, _d: refuse(status, "invalid_report")))
    inventory.save_enrollment(KEY, device_id="d1", collector_url="x")
    with pytest.raises(ReportRefused):
        rep.send_next()
    head = inventory.pending()
    assert head is not None and head.kind == "snapshot" and rep.stats.rejected_reports == 1


@pytest.mark.parametrize(("answer", "message"), [(refuse(401, "invalid_enroll_secret"), "invalid_enroll_secret"),
                                                 (refuse(403, "device_revoked"), "device_revoked"),
                                                 (httpx.Response(200, json={"nope": 1}), "not an EnrollResponse")])
def test_enrollment_refused(inventory, answer, message):
    collector = Collector()
    collector.enroll_answer = lambda: answer
    rep = reporter(inventory, collector)
    with pytest.raises(EnrollmentRejected, match=message):
        rep.enroll()
    assert inventory.device_key() is None


def test_no_enroll_secret_is_said_plainly(inventory):
    rep = reporter(inventory, Collector(), enroll_secret=lambda: None)
    with pytest.raises(EnrollmentRejected, match="no enroll secret"):
        rep.enroll()


def test_the_error_tree():
    for error in (CollectorUnreachable, EnrollmentRejected, DeviceKeyRejected, ReportRefused):
        assert issubclass(error, ReporterError)
    assert issubclass(SpoolFull, EndpointError)  # the spool's own error, which delivery passes on


def test_backoff_doubles_up_to_its_cap_with_jitter():
    backoff = Backoff(1.0, 8.0, rng=random.Random(1))
    waits = [backoff.next() for _ in range(8)]
    for n, wait in enumerate(waits):
        raw = min(8.0, 2.0 ** n)
        assert raw * 0.5 <= wait <= raw
    backoff.reset()
    assert backoff.next() <= 1.0


def test_the_loop_reenrolls_after_a_rejected_key_and_never_logs_credentials(inventory, caplog):
    done = threading.Event()
    keys = iter(["ard_FAKEOLDKEY", KEY])
    calls = {"reports": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        doc = json.loads(request.content)
        if request.url.path == "/api/v1/enroll":
            return httpx.Response(200, json={"device_id": "d1", "device_key": next(keys)})
        calls["reports"] += 1
        if request.headers["authorization"] != f"Bearer {KEY}":
            return refuse(401, "invalid_device_key")
        done.set()
        return ack(doc["seq"])

    caplog.set_level(logging.DEBUG)
    rep = Reporter(inventory, collector_url="https://collector.example", enroll_secret=lambda: SECRET,
                   device=lambda: DEVICE, transport=httpx.MockTransport(answer), retry_base_s=0.01,
                   retry_cap_s=0.05)
    rep.start()
    try:
        assert done.wait(30), rep.stats
    finally:
        rep.stop()
    assert rep.stats.enrollments == 2 and inventory.device_key() == KEY
    text = caplog.text + json.dumps(rep.stats.as_dict())
    for secret in (SECRET, KEY, "ard_FAKEOLDKEY"):
        assert secret not in text


def test_a_key_from_another_collector_is_forgotten(inventory):
    inventory.save_enrollment("ard_FAKEOTHER", device_id="d0", collector_url="https://old.example")
    collector = Collector()
    rep = reporter(inventory, collector)
    rep.forget_other_collector()
    assert inventory.device_key() is None
    rep.enroll()
    rep.forget_other_collector()
    assert inventory.device_key() == KEY


def test_the_drain_rate_limit_spaces_reports(inventory):
    """A fleet coming back online must not flood the collector: reports leave at most N per second.

    Only a lower bound on the gaps is checked, so a slow machine cannot fail it."""
    for n in range(5):
        inventory.record([sighting(), sighting("b" * 20, name=f"Aider {n}")], device=DEVICE)
    assert inventory.spool_stats().reports == 6
    sent_at: list[float] = []
    done = threading.Event()

    def answer(_request: httpx.Request, report: dict[str, Any]) -> httpx.Response:
        sent_at.append(time.monotonic())
        if len(sent_at) == 6:
            done.set()
        return ack(report["seq"])

    rep = reporter(inventory, Collector(answer), drain_reports_per_s=10.0)
    rep.start()
    try:
        assert done.wait(30), rep.stats
    finally:
        rep.stop()
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:], strict=False)]
    assert len(gaps) == 5 and min(gaps) >= 0.1 - 0.005, gaps
    assert inventory.pending() is None
