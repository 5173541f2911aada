"""The checked-in JSON Schema is the one the pydantic models generate; changes are versioned."""

from __future__ import annotations

import json
from pathlib import Path

from endpoint.protocol import json_schema

SCHEMA_FILE = Path(__file__).parents[2] / "endpoint" / "schema" / "scan-1.json"


def test_checked_in_schema_matches_the_models():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "endpoint/protocol.py changed: regenerate with `agentroster schema > endpoint/schema/scan-1.json` "
        "and bump the schema version if the change is not backward compatible")


def test_schema_is_versioned():
    schema = json_schema()
    assert schema["title"] == "agentroster.scan/1"
    assert schema["properties"]["schema"]["const"] == "agentroster.scan/1"


def test_checked_in_report_schema_matches_the_models():
    from endpoint.protocol import report_json_schema

    path = SCHEMA_FILE.with_name("report-1.json")
    assert json.loads(path.read_text()) == report_json_schema()
