"""The checked-in JSON Schemas are the ones the contract's adapters generate; changes are versioned."""

from __future__ import annotations

import json
from pathlib import Path

from contract.validation import report_json_schema, scan_json_schema

SCHEMA_DIR = Path(__file__).parents[2] / "contract" / "schema"


def test_checked_in_schema_matches_the_contract():
    assert json.loads((SCHEMA_DIR / "scan-1.json").read_text()) == scan_json_schema(), (
        "contract/scan.py changed: regenerate with `agentroster schema > contract/schema/scan-1.json` "
        "and bump the schema version if the change is not backward compatible")


def test_schema_is_versioned():
    schema = scan_json_schema()
    assert schema["title"] == "agentroster.scan/1"
    assert schema["properties"]["schema"]["const"] == "agentroster.scan/1"


def test_checked_in_report_schema_matches_the_contract():
    assert json.loads((SCHEMA_DIR / "report-1.json").read_text()) == report_json_schema(), (
        "contract/report.py changed: regenerate with `agentroster schema --report > contract/schema/report-1.json`")
