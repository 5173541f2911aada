"""Flowise's and Langflow's flows with AI agent nodes, read from real SQLite stores in their own table shapes.

The stores are written here with Flowise's ``chat_flow`` and Langflow's ``flow`` tables and flow JSON as
those platforms keep them; the processes are records shaped as ``flowise start`` and ``langflow run`` are.
A secret a Langflow flow keeps in a ``password`` field's value is never read.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import signatures
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import ProcessRecord
from endpoint.scan.projects import ProjectReader, interests_of

LIB = signatures.load()
FAKE_KEY = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"


def _record(argv: list[str], env: dict[str, str], exe: str) -> ProcessRecord:
    return ProcessRecord(pid=os.getpid(), ppid=1, name=os.path.basename(argv[0])[:15], exe=exe, cmdline=argv,
                         user="alice", uid=os.getuid(), create_time=0.0, env_values=env)


def _sighting(record: ProcessRecord) -> dict[str, Any]:
    record.project = ProjectReader(interests_of(LIB), maps=False).read(record)
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([record])
    [sighting] = engine.result("2026-01-01T00:00:00+00:00")
    return dict(sighting)


def _flowise_node(name: str, category: str, credentials: list[str] | None = None) -> dict[str, Any]:
    params = [{"label": "Connect Credential", "name": "credential", "type": "credential",
               "credentialNames": credentials}] if credentials else []
    return {"id": f"{name}_0", "type": "customNode",
            "data": {"id": f"{name}_0", "name": name, "label": name, "category": category, "inputParams": params,
                     "credential": "7f1c6c1e-0000-0000-0000-000000000000"}}


def test_flowise_agentflows_are_counted_and_named(tmp_path: Path) -> None:
    folder = tmp_path / "flowise-data"
    folder.mkdir()
    db = sqlite3.connect(folder / "database.sqlite")
    db.execute("CREATE TABLE chat_flow (id varchar PRIMARY KEY, name varchar NOT NULL, flowData text NOT NULL, "
               "deployed boolean, isPublic boolean, apikeyid varchar, chatbotConfig text, type varchar, "
               "createdDate datetime, updatedDate datetime)")
    flows = [("Support agent", True, [_flowise_node("toolAgent", "Agents"),
                                      _flowise_node("chatOpenAI", "Chat Models", ["openAIApi"]),
                                      _flowise_node("bufferMemory", "Memory")]),
             ("FAQ retrieval", False, [_flowise_node("conversationalRetrievalQAChain", "Chains"),
                                       _flowise_node("chatOpenAI", "Chat Models", ["openAIApi"])])]
    for i, (name, deployed, nodes) in enumerate(flows):
        db.execute("INSERT INTO chat_flow (id, name, flowData, deployed, type) VALUES (?, ?, ?, ?, 'CHATFLOW')",
                   (f"f{i}", name, json.dumps({"nodes": nodes, "edges": []}), deployed))
    db.commit()
    db.close()
    record = _record(["node", "/usr/local/lib/node_modules/flowise/bin/run", "start"],
                     {"DATABASE_PATH": str(folder), "HOME": "/nonexistent"}, "/usr/bin/node")
    sighting = _sighting(record)
    assert (sighting["signature"], sighting["type"], sighting["name"]) == ("flowise", "enterprise",
                                                                          f"flowise in {folder}")
    assert sighting["project"]["workflows"] == [{"name": "Support agent", "active": True, "agent_nodes": 1,
                                                 "providers": ["openai"], "credentials": ["openAIApi"]}]
    assert "workflow 'Support agent' (active): 1 AI agent node; providers openai; credentials openAIApi" in [
        e["detail"] for e in sighting["evidence"]]


def test_langflow_flows_are_counted_and_named_and_a_secret_field_is_never_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = home / ".cache" / "langflow"
    folder.mkdir(parents=True)
    agent = {"id": "Agent-1", "data": {"type": "Agent", "node": {"template": {
        "agent_llm": {"value": "OpenAI", "options": ["OpenAI", "Anthropic"]},
        "api_key": {"password": True, "value": FAKE_KEY, "display_name": "OpenAI API Key"},
        "model_name": {"value": "gpt-4o-mini"}}}}}
    claude = {"id": "AnthropicModel-1", "data": {"type": "AnthropicModel", "node": {"template": {
        "api_key": {"password": True, "value": "ANTHROPIC_API_KEY", "load_from_db": True}}}}}
    db = sqlite3.connect(folder / "langflow.db")
    db.execute("CREATE TABLE flow (id char(32) PRIMARY KEY, name varchar NOT NULL, description text, data json, "
               "is_component boolean, updated_at datetime, user_id char(32), folder_id char(32))")
    db.execute("INSERT INTO flow (id, name, data) VALUES ('a', 'Lead router', ?)",
               (json.dumps({"nodes": [agent, claude], "edges": []}),))
    db.execute("INSERT INTO flow (id, name, data) VALUES ('b', 'Prompt playground', ?)",
               (json.dumps({"nodes": [claude], "edges": []}),))
    db.commit()
    db.close()
    record = _record(["/opt/langflow/.venv/bin/python", "/opt/langflow/.venv/bin/langflow", "run"],
                     {"HOME": str(home)}, "/usr/bin/python3.11")
    sighting = _sighting(record)
    assert (sighting["signature"], sighting["name"]) == ("langflow", f"langflow in {folder}")
    assert sighting["project"]["workflows"] == [
        {"name": "Lead router", "active": True, "agent_nodes": 1, "providers": ["openai", "anthropic"],
         "credentials": ["Agent.api_key", "AnthropicModel.api_key"]}]
    assert FAKE_KEY not in json.dumps(sighting) and FAKE_KEY[:24] not in json.dumps(sighting)
