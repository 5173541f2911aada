"""The settings table (what installers and profiles are generated from) lists exactly the settings the
daemon reads, with the defaults it uses, and docs/endpoint-settings.md lists the same settings."""

from __future__ import annotations

import re
from pathlib import Path

from endpoint.service.settings import SETTING_NAMES, Settings
from endpoint.service.settings_table import SETTINGS_TABLE

DOCS = Path(__file__).resolve().parents[2] / "docs" / "endpoint-settings.md"


def test_the_table_lists_every_setting_once_in_the_settings_order() -> None:
    assert tuple(s.name for s in SETTINGS_TABLE) == SETTING_NAMES


def test_the_numeric_defaults_are_the_daemons() -> None:
    defaults = Settings()
    for doc in SETTINGS_TABLE:
        if doc.kind in ("seconds", "number", "size"):
            assert float(doc.default) == float(getattr(defaults, doc.name)), doc.name
        elif doc.kind == "choice":
            assert doc.default == getattr(defaults, doc.name)
            assert doc.default in doc.choices
        elif doc.kind == "list":
            assert set(doc.default.split(", ")) == set(getattr(defaults, doc.name))


def test_the_docs_page_lists_the_same_settings() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| `AGENTROSTER_", DOCS.read_text(encoding="utf-8"), re.M)
    assert tuple(rows) == SETTING_NAMES


def test_every_summary_is_one_plain_sentence() -> None:
    for doc in SETTINGS_TABLE:
        assert doc.summary.endswith(".") and "\n" not in doc.summary and len(doc.summary) < 200, doc.name
