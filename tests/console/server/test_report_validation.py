"""The reports route validates a body with the contract's ``Report`` adapter, strictly: every report a
device builds is accepted and answered as sent with the defaults filled in, and a broken one is refused
with the errors the pydantic models it replaced gave (recorded from them before they went)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import fleet
import orjson
import pytest
from pydantic import ValidationError

from contract.report import idle_status
from contract.validation import REPORT


def sim_documents() -> list[dict[str, Any]]:
    sim = fleet.SimDevice.build(3, seed=5)
    documents = [sim.snapshot(), *(sim.delta(20, 0.5) for _ in range(3))]
    heartbeat = fleet.report(sim.device, seq=sim.seq + 1, kind="heartbeat",
                             status={"spool": "warning", "spool_reports": 3, "sensors": {"network": "off: no pcap"}})
    del heartbeat["upserts"], heartbeat["removed"], heartbeat["errors"]  # every one has a default
    errors = fleet.report(sim.device, seq=sim.seq + 2, upserts=[fleet.sighting(user=None, signature=None)])
    errors["errors"] = [{"where": "/home/a/.mcp.json", "error": "syntax", "detail": "line 1"}]
    return [*documents, heartbeat, errors]


def filled(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` as the adapter answers it: every default the contract declares in place."""
    out = {"upserts": [], "removed": [], "errors": [], "part": 1, "parts": 1, **copy.deepcopy(document)}
    out["status"] = {**idle_status(), **out.get("status", {})}
    out["device"] = {"os_version": "", "arch": "", **out["device"]}
    for sighting in out["upserts"]:
        sighting["mcp_servers"] = [{"project": None, **server} for server in sighting["mcp_servers"]]
    return out


@pytest.mark.parametrize("document", sim_documents(), ids=lambda d: f"{d['kind']}-{d['seq']}")
def test_a_valid_report_is_answered_as_sent_with_the_defaults(document: dict[str, Any]) -> None:
    assert REPORT.validate_json(orjson.dumps(document), strict=True) == filled(document)


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value
    return change


def _drop(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for key in path[:-1]:
            doc = doc[key]
        del doc[path[-1]]
    return change


# what breaks, and the errors (type, where) it is refused with
BROKEN = {
    "seq as a string": (_set(("seq",), "2"),
                [('int_type', ('seq',))]),
    "seq below 1": (_set(("seq",), 0),
                [('greater_than_equal', ('seq',))]),
    "an unknown kind": (_set(("kind",), "full"),
                [('literal_error', ('kind',))]),
    "a wrong schema": (_set(("schema",), "agentroster.report/2"),
                [('literal_error', ('schema',))]),
    "no device": (_drop(("device",)),
                [('missing', ('device',))]),
    "an unknown device field": (_set(("device", "serial"), "X"),
                [('extra_forbidden', ('device', 'serial'))]),
    "an epoch too long": (_set(("epoch",), "e" * 65),
                [('string_too_long', ('epoch',))]),
    "a sighting without a name": (_drop(("upserts", 0, "name")),
                [('missing', ('upserts', 0, 'name'))]),
    "a sighting field unknown": (_set(("upserts", 0, "colour"), "red"),
                [('extra_forbidden', ('upserts', 0, 'colour'))]),
    "a confidence over 1": (_set(("upserts", 0, "confidence"), 1.5),
                [('less_than_equal', ('upserts', 0, 'confidence'))]),
    "a bad fingerprint": (_set(("upserts", 0, "credentials", 0, "fingerprint"), "sha1:abc"),
                [('string_pattern_mismatch', ('upserts', 0, 'credentials', 0, 'fingerprint'))]),
    "an unknown flag": (_set(("upserts", 0, "flags"), ["sneaky"]),
                [('literal_error', ('upserts', 0, 'flags', 0))]),
    "a null name": (_set(("upserts", 0, "name"), None),
                [('string_type', ('upserts', 0, 'name'))]),
    "a port as a string": (_set(("upserts", 0, "endpoints", 0, "port"), "443"),
                [('int_type', ('upserts', 0, 'endpoints', 0, 'port'))]),
    "a bad spool state": (_set(("status", "spool"), "overflowing"),
                [('literal_error', ('status', 'spool'))]),
    "removed ids as numbers": (_set(("removed",), [1, 2]),
                [('string_type', ('removed', 0)), ('string_type', ('removed', 1))]),
}




@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_report_is_refused_with_the_same_errors(name: str) -> None:
    document = copy.deepcopy(sim_documents()[1])
    document["status"] = {"spool": "normal"}
    document["upserts"][0] = fleet.sighting(providers=("openai",), fingerprints=("hmac-sha256:" + "0" * 32,))
    change, expected = BROKEN[name]
    assert REPORT.validate_json(orjson.dumps(document), strict=True)  # whole, it is valid
    change(document)
    with pytest.raises(ValidationError) as refused:
        REPORT.validate_json(orjson.dumps(document), strict=True)
    assert [(e["type"], e["loc"]) for e in refused.value.errors(include_url=False)] == expected


def test_a_body_that_is_not_an_object_is_refused() -> None:
    for body in (b"[]", b'"report"', b"null", b"{"):
        with pytest.raises(ValidationError):
            REPORT.validate_json(body, strict=True)
