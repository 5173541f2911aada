"""Why an enterprise agent is one, in the detail pane, over a real collector: the evidence with its weights
in plain words, the project, framework and version, providers, models and tools, a platform's workflows,
plain text whatever the endpoint sent, readable light and dark; the roster's search finds the agent by its
framework and its project; and a screenshot of the pane (AGENTROSTER_SCREENSHOTS=docs/images writes it there).

The sightings are made by the endpoint's own engine from the process records its sensor would have read
(as tests/endpoint/test_enterprise_engine.py does) and sent through the collector's ingest API.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette

import signatures
from console.app import theme
from console.app.views import project as project_view
from endpoint.scan.engine import Engine, registry
from endpoint.scan.evidence import ProcessRecord, Project

pytestmark = pytest.mark.timeout(120)

LIB = signatures.load()
HOST = "host:invoice-server"
WORKER = Project("python", "/srv/invoice-triage", "app.worker",
                 imports=(("langgraph.graph", "app/graph.py"), ("langchain_openai", "app/graph.py")),
                 packages=(("pypi", "langgraph", "1.2.24", "/srv/invoice-triage/.venv"),),
                 native=(("tiktoken", "_tiktoken.cpython-311-x86_64-linux-gnu.so"),),
                 models=("gpt-4o-mini",), tools=("refund", "lookup_invoice"))
N8N = Project("node", "/home/alice/.n8n", "n8n", platform="n8n",
              workflows=(("Invoice triage", True, 1, ("openai",), ("openAiApi", "gmailOAuth2")),
                         ("<b>Draft</b> replies <img src=x>", False, 2, ("anthropic",), ("anthropicApi",))))


def endpoint_sighting(pid: int, argv: list[str], project: Project, env: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What the endpoint's engine reports for one process running ``project``."""
    record = ProcessRecord(pid=pid, ppid=1, name=argv[0][:15], exe="/usr/bin/" + argv[0], cmdline=argv,
                           user="alice", uid=1000, create_time=0.0, env_keys=env, project=project)
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([record])
    [sighting] = engine.result("2026-01-01T00:00:00+00:00")
    return dict(sighting)


@pytest.fixture(scope="module")
def enterprise(collector: support.RunningCollector) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(device id, the LangGraph worker, the n8n) as one device reported them."""
    worker = endpoint_sighting(4100, ["python3", "-m", "app.worker"], WORKER, frozenset({"OPENAI_API_KEY"}))
    n8n = endpoint_sighting(4200, ["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], N8N)
    return collector.snapshot(HOST, [worker, n8n]), worker, n8n


def open_detail(console: Any, qtbot: Any, device_id: str, sighting_id: str) -> Any:
    console.agents.open_detail((device_id, sighting_id))
    qtbot.waitUntil(lambda: console.window.detail.detail is not None
                    and console.window.detail.detail.agent.id == sighting_id, timeout=10_000)
    return console.window.detail


def test_the_why_tab_says_why_a_worker_is_a_langgraph_agent(make_console: Any, qtbot: Any, enterprise: Any) -> None:
    device_id, worker, _ = enterprise
    detail = open_detail(make_console(), qtbot, device_id, worker["id"])
    assert detail.tabs.currentWidget() is detail.project and detail.tabs.tabText(0) == "Why"
    assert detail.project.title.text() == "Why this is a LangGraph agent"
    text = detail.project.body.text()
    for line in ("  • imports langgraph.graph in app/graph.py — strong (0.7)",
                 "  • langgraph 1.2.24 in its venv — supporting (0.4)",
                 "  • maps tiktoken's native library _tiktoken.cpython-311-x86_64-linux-gnu.so — a weak hint alone (0.2)",
                 "Project: invoice-triage", "Folder: /srv/invoice-triage", "Entry: app.worker (python)",
                 "Framework: LangGraph (langgraph), version 1.2.24", "Providers: openai", "Models: gpt-4o-mini",
                 "Tools it declares: refund, lookup_invoice"):
        assert line in text.splitlines(), (line, text)
    assert "Workflows" not in text  # a project, not a platform


def test_a_platforms_workflows_are_listed_as_plain_text(make_console: Any, qtbot: Any, enterprise: Any) -> None:
    device_id, _, n8n = enterprise
    detail = open_detail(make_console(), qtbot, device_id, n8n["id"])
    assert detail.project.title.text() == "Why this is an n8n agent"
    lines = detail.project.body.text().splitlines()
    assert "Workflows with AI agent nodes: 2" in lines
    assert ("  • Invoice triage (active): 1 AI agent node; providers openai; credential kinds openAiApi, "
            "gmailOAuth2") in lines
    assert ("  • <b>Draft</b> replies <img src=x> (inactive): 2 AI agent nodes; providers anthropic; "
            "credential kinds anthropicApi") in lines
    # the markup a workflow's name holds is shown as the text it is, never rendered
    for label in (detail.project.title, detail.project.body):
        assert label.textFormat() == Qt.TextFormat.PlainText


def test_other_agents_have_no_why_tab(make_console: Any, qtbot: Any, enterprise: Any,
                                      collector: support.RunningCollector) -> None:
    device_id, worker, _ = enterprise
    console = make_console()
    detail = open_detail(console, qtbot, device_id, worker["id"])
    assert detail.tabs.indexOf(detail.project) == 0
    detail = open_detail(console, qtbot, collector.known_device, "known-claude")
    assert detail.tabs.indexOf(detail.project) == -1 and detail.tabs.tabText(0) == "Evidence"


def test_the_roster_search_finds_the_framework_and_the_project(make_console: Any, qtbot: Any, enterprise: Any) -> None:
    _, worker, n8n = enterprise
    console = make_console()
    view = console.window.agents
    for text, expected in (("langgraph", {worker["id"]}), ("invoice-triage", {worker["id"]}),
                           ("draft</b> replies", {n8n["id"]})):
        view.search.setText(text)
        qtbot.keyClick(view.search, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda text=text: console.agents.roster.count is not None and not console.agents.roster.loading
                        and console.agents.roster.filter.q == text, timeout=10_000)
        assert {a.id for a in console.agents.roster.rows} == expected, text


def test_the_weights_in_words_are_the_endpoints() -> None:
    """The console says how much each line counts with the endpoint's own weights."""
    for rule, weight in project_view.EVIDENCE_WEIGHTS.items():
        assert registry.WEIGHTS[rule] == weight, rule


def test_screenshots_of_an_enterprise_agents_detail(make_console: Any, qtbot: Any, enterprise: Any,
                                                    tmp_path: Path) -> None:
    device_id, worker, _ = enterprise
    console = make_console()
    window = console.window
    window.resize(1280, 800)
    theme.apply("light")
    try:
        view = window.agents
        window.tabs.setCurrentWidget(view)
        view.search.setText("invoice")
        qtbot.keyClick(view.search, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: console.agents.roster.count is not None and not console.agents.roster.loading
                        and console.agents.roster.filter.q == "invoice",
                        timeout=10_000)
        detail = open_detail(console, qtbot, device_id, worker["id"])
        shots = []
        for name, dark in (("console-detail-enterprise", False), ("console-detail-enterprise-dark", True)):
            if dark:
                window.theme_actions["dark"].trigger()
                qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() < 80,
                                timeout=5_000)
            qtbot.wait(100)
            # the text is drawn in the palette's own text colour, which reads on its window colour
            palette = detail.project.body.palette()
            text = palette.color(QPalette.ColorRole.WindowText).lightness()
            window_ = palette.color(QPalette.ColorRole.Window).lightness()
            assert abs(text - window_) > 120, (name, text, window_)
            path = tmp_path / f"{name}.png"
            assert window.grab().save(str(path))
            shots.append(path)
        extra = os.environ.get("AGENTROSTER_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            for path in shots:
                shutil.copyfile(path, Path(extra) / path.name)
    finally:
        window.theme_actions["light"].trigger()
        theme.apply("system")
