"""End to end: real agent frameworks from PyPI and npm, run as teams deploy them, found by `agentroster scan`.

Session fixtures install LangGraph (with langchain-openai), the OpenAI Agents SDK, LlamaIndex and
uvicorn into one venv, CrewAI into another (it pins an older openai), and @langchain/langgraph into a
Node project, each cached under pytest's cache folder keyed by its requirement list (the first run
installs: about 1 min, 0.8 to 1.6 min and 5 s here; later runs reuse them). The agents run with a fake API key
and their provider's base URL on a local fake provider (tests/e2e/fake_provider.py), in the shapes of
the issue: ``python -m app.worker`` from the project folder with the framework imported in
``app/graph.py``; an OpenAI Agents SDK service under ``uvicorn api.main:app``; a crew as ``python -m
sales_crew.main`` with ``src`` on PYTHONPATH; a LlamaIndex pipeline as ``python pipelines/run.py``
importing its sibling module; a Node service started with ``npm start``; found by ``agentroster scan --json`` and by a real daemon
(its state file). Beside them, 50 Python and Node processes that are no agents
(some run by the very venv that holds the frameworks) must stay unflagged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

import pytest
from install_cache import FOLDER as CACHE_FOLDER
from install_cache import key as _key
from install_cache import locked as _locked
from support import AGENTROSTER, run_agentroster, sighting_with_pid

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]  # the first run installs the frameworks

PYPI = ("langgraph==1.2.24", "langchain-openai==1.8.1", "openai-agents==0.24.0", "llama-index-core==0.14.25",
        "uvicorn==0.55.0")
CREW = ("crewai==1.15.30",)  # its own venv: it pins openai below the Agents SDK's; 0.8 to 1.6 min and 1 GB to install
NPM = ("@langchain/langgraph@1.7.3", "@langchain/core@1.4.0")
FAKE_OPENAI = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"
NODE = shutil.which("node")
NPM_BIN = shutil.which("npm")
PROVIDER = Path(__file__).resolve().parent / "fake_provider.py"


def _venv_with(request: pytest.FixtureRequest, specs: tuple[str, ...]) -> Path:
    """A venv holding ``specs``, made once and cached under pytest's cache folder keyed by them."""
    cache = Path(request.config.cache.mkdir(CACHE_FOLDER))
    target = cache / f"venv-{_key(specs)}"
    with _locked(cache):
        if not (target / ".installed").exists():
            shutil.rmtree(target, ignore_errors=True)
            start = time.monotonic()
            venv.EnvBuilder(with_pip=True).create(target)
            subprocess.run([str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            *specs], check=True, capture_output=True, timeout=900)
            (target / ".installed").write_text(f"{time.monotonic() - start:.1f} s to install {' '.join(specs)}\n")
    print(f"\nframework venv: {(target / '.installed').read_text().strip()} (0 s this run if cached)")
    return target


@pytest.fixture(scope="session")
def frameworks(request: pytest.FixtureRequest) -> Path:
    return _venv_with(request, PYPI)


@pytest.fixture(scope="session")
def crewai_venv(request: pytest.FixtureRequest) -> Path:
    return _venv_with(request, CREW)


@pytest.fixture(scope="session")
def node_project(request: pytest.FixtureRequest) -> Path:
    """A Node project with @langchain/langgraph in its node_modules, cached like the venv."""
    if NODE is None or NPM_BIN is None:
        pytest.skip("needs Node.js and npm (./dev test installs Debian's nodejs and npm)")
    cache = Path(request.config.cache.mkdir(CACHE_FOLDER))
    target = cache / f"node-{_key(NPM)}"
    with _locked(cache):
        if not (target / ".installed").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            (target / "package.json").write_text(json.dumps({"name": "ticket-router", "private": True}))
            start = time.monotonic()
            subprocess.run([NPM_BIN, "install", "--no-audit", "--no-fund", "--loglevel=error", *NPM], cwd=target,
                           check=True, capture_output=True, timeout=900)
            (target / ".installed").write_text(f"{time.monotonic() - start:.1f} s to install {' '.join(NPM)}\n")
    manifest = json.loads((target / "package.json").read_text())
    manifest["scripts"] = {"start": "node dist/index.js"}
    (target / "package.json").write_text(json.dumps(manifest))
    _write(target / "dist" / "index.js", NODE_INDEX)
    _write(target / "dist" / "graph.js", NODE_GRAPH)
    return target


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


LANGGRAPH_WORKER = """\
import time
from .graph import build

print(build().invoke({"text": "invoice 42 is overdue"}), flush=True)
time.sleep(600)
"""
LANGGRAPH_GRAPH = """\
from typing import TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    text: str


def triage(state: State) -> State:
    answer = ChatOpenAI(model="gpt-4o-mini").invoke(state["text"])
    return {"text": str(answer.content)}


def build():
    graph = StateGraph(State)
    graph.add_node("triage", triage)
    graph.add_edge(START, "triage")
    graph.add_edge("triage", END)
    return graph.compile()
"""
AGENTS_MAIN = """\
from api.agent import ask


async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


ask()
"""
AGENTS_AGENT = """\
import threading

from agents import Agent, Runner, function_tool, set_default_openai_api, set_tracing_disabled

set_tracing_disabled(True)
set_default_openai_api("chat_completions")


@function_tool
def order_status(order_id: str) -> str:
    return "shipped"


support = Agent(name="support", instructions="Answer about orders.", model="gpt-4.1-mini", tools=[order_status])


def ask() -> None:
    threading.Thread(target=lambda: Runner.run_sync(support, "where is order 7?"), daemon=True).start()
"""
RAG_MAIN = "import time\n\nimport pipeline\n\ntime.sleep(600)\n"
RAG_PIPELINE = """\
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
"""
CREW_MAIN = "import time\n\nfrom sales_crew.crew import kickoff\n\nprint(kickoff(), flush=True)\ntime.sleep(600)\n"
CREW_CREW = """\
from crewai import LLM, Agent, Crew, Task


def kickoff():
    researcher = Agent(role="Lead researcher", goal="Find one lead", backstory="You find sales leads.",
                       llm=LLM(model="gpt-4o-mini"))
    task = Task(description="Name one lead.", expected_output="A lead.", agent=researcher)
    return Crew(agents=[researcher], tasks=[task]).kickoff()
"""
NODE_INDEX = """\
const { graph } = require("./graph");
graph.invoke({ text: "route ticket 9" }).then((out) => console.log(out));
setInterval(() => {}, 1000);
"""
NODE_GRAPH = """\
const { StateGraph, Annotation, START, END } = require("@langchain/langgraph");
const State = Annotation.Root({ text: Annotation() });
async function route(state) {
  const res = await fetch(process.env.OPENAI_BASE_URL + "/chat/completions", {
    method: "POST", headers: { "content-type": "application/json", authorization: "Bearer " + process.env.OPENAI_API_KEY },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: state.text }] }),
  });
  return { text: JSON.stringify(await res.json()).slice(0, 40) };
}
const graph = new StateGraph(State).addNode("route", route).addEdge(START, "route").addEdge("route", END).compile();
module.exports = { graph };
"""


@pytest.fixture
def provider(tmp_path: Path, spawn: Any) -> tuple[str, Path]:
    """The local fake provider: its OpenAI base URL and its request log."""
    port_file, log = tmp_path / "port", tmp_path / "requests.jsonl"
    spawn([sys.executable, str(PROVIDER), "--port-file", str(port_file), "--log", str(log)])
    deadline = time.monotonic() + 20
    while not (port_file.exists() and port_file.read_text().strip()):
        assert time.monotonic() < deadline, "the fake provider did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port_file.read_text().strip()}/v1", log


def _requests(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_real_frameworks_deployed_as_teams_do_are_enterprise_agents(frameworks: Path, crewai_venv: Path,
                                                                     node_project: Path, provider: tuple[str, Path],
                                                                     tmp_path: Path, spawn: Any) -> None:
    base_url, log = provider
    python = str(frameworks / "bin" / "python")
    env = {"PATH": f"{frameworks / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "OPENAI_API_KEY": FAKE_OPENAI,
           "OPENAI_BASE_URL": base_url, "OPENAI_API_BASE": base_url, "NO_PROXY": "*"}

    triage = tmp_path / "srv" / "invoice-triage"
    _write(triage / "app" / "__init__.py", "")
    _write(triage / "app" / "worker.py", LANGGRAPH_WORKER)
    _write(triage / "app" / "graph.py", LANGGRAPH_GRAPH)
    worker = spawn([python, "-m", "app.worker"], cwd=triage, env=env)

    support = tmp_path / "srv" / "support-api"
    _write(support / "api" / "__init__.py", "")
    _write(support / "api" / "main.py", AGENTS_MAIN)
    _write(support / "api" / "agent.py", AGENTS_AGENT)
    server = spawn([python, str(frameworks / "bin" / "uvicorn"), "api.main:app", "--port", "0"], cwd=support, env=env)

    rag = tmp_path / "srv" / "rag"
    _write(rag / "pipelines" / "run.py", RAG_MAIN)
    _write(rag / "pipelines" / "pipeline.py", RAG_PIPELINE)
    pipeline = spawn([python, "pipelines/run.py"], cwd=rag, env=env)

    sales = tmp_path / "srv" / "sales"
    _write(sales / "src" / "sales_crew" / "__init__.py", "")
    _write(sales / "src" / "sales_crew" / "main.py", CREW_MAIN)
    _write(sales / "src" / "sales_crew" / "crew.py", CREW_CREW)
    crew = spawn([str(crewai_venv / "bin" / "python"), "-m", "sales_crew.main"], cwd=sales,
                 env={**env, "PYTHONPATH": "src", "CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true",
                      "CREWAI_TRACING_ENABLED": "false"})

    node_env = {**env, "PATH": f"{Path(NODE or 'node').parent}:/usr/bin:/bin"}
    npm = spawn([NPM_BIN or "npm", "start"], cwd=node_project, env=node_env)

    quiet = _non_agents(tmp_path, python, spawn)

    # the worker, the Agents SDK, the crew and the Node graph each call the fake provider once they run
    _wait(lambda: sum(r.get("path", "").endswith("/chat/completions") for r in _requests(log)) >= 4, 90,
          f"the agents did not all call the fake provider: {_requests(log)}")
    _wait(lambda: _imports_done(pipeline.pid), 60, "the LlamaIndex pipeline did not finish importing")

    done = run_agentroster("scan", "--json", "--home", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    assert FAKE_OPENAI not in done.stdout and FAKE_OPENAI[:24] not in done.stdout
    scan = json.loads(done.stdout)

    found = sighting_with_pid(scan, worker.pid)
    assert (found["type"], found["signature"], found["name"]) == ("enterprise", "langchain",
                                                                  f"app.worker in {triage}")
    assert found["project"]["framework"] == "langgraph" and found["project"]["version"] == "1.2.24"
    assert found["project"]["providers"] == ["openai"] and found["project"]["models"] == ["gpt-4o-mini"]
    details = [e["detail"] for e in found["evidence"]]
    assert "imports langgraph.graph in app/graph.py" in details and "langgraph 1.2.24 in its venv" in details
    assert any(d.startswith("maps tiktoken's native library _tiktoken") for d in details), details

    found = sighting_with_pid(scan, server.pid)
    assert (found["type"], found["signature"], found["name"]) == ("enterprise", "openai-agents",
                                                                  f"api.main:app in {support}")
    assert found["project"]["version"] == "0.24.0" and found["project"]["tools"] == ["order_status"]

    found = sighting_with_pid(scan, pipeline.pid)
    assert (found["type"], found["signature"], found["name"]) == ("enterprise", "llamaindex",
                                                                  f"pipelines/run.py in {rag}")
    assert "imports llama_index.core.agent.workflow in pipelines/pipeline.py" in [e["detail"] for e in found["evidence"]]

    found = sighting_with_pid(scan, crew.pid)
    assert (found["type"], found["signature"], found["name"]) == ("enterprise", "crewai",
                                                                  f"sales_crew.main in {sales}")
    assert found["project"]["version"] == "1.15.30"
    assert "imports crewai in src/sales_crew/crew.py" in [e["detail"] for e in found["evidence"]]

    found = sighting_with_pid(scan, npm.pid)
    assert (found["type"], found["signature"], found["name"]) == ("enterprise", "langchain",
                                                                  f"npm start in {node_project}")
    assert found["project"]["language"] == "node" and found["project"]["version"] == "1.7.3"
    node_children = [p["pid"] for p in found["processes"]]
    assert len(node_children) >= 2, "the node process npm started belongs to the same agent"

    flagged = {p["pid"]: s["name"] for s in scan["sightings"] for p in s["processes"]}
    assert [flagged[pid] for pid in quiet if pid in flagged] == [], "a process that is no agent was flagged"
    assert not [e for e in scan["errors"] if " project " in e["where"] and str(tmp_path) in e["where"]]

    # The daemon's process tracker finds the same agents: its own state (what it reports) holds the sightings.
    held = _start_daemon(tmp_path / "daemon", spawn)
    _wait(lambda: sum(d["type"] == "enterprise" for d in held().values()) >= 5, 90,
          "the daemon did not hold the enterprise agents")
    assert held()[f"app.worker in {triage}"]["project"]["framework"] == "langgraph"
    assert held()[f"api.main:app in {support}"]["type"] == "enterprise"

    # A new process with no key in its environment (it reads one later): only its code says it is an agent.
    nightly = tmp_path / "srv" / "nightly"
    _write(nightly / "flows" / "__init__.py", "")
    _write(nightly / "flows" / "nightly.py", "import time\n\nfrom flows.graph import graph\n\ntime.sleep(600)\n")
    _write(nightly / "flows" / "graph.py", "from langgraph.graph import StateGraph\n\ngraph = StateGraph(dict)\n")
    spawn([python, "-m", "flows.nightly"], cwd=nightly, env={"PATH": env["PATH"], "HOME": str(tmp_path)})
    name = f"flows.nightly in {nightly}"
    _wait(lambda: name in held(), 60, "the daemon did not see the new keyless agent process")
    assert (held()[name]["type"], held()[name]["credentials"]) == ("enterprise", [])


def _start_daemon(folder: Path, spawn: Any) -> Any:
    """A real ``agentroster daemon`` watching processes; returns what it holds, by sighting name (its
    collector is unreachable: what it would report stays in its state file)."""
    import sqlite3

    secret = _write(folder / "enroll-secret", "FAKE-enroll-secret-0000\n")
    secret.chmod(0o600)
    state = folder / "data" / "state.sqlite3"
    env = {**os.environ, "AGENTROSTER_SENSORS": "processes", "AGENTROSTER_PROCESS_INTERVAL_S": "0.5",
           "AGENTROSTER_REPORT_INTERVAL_S": "0.5"}
    spawn([AGENTROSTER, "daemon", "--collector", "http://127.0.0.1:9", "--enroll-secret-file", str(secret),
           "--data-dir", str(folder / "data")], env=env)

    def held() -> dict[str, dict[str, Any]]:
        if not state.exists():
            return {}
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)
        try:
            return {d["name"]: d for d in (json.loads(row[0]) for row in db.execute("SELECT doc FROM sighting"))}
        except sqlite3.Error:
            return {}
        finally:
            db.close()

    return held


def _imports_done(pid: int) -> bool:
    """Whether the process has llama_index loaded (its maps name one of its native dependencies)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "pydantic_core" in maps


def _non_agents(tmp_path: Path, python: str, spawn: Any) -> list[int]:
    """40 Python services (the framework venv's interpreter among them) and 10 Node ones: no agents."""
    pids = []
    for i in range(40):
        folder = _write(tmp_path / "svc" / f"py{i}" / "svc" / "main.py",
                        "import json, time\nfrom svc import util\ntime.sleep(600)\n").parent.parent
        _write(folder / "svc" / "__init__.py", "")
        _write(folder / "svc" / "util.py", "import logging\n")
        interpreter = python if i % 2 else "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else python
        pids.append(spawn([interpreter, "-m", "svc.main"], cwd=folder,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}).pid)
    for i in range(10):
        folder = tmp_path / "svc" / f"node{i}"
        _write(folder / "package.json", json.dumps({"name": f"web{i}", "dependencies": {"express": "^4.21.0"}}))
        _write(folder / "server.js", "const http = require('http');\nsetInterval(() => {}, 1000);\n")
        pids.append(spawn([NODE or "node", "server.js"], cwd=folder,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}).pid)
    return pids
