"""Integers out of range anywhere in a report or a query: a 4xx with a reason, never a 5xx, and the
device's next good report is accepted (no out-of-range seq wedges it)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import fleet
import pytest

BIG = [2**63, 2**63 - 1, 10**40, -(2**63) - 1]


def _endpoint(**over: Any) -> dict[str, Any]:
    return {"host": "api.openai.com", "port": 443, "provider": "openai", "via": "sni", "first_seen": 1.7e9,
            "last_seen": 1.7e9, "count": 3, **over}


def _process(**over: Any) -> dict[str, Any]:
    return {"pid": 4242, "ppid": 1, "name": "node", "exe": "/usr/bin/node", "cmdline": ["node"], "user": "alice",
            "started": 1.7e9, **over}


#: (what, a function of the out-of-range value that builds the report's keyword arguments)
FIELDS: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
    ("seq", lambda n: {"kind": "snapshot", "seq": n}),
    ("part", lambda n: {"kind": "snapshot", "part": n, "parts": 2}),
    ("parts", lambda n: {"kind": "snapshot", "parts": n}),
    ("port", lambda n: {"upserts": [fleet.sighting(endpoints=[_endpoint(port=n)])]}),
    ("endpoint count", lambda n: {"upserts": [fleet.sighting(endpoints=[_endpoint(count=n)])]}),
    ("pid", lambda n: {"upserts": [fleet.sighting(processes=[_process(pid=n)])]}),
    ("ppid", lambda n: {"upserts": [fleet.sighting(processes=[_process(ppid=n)])]}),
    ("spool_reports", lambda n: {"status": {"spool_reports": n}}),
    ("spool_bytes", lambda n: {"status": {"spool_bytes": n}}),
]


@pytest.mark.parametrize("value", BIG + [-1])
@pytest.mark.parametrize(("what", "build"), FIELDS, ids=[f[0] for f in FIELDS])
def test_an_out_of_range_integer_in_a_report_is_refused_and_the_next_report_goes_in(
        device, what: str, build: Callable[[int], dict[str, Any]], value: int) -> None:
    if value == -1 and what in ("seq", "part", "parts"):
        value = 0  # their floor is 1
    kw: dict[str, Any] = {"seq": 1, **build(value)}
    doc = fleet.report(device.doc, **kw)
    answer = device.send(doc)
    assert answer.status_code == 422, (what, value, answer.status_code, answer.text)
    assert fleet.reason(answer) == "invalid_report"
    assert what.split()[-1] in answer.text  # the reason names the field
    good = device.send(fleet.report(device.doc, seq=1, kind="snapshot", upserts=[fleet.sighting(name="Aider")]))
    assert good.status_code == 200 and good.json()["applied"], good.text
    later = device.send(fleet.report(device.doc, seq=2, kind="heartbeat"))
    assert later.status_code == 200 and later.json()["applied"], later.text
    assert [a["name"] for a in device.agents()] == ["Aider"]


def test_the_highest_seq_accepted_leaves_room_for_the_next(device) -> None:
    from contract.report import SEQ_MAX

    first = device.send(fleet.report(device.doc, seq=SEQ_MAX - 1, kind="snapshot", upserts=[fleet.sighting()]))
    assert first.status_code == 200 and first.json()["applied"], first.text
    last = device.send(fleet.report(device.doc, seq=SEQ_MAX, kind="heartbeat"))
    assert last.status_code == 200 and last.json()["applied"], last.text
    over = device.send(fleet.report(device.doc, seq=SEQ_MAX + 1, kind="heartbeat"))
    assert (over.status_code, fleet.reason(over)) == (422, "invalid_report")
    # a new epoch starts again from 1
    again = device.send(fleet.report(device.doc, epoch="e2", seq=1, kind="snapshot", upserts=[fleet.sighting()]))
    assert again.status_code == 200 and again.json()["applied"], again.text


@pytest.mark.parametrize("value", [str(2**63), str(2**63 - 1), str(10**40), "-1"])
@pytest.mark.parametrize(("path", "param"), [("/api/v1/devices", "skip"), ("/api/v1/devices", "limit"),
                                             ("/api/v1/registrations", "skip"), ("/api/v1/registrations", "limit"),
                                             ("/api/v1/agents", "limit")])
def test_an_out_of_range_query_integer_is_refused(collector, path: str, param: str, value: str) -> None:
    answer = collector.get(path, **{param: value})
    assert answer.status_code == 422, answer.text
    assert param in answer.text


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**40])
def test_a_cursor_with_an_out_of_range_number_is_refused(collector, value: int) -> None:
    raw = json.dumps(["last_seen", "desc", value, "some-device", "some-sighting"]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    answer = collector.get("/api/v1/agents", cursor=cursor)
    assert (answer.status_code, fleet.reason(answer)) == (400, "invalid_cursor")


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" + "0" * 400])
@pytest.mark.parametrize("where", ["cpu_percent", "rss_mb", "started", "first_seen"])
def test_a_huge_number_anywhere_else_is_never_a_server_error(device, where: str, number: str) -> None:
    """Numbers written out (no JSON encoder makes 1e400): a 4xx, or taken; the next report goes in."""
    sighting = fleet.sighting(endpoints=[_endpoint()], processes=[_process()])
    doc = fleet.report(device.doc, seq=1, kind="snapshot", upserts=[sighting], status={"cpu_percent": 1.5})
    body = json.dumps(doc)
    marker = {"cpu_percent": '"cpu_percent": 1.5', "rss_mb": '"cpu_percent": 1.5',
              "started": '"started": 1700000000.0', "first_seen": '"first_seen": 1700000000.0'}[where]
    assert marker in body
    if where == "rss_mb":
        body = body.replace(marker, marker + f', "rss_mb": {number}')
    else:
        body = body.replace(marker, marker.split(":")[0] + f": {number}", 1)
    answer = device.collector.http.post("/api/v1/reports", content=body, headers={
        **device.headers(), "content-type": "application/json"})
    assert answer.status_code < 500, answer.text
    good = device.send(fleet.report(device.doc, seq=2, kind="snapshot", upserts=[fleet.sighting(name="Aider")]))
    assert good.status_code == 200 and good.json()["applied"], good.text
