"""n8n's workflows with AI agent nodes, read from a real SQLite database in n8n's own table shape.

The database is written here with n8n's ``workflow_entity`` columns and node JSON as n8n stores them
(``@n8n/n8n-nodes-langchain.agent``, ``.lmChatOpenAi``, a node's ``credentials`` map); the process is a
record shaped as ``n8n start`` is. A real n8n is not run: ``npm install n8n`` fetches one dependency
(xlsx) from cdn.sheetjs.com rather than the npm registry, which the test machines cannot reach.
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
AGENT = "@n8n/n8n-nodes-langchain.agent"


def _node(name: str, kind: str, credentials: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": name, "name": name, "type": kind, "typeVersion": 1, "position": [0, 0],
                            "parameters": {}}
    if credentials:
        node["credentials"] = credentials
    return node


def _database(folder: Path, workflows: list[tuple[str, bool, list[dict[str, Any]]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "database.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE workflow_entity (id varchar(36) PRIMARY KEY, name varchar(128) NOT NULL, "
               "active boolean NOT NULL, nodes text, connections text, settings text, staticData text, "
               "pinData text, versionId char(36), triggerCount integer DEFAULT 0, meta text, "
               "createdAt datetime, updatedAt datetime, isArchived boolean DEFAULT 0)")
    db.execute("CREATE TABLE credentials_entity (id varchar(36) PRIMARY KEY, name varchar(128), data text, "
               "type varchar(128))")
    db.execute("INSERT INTO credentials_entity VALUES ('c1', 'OpenAi account', 'FAKE-encrypted-blob', 'openAiApi')")
    for i, (name, active, nodes) in enumerate(workflows):
        db.execute("INSERT INTO workflow_entity (id, name, active, nodes, connections) VALUES (?, ?, ?, ?, '{}')",
                   (f"w{i}", name, active, json.dumps(nodes)))
    db.commit()
    db.close()
    return path


def _n8n(folder: Path, uid: int | None = None) -> ProcessRecord:
    return ProcessRecord(pid=os.getpid(), ppid=1, name="node", exe="/usr/bin/node",
                         cmdline=["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], user="alice",
                         uid=os.getuid() if uid is None else uid, create_time=0.0,
                         env_values={"N8N_USER_FOLDER": str(folder), "HOME": "/nonexistent"})


WORKFLOWS = [
    ("Invoice triage", True, [_node("Webhook", "n8n-nodes-base.webhook"),
                              _node("AI Agent", AGENT),
                              _node("OpenAI Chat Model", "@n8n/n8n-nodes-langchain.lmChatOpenAi",
                                    {"openAiApi": {"id": "c1", "name": "OpenAi account"}}),
                              _node("Gmail", "n8n-nodes-base.gmailTool",
                                    {"gmailOAuth2": {"id": "c2", "name": "Gmail account"}})]),
    ("Nightly export", True, [_node("Cron", "n8n-nodes-base.scheduleTrigger"),
                              _node("HTTP", "n8n-nodes-base.httpRequest")]),
    ("Draft replies", False, [_node("Agent", AGENT), _node("Claude", "@n8n/n8n-nodes-langchain.lmChatAnthropic",
                                                           {"anthropicApi": {"id": "c3", "name": "Anthropic"}})]),
]


def test_n8n_workflows_with_ai_agent_nodes_are_counted_and_named(tmp_path: Path) -> None:
    _database(tmp_path / ".n8n", WORKFLOWS)
    record = _n8n(tmp_path)
    record.project = ProjectReader(interests_of(LIB), maps=False).read(record)
    assert record.project is not None and record.project.errors == ()
    assert record.project.workflows == (("Invoice triage", True, 1, ("openai",), ("openAiApi", "gmailOAuth2")),
                                        ("Draft replies", False, 1, ("anthropic",), ("anthropicApi",)))
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([record])
    [sighting] = engine.result("2026-01-01T00:00:00+00:00")
    assert (sighting["signature"], sighting["type"], sighting["name"]) == ("n8n", "enterprise",
                                                                          f"n8n in {tmp_path / '.n8n'}")
    details = [e["detail"] for e in sighting["evidence"]]
    assert "workflow 'Invoice triage' (active): 1 AI agent node; providers openai; credentials openAiApi, " \
           "gmailOAuth2" in details
    project = sighting["project"]
    assert project is not None and project["providers"] == ["openai", "anthropic"]
    assert [w["name"] for w in project["workflows"]] == ["Invoice triage", "Draft replies"]
    assert "FAKE-encrypted-blob" not in json.dumps(sighting), "a credential's data is never read"


def test_an_n8n_database_that_is_not_its_users_or_not_a_database_is_one_error(tmp_path: Path) -> None:
    elsewhere = _database(tmp_path / "other", WORKFLOWS)
    (tmp_path / "a" / ".n8n").mkdir(parents=True)
    os.symlink(elsewhere, tmp_path / "a" / ".n8n" / "database.sqlite")
    junk = tmp_path / "b" / ".n8n"
    junk.mkdir(parents=True)
    (junk / "database.sqlite").write_bytes(os.urandom(8192))
    foreign = _database(tmp_path / "c" / ".n8n", WORKFLOWS)
    os.chown(foreign, 54321, 54321)
    reader = ProjectReader(interests_of(LIB), maps=False)
    for folder, code in (("a", "symlink_escape"), ("b", "unreadable"), ("c", "not_owner")):
        project = reader.read(_n8n(tmp_path / folder))
        assert project is not None and project.workflows == (), folder
        assert [e[1] for e in project.errors] == [code], (folder, project.errors)


def test_a_folder_named_like_uri_options_opens_its_own_database_and_creates_nothing(tmp_path: Path) -> None:
    # SQLite reads "?…" in a file: URI as options: a folder named so must not make the root scan open (and
    # with mode=rwc create) the file the name points at
    target = tmp_path / "z"
    folder = tmp_path / "z?mode=rwc&x="
    _database(folder / ".n8n", WORKFLOWS)
    project = ProjectReader(interests_of(LIB), maps=False).read(_n8n(folder))
    assert not target.exists(), "the scan created a file the folder's name chose"
    assert project is not None and [w[0] for w in project.workflows] == ["Invoice triage", "Draft replies"]


def test_an_n8n_without_a_database_is_still_named_after_its_folder(tmp_path: Path) -> None:
    record = _n8n(tmp_path)
    record.project = ProjectReader(interests_of(LIB), maps=False).read(record)
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([record])
    [sighting] = engine.result("2026-01-01T00:00:00+00:00")
    assert sighting["name"] == f"n8n in {tmp_path / '.n8n'}" and sighting["project"]["workflows"] == []


def _export_command(option: str, cwd: Path) -> ProcessRecord:
    """``n8n export:workflow …`` as the n8n CLI is run (the process as the sensor records it)."""
    return ProcessRecord(pid=os.getpid(), ppid=1, name="node", exe="/usr/bin/node",
                         cmdline=["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "export:workflow", "--all",
                                  "--separate", option], user="alice", uid=os.getuid(), create_time=0.0,
                         env_values={"HOME": "/nonexistent"}, cwd=str(cwd))


def _exported(name: str, active: bool, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    # the fields n8n's export:workflow writes for a workflow (credentials are references: id and name only)
    return {"name": name, "active": active, "nodes": nodes, "connections": {}, "settings": {"executionOrder": "v1"},
            "id": name.lower().replace(" ", "-"), "tags": [], "pinData": {}, "versionId": "v1"}


def test_n8n_workflows_are_read_from_an_export_folder_as_from_its_database(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    for i, (name, active, nodes) in enumerate(WORKFLOWS):  # --separate: one file per workflow
        (folder / f"{i}.json").write_text(json.dumps(_exported(name, active, nodes)))
    (folder / "notes.txt").write_text("not an export")
    (folder / "broken.json").write_text("{not json")
    (folder / "escape.json").symlink_to(tmp_path / "elsewhere.json")  # out of the folder: refused
    (tmp_path / "elsewhere.json").write_text(json.dumps(_exported("Elsewhere", True, WORKFLOWS[0][2])))
    reader = ProjectReader(interests_of(LIB), maps=False)
    record = _export_command("--output=flows", tmp_path)  # relative to its working folder
    record.project = reader.read(record)
    assert record.project is not None and record.project.root == str(folder)
    assert record.project.workflows == (("Invoice triage", True, 1, ("openai",), ("openAiApi", "gmailOAuth2")),
                                        ("Draft replies", False, 1, ("anthropic",), ("anthropicApi",)))
    assert sorted(e[1] for e in record.project.errors) == ["symlink_escape", "syntax"]
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([record])
    [sighting] = engine.result("2026-01-01T00:00:00+00:00")
    assert sighting["signature"] == "n8n" and sighting["name"] == f"n8n export in {folder}"
    assert "workflow 'Invoice triage' (active): 1 AI agent node; providers openai; credentials openAiApi, " \
           "gmailOAuth2" in [e["detail"] for e in sighting["evidence"]]
    # --all without --separate: one file holding the list
    single = tmp_path / "all.json"
    single.write_text(json.dumps([_exported(n, a, nodes) for n, a, nodes in WORKFLOWS]))
    project = reader.read(_export_command(f"--output={single}", tmp_path / "elsewhere-cwd"))
    assert project is not None and [w[0] for w in project.workflows] == ["Invoice triage", "Draft replies"]


def test_an_n8n_export_is_read_within_its_bounds(tmp_path: Path) -> None:
    from endpoint.scan.projects import Budget, Reads
    from endpoint.scan.projects.n8n import EXPORT_FILES, read_export

    folder = tmp_path / "many"
    folder.mkdir()
    agent = _exported("Agent", True, WORKFLOWS[0][2])
    for i in range(EXPORT_FILES + 20):
        (folder / f"{i:04}.json").write_text(json.dumps(agent))
    reads = Reads(Budget(), os.getuid(), files=10_000, bytes_=64 << 20)
    assert len(read_export(str(folder), reads)) == EXPORT_FILES
    big = tmp_path / "big"
    big.mkdir()
    (big / "huge.json").write_text(json.dumps(_exported("Huge", True, [*WORKFLOWS[0][2]] * 20_000)))
    reads = Reads(Budget(), os.getuid())
    assert read_export(str(big), reads) == [] and [e[1] for e in reads.errors] == ["too_large"]
    os.mkfifo(big / "fifo.json")  # never opened: an open would block
    reads = Reads(Budget(), os.getuid())
    assert read_export(str(big), reads) == []
    assert sorted(e[1] for e in reads.errors) == ["not_regular", "too_large"]
