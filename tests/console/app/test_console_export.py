"""Export of the current filtered view as CSV and JSON: every matching agent, paged from the collector,
in the columns the user chose (CSV) or as the collector sent them (JSON)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import console_support as support
import pytest

from console.app import viewmodels as vm

pytestmark = pytest.mark.timeout(120)


def filtered(console: Any, qtbot: Any, new: vm.AgentFilter) -> None:
    console.window.agents.set_filter(new)
    qtbot.waitUntil(lambda: console.agents.roster.filter == new and console.agents.roster.count is not None, timeout=10_000)


def test_csv_holds_every_matching_agent_in_the_chosen_columns(make_console: Any, qtbot: Any, tmp_path: Path,
                                                              collector: support.RunningCollector) -> None:
    console = make_console(page_size=20)
    filtered(console, qtbot, vm.AgentFilter(type="tool_server", flag="broad_tools"))
    expected = collector.get("/api/v1/agents", type="tool_server", flag="broad_tools", limit=500)["data"]
    assert len(expected) > 20  # more than one page of the console's
    out = tmp_path / "agents.csv"
    with qtbot.waitSignal(console.export.exported, timeout=20_000) as done:
        console.export.write("csv", out)
    assert done.args == [str(out), len(expected)]
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == len(expected)
    assert list(rows[0]) == [vm.COLUMN_BY_KEY[k].title for k in console.agents.choice.visible]
    assert {r["Type"] for r in rows} == {"Tool server"} and all("Broad tools" in r["Flags"] for r in rows)  # as the roster shows it
    assert sorted(r["Agent"] for r in rows) == sorted(r["name"] for r in expected)
    assert not list(tmp_path.glob(".agents-*"))  # written aside, then moved into place


def test_json_holds_the_filter_and_the_collectors_rows(make_console: Any, qtbot: Any, tmp_path: Path,
                                                       collector: support.RunningCollector) -> None:
    console = make_console()
    filtered(console, qtbot, vm.AgentFilter(device=collector.known_device))
    out = tmp_path / "agents.json"
    with qtbot.waitSignal(console.export.exported, timeout=20_000):
        console.export.write("json", out)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["export"]["filter"] == {"device": collector.known_device}
    assert {r["id"] for r in doc["agents"]} == {"known-claude", "known-github-mcp", "known-script"}
    script = next(r for r in doc["agents"] if r["id"] == "known-script")
    assert script["name"] == "python3 =cmd|' /C calc'!A0" and script["providers"] == ["openai"]


def test_an_unwritable_place_is_reported_not_raised(make_console: Any, qtbot: Any, tmp_path: Path) -> None:
    console = make_console()
    target = tmp_path / "missing-dir" / "agents.csv"
    console.export.write("csv", target)
    qtbot.waitUntil(lambda: console.window.message.text().startswith("Export failed: Could not write"),
                    timeout=10_000)
    assert not target.exists() and console.window.banner.isHidden()
