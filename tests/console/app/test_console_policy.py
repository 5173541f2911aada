"""The org policy edited in the console and stored by the collector, which re-assesses every agent: ids
picked from what the fleet reports (with counts), ids nobody knows refused with a sentence, the effect
previewed before saving, every version kept with who changed what, and the last change undone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

pytestmark = pytest.mark.timeout(120)


def row_of(picker: Any, ident: str) -> int:
    return next(i for i, c in enumerate(picker.model.choices) if c.id == ident)


def tick(picker: Any, ident: str) -> None:
    index = picker.model.index(row_of(picker, ident), 0)
    assert picker.model.setData(index, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)


def confirm_save(console: Any, qtbot: Any) -> QMessageBox:
    qtbot.waitUntil(lambda: console.policy.confirm_box is not None and console.policy.confirm_box.isVisible(),
                    timeout=10_000)
    return console.policy.confirm_box


def test_an_admin_picks_from_the_fleet_previews_saves_and_undoes(make_console: Any, qtbot: Any,
                                                                 tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/policy.sqlite3", tmp_path / "server.log")
    try:
        device = own.snapshot("host:policy", [support.sighting(id="cc", providers=("anthropic",)),
                                              support.sighting(id="script", name="script", signature=None,
                                                               type="unknown", providers=("openai",))])
        console = make_console(token=own.admin, url=own.url)
        view = console.window.policy
        qtbot.waitUntil(lambda: view.status.text() == "Policy version 0" and bool(view.signatures.model.choices),
                        timeout=10_000)
        cc = view.signatures.model.choices[row_of(view.signatures, "claude-code")]
        assert (cc.sightings, cc.devices, cc.chosen) == (1, 1, False)
        assert view.signatures.model.data(view.signatures.model.index(row_of(view.signatures, "claude-code"), 0)) \
            == "Claude Code (claude-code)"
        assert {c.id for c in view.providers.model.choices} >= {"anthropic", "openai"}
        tick(view.signatures, "claude-code")
        tick(view.providers, "anthropic")

        view.preview.click()
        qtbot.waitUntil(lambda: "Governs" in view.effect.text(), timeout=10_000)
        assert own.get("/api/v1/policy")["version"] == 0  # a preview saves nothing

        view.save.click()
        box = confirm_save(console, qtbot)
        assert "Governs" in box.text()
        box.button(QMessageBox.StandardButton.Save).click()
        qtbot.waitUntil(lambda: view.status.text() == "Policy version 1", timeout=10_000)
        policy = own.get("/api/v1/policy")
        assert policy["sanctioned_signatures"] == ["claude-code"] and policy["sanctioned_providers"] == ["anthropic"]
        assert own.get(f"/api/v1/agents/{device}/cc")["governed"] is True
        qtbot.waitUntil(lambda: view.versions.rowCount() >= 1
                        and "claude-code" in str(view.versions.data(view.versions.index(0, 3))), timeout=10_000)
        assert view.versions.data(view.versions.index(0, 2)) == "test admin"  # who changed it
        qtbot.waitUntil(lambda: console.overview.latest is not None and console.overview.latest.governed == 1,
                        timeout=10_000)

        view.undo.click()
        qtbot.waitUntil(lambda: own.get("/api/v1/policy")["sanctioned_signatures"] == [], timeout=10_000)
        qtbot.waitUntil(lambda: "undone" in console.window.message.text(), timeout=10_000)
        assert own.get(f"/api/v1/agents/{device}/cc")["governed"] is False
        qtbot.waitUntil(lambda: not view.signatures.model.choices[row_of(view.signatures, "claude-code")].chosen,
                        timeout=10_000)
    finally:
        own.close()


def test_a_name_instead_of_an_id_is_refused_with_a_sentence(make_console: Any, qtbot: Any, tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/names.sqlite3", tmp_path / "server.log")
    try:
        own.snapshot("host:names", [support.sighting(id="cc")])
        console = make_console(token=own.admin, url=own.url)
        view = console.window.policy
        qtbot.waitUntil(lambda: view.status.text() == "Policy version 0", timeout=10_000)
        view.signatures.other.setText("Claude Code")  # the roster's name, not the id
        view.signatures.add.click()
        assert "Claude Code" in view.signatures.model.chosen()
        view.save.click()
        qtbot.waitUntil(lambda: "claude-code" in view.effect.text(), timeout=10_000)
        assert "its id is claude-code" in view.effect.text() and "Claude Code" in view.effect.text()
        assert console.policy.confirm_box is None  # nothing to confirm: refused before
        assert own.get("/api/v1/policy")["version"] == 0
    finally:
        own.close()


def test_a_viewer_reads_the_policy_but_cannot_change_it(make_console: Any, qtbot: Any,
                                                        collector: support.RunningCollector) -> None:
    console = make_console(token=collector.viewer)
    view = console.window.policy
    qtbot.waitUntil(lambda: view.status.text().startswith("Policy version"), timeout=10_000)
    assert view.risky_tools.isReadOnly() and not view.save.isEnabled() and not view.undo.isEnabled()
    assert not view.signatures.add.isEnabled()
    assert not view.signatures.model.flags(view.signatures.model.index(0, 0)) & Qt.ItemFlag.ItemIsUserCheckable
    before = collector.get("/api/v1/policy")
    console.policy.save()
    assert "viewers can read the policy" in console.window.message.text()
    assert collector.get("/api/v1/policy") == before


def test_an_admin_sets_risky_tool_patterns(make_console: Any, qtbot: Any, tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/risky.sqlite3", tmp_path / "server.log")
    try:
        console = make_console(token=own.admin, url=own.url)
        view = console.window.policy
        qtbot.waitUntil(lambda: view.status.text() == "Policy version 0", timeout=10_000)
        view.risky_tools.setPlainText("*shell*\n\n*server-postgres*\n")
        view.save.click()
        confirm_save(console, qtbot).button(QMessageBox.StandardButton.Save).click()
        qtbot.waitUntil(lambda: view.status.text() == "Policy version 1", timeout=10_000)
        assert own.get("/api/v1/policy")["risky_tools"] == ["*server-postgres*", "*shell*"]
        assert view.risky_tools.toPlainText() == "*server-postgres*\n*shell*"
    finally:
        own.close()
