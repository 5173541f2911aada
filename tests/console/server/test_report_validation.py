"""The reports route validates a body with a plain-data twin of the ``Report`` model: for every document
it must accept what the model accepts, answer what the model would dump, and refuse what the model
refuses with the same errors."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import fleet
import orjson
import pytest
from pydantic import ValidationError

from console.server.routes.reports import plain_validator
from endpoint.protocol import Report

PLAIN = plain_validator(Report)


def sim_documents() -> list[dict[str, Any]]:
    sim = fleet.SimDevice.build(3, seed=5)
    documents = [sim.snapshot(), *(sim.delta(20, 0.5) for _ in range(3))]
    heartbeat = fleet.report(sim.device, seq=sim.seq + 1, kind="heartbeat",
                             status={"spool": "warning", "spool_reports": 3, "sensors": {"network": "off: no pcap"}})
    del heartbeat["upserts"], heartbeat["removed"], heartbeat["errors"]  # every one has a default
    errors = fleet.report(sim.device, seq=sim.seq + 2, upserts=[fleet.sighting(user=None, signature=None)])
    errors["errors"] = [{"where": "/home/a/.mcp.json", "error": "syntax", "detail": "line 1"}]
    return [*documents, heartbeat, errors]


@pytest.mark.parametrize("document", sim_documents(), ids=lambda d: f"{d['kind']}-{d['seq']}")
def test_a_valid_report_is_answered_as_the_model_would_dump_it(document: dict[str, Any]) -> None:
    body = orjson.dumps(document)
    assert PLAIN.validate_json(body, strict=True) == Report.model_validate_json(body, strict=True).model_dump()


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


BROKEN = {
    "seq as a string": _set(("seq",), "2"),
    "seq below 1": _set(("seq",), 0),
    "an unknown kind": _set(("kind",), "full"),
    "a wrong schema": _set(("schema",), "agentroster.report/2"),
    "no device": _drop(("device",)),
    "an unknown device field": _set(("device", "serial"), "X"),
    "an epoch too long": _set(("epoch",), "e" * 65),
    "a sighting without a name": _drop(("upserts", 0, "name")),
    "a sighting field unknown": _set(("upserts", 0, "colour"), "red"),
    "a confidence over 1": _set(("upserts", 0, "confidence"), 1.5),
    "a bad fingerprint": _set(("upserts", 0, "credentials", 0, "fingerprint"), "sha1:abc"),
    "an unknown flag": _set(("upserts", 0, "flags"), ["sneaky"]),
    "a null name": _set(("upserts", 0, "name"), None),
    "a port as a string": _set(("upserts", 0, "endpoints", 0, "port"), "443"),
    "a bad spool state": _set(("status", "spool"), "overflowing"),
    "removed ids as numbers": _set(("removed",), [1, 2]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_report_is_refused_with_the_models_errors(name: str) -> None:
    document = copy.deepcopy(sim_documents()[1])
    document["status"] = {"spool": "normal"}
    document["upserts"][0] = fleet.sighting(providers=("openai",), fingerprints=("hmac-sha256:" + "0" * 32,))
    BROKEN[name](document)
    body = orjson.dumps(document)
    with pytest.raises(ValidationError) as model:
        Report.model_validate_json(body, strict=True)
    with pytest.raises(ValidationError) as plain:
        PLAIN.validate_json(body, strict=True)
    shown = [(e["type"], e["loc"], e["msg"]) for e in plain.value.errors(include_url=False)]
    assert shown == [(e["type"], e["loc"], e["msg"]) for e in model.value.errors(include_url=False)]


def test_a_body_that_is_not_an_object_is_refused() -> None:
    for body in (b"[]", b'"report"', b"null", b"{"):
        with pytest.raises(ValidationError):
            PLAIN.validate_json(body, strict=True)
