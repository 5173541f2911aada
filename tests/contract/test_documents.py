"""Every document the tests build (scans of the factory homes, the daemon's spooled reports in every
kind and in parts, the collector tests' fleet reports) is accepted by the contract's adapters and by
the checked-in JSON Schemas alike, and a broken one is refused by both."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from factories import build_homes
from pydantic import ValidationError

from contract.report import finish_body, idle_status, split_report
from contract.validation import REPORT, SCAN
from endpoint.scan.run import ScanOptions, scan
from endpoint.service.inventory import Inventory

SCHEMA_DIR = Path(__file__).parents[2] / "contract" / "schema"
SCAN_SCHEMA = jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / "scan-1.json").read_text()))
REPORT_SCHEMA = jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / "report-1.json").read_text()))
SENT_AT = "2026-01-01T00:00:00+00:00"
BUSY = {"spool": "warning", "spool_reports": 12, "spool_bytes": 1 << 20, "shedding": True, "cpu_percent": 2.5,
        "rss_mb": 48.0, "sensors": {"network": "off: no capture permission"}, "units_failed": 1,
        "degraded": ["files"]}


def _fleet() -> Any:
    """The collector tests' report builders (tests/console/server/fleet.py)."""
    if "fleet" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fleet", Path(__file__).parents[1] / "console" / "server" / "fleet.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["fleet"] = module
        spec.loader.exec_module(module)
    return sys.modules["fleet"]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("homes")
    build_homes(root, homes=4, seed=3)
    return scan(ScanOptions(str(root), processes=False, aside=False))


def test_a_scan_of_the_factory_homes_is_a_valid_scan_document(scanned: dict[str, Any]) -> None:
    assert scanned["sightings"], "the factory homes hold agents"
    body = orjson.dumps(scanned)
    assert SCAN.validate_json(body, strict=True)["sightings"] == scanned["sightings"]
    assert not list(SCAN_SCHEMA.iter_errors(json.loads(body)))


def _daemon_reports(data_dir: Path, scanned: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """What the inventory spools for a device: a snapshot, a delta, a heartbeat, a delta of removals."""
    inventory = Inventory(data_dir)
    device, sightings = scanned["device"], scanned["sightings"]
    try:
        steps = [dict(sightings=sightings, errors=scanned["errors"]), dict(sightings=sightings[1:]),
                 dict(sightings=sightings[1:], heartbeat=True), dict(sightings=[])]
        for step in steps:
            spooled = inventory.record(step["sightings"], device=device, errors=step.get("errors", ()),
                                       heartbeat=bool(step.get("heartbeat")), now=1.0)
            assert spooled is not None
            inventory.acked(spooled.seq)
            yield json.loads(finish_body(spooled.body, sent_at=SENT_AT, status=BUSY))
    finally:
        inventory.close()


def _parts(scanned: dict[str, Any]) -> list[dict[str, Any]]:
    """A snapshot too big for one body, split into parts, and a delta split into deltas."""
    out = []
    for kind in ("snapshot", "delta"):
        bodies = split_report(epoch="e", seq=1, kind=kind, device=scanned["device"], upserts=scanned["sightings"],
                              removed=["gone-1", "gone-2"], errors=scanned["errors"], max_bytes=16 << 10)
        assert len(bodies) > 1
        out += [json.loads(finish_body(b, sent_at=SENT_AT, status=idle_status())) for _, b in bodies]
    return out


def _fleet_reports() -> list[dict[str, Any]]:
    fleet = _fleet()
    sim = fleet.SimDevice.build(7, seed=11)
    docs = [sim.snapshot(), sim.delta(20, 0.5), sim.delta(0, 0.2)]
    docs.append(fleet.report(sim.device, seq=sim.seq + 1, kind="heartbeat", status={"spool": "full"}))
    docs.append(fleet.report(sim.device, seq=sim.seq + 2, kind="snapshot", part=2, parts=3,
                             upserts=[fleet.sighting(user=None, signature=None, type="unknown")]))
    return docs


def test_every_report_the_tests_build_is_valid(tmp_path: Path, scanned: dict[str, Any]) -> None:
    reports = [*_daemon_reports(tmp_path / "data", scanned), *_parts(scanned), *_fleet_reports()]
    assert {(r["kind"], r.get("parts", 1) > 1) for r in reports} >= {
        ("snapshot", False), ("delta", False), ("heartbeat", False), ("snapshot", True)}
    for report in reports:
        valid = REPORT.validate_json(orjson.dumps(report), strict=True)
        assert valid["upserts"] == report["upserts"] and valid["seq"] == report["seq"]
        assert not list(REPORT_SCHEMA.iter_errors(report)), report["kind"]


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


BROKEN: dict[str, tuple[tuple[Any, ...], Any]] = {
    "a part past the limit": (("part",), 10_001),
    "no parts": (("parts",), 0),
    "a negative pid": (("upserts", 0, "processes", 0, "pid"), -1),
    "a pid over a DWORD": (("upserts", 0, "processes", 0, "pid"), 2**32),
    "a port over 65535": (("upserts", 0, "endpoints", 0, "port"), 65536),
    "a count past 2**53": (("upserts", 0, "endpoints", 0, "count"), 2**53),
    "an unknown transport": (("upserts", 0, "mcp_servers", 0, "transport"), "carrier-pigeon"),
    "an unknown os": (("device", "os"), "beos"),
    "a degraded sensor unknown": (("status", "degraded"), ["cameras"]),
    "five degraded sensors": (("status", "degraded"), ["files", "processes", "network", "fingerprint", "files"]),
    "an unknown status field": (("status", "mood"), "fine"),
    "units failed past a million": (("status", "units_failed"), 1_000_001),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_report_is_refused_by_the_adapter_and_the_schema(name: str) -> None:
    fleet = _fleet()
    sighting = fleet.sighting(providers=("openai",), fingerprints=("hmac-sha256:" + "0" * 32,))
    sighting["processes"] = [{"pid": 10, "ppid": 1, "name": "node", "exe": "/usr/bin/node", "cmdline": ["node"],
                              "user": "alice", "started": 1.0}]
    sighting["mcp_servers"] = [{"name": "github", "transport": "stdio", "command": "npx", "args": [], "url": None,
                                "source": "/home/alice/.mcp.json", "enabled": True}]
    document = fleet.report(fleet.device_doc("host:a"), kind="snapshot", upserts=[sighting], status=dict(BUSY),
                            part=1, parts=2)
    assert not list(REPORT_SCHEMA.iter_errors(document))
    REPORT.validate_json(orjson.dumps(document), strict=True)
    broken = copy.deepcopy(document)
    _set(broken, *BROKEN[name])
    assert list(REPORT_SCHEMA.iter_errors(broken))
    with pytest.raises(ValidationError):
        REPORT.validate_json(orjson.dumps(broken), strict=True)
