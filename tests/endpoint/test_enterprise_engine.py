"""The engine and projects: a process's project makes an enterprise sighting named after it (pure logic).

Records carry the ``Project`` the process sensor would have read; the engine is the scan's own.
"""

from __future__ import annotations

from typing import Any

import signatures
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import Credential, ProcessRecord, Project
from endpoint.scan.run import Processes, decode_processes, encode_processes

LIB = signatures.load()

WORKER = Project("python", "/srv/invoice-triage", "app.worker",
                 imports=(("langgraph.graph", "app/graph.py"), ("langchain_openai", "app/graph.py")),
                 packages=(("pypi", "langchain-core", "1.8.3", "/srv/invoice-triage/.venv"),
                           ("pypi", "langgraph", "1.2.24", "/srv/invoice-triage/.venv")),
                 native=(("tiktoken", "_tiktoken.cpython-311-x86_64-linux-gnu.so"),),
                 models=("gpt-4o-mini",), tools=("refund",))


def _proc(pid: int, argv: list[str], project: Project | None, *, ppid: int = 1, env: frozenset[str] = frozenset(),
          exe: str = "/usr/bin/python3.11") -> ProcessRecord:
    creds = [Credential("openai", None, "env", f"pid {pid} env OPENAI_API_KEY")] if "OPENAI_API_KEY" in env else []
    return ProcessRecord(pid=pid, ppid=ppid, name=argv[0].rsplit("/", 1)[-1][:15], exe=exe, cmdline=argv,
                         user="alice", uid=1000, create_time=0.0, env_keys=env, credentials=creds, project=project)


def _sightings(*records: ProcessRecord) -> list[dict[str, Any]]:
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes(records)
    assert engine.errors == []
    return [dict(s) for s in engine.result("2026-01-01T00:00:00+00:00")]


def test_a_worker_whose_project_imports_langgraph_is_an_enterprise_agent_named_after_it() -> None:
    found = _sightings(_proc(10, ["python3", "-m", "app.worker"], WORKER, env=frozenset({"OPENAI_API_KEY", "HOME"})))
    assert len(found) == 1
    sighting = found[0]
    assert (sighting["type"], sighting["signature"]) == ("enterprise", "langchain")
    assert sighting["name"] == "app.worker in /srv/invoice-triage"
    details = [e["detail"] for e in sighting["evidence"]]
    assert "imports langgraph.graph in app/graph.py" in details
    assert "langgraph 1.2.24 in its venv" in details
    assert "maps tiktoken's native library _tiktoken.cpython-311-x86_64-linux-gnu.so" in details
    assert sighting["project"] == {"root": "/srv/invoice-triage", "entry": "app.worker", "language": "python",
                                   "framework": "langgraph", "version": "1.2.24", "providers": ["openai"],
                                   "models": ["gpt-4o-mini"], "tools": ["refund"], "workflows": []}
    assert sighting["confidence"] >= 0.9


def test_a_framework_only_installed_in_the_venv_makes_no_agent() -> None:
    idle = WORKER._replace(imports=(), native=())
    found = _sightings(_proc(11, ["python3", "-m", "app.web"], idle._replace(entry="app.web")))
    assert found == []


def test_the_framework_the_code_uses_most_names_the_agent() -> None:
    crew = Project("python", "/srv/sales", "sales_crew.main",
                   imports=(("crewai", "src/sales_crew/crew.py"), ("crewai.tools", "src/sales_crew/tools.py"),
                            ("langchain_openai", "src/sales_crew/llm.py")))
    found = _sightings(_proc(12, ["python3", "-m", "sales_crew.main"], crew))
    assert [(s["signature"], s["name"]) for s in found] == [("crewai", "sales_crew.main in /srv/sales")]
    assert found[0]["project"]["framework"] == "crewai"


def test_a_servers_workers_join_their_master_and_two_projects_are_two_agents() -> None:
    api = Project("python", "/srv/support", "api.main:app", imports=(("agents", "api/agent.py"),),
                  packages=(("pypi", "openai-agents", "0.24.0", "/srv/support/.venv"),))
    gunicorn = ["/srv/support/.venv/bin/python", "/srv/support/.venv/bin/gunicorn", "-k",
                "uvicorn.workers.UvicornWorker", "api.main:app"]
    found = _sightings(_proc(20, gunicorn, api), _proc(21, gunicorn, api, ppid=20), _proc(22, gunicorn, api, ppid=20),
                       _proc(30, ["python3", "-m", "app.worker"], WORKER))
    by_name = {s["name"]: s for s in found}
    assert set(by_name) == {"api.main:app in /srv/support", "app.worker in /srv/invoice-triage"}
    assert [p["pid"] for p in by_name["api.main:app in /srv/support"]["processes"]] == [20, 21, 22]
    assert by_name["api.main:app in /srv/support"]["signature"] == "openai-agents"
    assert by_name["api.main:app in /srv/support"]["project"]["version"] == "0.24.0"


def test_a_node_service_is_named_by_its_package_dependencies() -> None:
    service = Project("node", "/srv/ts-agent", "npm start",
                      packages=(("npm", "ai", "5.0.277", "node_modules"),), models=("claude-sonnet-4-5",))
    found = _sightings(_proc(40, ["npm start"], service, exe="/usr/bin/node"))
    assert [(s["signature"], s["type"], s["name"]) for s in found] == [
        ("vercel-ai-sdk", "enterprise", "npm start in /srv/ts-agent")]
    assert "ai 5.0.277 in its node_modules" in [e["detail"] for e in found[0]["evidence"]]
    assert found[0]["project"]["providers"] == [] and found[0]["project"]["version"] == "5.0.277"


def test_a_platform_run_by_its_name_from_a_project_folder_stays_itself() -> None:
    """``n8n start`` run from a folder whose package.json declares another framework is still n8n."""
    folder = Project("node", "/home/alice/flows", "n8n", packages=(("npm", "ai", "5.0.0", "package.json"),))
    found = _sightings(_proc(45, ["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], folder,
                             exe="/usr/bin/node"))
    assert [(s["signature"], s["name"], s["project"]) for s in found] == [("n8n", "n8n", None)]


def test_a_project_that_imports_only_an_llm_sdk_is_an_unknown_agent_saying_where() -> None:
    """No framework, but its code calls an LLM: an unknown agent (also what makes the daemon look again)."""
    bot = Project("python", "/srv/bot", "bot.main", imports=(("openai", "bot/llm.py"),))
    found = _sightings(_proc(55, ["python3", "-m", "bot.main"], bot))
    assert [(s["type"], s["signature"]) for s in found] == [("unknown", None)]
    assert found[0]["evidence"][0]["detail"] == "pid 55: its project imports openai in bot/llm.py"
    venv_only = Project("python", "/srv/web", "web.main", packages=(("pypi", "langgraph", "1.2.24", "/srv/web/.venv"),))
    assert _sightings(_proc(56, ["python3", "-m", "web.main"], venv_only)) == []


def test_every_other_sighting_has_a_null_project() -> None:
    found = _sightings(_proc(50, ["python3", "-m", "svc.main"], Project("python", "/srv/svc", "svc.main"),
                             env=frozenset({"OPENAI_API_KEY"})))
    assert [(s["type"], s["project"]) for s in found] == [("unknown", None)]


def test_a_project_crosses_from_the_aside_reader_to_the_scan() -> None:
    """The processes read in a forked child come back through marshal with their projects."""
    record = _proc(60, ["python3", "-m", "app.worker"], WORKER)
    engine = Engine(LIB, device_id="", platform="linux")
    engine.add_processes([record])
    again = decode_processes(encode_processes(Processes([record], [], engine.matched)), LIB)
    assert again.records[0].project == WORKER
    assert again.matched[60].signature.id == "langchain" and again.matched[60].rule == "project.imports"


def test_a_signatures_project_cases_run_through_the_resolver_and_fail_when_wrong(tmp_path: Any) -> None:
    """The packs' deployment-shape cases (a process with its project's files) are really run: a pack whose
    match case's project imports no framework fails ``signatures check``, naming the case."""
    from endpoint.scan.path_cases import path_found, project_found

    assert project_found(LIB, ["python", "-m", "app.worker"],
                         {"app/__init__.py": "", "app/worker.py": "from .graph import g\n",
                          "app/graph.py": "from langgraph.graph import StateGraph\n"}) == "langchain"
    assert project_found(LIB, ["npm", "start"], {"package.json": '{"dependencies": {"ai": "^5.0.0"}}'}) \
        == "vercel-ai-sdk"
    pack = tmp_path / "mine.yaml"
    pack.write_text("""pack: mine
signatures:
  - id: my-framework
    name: My framework
    vendor: Me
    type: enterprise
    status: stable
    process: {script_imports: [my_framework]}
    cases:
      match:
        - {process: "uvicorn api:app", project: {"api.py": "import flask\\n"}}
      no_match:
        - {process: "uvicorn api:app", project: {"api.py": "from my_framework import Agent\\n"}}
""")
    problems = signatures.check([pack], path_found=path_found)
    assert len(problems) == 2, problems
    assert "match case process 'uvicorn api:app' did not match" in problems[0]
    assert "no_match case process 'uvicorn api:app' matched" in problems[1]
