"""The org policy edited in the console and stored by the collector, which re-assesses every agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import console_support as support
import pytest

pytestmark = pytest.mark.timeout(120)


def test_an_admin_sanctions_a_signature_and_its_agents_become_governed(make_console: Any, qtbot: Any,
                                                                       tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/policy.sqlite3", tmp_path / "server.log")
    try:
        device = own.snapshot("host:policy", [support.sighting(id="cc", providers=("anthropic",)),
                                              support.sighting(id="script", name="script", signature=None,
                                                               type="unknown", providers=("openai",))])
        console = make_console(token=own.admin, url=own.url)
        view = console.window.policy
        qtbot.waitUntil(lambda: view.status.text() == "Policy version 0", timeout=10_000)
        view.signatures.setPlainText("claude-code\n\n  claude-code  \n")
        view.providers.setPlainText("anthropic")
        view.save.click()
        qtbot.waitUntil(lambda: view.status.text() == "Policy version 1", timeout=10_000)
        assert view.signatures.toPlainText() == "claude-code"
        policy = own.get("/api/v1/policy")
        assert policy["sanctioned_signatures"] == ["claude-code"] and policy["sanctioned_providers"] == ["anthropic"]
        cc = own.get(f"/api/v1/agents/{device}/cc")
        assert cc["governed"] is True and "unsanctioned_provider" not in cc["flags"]
        qtbot.waitUntil(lambda: console.overview.latest is not None and console.overview.latest.governed == 1, timeout=10_000)
    finally:
        own.close()


def test_a_viewer_reads_the_policy_but_cannot_change_it(make_console: Any, qtbot: Any,
                                                        collector: support.RunningCollector) -> None:
    console = make_console(token=collector.viewer)
    view = console.window.policy
    qtbot.waitUntil(lambda: view.status.text().startswith("Policy version"), timeout=10_000)
    assert view.signatures.isReadOnly() and not view.save.isEnabled()
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
        qtbot.waitUntil(lambda: view.status.text() == "Policy version 1", timeout=10_000)
        assert own.get("/api/v1/policy")["risky_tools"] == ["*server-postgres*", "*shell*"]
        assert view.risky_tools.toPlainText() == "*server-postgres*\n*shell*"
    finally:
        own.close()
