"""The daemon's local socket (endpoint/service/localsock.py): a real server thread on a real Unix socket over a
real state file, and clients of two kinds — this process (root) and a stdlib-only Python script run as
``nobody`` by setpriv, so that the kernel reports another uid (SO_PEERCRED). Hostile clients (garbage,
oversized lines, slow senders, too many connections) get an error or are dropped, and the server goes
on. A real ``agentroster daemon`` child opens and removes its socket. Registering through a real collector
is in tests/e2e/test_register_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localsock_client import answer as read_answer
from support import AGENTROSTER, TESTS

from endpoint.service import localsock
from endpoint.service.inventory import Inventory
from endpoint.service.registration.socket_handler import Handler

pytestmark = pytest.mark.timeout(60)

SYSTEM_PYTHON = "/usr/bin/python3"
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")

def sighting(sid: str, user: str | None, name: str = "Claude Code", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": sid, "signature": "claude-code", "name": name, "vendor": "Anthropic", "type": "coding",
        "user": user, "running": False, "confidence": 0.7, "parent": None, "processes": [], "configs": [],
        "mcp_servers": [{"name": "github", "transport": "stdio", "command": "npx", "args": [], "url": None,
                         "source": "/x", "enabled": True}],
        "endpoints": [{"host": "api.anthropic.com", "port": 443, "provider": "anthropic", "via": "sni",
                       "first_seen": "2026-01-01T00:00:00+00:00", "last_seen": "2026-01-01T00:00:00+00:00",
                       "count": 1}],
        "credentials": [{"kind": "anthropic", "fingerprint": "hmac-FAKE0000", "source": "env", "where": "/x"}],
        "flags": [], "evidence": [],
        "first_seen": "2026-01-01T00:00:00+00:00", "last_seen": "2026-01-01T00:00:00+00:00",
    }
    doc.update(extra)
    return doc


NOBODYS = "0b0d1e5000000000aaaa"
ALICES = "a11ce00000000000bbbb"
MACHINE = "0ac41e0000000000cccc"


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="ar-sock-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_dir(base: Path) -> Path:
    """A daemon's data dir (0700) holding three sightings: nobody's, alice's and a machine-wide one."""
    data = base / "data"
    inventory = Inventory(data)
    try:
        inventory.record([sighting(NOBODYS, "nobody"), sighting(ALICES, "alice", name="Cursor"),
                          sighting(MACHINE, None, name="Ollama", type="runtime")], device={"hostname": "h"})
    finally:
        inventory.close()
    return data


def serve(data_dir: Path, **kw: Any) -> localsock.LocalServer:
    server = localsock.LocalServer(localsock.socket_path(data_dir), Handler(data_dir), **kw)
    server.start()
    return server


@pytest.fixture
def server(data_dir: Path) -> Iterator[localsock.LocalServer]:
    running = serve(data_dir, read_timeout_s=1.0)
    yield running
    running.stop()


@pytest.fixture
def nobody(base: Path) -> Any:
    """``nobody(mode, *args)`` → the JSON the client script printed, run as uid nobody."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, setpriv and the system python3 to run a client as another uid")
    script = base / "client.py"
    shutil.copyfile(TESTS / "localsock_client.py", script)
    script.chmod(0o644)

    def run(path: Path, mode: str, *args: str) -> Any:
        done = subprocess.run([*AS_NOBODY, SYSTEM_PYTHON, str(script), str(path), mode, *args],
                              capture_output=True, text=True, timeout=45, cwd=base)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return run


def raw(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(20)
    conn.connect(str(path))
    return conn


def closed_by_server(conn: socket.socket) -> bool:
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:  # closed with the client's bytes still unread
        return True


def ids(answer: dict[str, Any]) -> set[str]:
    return {s["id"] for s in answer["sightings"]}


# -- where, and with which permissions ---------------------------------------------------------------------


def test_the_socket_sits_in_the_run_dir_for_the_default_data_dir_else_beside_the_data_dir():
    assert localsock.socket_path("/var/lib/agentroster", "linux") == Path("/run/agentroster/agentroster.sock")
    assert localsock.socket_path("/srv/ar/data", "linux") == Path("/srv/ar/data.run/agentroster.sock")
    assert localsock.socket_path("/Library/Application Support/agentroster", "macos") == \
        Path("/var/run/agentroster/agentroster.sock")


def test_any_user_may_connect_but_not_replace_the_socket(server, data_dir):
    st = os.lstat(server.path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666
    directory = os.lstat(server.path.parent)
    assert stat.S_IMODE(directory.st_mode) == 0o755 and directory.st_uid == os.geteuid()
    assert stat.S_IMODE(os.lstat(data_dir).st_mode) == 0o700  # the state stays root's


# -- who sees and registers what ---------------------------------------------------------------------------


def test_a_user_lists_only_their_own_sightings(server, nobody):
    [answer] = nobody(server.path, "requests", '{"op": "list"}')
    assert answer["ok"] and answer["user"] == "nobody" and answer["any_user"] is False
    assert ids(answer) == {NOBODYS}
    mine = answer["sightings"][0]
    assert mine["credentials"] == [{"kind": "anthropic"}]  # the kind, never the fingerprint
    assert mine["mcp_servers"] == [{"name": "github"}] and mine["endpoints"] == [{"provider": "anthropic"}]
    assert answer["statuses"] is None  # never enrolled: nothing to ask the collector


def test_root_lists_every_users_sightings(server):
    answer = localsock.call(server.path, {"op": "list"})
    assert answer["ok"] and answer["any_user"] is True and ids(answer) == {NOBODYS, ALICES, MACHINE}


def test_root_may_act_for_one_user_and_nobody_else_may(server, nobody):
    answer = localsock.call(server.path, {"op": "list", "as_user": "alice"})
    assert answer["ok"] and ids(answer) == {ALICES} and answer["any_user"] is False
    [forged] = nobody(server.path, "requests", '{"op": "list", "as_user": "root"}')
    assert forged["ok"] is False and forged["code"] == "not_yours" and "only root" in forged["error"]


def test_another_users_or_the_machines_sighting_is_unknown_to_a_user_exactly_as_no_sighting(server, nobody):
    register = {"op": "register", "sighting_id": ALICES, "owner": "nobody@example.com", "purpose": "mine now"}
    nothing = "f00dbabe0000"  # a prefix of no id at all
    answers = nobody(server.path, "requests", json.dumps({"op": "show", "id": ALICES[:12]}),
                     json.dumps({"op": "show", "id": nothing}), json.dumps({"op": "show", "id": ALICES}),
                     json.dumps({"op": "show", "id": MACHINE[:12]}), json.dumps(register),
                     json.dumps({**register, "sighting_id": MACHINE}),
                     json.dumps({**register, "sighting_id": nothing + "00000000"}))
    shown, none, full, wide, sent, sent_wide, sent_none = answers
    # the same answer, word for word, but for the id the caller gave
    assert shown == {**none, "error": none["error"].replace(nothing, ALICES[:12])}
    assert shown["code"] == "unknown_sighting" and "alice" not in json.dumps(answers)
    assert full == {**none, "error": none["error"].replace(nothing, ALICES)}
    assert wide == {**none, "error": none["error"].replace(nothing, MACHINE[:12])}
    assert sent == {**sent_none, "error": sent_none["error"].replace(nothing + "00000000", ALICES)}
    assert sent_wide == {**sent_none, "error": sent_none["error"].replace(nothing + "00000000", MACHINE)}


def test_a_prefix_shared_with_another_users_id_still_finds_the_callers_own(data_dir, nobody):
    inventory = Inventory(data_dir)
    try:  # alice's id starts as nobody's does: the prefix is ambiguous to root, not to nobody
        inventory.record([sighting(NOBODYS, "nobody"), sighting(NOBODYS[:10] + "a11ce00000", "alice")],
                         device={"hostname": "h"})
    finally:
        inventory.close()
    running = serve(data_dir)
    try:
        [mine] = nobody(running.path, "requests", json.dumps({"op": "show", "id": NOBODYS[:8]}))
        assert mine["ok"] and mine["sighting"]["id"] == NOBODYS
        both = localsock.call(running.path, {"op": "show", "id": NOBODYS[:8]})
        assert both["code"] == "unknown_sighting" and "matches 2 agents" in both["error"]
    finally:
        running.stop()


def test_a_user_sees_their_own_sighting_by_prefix(server, nobody):
    [answer] = nobody(server.path, "requests", json.dumps({"op": "show", "id": NOBODYS[:6]}))
    assert answer["ok"] and answer["sighting"]["id"] == NOBODYS and answer["sighting"]["user"] == "nobody"


def test_a_registration_is_checked_before_the_key_is_needed(server, nobody):
    bad = {"op": "register", "sighting_id": NOBODYS, "owner": "n@example.com", "purpose": "p", "tools": ["t" * 129]}
    extra = {"op": "register", "sighting_id": NOBODYS, "owner": "n@example.com", "purpose": "p", "status": "approved"}
    good = {"op": "register", "sighting_id": NOBODYS, "owner": "n@example.com", "purpose": "p"}
    too_long, unknown_field, not_enrolled = nobody(server.path, "requests", json.dumps(bad), json.dumps(extra),
                                                   json.dumps(good))
    assert too_long["code"] == "invalid" and "--tool #1: too long" in too_long["error"]
    assert unknown_field["code"] == "invalid" and "status" in unknown_field["error"]
    assert not_enrolled["code"] == "not_enrolled"


def test_a_collector_that_does_not_answer_is_one_line(data_dir):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    inventory = Inventory(data_dir)
    try:
        inventory.save_enrollment("ard_FAKEFAKEFAKEFAKE.FAKE", device_id="d1", collector_url=f"http://127.0.0.1:{port}")
    finally:
        inventory.close()
    running = serve(data_dir)
    try:
        listed = localsock.call(running.path, {"op": "list", "as_user": "nobody"})
        assert listed["ok"] and listed["statuses"] is None and ids(listed) == {NOBODYS}
        sent = localsock.call(running.path, {"op": "register", "as_user": "nobody", "sighting_id": NOBODYS,
                                             "owner": "n@example.com", "purpose": "p"})
        assert sent["code"] == "unreachable" and "cannot reach the collector" in sent["error"]
        assert "FAKE" not in json.dumps([listed, sent])
    finally:
        running.stop()


# -- hostile clients -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "code"), [
    (b"not json", "bad_request"),
    (b"\xff\xfe\x00garbage", "bad_request"),
    (b"[1, 2, 3]", "bad_request"),
    (b'{"op": 7}', "bad_request"),
    (b'{"op": "shutdown"}', "bad_request"),
    (b"[" * 60000, "bad_request"),
    (b'{"op": "list", "extra": 1}', "invalid"),
    (b'{"op": "show", "id": ["x"]}', "invalid"),
    (b'{"op": "register", "sighting_id": 5}', "invalid"),
])  # fmt: skip
def test_garbage_gets_an_error_and_the_connection_goes_on(server, line, code):
    with raw(server.path) as conn:
        conn.sendall(line + b"\n")
        answer = read_answer(conn)
        assert answer is not None and answer["ok"] is False and answer["code"] == code, answer
        conn.sendall(b'{"op": "list"}\n')
        again = read_answer(conn)
        assert again is not None and again["ok"], again


def test_an_oversized_line_is_refused_and_the_connection_closed(server):
    with raw(server.path) as conn:
        try:
            conn.sendall(b'{"op": "list", "pad": "' + b"x" * (localsock.MAX_REQUEST_BYTES + 10))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before the last bytes are sent
        answer = read_answer(conn)
        assert answer is not None and answer["code"] == "too_large"
        assert closed_by_server(conn)
    assert localsock.call(server.path, {"op": "list"})["ok"]


def test_a_line_without_its_newline_is_an_error_at_the_end(server):
    with raw(server.path) as conn:
        conn.sendall(b'{"op": "list"}')
        conn.shutdown(socket.SHUT_WR)
        answer = read_answer(conn)
        assert answer is not None and answer["code"] == "bad_request" and "newline" in answer["error"]


def test_a_slow_sender_is_dropped_and_others_are_served_meanwhile(server):
    with raw(server.path) as slow:
        slow.sendall(b'{"op": ')  # and nothing more: the server's read timeout ends it
        assert localsock.call(server.path, {"op": "list"})["ok"]
        answer = read_answer(slow)
        assert answer is not None and answer["code"] == "timeout"
        assert closed_by_server(slow)


def test_too_many_connections_are_told_busy_and_the_server_recovers(data_dir):
    running = serve(data_dir, max_clients=2, read_timeout_s=30.0)
    try:
        held = [raw(running.path), raw(running.path)]
        with raw(running.path) as third:
            answer = read_answer(third)
            assert answer is not None and answer["code"] == "busy"
        for conn in held:
            conn.close()
        for _ in range(200):  # the held slots are given back as their threads see the close
            answer = localsock.call(running.path, {"op": "list"})
            if answer["ok"]:
                break
            time.sleep(0.05)
        assert answer["ok"], answer
    finally:
        running.stop()


def test_a_flood_of_connections_is_answered_or_turned_away_and_nothing_leaks(server):
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    conns = [raw(server.path) for _ in range(60)]
    for conn in conns:
        try:
            conn.sendall(b'{"op": "list"}\n')
        except OSError:
            pass  # turned away before it could send
    codes = []
    for conn in conns:
        try:
            answer = read_answer(conn)
        except ConnectionResetError:
            answer = None
        codes.append("ok" if answer and answer["ok"] else (answer or {}).get("code", "dropped"))
        conn.close()
    assert set(codes) <= {"ok", "busy"} and "ok" in codes, codes
    for _ in range(200):  # client threads close their ends as they finish
        if open_fds() <= before:
            break
        time.sleep(0.05)
    assert open_fds() <= before
    assert localsock.call(server.path, {"op": "list"})["ok"]


def test_one_user_cannot_take_every_slot(data_dir, nobody):
    running = serve(data_dir, max_clients=8, max_clients_per_user=2, read_timeout_s=30.0)
    try:
        told = nobody(running.path, "hold", "3")
        assert told["code"] == "busy" and "uid 65534" in told["error"]
        assert localsock.call(running.path, {"op": "list"})["ok"]  # another user still gets in
    finally:
        running.stop()


def test_a_failing_request_is_an_error_not_a_dead_server(data_dir):
    def broken(uid: int) -> str:
        raise RuntimeError("boom")

    running = localsock.LocalServer(localsock.socket_path(data_dir), Handler(data_dir, names=broken))
    running.start()
    try:
        answer = localsock.call(running.path, {"op": "list"})
        assert answer["code"] == "internal" and "boom" not in answer["error"]
        assert localsock.call(running.path, {"op": "list"})["code"] == "internal"  # still there
    finally:
        running.stop()


# -- start and stop ---------------------------------------------------------------------------------------------


def test_stop_removes_the_socket_and_a_stale_one_is_replaced(data_dir):
    first = serve(data_dir)
    path = first.path
    first.stop()
    assert not path.exists()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a socket file nobody listens on, as a killed daemon leaves it
    stale.close()
    second = serve(data_dir)
    try:
        assert localsock.call(path, {"op": "list"})["ok"]
        with pytest.raises(localsock.LocalSocketError, match="another daemon"):
            serve(data_dir)
    finally:
        second.stop()


@needs_root
def test_a_path_that_is_not_a_socket_or_a_directory_of_another_user_is_refused(data_dir):
    path = localsock.socket_path(data_dir)
    path.parent.mkdir(mode=0o755)
    path.write_text("not a socket")
    with pytest.raises(localsock.LocalSocketError, match="not a socket"):
        serve(data_dir)
    assert path.read_text() == "not a socket"
    path.unlink()
    os.chown(path.parent, 65534, 65534)
    with pytest.raises(localsock.LocalSocketError, match="owned by uid 65534"):
        serve(data_dir)


@needs_root
def test_a_client_will_not_talk_to_a_socket_another_user_put_there(base):
    directory = base / "planted"
    directory.mkdir()
    os.chown(directory, 65534, 65534)
    with pytest.raises(OSError, match="belongs to uid 65534"):
        localsock.call(directory / localsock.SOCKET_NAME, {"op": "list"})


def test_a_connection_to_no_daemon_says_so():
    with pytest.raises(localsock.DaemonNotListening):
        localsock.call("/nonexistent/agentroster.sock", {"op": "list"})


@pytest.mark.timeout(120)
def test_the_daemon_serves_its_socket_and_removes_it_when_stopped(base, nobody):
    home = base / "root" / "home" / "nobody" / ".cursor"
    home.mkdir(parents=True)
    (home / "mcp.json").write_text(json.dumps({"mcpServers": {"fs": {"command": "npx",
                                                                     "args": ["-y", "@modelcontextprotocol/server-filesystem"]}}}))
    data = base / "daemon-data"
    path = localsock.socket_path(data)
    env = {**os.environ, "AGENTROSTER_SENSORS": "files"}
    log = (base / "daemon.log").open("w")
    child = subprocess.Popen([AGENTROSTER, "daemon", "--data-dir", str(data), "--root", str(base / "root")],
                             env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        listed: dict[str, Any] = {}
        for _ in range(600):
            if path.exists():
                [listed] = nobody(path, "requests", '{"op": "list"}')
                if listed.get("sightings"):
                    break
            assert child.poll() is None, (base / "daemon.log").read_text()
            time.sleep(0.1)
        assert listed.get("ok") and listed["user"] == "nobody", listed
        assert {s["user"] for s in listed["sightings"]} == {"nobody"}
        assert {"Cursor", "fs"} <= {s["name"] for s in listed["sightings"]}, listed
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
        log.close()
    assert child.returncode == 0, (base / "daemon.log").read_text()
    assert not path.exists()
