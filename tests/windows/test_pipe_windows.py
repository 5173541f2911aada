"""The daemon's named pipe (endpoint/service/_pipe_windows.py), run for real by a Windows CPython under Wine:
a real ``PipeServer`` in one Windows process, real clients in others (the endpoint's own ``localsock.call``
and raw pipe clients a hostile user could write), over a real named pipe.

What Wine cannot show, and is therefore not claimed here (docs/development.md): every Wine process runs as
one user who is an administrator, so a second user's refusal and the per-user limit are tested on Linux
with the same code (tests/endpoint/test_local_transport.py); Wine 8 neither enforces the pipe's access list
nor FILE_FLAG_FIRST_PIPE_INSTANCE, so a user squatting the name before the daemon starts is refused by
Windows itself, not here. What is shown: the request loop and its limits over a real pipe, the peer taken
from the client's real token, the access list and owner the daemon sets, the client refusing a pipe that
another account owns before it writes a byte, and the real handler and clients.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_wine_python import read_line
from wine_python import WinePython, winpath

from endpoint.service import _pipe_windows as pipe

pytestmark = pytest.mark.timeout(240)

PROGRAMS = Path(__file__).with_name("pipe_programs.py")


class Served:
    """A pipe server in a Windows process of its own; ``stop()`` ends it and returns its last line."""

    def __init__(self, win_python: WinePython, tmp_path: Path, **opts: Any) -> None:
        self.name = opts.pop("name", rf"\\.\pipe\agentroster-test-{uuid.uuid4().hex}")
        self.stop_file = tmp_path / f"stop-{uuid.uuid4().hex}"
        options = {"name": self.name, "stop": winpath(self.stop_file), **opts}
        self.process = win_python.popen([winpath(PROGRAMS), "server", json.dumps(options)])
        self.first = read_line(self.process, timeout=90).split(maxsplit=1)

    def stop(self) -> list[str]:
        self.stop_file.touch()
        out, err = self.process.communicate(timeout=60)
        lines = out.strip().splitlines()
        assert lines and lines[-1].startswith("stopped"), (out, err)
        return lines[-1].split()


@pytest.fixture
def served(win_python: WinePython, tmp_path: Path) -> Iterator[Served]:
    running = Served(win_python, tmp_path, read_timeout_s=2.0)
    assert running.first[0] == "listening", running.process.communicate(timeout=10)
    yield running
    if running.process.poll() is None:
        running.stop()


@contextlib.contextmanager
def holding(win_python: WinePython, tmp_path: Path, name: str, connections: int) -> Iterator[None]:
    """``connections`` connections to the pipe ``name``, open and silent in a Windows process of their own
    until the block ends."""
    release = tmp_path / f"release-{uuid.uuid4().hex}"
    holder = win_python.popen([winpath(PROGRAMS), "client", json.dumps(
        {"name": name, "mode": "hold", "connections": connections, "release": winpath(release)})])
    assert json.loads(read_line(holder, timeout=90)) == {"holding": connections}
    try:
        yield
    finally:
        release.touch()
        holder.communicate(timeout=60)


def client(win_python: WinePython, timeout: float = 90, **opts: Any) -> dict[str, Any]:
    done = win_python.run([winpath(PROGRAMS), "client", json.dumps(opts)], timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def me(win_python: WinePython) -> dict[str, Any]:
    return client(win_python, name="", mode="whoami")


def test_a_request_is_answered_and_the_peer_is_the_clients_own_token(win_python: WinePython, served: Served,
                                                                     me: dict[str, Any]) -> None:
    got = client(win_python, name=served.name, mode="call", request={"op": "list"})
    answer = got["answer"]
    assert answer["line"] == '{"op":"list"}'
    assert answer["pid"] == int(served.first[1].split()[0])  # the server process answered
    # the peer is what the client's token says, looked up here another way (the process token)
    assert answer["peer"] == [me["sid"], True, me["account"]]  # Wine's user is an administrator
    assert me["sid"].startswith("S-1-5-21-") and "\\" in me["account"]
    assert served.stop()[2] == "1"  # one request served


def test_the_pipe_carries_the_owner_and_access_list_the_daemon_set(win_python: WinePython, served: Served,
                                                                   me: dict[str, Any]) -> None:
    got = client(win_python, name=served.name, mode="sddl")
    assert got["owner"] == me["own_sid"] == me["sid"]  # the daemon's own account (SYSTEM as a service)
    sddl = got["sddl"]
    assert sddl.startswith(f"O:{me['sid']}D:P")
    entries = re.findall(r"\(([AD]);[^;]*;([^;]*);[^;]*;[^;]*;([^)]*)\)", sddl)
    assert entries[0] == ("D", "GA", "NU")
    assert ("A", "GA", "SY") in entries and ("A", "GA", "BA") in entries
    [users] = [e for e in entries if e[2] == "AU"]
    assert int(users[1], 16) == pipe.USER_ACCESS, sddl  # read and write data, no new instances


def test_a_bad_request_gets_its_error_and_the_server_goes_on(win_python: WinePython, served: Served) -> None:
    too_long = client(win_python, name=served.name, mode="raw", send="x", times=64 << 10)
    assert [a["code"] for a in too_long["answers"]] == ["too_large"]
    crash = client(win_python, name=served.name, mode="raw", send="crash\nhello\n")
    assert crash["answers"][0]["code"] == "internal" and "FAKE" not in json.dumps(crash)
    assert crash["answers"][1]["line"] == "hello"  # the same connection goes on after a failed request
    silent = client(win_python, name=served.name, mode="raw", send='{"op": "li')  # never a newline
    assert [a["code"] for a in silent["answers"]] == ["timeout"] and 1.5 <= silent["seconds"] <= 6
    many = client(win_python, name=served.name, mode="raw", send="ping\n", times=40)
    assert len(many["answers"]) == 32  # a connection's request limit, then closed
    still = client(win_python, name=served.name, mode="call", request={"op": "list"})
    assert still["answer"]["ok"] is True


def test_past_max_clients_a_client_is_told_busy_and_served_once_a_slot_frees(win_python: WinePython,
                                                                           tmp_path: Path) -> None:
    running = Served(win_python, tmp_path, max_clients=2, read_timeout_s=20.0)
    assert running.first[0] == "listening"
    with holding(win_python, tmp_path, running.name, 2):
        busy = client(win_python, name=running.name, mode="call", request={"op": "list"})
        assert "answer" in busy, busy
        assert busy["answer"]["ok"] is False and busy["answer"]["code"] == "busy"
        assert "serving 2 clients" in busy["answer"]["error"]
    served_after = client(win_python, name=running.name, mode="call", request={"op": "list"})
    assert served_after["answer"]["ok"] is True
    last = running.stop()
    assert last[3] == "1"  # refused once


def test_one_users_silent_connections_are_counted_at_connect_and_cannot_take_every_slot(
        win_python: WinePython, tmp_path: Path) -> None:
    # counted by the account of the client's process as it connects, before it writes a byte (the token
    # comes only with the first line); Wine's one user is not SYSTEM, so it is counted
    running = Served(win_python, tmp_path, max_clients=8, max_clients_per_user=2, read_timeout_s=20.0)
    assert running.first[0] == "listening"
    with holding(win_python, tmp_path, running.name, 2):
        busy = client(win_python, name=running.name, mode="call", request={"op": "list"})
        assert "answer" in busy, busy
        assert busy["answer"]["code"] == "busy" and "this user already has 2 connections open" in busy["answer"]["error"]
    again = client(win_python, name=running.name, mode="call", request={"op": "list"})
    assert again["answer"]["ok"] is True  # the held ones ended: counted no more
    assert running.stop()[3] == "1"


def test_stopping_wakes_a_silent_client_and_frees_the_name(win_python: WinePython, tmp_path: Path) -> None:
    running = Served(win_python, tmp_path, read_timeout_s=60.0)
    with holding(win_python, tmp_path, running.name, 1):
        last = running.stop()
        assert float(last[1]) < 2.0  # not the 60 s read timeout: the stop event woke the client's wait
    again = Served(win_python, tmp_path, name=running.name)
    assert again.first[0] == "listening"
    again.stop()


def test_no_daemon_is_daemon_not_listening(win_python: WinePython) -> None:
    got = client(win_python, name=rf"\\.\pipe\agentroster-test-{uuid.uuid4().hex}", mode="call",
                 request={"op": "list"})
    assert got["error"] == "DaemonNotListening" and "no daemon is serving this pipe" in got["message"]


def test_a_pipe_another_account_owns_is_refused_before_a_byte_is_sent(win_python: WinePython,
                                                                      tmp_path: Path) -> None:
    # a squatter's pipe: owned by the Users group (any user's pipe but the caller's own or an admin's)
    squatter = Served(win_python, tmp_path, sddl="O:BUD:(A;;GA;;;WD)")
    assert squatter.first[0] == "listening"
    owner = client(win_python, name=squatter.name, mode="sddl")["owner"]
    assert owner == "S-1-5-32-545"
    got = client(win_python, name=squatter.name, mode="call", request={"op": "register", "purpose": "FAKE"})
    assert got["error"] == "OSError" and "owned by S-1-5-32-545" in got["message"]
    assert "not the daemon's" in got["message"]
    assert squatter.stop()[2] == "0"  # the squatter never got the request


# -- the daemon's real handler and clients over the pipe --------------------------------------------------------


def sighting(sid: str, user: str | None, name: str) -> dict[str, Any]:
    return {"id": sid, "signature": "claude-code", "name": name, "vendor": "Anthropic", "type": "coding",
            "user": user, "running": False, "confidence": 0.7, "parent": None, "processes": [], "configs": [],
            "mcp_servers": [], "endpoints": [], "credentials": [{"kind": "anthropic", "fingerprint": "hmac-FAKE",
                                                                "source": "env", "where": "x"}],
            "flags": [], "evidence": [], "first_seen": "2026-01-01T00:00:00+00:00",
            "last_seen": "2026-01-01T00:00:00+00:00"}


HANDLER_CHECK = r"""
import json, sys
from pathlib import Path
from endpoint.service.localproto import Peer
from endpoint.service.registration.socket_handler import Handler
from endpoint.service import localsock
data = Path(sys.argv[1])
handler = Handler(data)
def listed(peer):
    answer = handler.answer(b'{"op": "list"}', peer)
    return sorted(s["id"] for s in answer.get("sightings", ())) if answer["ok"] else answer
alice = Peer("S-1-5-21-1-2-3-1001", superuser=False, name="CORP\\alice")
print(json.dumps({
    "platform": __import__("endpoint.scan.platforms", fromlist=["PLATFORM"]).PLATFORM,
    "alice": listed(alice),
    "admin": listed(Peer("S-1-5-21-1-2-3-500", superuser=True, name="CORP\\admin")),
    "unresolved": listed(Peer("S-1-5-21-1-2-3-1009", superuser=False, name=None)),
    "as_user": handler.answer(b'{"op": "list", "as_user": "bob"}', alice),
    "show_bobs": handler.answer(b'{"op": "show", "id": "b0b0000000000000"}', alice),
    "serve": type(localsock.serve(localsock.socket_path(r"C:\ProgramData\agentroster"), handler)).__name__,
    "default_pipe": str(localsock.socket_path(r"C:\ProgramData\agentroster")),
}))
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    from endpoint.service.inventory import Inventory

    data = tmp_path / "data"
    inventory = Inventory(data)
    try:
        inventory.record([sighting("a11ce00000000000", "alice", "Cursor"),  # a home folder's user
                          sighting("a11ce00000000001", "CORP\\Alice", "Claude Code"),  # a process's user
                          sighting("b0b0000000000000", "CORP\\bob", "Aider"),
                          sighting("0ac41e0000000000", None, "Ollama")], device={"hostname": "h"})
    finally:
        inventory.close()
    return data


def test_the_handler_on_windows_shows_a_user_their_own_agents_by_account(win_python: WinePython,
                                                                        data_dir: Path) -> None:
    done = win_python.run(["-c", HANDLER_CHECK, winpath(data_dir)], timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["platform"] == "windows"
    assert got["alice"] == ["a11ce00000000000", "a11ce00000000001"]  # CORP\alice is alice, in any case
    assert got["admin"] == ["0ac41e0000000000", "a11ce00000000000", "a11ce00000000001", "b0b0000000000000"]
    assert got["unresolved"] == []  # an account that does not resolve sees nothing
    assert got["as_user"]["code"] == "not_yours"
    assert got["show_bobs"]["ok"] is False and "bob" not in json.dumps(got["show_bobs"]).lower()
    assert got["serve"] == "PipeServer" and got["default_pipe"] == r"\\.\pipe\agentroster"


def test_register_and_the_companion_reach_the_real_handler_through_the_pipe(win_python: WinePython,
                                                                           tmp_path: Path, data_dir: Path,
                                                                           me: dict[str, Any]) -> None:
    running = Served(win_python, tmp_path, handler="real", data_dir=winpath(data_dir))
    assert running.first[0] == "listening", running.process.communicate(timeout=10)
    script = r"""
import json, sys
from pathlib import Path
from endpoint.companion.model import Client
from endpoint.service.registration.cli import DaemonClient
from endpoint.service.registration.policy import Registrant
name = sys.argv[1]
listing = DaemonClient(Path(name), Registrant("ignored", any_user=False)).call({"op": "list"})
mine = Client(Path(name)).call({"op": "mine"})
print(json.dumps({"user": listing["user"], "any_user": listing["any_user"],
                  "ids": sorted(s["id"] for s in listing["sightings"]), "mine_ok": mine["ok"]}))
"""
    done = win_python.run(["-c", script, running.name], timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # the daemon named the caller from its token, not from anything the client sent
    assert got["user"] == me["account"] and got["any_user"] is True  # Wine's user is an administrator
    assert got["ids"] == ["0ac41e0000000000", "a11ce00000000000", "a11ce00000000001", "b0b0000000000000"]
    assert got["mine_ok"] is True
    assert "FAKE" not in done.stdout
    assert int(running.stop()[2]) == 2


def test_the_native_check_that_the_windows_workflow_runs_passes_here_but_for_the_first_instance_flag(
        win_python: WinePython) -> None:
    done = win_python.run([winpath(Path(__file__).with_name("native_pipe_check.py")), "--wine"], timeout=120)
    assert done.returncode == 0, (done.stdout, done.stderr)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["failures"] == [] and found["peer"][0].startswith("S-1-5-")
    # Wine 8 lets a second server take the name; Windows refuses it (the workflow runs this without --wine)
    assert found["second_server"] == "served" or found["second_server"].startswith("refused: ")


# -- attacks on the pipe's name, and servers a client must not wait on forever ------------------------------------


def test_the_name_never_goes_missing_while_clients_come_and_go(win_python: WinePython, served: Served) -> None:
    # A pipe's name exists only while one of its instances does. Were the daemon's last instance closed before
    # its next one was made, a client would be told "no daemon", and anyone could create the name anew with an
    # access list of their own (the daemon's next instance then one of theirs).
    got = client(win_python, name=served.name, mode="churn", times=1000)
    assert got["probes"] == 20000 and got["missing"] == 0, got


def test_a_name_someone_else_made_first_is_refused_by_its_owner(win_python: WinePython, tmp_path: Path) -> None:
    # Windows refuses this one through FILE_FLAG_FIRST_PIPE_INSTANCE; Wine 8 does not, so what refuses it here
    # is the daemon checking the owner its first instance shows (a pipe's owner is its first instance's)
    squatter = Served(win_python, tmp_path, sddl="O:BUD:(A;;GA;;;WD)")
    assert squatter.first[0] == "listening"
    daemon = Served(win_python, tmp_path, name=squatter.name)
    assert daemon.first[0] == "refused", daemon.first
    assert "another process already holds this pipe" in daemon.first[1] and "S-1-5-32-545" in daemon.first[1]
    assert daemon.process.wait(timeout=60) == 3
    assert squatter.stop()[2] == "0"


@pytest.mark.parametrize(("behaviour", "timeout_s", "error", "words"), [
    ("flood", 60.0, "OSError", "larger than 33554432 bytes"),  # 33 MiB and never a newline
    ("trickle", 2.0, "TimeoutError", "no answer in time"),  # a byte every 0.2 s: the whole call has one deadline
])
def test_a_client_gives_up_on_a_server_that_floods_or_trickles(win_python: WinePython, behaviour: str,
                                                                timeout_s: float, error: str, words: str) -> None:
    name = rf"\\.\pipe\agentroster-test-{uuid.uuid4().hex}"
    server = win_python.popen([winpath(PROGRAMS), "hostile", json.dumps({"name": name, "mode": behaviour})])
    assert read_line(server, timeout=90).startswith("listening")
    got = client(win_python, name=name, mode="call", request={"op": "list"}, timeout_s=timeout_s)
    assert got.get("error") == error and words in got["message"], got
    out, _ = server.communicate(timeout=60)
    assert "client left" in out  # the server was still writing when the client gave up


def test_a_pipe_with_no_owner_is_refused_before_a_byte_is_sent(win_python: WinePython) -> None:
    name = rf"\\.\pipe\agentroster-test-{uuid.uuid4().hex}"
    server = win_python.popen([winpath(PROGRAMS), "hostile", json.dumps({"name": name, "mode": "collect",
                                                                         "owner": False})])
    assert read_line(server, timeout=90).startswith("listening")
    got = client(win_python, name=name, mode="call", request={"op": "register", "purpose": "FAKE"})
    assert got.get("error") == "OSError" and "has no owner" in got["message"], got  # not a TypeError
    out, _ = server.communicate(timeout=60)
    assert "read 0 bytes" in out


def test_stopping_waits_one_timeout_in_all_not_one_per_client_in_its_handler(win_python: WinePython,
                                                                             tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    running = Served(win_python, tmp_path, marks=winpath(marks))
    assert running.first[0] == "listening"
    clients = [win_python.popen([winpath(PROGRAMS), "client", json.dumps(
        {"name": running.name, "mode": "raw", "send": "stuck\n", "wait_s": 20.0})]) for _ in range(3)]
    for _ in range(600):  # until the three are in the handler (each Windows process takes a while to start)
        if len(list(marks.iterdir())) == 3:
            break
        time.sleep(0.05)
    assert len(list(marks.iterdir())) == 3
    last = running.stop()
    # stop(timeout=1.0): about one second in all, not one more per client still in its 5 s handler
    assert float(last[1]) < 2.5, last
    for each in clients:
        each.communicate(timeout=60)
