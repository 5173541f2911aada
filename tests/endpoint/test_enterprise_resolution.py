"""Resolving what a process really runs (endpoint.scan.projects), over real project trees on disk.

Each case lays out a project as teams deploy one (a worker package, an ASGI app, a task queue, a console
script in a venv, a Node service) and gives the resolver the argv, working folder and environment a
process of that shape has; what is checked is the project root, the entry, and the framework imports
and packages found beyond the first file. The live processes are in tests/e2e/test_enterprise_agents.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import signatures
from endpoint.scan.evidence import ProcessRecord
from endpoint.scan.projects import ProjectReader, interests_of, language
from endpoint.scan.projects.maps import libraries_in
from endpoint.scan.projects.node import parse as parse_node
from endpoint.scan.projects.python import parse as parse_python

LIB = signatures.load()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _venv(folder: Path, dists: dict[str, str]) -> Path:
    """A venv's layout: pyvenv.cfg, and a dist-info with METADATA for each (name, version)."""
    _write(folder / "pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = false\n")
    site = folder / "lib" / "python3.11" / "site-packages"
    for name, version in dists.items():
        _write(site / f"{name.replace('-', '_')}-{version}.dist-info" / "METADATA",
               f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nLong description.\n")
    _write(folder / "bin" / "python", "")
    return site


FRAMEWORKS = {"langgraph": "1.2.24", "langchain-core": "1.8.3", "llama-index-core": "0.14.25", "pydantic-ai": "1.0.0",
              "autogen-agentchat": "0.7.0", "crewai": "0.150.0"}
SHARED_VENV: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def shared_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv a process runs in when its case names none: the frameworks are installed there (a process
    can only import what its interpreter's path holds, and the resolver reads no code that cannot)."""
    folder = tmp_path_factory.mktemp("venv")
    _venv(folder, FRAMEWORKS)
    SHARED_VENV[:] = [folder]
    return folder


def _record(argv: list[str], cwd: Path | str, env: dict[str, str] | None = None, *,
            exe: str = "/usr/bin/python3.11") -> ProcessRecord:
    env = dict(env or {})
    if not os.path.isabs(argv[0]) or "venv" not in argv[0]:
        env.setdefault("VIRTUAL_ENV", str(SHARED_VENV[0]))
    return ProcessRecord(pid=os.getpid(), ppid=1, name=os.path.basename(argv[0])[:15], exe=exe, cmdline=argv,
                         user="alice", uid=os.getuid(), create_time=0.0, env_values=env, cwd=str(cwd))


def _read(record: ProcessRecord) -> object:
    return ProjectReader(interests_of(LIB), maps=False).read(record)


def _modules(project: object) -> set[str]:
    return {m for m, _ in project.imports}  # type: ignore[attr-defined]


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    """/srv/invoice-triage: ``app.worker`` imports ``app.graph`` (relatively), which imports LangGraph."""
    root = tmp_path / "invoice-triage"
    _write(root / "app" / "__init__.py", "")
    _write(root / "app" / "worker.py", "import time\nfrom .graph import build\nfrom app import tools\n\nbuild()\n")
    _write(root / "app" / "graph.py", 'from langgraph.graph import StateGraph\nfrom langchain_openai import ChatOpenAI\n'
                                      'llm = ChatOpenAI(model="gpt-4o-mini")\n')
    _write(root / "app" / "tools.py", "from langchain_core.tools import tool\n\n@tool\ndef refund(order: str) -> str:\n"
                                      '    """Refund an order."""\n    return order\n'
                                      "from langchain_mcp_adapters.client import MultiServerMCPClient\n"
                                      'mcp = MultiServerMCPClient({"erp": {"command": "npx", "transport": "stdio"}})\n')
    return root


def test_python_m_follows_the_projects_own_imports_to_the_framework(worker: Path) -> None:
    project = _read(_record(["python3", "-m", "app.worker"], worker))
    assert project is not None
    assert (project.root, project.entry, project.kind) == (str(worker), "app.worker", "python")
    assert ("langgraph.graph", "app/graph.py") in project.imports
    assert ("langchain_core.tools", "app/tools.py") in project.imports
    assert project.models == ("gpt-4o-mini",)
    assert project.tools == ("refund", "MCP servers (MultiServerMCPClient)")


def test_a_crew_under_src_on_pythonpath_and_its_venvs_packages(tmp_path: Path) -> None:
    root = tmp_path / "sales"
    _write(root / "src" / "sales_crew" / "__init__.py", "")
    _write(root / "src" / "sales_crew" / "main.py", "from sales_crew.crew import SalesCrew\nSalesCrew().kickoff()\n")
    _write(root / "src" / "sales_crew" / "crew.py", "from crewai import Agent, Crew\nfrom crewai.tools import BaseTool\n"
                                                    "class LeadLookup(BaseTool):\n    name: str = 'lead'\n")
    _venv(root / ".venv", {"crewai": "0.150.0", "requests": "2.32.0"})
    record = _record([str(root / ".venv" / "bin" / "python"), "-m", "sales_crew.main"], root, {"PYTHONPATH": "src"})
    project = _read(record)
    assert project is not None and project.root == str(root) and project.entry == "sales_crew.main"
    assert ("crewai", "src/sales_crew/crew.py") in project.imports
    assert ("pypi", "crewai", "0.150.0", str(root / ".venv")) in project.packages
    assert all(name != "requests" for _, name, _, _ in project.packages), "only frameworks are reported"
    assert project.tools == ("LeadLookup",)


@pytest.fixture
def api(tmp_path: Path) -> tuple[Path, Path]:
    """An ASGI service: ``api/main.py`` defines ``app`` and imports the agent from ``api/agent.py``."""
    root = tmp_path / "support-api"
    _write(root / "api" / "__init__.py", "")
    _write(root / "api" / "main.py", "from fastapi import FastAPI\nfrom api.agent import support\napp = FastAPI()\n")
    _write(root / "api" / "agent.py", "from agents import Agent, function_tool\n\n@function_tool\n"
                                      "def order_status(order_id: str) -> str:\n    return 'shipped'\n"
                                      "support = Agent(name='support', model='gpt-4.1')\n")
    venv = root / ".venv"
    _venv(venv, {"openai-agents": "0.24.0", "uvicorn": "0.35.0"})
    for tool in ("uvicorn", "gunicorn", "hypercorn", "granian", "fastapi"):
        _write(venv / "bin" / tool, f"#!{venv}/bin/python\nimport sys\nfrom {tool}.main import main\nsys.exit(main())\n")
    return root, venv


@pytest.mark.parametrize(("argv", "entry"), [
    (["{venv}/bin/python", "{venv}/bin/uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"], "api.main:app"),
    (["{venv}/bin/python", "-m", "uvicorn", "--port", "8000", "--reload", "api.main:app"], "api.main:app"),
    (["{venv}/bin/python", "{venv}/bin/gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", "4", "api.main:app"],
     "api.main:app"),
    (["gunicorn: master [api.main:app]"], "api.main:app"),
    (["{venv}/bin/python", "{venv}/bin/hypercorn", "--bind", "0.0.0.0:8000", "api.main:app"], "api.main:app"),
    (["{venv}/bin/python", "{venv}/bin/granian", "--interface", "asgi", "api.main:app"], "api.main:app"),
    (["{venv}/bin/python", "{venv}/bin/fastapi", "run", "api/main.py", "--port", "80"], "fastapi api/main.py"),
    (["{venv}/bin/python", "{venv}/bin/uvicorn", "--app-dir", "..", "main:app"], "main:app"),
])
def test_asgi_and_wsgi_servers_resolve_to_the_app_module(api: tuple[Path, Path], argv: list[str], entry: str) -> None:
    root, venv = api
    cwd = root / "api" if "--app-dir" in argv else root
    if "--app-dir" in argv:
        _write(root / "main.py", "from api.agent import support\napp = object()\n")
    record = _record([a.format(venv=venv) for a in argv], cwd, {"VIRTUAL_ENV": str(venv)})
    project = _read(record)
    assert project is not None, argv
    assert project.entry == entry and project.root == str(root)
    assert ("agents", "api/agent.py") in project.imports
    assert ("pypi", "openai-agents", "0.24.0", str(venv)) in project.packages
    assert "order_status" in project.tools and "gpt-4.1" in project.models


def test_fastapi_run_without_a_path_finds_its_default_files(api: tuple[Path, Path]) -> None:
    root, venv = api
    _write(root / "main.py", "from api.agent import support\n")
    project = _read(_record([str(venv / "bin" / "python"), str(venv / "bin" / "fastapi"), "run"], root))
    assert project is not None and project.entry == "fastapi app" and ("agents", "api/agent.py") in project.imports


@pytest.mark.parametrize(("argv", "entry"), [
    (["celery", "-A", "tasks", "worker", "--loglevel=INFO"], "tasks"),
    (["celery", "--app=proj.celery:app", "worker", "-c", "2"], "proj.celery:app"),
    (["-m", "celery", "-Aproj", "worker"], "proj"),
    (["dramatiq", "proj.broker", "tasks"], "proj.broker tasks"),
    (["arq", "proj.worker.WorkerSettings"], "proj.worker.WorkerSettings"),
    (["rq", "worker", "high", "default"], "rq worker"),
])
def test_task_queue_workers_resolve_to_their_task_modules(tmp_path: Path, argv: list[str], entry: str) -> None:
    root = tmp_path / "queue"
    _write(root / "tasks.py", "from proj.agent import run\n")
    _write(root / "proj" / "__init__.py", "")
    _write(root / "proj" / "celery.py", "from proj.agent import run\napp = None\n")
    _write(root / "proj" / "broker.py", "broker = None\n")
    _write(root / "proj" / "worker.py", "from .agent import run\nclass WorkerSettings:\n    functions = [run]\n")
    _write(root / "proj" / "agent.py", "from llama_index.core.agent.workflow import FunctionAgent\n"
                                       "from llama_index.llms.openai import OpenAI\n")
    full = ["/usr/bin/python3.11", *argv] if argv[0] == "-m" else ["/usr/bin/python3.11", f"/usr/local/bin/{argv[0]}",
                                                                   *argv[1:]]
    project = _read(_record(full, root))
    assert project is not None and project.entry == entry and project.root == str(root)
    assert ("llama_index.core.agent.workflow", "proj/agent.py") in project.imports
    assert ("llama_index.llms.openai", "proj/agent.py") in project.imports


# Shapes from public repositories that the list does not cover (each Dockerfile or script there):
# chainlit in Swapnil-11-04-01/AI_ChatBot_For_Mental_Health and naveenalla3000/langchain_palm_ai, streamlit in
# AnkitB47/Multi_rag_Langchain and danapany/iap-project (python -m streamlit), taskiq in copdips/fastapi-demo
# and fastapi-practices/task (a broker, then task modules).
@pytest.mark.parametrize(("argv", "entry", "imported"), [
    (["/usr/local/bin/chainlit", "run", "app.py", "--host", "0.0.0.0", "--port", "8000"], "chainlit run app.py",
     ("langgraph.graph", "ui/graph.py")),
    (["-m", "chainlit", "run", "app.py", "-w"], "chainlit run app.py", ("langgraph.graph", "ui/graph.py")),
    (["/usr/local/bin/streamlit", "run", "src/ui/app.py", "--server.port=8501", "--server.address=0.0.0.0"],
     "streamlit run src/ui/app.py", ("crewai", "src/ui/crew.py")),
    (["-m", "streamlit", "run", "src/ui/app.py", "--server.port", "8000"], "streamlit run src/ui/app.py",
     ("crewai", "src/ui/crew.py")),
    (["/usr/local/bin/taskiq", "worker", "app.core.taskiq:taskiq_broker"], "app.core.taskiq:taskiq_broker",
     ("pydantic_ai", "app/core/taskiq.py")),
    (["/usr/local/bin/taskiq", "worker", "app.core.taskiq:broker", "-fsd", "app.tasks"], "app.core.taskiq:broker",
     ("llama_index.core", "app/tasks.py")),
])
def test_shapes_found_in_public_repositories(tmp_path: Path, argv: list[str], entry: str,
                                              imported: tuple[str, str]) -> None:
    root = tmp_path / "agent"
    _write(root / "app.py", "import chainlit as cl\nfrom ui.graph import graph\n")
    _write(root / "ui" / "__init__.py", "")
    _write(root / "ui" / "graph.py", "from langgraph.graph import StateGraph\n")
    _write(root / "src" / "ui" / "app.py", "import streamlit as st\nfrom crew import run\n")  # its folder is on the path
    _write(root / "src" / "ui" / "crew.py", "from crewai import Crew\n")
    _write(root / "app" / "__init__.py", "")
    _write(root / "app" / "core" / "__init__.py", "")
    _write(root / "app" / "core" / "taskiq.py", "from pydantic_ai import Agent\nbroker = taskiq_broker = None\n")
    _write(root / "app" / "tasks.py", "from llama_index.core import VectorStoreIndex\n")
    full = ["/usr/bin/python3.11", *argv] if argv[0] == "-m" else ["/usr/bin/python3.11", *argv]
    project = _read(_record(full, root))
    assert project is not None and project.entry == entry and project.root == str(root)
    assert imported in project.imports


def test_a_console_script_resolves_to_its_installed_package(tmp_path: Path) -> None:
    """``invoice-worker`` in a venv: pip's wrapper imports ``invoice.cli``, installed in site-packages."""
    root = tmp_path / "srv" / "invoice"
    venv = root / "venv"
    site = _venv(venv, {"langgraph": "1.2.24", "invoice": "3.1.0"})
    _write(venv / "bin" / "invoice-worker", f"#!{venv}/bin/python3\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
                                            "from invoice.cli import main\nif __name__ == '__main__':\n"
                                            "    sys.exit(main())\n")
    _write(site / "invoice" / "__init__.py", "")
    _write(site / "invoice" / "cli.py", "from invoice.flow import graph\ndef main(): pass\n")
    _write(site / "invoice" / "flow.py", "from langgraph.prebuilt import create_react_agent\n")
    _write(site / "requests" / "__init__.py", "from langgraph import nothing\n")  # not the app's: never read
    project = _read(_record([str(venv / "bin" / "python3"), str(venv / "bin" / "invoice-worker")], "/"))
    assert project is not None and project.entry == "invoice-worker" and project.root == str(root)
    assert [m for m, _ in project.imports] == ["langgraph.prebuilt"]
    assert ("pypi", "langgraph", "1.2.24", str(venv)) in project.packages


def test_an_editable_install_puts_its_source_folder_on_the_path(tmp_path: Path) -> None:
    source = tmp_path / "checkout" / "src"
    _write(source / "triage" / "__init__.py", "")
    _write(source / "triage" / "run.py", "from triage import graph\n")
    _write(source / "triage" / "graph.py", "import autogen_agentchat.agents\n")
    site = _venv(tmp_path / "venv", {"autogen-agentchat": "0.7.0"})
    _write(site / "__editable__.triage-0.1.pth", f"{source}\n")
    record = _record([str(tmp_path / "venv" / "bin" / "python"), "-m", "triage.run"], "/")
    project = _read(record)
    assert project is not None and project.root == str(tmp_path / "checkout")
    assert ("autogen_agentchat.agents", "src/triage/graph.py") in project.imports


def test_a_jupyter_kernel_reads_its_folders_modules_and_notebooks(tmp_path: Path) -> None:
    folder = tmp_path / "analysis"
    notebook = {"cells": [{"cell_type": "code", "source": ["from pydantic_ai import Agent\n",
                                                           "agent = Agent('openai:gpt-4o')\n"]}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    _write(folder / "explore.ipynb", json.dumps(notebook))
    _write(folder / "helpers.py", "import pandas\n")
    argv = ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "/root/.local/share/jupyter/runtime/kernel-1.json"]
    project = _read(_record(argv, folder))
    assert project is not None and project.entry == "jupyter kernel" and project.root == str(folder)
    assert ("pydantic_ai", "explore.ipynb") in project.imports and project.models == ("gpt-4o",)


@pytest.fixture
def node_service(tmp_path: Path) -> Path:
    root = tmp_path / "ts-agent"
    _write(root / "package.json", json.dumps({"name": "ts-agent", "scripts": {"start": "tsx src/agent.ts"},
                                              "main": "dist/index.js",
                                              "dependencies": {"@langchain/langgraph": "^0.4.0", "ai": "^5.0.0",
                                                               "express": "^4.0.0"}}))
    _write(root / "node_modules" / "@langchain" / "langgraph" / "package.json",
           json.dumps({"name": "@langchain/langgraph", "version": "0.4.9"}))
    _write(root / "src" / "agent.ts", 'import { graph } from "./graph.js";\nimport express from "express";\n')
    _write(root / "src" / "graph.ts", 'import { StateGraph } from "@langchain/langgraph";\n'
                                      'const model = "claude-sonnet-4-5";\n')
    _write(root / "dist" / "index.js", 'const { generateText } = require("ai");\nrequire("./graph");\n')
    _write(root / "dist" / "graph.js", 'const lg = require("@langchain/langgraph");\n')
    return root


@pytest.mark.parametrize(("argv", "entry", "imported"), [
    (["node", "dist/index.js"], "dist/index.js", {"ai", "@langchain/langgraph"}),
    (["/usr/bin/node", "--enable-source-maps", "{root}/dist/index.js"], "dist/index.js", {"ai", "@langchain/langgraph"}),
    (["node", "{root}/node_modules/.bin/tsx", "src/agent.ts"], "src/agent.ts", {"@langchain/langgraph"}),
    (["/usr/bin/node", "--require", "{root}/node_modules/tsx/dist/preflight.cjs", "--import",
      "file://{root}/node_modules/tsx/dist/loader.mjs", "src/agent.ts"], "src/agent.ts", {"@langchain/langgraph"}),
    (["npm start"], "npm start", {"ai", "@langchain/langgraph"}),
    (["npm start", "", "", ""], "npm start", {"ai", "@langchain/langgraph"}),  # as /proc shows npm's new title
    (["node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "run", "start"], "npm run start",
     {"ai", "@langchain/langgraph"}),
])
def test_node_services_resolve_to_their_package(node_service: Path, argv: list[str], entry: str,
                                                imported: set[str]) -> None:
    record = _record([a.format(root=node_service) for a in argv], node_service, exe="/usr/bin/node")
    assert language(record) == "node"
    project = _read(record)
    assert project is not None and project.kind == "node" and project.root == str(node_service)
    assert project.entry == entry
    assert _modules(project) == imported
    assert ("npm", "@langchain/langgraph", "0.4.9", "node_modules") in project.packages
    assert ("npm", "ai", "^5.0.0", "package.json") in project.packages  # not installed: the declared range
    assert all(name != "express" for _, name, _, _ in project.packages)


def test_a_node_project_whose_node_modules_hold_no_framework_has_its_code_left_unread(tmp_path: Path) -> None:
    root = tmp_path / "web"
    _write(root / "package.json", json.dumps({"name": "web", "dependencies": {"express": "^4"}}))
    _write(root / "server.js", 'const { StateGraph } = require("@langchain/langgraph");\n')  # would throw
    record = _record(["node", "server.js"], root, exe="/usr/bin/node")
    project = _read(record)
    assert project is not None and project.imports == () and project.packages == ()
    # hoisted into a monorepo's node_modules above it, undeclared: now it can require it
    _write(tmp_path / "node_modules" / "@langchain" / "langgraph" / "package.json", '{"version": "1.7.3"}')
    project = _read(record)
    assert project is not None and project.imports == (("@langchain/langgraph", "server.js"),)


def test_what_is_no_project_of_its_own_resolves_to_none(tmp_path: Path) -> None:
    assert parse_node(["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], str(tmp_path)) is None
    assert parse_node(["node", "-e", "setInterval(()=>{},1000)"], str(tmp_path)) is None
    assert parse_node(["npx", "n8n"], str(tmp_path)) is None
    assert parse_node(["npx", "-y", "@modelcontextprotocol/server-memory"], str(tmp_path)) is None
    assert parse_python(["python3"], str(tmp_path)) is None
    assert parse_python(["python3", "-c", "import time"], str(tmp_path)) is None
    assert _read(_record(["/usr/bin/bash", "-c", "sleep 1"], tmp_path, exe="/usr/bin/bash")) is None


def test_an_interpreter_with_no_framework_on_its_path_has_its_code_left_unread(tmp_path: Path) -> None:
    """Its code cannot import a framework its path does not hold: the project is named, its files not read."""
    _write(tmp_path / "svc" / "__init__.py", "")
    _write(tmp_path / "svc" / "main.py", "from langgraph.graph import StateGraph\n")  # would fail to import
    venv = tmp_path / "venv"
    _venv(venv, {"requests": "2.32.0"})
    _write(venv / "lib" / "python3.11" / "site-packages" / "requests" / "__init__.py", "")
    project = _read(_record([str(venv / "bin" / "python"), "-m", "svc.main"], tmp_path))
    assert project is not None and project.entry == "svc.main" and project.imports == ()
    _write(tmp_path / "langgraph" / "__init__.py", "")  # vendored into the project: now it can
    project = _read(_record([str(venv / "bin" / "python"), "-m", "svc.main"], tmp_path))
    assert project is not None and project.imports == (("langgraph.graph", "svc/main.py"),)


def test_a_project_without_framework_imports_has_none(tmp_path: Path) -> None:
    _write(tmp_path / "svc" / "__init__.py", "")
    _write(tmp_path / "svc" / "main.py", "import json, os\nfrom svc import util\n")
    _write(tmp_path / "svc" / "util.py", "import logging\n")
    project = _read(_record([sys.executable, "-m", "svc.main"], tmp_path))
    assert project is not None and project.imports == () and project.entry == "svc.main"


def test_native_libraries_in_a_maps_file() -> None:
    maps = (b"7f00-7f01 r-xp 00000000 08:01 123 /srv/app/.venv/lib/python3.11/site-packages/tiktoken/"
            b"_tiktoken.cpython-311-x86_64-linux-gnu.so\n"
            b"7f02-7f03 r-xp 00000000 08:01 124 /srv/app/.venv/lib/python3.11/site-packages/tokenizers/"
            b"tokenizers.abi3.so\n"
            b"7f04-7f05 r-xp 00000000 08:01 125 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
            b"7f06-7f07 rw-p 00000000 00:00 0 [heap]\n")
    assert libraries_in(maps) == (("tiktoken", "_tiktoken.cpython-311-x86_64-linux-gnu.so"),
                                  ("tokenizers", "tokenizers.abi3.so"))
    assert libraries_in(b"garbage\x00\xff no paths") == ()


def test_a_chrooted_process_is_read_through_its_root_as_this_host_reaches_it(tmp_path: Path, spawn: Any) -> None:
    """A process chrooted into a folder (a container's root the host can see) names its files by its own
    paths: they are read below that root, never at the same path on the host."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("chroot"):
        pytest.skip("needs root, util-linux's unshare and coreutils' chroot")
    import psutil

    from endpoint.scan.sensors.processes import iter_processes, read_details

    newroot = tmp_path / "root"
    binds = [d for d in ("usr", "lib", "lib64", "bin") if os.path.isdir(f"/{d}") and not os.path.islink(f"/{d}")]
    for folder in binds:
        (newroot / folder).mkdir(parents=True)
    for folder in ("lib", "lib64", "bin"):  # a merged-/usr system's links, as they are
        if os.path.islink(f"/{folder}"):
            os.symlink(os.readlink(f"/{folder}"), newroot / folder)
    agent = newroot / "srv" / "agent"
    _write(agent / "run.py", "import time\ntime.sleep(120)\nfrom app.graph import graph\n")
    _write(agent / "app" / "__init__.py", "")
    _write(agent / "app" / "graph.py", "from langgraph.graph import StateGraph\ngraph = StateGraph(dict)\n")
    _write(agent / "langgraph" / "__init__.py", "")  # vendored: its interpreter's path holds the framework
    mounts = " && ".join(f"mount --bind /{d} {newroot}/{d}" for d in binds)
    started = spawn(["unshare", "--mount", "--fork", "sh", "-c",
                     f"{mounts} && exec chroot {newroot} sh -c 'cd /srv/agent && exec /usr/bin/python3 /srv/agent/run.py'"],
                    cwd=tmp_path)
    deadline = time.monotonic() + 20
    found: list[int] = []
    def runs_the_agent(child: psutil.Process) -> bool:
        try:
            return "/srv/agent/run.py" in child.cmdline()
        except psutil.Error:  # a mount child that exited meanwhile (a zombie) or is gone
            return False

    while not found and time.monotonic() < deadline:
        found = [c.pid for c in psutil.Process(started.pid).children(recursive=True) if runs_the_agent(c)]
        time.sleep(0.1)
    assert found, "the chrooted interpreter did not start"
    [record] = [r for r in iter_processes(LIB.credential_kind, pids=found, read_env=False)
                if isinstance(r, ProcessRecord)]
    assert record.cmdline == ["/usr/bin/python3", "/srv/agent/run.py"]
    assert read_details(record, LIB.credential_kind, projects=ProjectReader(interests_of(LIB), maps=False)) is None
    assert record.project is not None and record.project.root == str(agent)
    assert (record.project.entry, record.project.imports) == ("run.py", (("langgraph.graph", "app/graph.py"),))
    # read at its paths as the host has them, it would be another project (or none): here, nothing
    blind = ProjectReader(interests_of(LIB), maps=False, proc_roots=False).read(record)
    assert blind is not None and blind.imports == () and blind.entry == "/srv/agent/run.py"
