"""An enterprise agent's project through the collector: a report carries it, the detail route returns it
(scrubbed as every other field), free text finds the agent by its framework and its project's name, and a
changed project is history.

The sightings are made by the endpoint's own engine from the process records its sensor would have read
(as tests/endpoint/test_enterprise_engine.py does), then sent through the ingest API of a real collector.
"""

from __future__ import annotations

from typing import Any

import fleet

import signatures
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import ProcessRecord, Project

LIB = signatures.load()
FAKE_KEY = "sk-proj-" + "FAKE0000" * 6  # an obviously fake key of the openai shape

WORKER = Project("python", "/srv/invoice-triage", "app.worker",
                 imports=(("langgraph.graph", "app/graph.py"), ("langchain_openai", "app/graph.py")),
                 packages=(("pypi", "langgraph", "1.2.24", "/srv/invoice-triage/.venv"),),
                 native=(("tiktoken", "_tiktoken.cpython-311-x86_64-linux-gnu.so"),),
                 models=("gpt-4o-mini",), tools=("refund", "lookup_invoice"))

N8N = Project("node", "/home/alice/.n8n", "n8n", platform="n8n",
              workflows=(("Invoice triage", True, 1, ("openai",), ("openAiApi", "gmailOAuth2")),
                         ("Draft replies", False, 2, ("anthropic",), ("anthropicApi",))))


def endpoint_sightings(argv: list[str], project: Project, env: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """What the endpoint's engine reports for one process running ``project``."""
    record = ProcessRecord(pid=4100, ppid=1, name=argv[0][:15], exe="/usr/bin/" + argv[0], cmdline=argv,
                           user="alice", uid=1000, create_time=0.0, env_keys=env, project=project)
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([record])
    assert engine.errors == []
    return [dict(s) for s in engine.result("2026-01-01T00:00:00+00:00")]


def detail(device: Any, sighting_id: str) -> dict[str, Any]:
    answer = device.collector.get(f"/api/v1/agents/{device.device_id}/{sighting_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_detail_returns_a_frameworks_project_and_its_evidence(device) -> None:
    [sighting] = endpoint_sightings(["python3", "-m", "app.worker"], WORKER, frozenset({"OPENAI_API_KEY"}))
    device.snapshot(sighting)
    found = detail(device, sighting["id"])
    assert found["type"] == "enterprise" and found["name"] == "app.worker in /srv/invoice-triage"
    assert found["project"] == {"root": "/srv/invoice-triage", "entry": "app.worker", "language": "python",
                                "framework": "langgraph", "version": "1.2.24", "providers": ["openai"],
                                "models": ["gpt-4o-mini"], "tools": ["refund", "lookup_invoice"], "workflows": []}
    details = {(e["rule"], e["detail"]) for e in found["evidence"]}
    assert ("project.imports", "imports langgraph.graph in app/graph.py") in details
    assert ("project.installed", "langgraph 1.2.24 in its venv") in details


def test_the_detail_returns_a_platforms_workflows_with_their_kinds_of_credential(device) -> None:
    [sighting] = endpoint_sightings(["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], N8N)
    device.snapshot(sighting)
    workflows = detail(device, sighting["id"])["project"]["workflows"]
    assert workflows == [
        {"name": "Invoice triage", "active": True, "agent_nodes": 1, "providers": ["openai"],
         "credentials": ["openAiApi", "gmailOAuth2"]},
        {"name": "Draft replies", "active": False, "agent_nodes": 2, "providers": ["anthropic"],
         "credentials": ["anthropicApi"]},
    ]


def test_other_sightings_and_older_endpoints_have_a_null_project(device) -> None:
    [sighting] = endpoint_sightings(["python3", "-m", "app.worker"], WORKER)
    older = {k: v for k, v in sighting.items() if k != "project"}  # an endpoint from before projects
    older["id"] = "0lder" + sighting["id"][5:]
    coding = fleet.sighting()
    device.snapshot(older, coding)
    assert detail(device, older["id"])["project"] is None
    assert detail(device, coding["id"])["project"] is None


def test_a_key_or_markup_in_a_project_stays_text_and_hides_the_key(device) -> None:
    """An altered endpoint sends a key in the project's folder and a workflow's name, and markup: the
    collector keeps the markup as the text it is and hides the key, as it does in every other field."""
    [sighting] = endpoint_sightings(["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], N8N)
    project = sighting["project"]
    project["root"] = f"/home/alice/{FAKE_KEY}/.n8n"
    project["workflows"][0]["name"] = f"<b>Refunds</b> <img src=x onerror=alert(1)> key={FAKE_KEY}"
    device.snapshot(sighting)
    found = detail(device, sighting["id"])["project"]
    assert FAKE_KEY not in str(found) and "FAKE0000" not in str(found)
    assert found["root"] == "/home/alice/[REDACTED:openai]/.n8n"
    assert found["workflows"][0]["name"].startswith("<b>Refunds</b> <img src=x onerror=alert(1)> key=")


def test_free_text_finds_an_enterprise_agent_by_framework_project_and_workflow(device) -> None:
    [worker] = endpoint_sightings(["python3", "-m", "app.worker"], WORKER)
    [n8n] = endpoint_sightings(["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], N8N)
    device.snapshot(worker, n8n)
    # the signature is langchain's: "langgraph" is only in the project
    assert [a["id"] for a in device.agents(q="LangGraph")] == [worker["id"]]
    assert [a["id"] for a in device.agents(q="invoice-triage")] == [worker["id"]]
    assert [a["id"] for a in device.agents(q="draft replies")] == [n8n["id"]]


def test_a_changed_project_is_in_the_history(device) -> None:
    [sighting] = endpoint_sightings(["python3", "-m", "app.worker"], WORKER)
    device.snapshot(sighting)
    sighting["project"] = {**sighting["project"], "version": "1.3.0", "tools": ["refund"]}
    device.snapshot(sighting)
    found = detail(device, sighting["id"])
    assert found["project"]["version"] == "1.3.0"
    assert found["history"][0]["change"] == "changed" and "project" in found["history"][0]["fields"]
