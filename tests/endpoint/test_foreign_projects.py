"""A user's files never steer the root scanner outside that user's own space (issue 9, item 2).

Each test builds a scan root with two homes, alice's and bob's, where alice's own files name bob's
folders as projects of hers (``~/.claude.json`` ``projects``, VS Code ``workspace.json``, opencode's
worktrees), link to them, or climb out with ``..``; the real ``agentroster scan --root … --json`` runs
on it. Nothing of bob's may be read for alice: each such project is one ``foreign_project`` error, bob's
servers stay bob's, and no home reaching a file first takes it from its owner. Where the tests run as
root the two homes get distinct uids (as on a real disk image), else they share the tester's uid, and
both must hold.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import AGENTROSTER, TESTS, run_agentroster

from endpoint.scan.evidence import ArtifactRecord, ConfigRecord, ScanError
from endpoint.scan.homes import Home, find_homes
from endpoint.scan.sensors.files import FileScan
from endpoint.service import localsock

ALICE_UID, BOB_UID = 61_001, 61_002  # uids no user of this machine has: a disk image's own
DSN_PASSWORD = "FAKEpassw0rdNotReal"
DSN = f"postgresql://payroll:{DSN_PASSWORD}@db.example.invalid/payroll"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to other uids")


def write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def servers(*names: str, dsn: bool = False) -> dict[str, Any]:
    extra = [DSN] if dsn else []
    return {"mcpServers": {n: {"command": "npx", "args": ["-y", f"@example/{n}-mcp", *extra]} for n in names}}


def chown_tree(path: Path, uid: int) -> None:
    for folder, dirs, files in os.walk(path):
        os.lchown(folder, uid, uid)
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, uid)


def build(root: Path, *, alice_projects: list[str], own_uids: bool) -> dict[str, Path]:
    """bob's payroll project (Cursor and Claude Code servers, one with a DSN) and his own Cursor config;
    alice's Cursor config and a ``~/.claude.json`` naming ``alice_projects`` as hers."""
    alice, bob = root / "home" / "alice", root / "home" / "bob"
    payroll = bob / "payroll"
    write_json(payroll / ".mcp.json", servers("payroll-db", dsn=True))
    write_json(payroll / ".cursor" / "mcp.json", servers("payroll-files"))
    (payroll / "package.json").write_text("{}")
    write_json(bob / ".cursor" / "mcp.json", servers("bob-notes"))
    write_json(alice / ".cursor" / "mcp.json", servers("alice-notes"))
    write_json(alice / ".claude.json", {"projects": {p: {"allowedTools": []} for p in alice_projects}})
    if own_uids:
        chown_tree(alice, ALICE_UID)
        chown_tree(bob, BOB_UID)
    return {"alice": alice, "bob": bob, "payroll": payroll}


def scan(root: Path) -> tuple[dict[str, Any], str]:
    done = run_agentroster("scan", "--json", "--no-processes", "--root", str(root))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stdout


def owners(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Each MCP server's name -> the users whose sightings carry it."""
    found: dict[str, set[str]] = {}
    for sighting in doc["sightings"]:
        for server in sighting["mcp_servers"]:
            found.setdefault(server["name"], set()).add(sighting["user"])
    return found


def foreign(doc: dict[str, Any]) -> list[dict[str, str]]:
    return [e for e in doc["errors"] if e["error"] == "foreign_project"]


def assert_bobs_stay_bobs(doc: dict[str, Any]) -> None:
    seen = owners(doc)
    assert seen["payroll-db"] == {"bob"} and seen["payroll-files"] == {"bob"}, seen
    assert seen["bob-notes"] == {"bob"} and seen["alice-notes"] == {"alice"}, seen
    alices = [s for s in doc["sightings"] if s["user"] == "alice"]
    assert not any("/home/bob" in json.dumps(s) for s in alices), "alice's sightings carry bob's files"


@pytest.mark.parametrize("own_uids", [pytest.param(True, marks=as_root), False], ids=["own-uids", "shared-uid"])
def test_a_project_in_another_home_is_a_foreign_project_and_its_servers_stay_its_owners(tmp_path, own_uids):
    build(tmp_path, alice_projects=["/home/bob/payroll"], own_uids=own_uids)
    doc, text = scan(tmp_path)
    assert_bobs_stay_bobs(doc)
    [error] = foreign(doc)
    assert error["where"] == "/home/bob/payroll"
    assert "/home/alice/.claude.json" in error["detail"] and "alice" in error["detail"]
    assert DSN_PASSWORD not in text


@pytest.mark.parametrize("own_uids", [pytest.param(True, marks=as_root), False], ids=["own-uids", "shared-uid"])
def test_a_path_with_dot_dot_is_resolved_before_it_is_judged(tmp_path, own_uids):
    build(tmp_path, alice_projects=["/home/alice/../bob/payroll", "/home/alice/../../../../../../../etc"],
          own_uids=own_uids)
    (tmp_path / "etc").mkdir()
    write_json(tmp_path / "etc" / ".mcp.json", servers("etc-server"))
    doc, _ = scan(tmp_path)
    assert_bobs_stay_bobs(doc)
    assert "etc-server" not in owners(doc)
    assert len(foreign(doc)) == 2, doc["errors"]


@pytest.mark.parametrize("own_uids", [pytest.param(True, marks=as_root), False], ids=["own-uids", "shared-uid"])
def test_a_project_that_is_a_link_into_another_home_is_foreign(tmp_path, own_uids):
    paths = build(tmp_path, alice_projects=["/home/alice/work"], own_uids=own_uids)
    (paths["alice"] / "work").symlink_to("../bob/payroll")
    (paths["alice"] / "work2").symlink_to("../../home/bob/payroll")
    # the editors' records of projects, too
    write_json(paths["alice"] / ".config/Code/User/workspaceStorage/0123abcd/workspace.json",
               {"folder": "file:///home/alice/work2"})
    write_json(paths["alice"] / ".config/Code/User/workspaceStorage/4567ef01/workspace.json",
               {"folder": "file:///home/bob/payroll/"})
    write_json(paths["alice"] / ".local/share/opencode/storage/project/p1.json", {"worktree": "/home/bob/payroll"})
    doc, text = scan(tmp_path)
    assert_bobs_stay_bobs(doc)
    recorders = {e["detail"].split(" as a project")[0] for e in foreign(doc)}
    assert recorders == {"recorded in /home/alice/.claude.json",
                         "recorded in /home/alice/.config/Code/User/workspaceStorage/0123abcd/workspace.json",
                         "recorded in /home/alice/.config/Code/User/workspaceStorage/4567ef01/workspace.json",
                         "recorded in /home/alice/.local/share/opencode/storage/project/p1.json"}, foreign(doc)
    assert DSN_PASSWORD not in text


@pytest.mark.parametrize("own_uids", [pytest.param(True, marks=as_root), False], ids=["own-uids", "shared-uid"])
def test_a_link_to_another_users_config_neither_reads_it_nor_hides_it_from_its_owner(tmp_path, own_uids):
    paths = build(tmp_path, alice_projects=[], own_uids=own_uids)
    # alice's Windsurf config is bob's Cursor config (same format), and alice's home comes first
    link = paths["alice"] / ".codeium" / "windsurf" / "mcp_config.json"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../../bob/.cursor/mcp.json")
    cursor_link = paths["alice"] / ".cursor" / "mcp.json"
    cursor_link.unlink()
    cursor_link.symlink_to("../../bob/.cursor/mcp.json")
    write_json(paths["alice"] / ".codeium" / "windsurf" / "unused.json", {})
    doc, _ = scan(tmp_path)
    seen = owners(doc)
    assert seen["bob-notes"] == {"bob"}, seen  # read from bob's home, credited to bob
    escapes = {e["where"] for e in doc["errors"] if e["error"] == "symlink_escape"}
    assert {"/home/alice/.cursor/mcp.json", "/home/alice/.codeium/windsurf/mcp_config.json"} <= escapes


@as_root
def test_a_file_is_its_owners_whichever_home_reaches_it(tmp_path):
    paths = build(tmp_path, alice_projects=["/srv/alice-app", "/srv/bob-app"], own_uids=True)
    # a hard link in alice's home to bob's file, and two folders outside the homes, one each
    os.link(paths["bob"] / ".cursor" / "mcp.json", paths["alice"] / ".codeium-mcp.json")
    (paths["alice"] / ".codeium" / "windsurf").mkdir(parents=True)
    os.rename(paths["alice"] / ".codeium-mcp.json", paths["alice"] / ".codeium" / "windsurf" / "mcp_config.json")
    write_json(tmp_path / "srv" / "alice-app" / ".mcp.json", servers("alice-app"))
    write_json(tmp_path / "srv" / "bob-app" / ".mcp.json", servers("bob-app"))
    chown_tree(tmp_path / "srv" / "alice-app", ALICE_UID)
    chown_tree(tmp_path / "srv" / "bob-app", BOB_UID)
    doc, _ = scan(tmp_path)
    seen = owners(doc)
    assert seen["bob-notes"] == {"bob"}, seen  # through alice's hard link too: still bob's
    assert seen["alice-app"] == {"alice"}, seen  # a folder of alice's outside her home is hers to name
    assert "bob-app" not in seen
    assert [e["where"] for e in foreign(doc)] == ["/srv/bob-app"]


# -- through a running daemon and its local socket, as two real users of this machine -----------------------

SYSTEM_PYTHON = "/usr/bin/python3"
ATTACKER, VICTIM = "nobody", "www-data"  # real unprivileged users every Debian has, for alice and bob (in that order)


def as_user(user: str, base: Path, socket_path: Path, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """The daemon's answers to the stdlib client (tests/localsock_client.py) run as ``user``."""
    done = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--clear-groups",
                           SYSTEM_PYTHON, str(base / "client.py"), str(socket_path), "requests",
                           *(json.dumps(r) for r in requests)], capture_output=True, text=True, timeout=45, cwd=base)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.fixture
def daemon_tree() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp dirs are root-only)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, setpriv and the system python3 to run clients as other users")
    base = Path(tempfile.mkdtemp(prefix="ar-foreign-", dir="/tmp"))
    base.chmod(0o755)
    shutil.copyfile(TESTS / "localsock_client.py", base / "client.py")
    (base / "client.py").chmod(0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(120)
def test_through_the_daemon_a_user_can_neither_list_nor_show_another_users_servers(daemon_tree):
    base = daemon_tree
    root = base / "root"
    attacker, victim = root / "home" / ATTACKER, root / "home" / VICTIM
    write_json(victim / "payroll" / ".mcp.json", servers("payroll-db", dsn=True))
    write_json(victim / "payroll" / ".cursor" / "mcp.json", servers("payroll-files"))
    write_json(victim / ".cursor" / "mcp.json", servers("victim-notes"))
    write_json(attacker / ".cursor" / "mcp.json", servers("attacker-notes"))
    write_json(attacker / ".claude.json", {"projects": {f"/home/{VICTIM}/payroll": {}}})
    (attacker / ".codeium" / "windsurf").mkdir(parents=True)
    (attacker / ".codeium" / "windsurf" / "mcp_config.json").symlink_to(f"../../../{VICTIM}/.cursor/mcp.json")
    chown_tree(attacker, pwd.getpwnam(ATTACKER).pw_uid)
    chown_tree(victim, pwd.getpwnam(VICTIM).pw_uid)
    data = base / "data"
    path = localsock.socket_path(data)
    log = (base / "daemon.log").open("w")
    child = subprocess.Popen([AGENTROSTER, "daemon", "--data-dir", str(data), "--root", str(root)],
                             env={**os.environ, "AGENTROSTER_SENSORS": "files"}, stdout=subprocess.DEVNULL, stderr=log)
    try:
        every: dict[str, Any] = {}
        for _ in range(600):  # until the first scan is in the state root reads through the socket
            if path.exists():
                every = localsock.call(path, {"op": "list"})
                if every.get("ok") and {"payroll-db", "attacker-notes"} <= {s["name"] for s in every["sightings"]}:
                    break
            assert child.poll() is None, (base / "daemon.log").read_text()
            time.sleep(0.1)
        users = {s["name"]: s["user"] for s in every["sightings"] if s["type"] == "tool_server"}
        assert users == {"payroll-db": VICTIM, "payroll-files": VICTIM, "victim-notes": VICTIM,
                         "attacker-notes": ATTACKER}, every
        payroll = next(s["id"] for s in every["sightings"] if s["name"] == "payroll-db")
        nothing = "f00dbabe0000"
        listed, shown, none = as_user(ATTACKER, base, path, {"op": "list"}, {"op": "show", "id": payroll[:12]},
                                      {"op": "show", "id": nothing})
        assert {s["user"] for s in listed["sightings"]} == {ATTACKER}
        assert {s["name"] for s in listed["sightings"]} >= {"attacker-notes"}
        assert not {"payroll-db", "payroll-files", "victim-notes"} & {s["name"] for s in listed["sightings"]}
        assert shown == {**none, "error": none["error"].replace(nothing, payroll[:12])}
        assert shown["code"] == "unknown_sighting"
        theirs, seen = as_user(VICTIM, base, path, {"op": "list"}, {"op": "show", "id": payroll[:12]})
        assert {"payroll-db", "payroll-files", "victim-notes"} <= {s["name"] for s in theirs["sightings"]}
        assert seen["ok"] and seen["sighting"]["id"] == payroll
        assert DSN_PASSWORD not in json.dumps([every, listed, theirs, seen])
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
        log.close()
    assert child.returncode == 0, (base / "daemon.log").read_text()


# -- the file sensor itself: one home rescanned alone (as the daemon does), and a live machine's users ------


@pytest.fixture(scope="module")
def lib() -> Any:
    import signatures

    return signatures.load()


def records(found: Any) -> tuple[dict[str, ConfigRecord], list[ScanError]]:
    items = list(found)
    return ({r.display_path: r for r in items if isinstance(r, ConfigRecord)},
            [r for r in items if isinstance(r, ScanError)])


def test_one_home_rescanned_alone_still_knows_the_others(lib, tmp_path):
    build(tmp_path, alice_projects=["/home/bob/payroll"], own_uids=False)  # every home has one uid
    alice = next(h for h in find_homes(str(tmp_path)) if h.user == "alice")
    configs, errors = records(FileScan(lib, str(tmp_path)).home(alice))  # as the daemon's rescan of one home
    assert set(configs) == {"/home/alice/.cursor/mcp.json", "/home/alice/.claude.json"}
    assert [(e.where, e.error) for e in errors] == [("/home/bob/payroll", "foreign_project")]


@as_root
def test_on_a_live_machine_each_file_is_its_owners_by_this_machines_users(lib):
    base = Path(tempfile.mkdtemp(prefix="ar-live-owners-", dir="/tmp"))
    try:
        attacker, victim = base / ATTACKER, base / VICTIM
        write_json(victim / "payroll" / ".mcp.json", servers("payroll-db", dsn=True))
        write_json(victim / ".cursor" / "mcp.json", servers("victim-notes"))
        write_json(base / "victim-srv" / ".mcp.json", servers("victim-srv"))
        write_json(base / "attacker-srv" / ".mcp.json", servers("attacker-srv"))
        write_json(attacker / ".claude.json", {"projects": {str(victim / "payroll"): {}, str(base / "victim-srv"): {},
                                                            str(base / "attacker-srv"): {}}})
        (attacker / ".codeium" / "windsurf").mkdir(parents=True)
        os.link(victim / ".cursor" / "mcp.json", attacker / ".codeium" / "windsurf" / "mcp_config.json")
        for folder, user in ((attacker, ATTACKER), (base / "attacker-srv", ATTACKER), (victim, VICTIM),
                             (base / "victim-srv", VICTIM)):
            chown_tree(folder, pwd.getpwnam(user).pw_uid)
        homes = [Home(str(attacker), ATTACKER, frozenset({"linux"}), str(attacker)),
                 Home(str(victim), VICTIM, frozenset({"linux"}), str(victim))]
        configs, errors = records(FileScan(lib, "/", walk_projects=False).run(homes))
        users = {path.removeprefix(str(base)): record.user for path, record in configs.items()}
        assert users == {f"/{ATTACKER}/.claude.json": ATTACKER, "/attacker-srv/.mcp.json": ATTACKER,
                         f"/{ATTACKER}/.codeium/windsurf/mcp_config.json": VICTIM,  # a hard link to the victim's
                         f"/{VICTIM}/.cursor/mcp.json": VICTIM}
        assert {e.where.removeprefix(str(base)) for e in errors if e.error == "foreign_project"} == \
            {f"/{VICTIM}/payroll", "/victim-srv"}
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("own_uids", [pytest.param(True, marks=as_root), False], ids=["own-uids", "shared-uid"])
def test_extension_and_package_folders_linked_to_another_home_are_not_listed_as_ones_own(lib, tmp_path, own_uids):
    paths = build(tmp_path, alice_projects=[], own_uids=False)
    (paths["bob"] / ".vscode" / "extensions" / "anthropic.claude-code-1.0.0").mkdir(parents=True)
    write_json(paths["bob"] / ".npm-global" / "lib" / "node_modules" / "@openai" / "codex" / "package.json",
               {"version": "0.1.0"})
    (paths["alice"] / ".vscode").mkdir()
    (paths["alice"] / ".vscode" / "extensions").symlink_to("../../bob/.vscode/extensions")
    (paths["alice"] / ".npm-global").symlink_to("../bob/.npm-global")
    if own_uids:
        chown_tree(paths["alice"], ALICE_UID)
        chown_tree(paths["bob"], BOB_UID)
    found = list(FileScan(lib, str(tmp_path)).run(find_homes(str(tmp_path))))
    artifacts = {(r.signature, r.user) for r in found if isinstance(r, ArtifactRecord)}
    assert {("claude-code", "bob"), ("codex", "bob")} <= artifacts
    assert not {a for a in artifacts if a[1] == "alice"}, artifacts
    assert {(e.where, e.error) for e in found if isinstance(e, ScanError)} == {
        ("/home/alice/.vscode/extensions", "symlink_escape"),
        ("/home/alice/.npm-global/lib/node_modules", "symlink_escape")}
