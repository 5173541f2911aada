"""n8n 2's workflow tables, as a real n8n 2.8 creates them: what an active workflow runs is its published
version, and archived workflows are n8n's bin.

Since n8n 2 an active workflow runs the version it published (``workflow_entity.activeVersionId``, a row of
``workflow_history``), while ``workflow_entity.nodes`` holds the draft being edited; since 1.9x a deleted
workflow is first archived (``isArchived``). The tables here use the columns n8n 2.8.4 made in a real
database (tests/e2e/test_n8n_real.py runs that n8n); an older database without those columns is read too.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import signatures
from endpoint.scan.evidence import ProcessRecord
from endpoint.scan.projects import ProjectReader, interests_of

LIB = signatures.load()

# the columns n8n 2.8.4 gives these tables in SQLite (its foreign keys and defaults left out)
N8N2_WORKFLOWS = ('CREATE TABLE "workflow_entity" ("id" varchar(36) PRIMARY KEY NOT NULL, "name" varchar(128) NOT NULL, '
                  '"active" boolean NOT NULL, "nodes" text, "connections" text, "settings" text, "staticData" text, '
                  '"pinData" text, "versionId" varchar(36) NOT NULL, "triggerCount" integer DEFAULT (0), "meta" text, '
                  '"parentFolderId" varchar(36), "createdAt" datetime(3), "updatedAt" datetime(3), '
                  '"isArchived" boolean NOT NULL DEFAULT (FALSE), "versionCounter" integer NOT NULL DEFAULT (1), '
                  '"description" text, "activeVersionId" varchar(36))')
N8N2_HISTORY = ('CREATE TABLE "workflow_history" ("versionId" varchar(36) PRIMARY KEY NOT NULL, '
                '"workflowId" varchar(36) NOT NULL, "authors" varchar(255) NOT NULL, "createdAt" datetime(3), '
                '"updatedAt" datetime(3), "nodes" text NOT NULL, "connections" text NOT NULL, "name" varchar(128), '
                '"autosaved" boolean NOT NULL DEFAULT (false), "description" text)')
# an n8n from before archiving and publishing (1.8x)
N8N1_WORKFLOWS = ('CREATE TABLE "workflow_entity" ("id" varchar(36) PRIMARY KEY NOT NULL, "name" varchar(128) NOT NULL, '
                  '"active" boolean NOT NULL, "nodes" text, "connections" text, "settings" text, "staticData" text, '
                  '"pinData" text, "versionId" char(36), "triggerCount" integer DEFAULT 0, "meta" text)')


def _node(name: str, kind: str, credentials: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": name, "name": name, "type": kind, "typeVersion": 1, "position": [0, 0],
                            "parameters": {}}
    if credentials:
        node["credentials"] = credentials
    return node


AGENT_ON_OPENAI = [_node("AI Agent", "@n8n/n8n-nodes-langchain.agent"),
                   _node("OpenAI", "@n8n/n8n-nodes-langchain.lmChatOpenAi", {"openAiApi": {"id": "c1", "name": "FAKE"}})]
AGENT_ON_CLAUDE = [_node("AI Agent", "@n8n/n8n-nodes-langchain.agent"),
                   _node("Claude", "@n8n/n8n-nodes-langchain.lmChatAnthropic", {"anthropicApi": {"id": "c2", "name": "FAKE"}})]
NO_AI = [_node("Schedule", "n8n-nodes-base.scheduleTrigger"), _node("HTTP", "n8n-nodes-base.httpRequest")]


def _n8n(home: Path) -> ProcessRecord:
    return ProcessRecord(pid=os.getpid(), ppid=1, name="node", exe="/usr/bin/node",
                         cmdline=["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], user="alice",
                         uid=os.getuid(), create_time=0.0, env_values={"N8N_USER_FOLDER": str(home)})


def _read(home: Path) -> list[tuple[str, bool, int, tuple[str, ...], tuple[str, ...]]]:
    project = ProjectReader(interests_of(LIB), maps=False).read(_n8n(home))
    assert project is not None and project.errors == (), project
    return sorted(project.workflows)


def test_an_active_n8n_2_workflow_is_read_as_published_and_archived_ones_are_left_out(tmp_path: Path) -> None:
    (tmp_path / ".n8n").mkdir()
    db = sqlite3.connect(tmp_path / ".n8n" / "database.sqlite")
    db.execute(N8N2_WORKFLOWS)
    db.execute(N8N2_HISTORY)
    rows = [  # id, name, active, draft nodes, archived, published version's nodes (None: not published)
        ("w1", "Support agent", True, NO_AI, False, AGENT_ON_OPENAI),  # the agent runs; the draft dropped it
        ("w2", "Nightly export", True, AGENT_ON_CLAUDE, False, NO_AI),  # an agent in the draft only: none runs
        ("w3", "Draft replies", False, AGENT_ON_CLAUDE, False, None),  # never published: its draft is all it is
        ("w4", "Old triage", False, AGENT_ON_OPENAI, True, None),  # archived: in n8n's bin
    ]
    for wid, name, active, draft, archived, published in rows:
        version = f"{wid}-v1" if published is not None else None
        db.execute('INSERT INTO workflow_entity (id, name, active, nodes, connections, "versionId", "isArchived", '
                   '"activeVersionId") VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                   (wid, name, active, json.dumps(draft), "{}", f"{wid}-draft", archived, version))
        db.execute("INSERT INTO workflow_history (\"versionId\", \"workflowId\", authors, nodes, connections) "
                   "VALUES (?, ?, 'import', ?, '{}')", (f"{wid}-draft", wid, json.dumps(draft)))
        if published is not None:
            db.execute("INSERT INTO workflow_history (\"versionId\", \"workflowId\", authors, nodes, connections) "
                       "VALUES (?, ?, 'import', ?, '{}')", (version, wid, json.dumps(published)))
    db.commit()
    db.close()
    assert _read(tmp_path) == [("Draft replies", False, 1, ("anthropic",), ("anthropicApi",)),
                               ("Support agent", True, 1, ("openai",), ("openAiApi",))]


def test_an_n8n_from_before_archiving_and_publishing_is_read_from_its_nodes(tmp_path: Path) -> None:
    (tmp_path / ".n8n").mkdir()
    db = sqlite3.connect(tmp_path / ".n8n" / "database.sqlite")
    db.execute(N8N1_WORKFLOWS)
    for wid, name, active, nodes in (("1", "Support agent", 1, AGENT_ON_OPENAI), ("2", "Nightly export", 1, NO_AI)):
        db.execute("INSERT INTO workflow_entity (id, name, active, nodes) VALUES (?, ?, ?, ?)",
                   (wid, name, active, json.dumps(nodes)))
    db.commit()
    db.close()
    assert _read(tmp_path) == [("Support agent", True, 1, ("openai",), ("openAiApi",))]
