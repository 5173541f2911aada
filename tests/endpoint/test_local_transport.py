"""What both local transports share, and the Windows pipe's pure parts, tested on this OS.

The shared request loop (``localsock.serve_connection``) runs here over real socket pairs with a peer that
is known only after the first line (as a named pipe tells its client's token): an identity that cannot be
read is answered, and the per-user limit counts from the moment the user is known. The pipe's name, its
access list and the client's owner check are plain data and functions. The pipe itself runs under a real
Windows Python in tests/windows/test_pipe_windows.py.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest

from endpoint.service import _pipe_windows as pipe
from endpoint.service import localsock
from endpoint.service.localsock import Admission, Peer, serve_connection
from endpoint.service.registration.policy import same_user

ALICE_SID = "S-1-5-21-1111111111-2222222222-3333333333-1001"
BOB_SID = "S-1-5-21-1111111111-2222222222-3333333333-1002"


class Echo:
    def __init__(self) -> None:
        self.peers: list[Peer] = []

    def answer(self, line: bytes, peer: Peer) -> dict[str, Any]:
        self.peers.append(peer)
        return {"ok": True, "line": line.decode()}


def served(identify: Any, lines: bytes, handler: Any = None) -> tuple[list[dict[str, Any]], Any]:
    """Run ``serve_connection`` on one end of a real socket pair, send ``lines`` and close; every answer."""
    ours, theirs = socket.socketpair()
    handler = handler or Echo()
    conn = localsock._SocketConnection(theirs)

    def serve() -> None:
        try:
            serve_connection(conn, identify, handler, read_timeout_s=2.0, write_timeout_s=2.0)
        finally:
            conn.close()  # as the servers do: the loop returns, its caller closes

    worker = threading.Thread(target=serve)
    worker.start()
    ours.sendall(lines)
    ours.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := ours.recv(1 << 16):
        data += chunk
    worker.join(5)
    assert not worker.is_alive()
    ours.close()
    return [json.loads(line) for line in data.splitlines()], handler


# -- the shared loop, with a peer known after the first line -------------------------------------------------


def test_the_peer_is_asked_once_after_the_first_line_and_every_request_gets_it() -> None:
    asked: list[int] = []

    def identify() -> Peer:
        asked.append(1)
        return Peer(ALICE_SID, superuser=False, name="CORP\\alice")

    answers, handler = served(identify, b'{"op":"list"}\n{"op":"mine"}\n')
    assert [a["line"] for a in answers] == ['{"op":"list"}', '{"op":"mine"}']
    assert asked == [1]
    assert handler.peers == [Peer(ALICE_SID, False, "CORP\\alice")] * 2


def test_a_client_whose_identity_cannot_be_read_is_answered_and_nothing_is_run() -> None:
    def identify() -> Peer:
        raise OSError(1368, "impersonating the client: cannot impersonate")

    answers, handler = served(identify, b'{"op":"list"}\n')
    assert answers[0]["ok"] is False and answers[0]["code"] == "unsupported"
    assert "cannot tell who you are" in answers[0]["error"]
    assert handler.peers == []


def test_the_per_user_limit_holds_a_user_back_and_never_another_nor_the_superuser() -> None:
    admission = Admission(max_clients=8, max_per_user=2)
    alice = Peer(ALICE_SID, superuser=False, name="CORP\\alice")
    assert admission.user(alice) == "" and admission.user(alice) == ""
    assert "this user already has 2 connections open" in admission.user(alice)
    bob = Peer(BOB_SID, superuser=False, name="CORP\\bob")
    assert admission.user(bob) == ""  # not held back by alice
    admission.release_user(alice)
    assert admission.user(alice) == ""  # one of hers ended: one more may come
    uid = Peer(1000, superuser=False)  # a Unix user is counted by its uid
    assert admission.user(uid) == "" and admission.user(uid) == ""
    assert "uid 1000 already has 2" in admission.user(uid)
    system = Peer(pipe.SYSTEM_SID, superuser=True, name="NT AUTHORITY\\SYSTEM")
    assert all(admission.user(system) == "" for _ in range(5))
    assert admission.refused_busy == 2


def test_the_slots_refuse_past_max_clients_and_count_it() -> None:
    admission = Admission(max_clients=2, max_per_user=4)
    assert admission.slot() == "" and admission.slot() == ""
    assert "serving 2 clients" in admission.slot()
    assert admission.refused_busy == 1
    admission.release_slot()
    assert admission.slot() == ""


def test_a_handler_that_fails_is_answered_as_internal_and_the_connection_goes_on() -> None:
    class Broken:
        calls = 0

        def answer(self, line: bytes, peer: Peer) -> dict[str, Any]:
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("FAKE-secret-in-a-traceback")
            return {"ok": True}

    answers, _ = served(lambda: Peer(1000, False), b'{"op":"a"}\n{"op":"b"}\n', handler=Broken())
    assert answers[0]["code"] == "internal" and "FAKE" not in json.dumps(answers[0])
    assert answers[1] == {"ok": True}


def test_an_empty_answer_says_the_daemon_closed_without_one() -> None:
    with pytest.raises(OSError, match="without an answer"):
        localsock.read_answer(b"")
    with pytest.raises(OSError, match="not JSON"):
        localsock.read_answer(b"<html>\n")
    assert localsock.read_answer(b'{"ok": true}\n{"ok": false}\n') == {"ok": True}


# -- the Windows pipe's name, access list and owner check --------------------------------------------------


def test_the_default_data_dir_serves_the_well_known_pipe_and_any_other_a_pipe_of_its_own() -> None:
    assert str(localsock.socket_path(r"C:\ProgramData\agentroster", "windows")) == r"\\.\pipe\agentroster"
    other = pipe.pipe_name(r"D:\agentroster-test", default=False)
    assert other.startswith("\\\\.\\pipe\\agentroster-") and len(other) == len("\\\\.\\pipe\\agentroster-") + 16
    assert other == pipe.pipe_name(r"d:\AGENTROSTER-TEST", default=False)  # Windows paths ignore case
    assert other != pipe.pipe_name(r"D:\agentroster-test2", default=False)
    assert str(localsock.socket_path(r"D:\agentroster-test", "windows")) == other
    # the name is one path component: no folder of the data dir leaks into it, and it is no file path
    assert PureWindowsPath(other).name == other.rsplit("\\", 1)[1] and "\\" not in other[len(pipe.PIPE_PREFIX):]


def aces(sddl: str) -> list[tuple[str, str, str]]:
    """(type, rights, trustee) of each ACE in the DACL of ``sddl``."""
    dacl = sddl.split("D:", 1)[1]
    return [(kind, rights, trustee) for kind, _flags, rights, _obj, _inh, trustee
            in re.findall(r"\(([AD]);([^;]*);([^;]*);([^;]*);([^;]*);([^)]*)\)", dacl)]


def test_users_may_read_and_write_data_but_not_add_instances_or_change_the_access_list() -> None:
    entries = aces(pipe.PIPE_SDDL)
    assert pipe.PIPE_SDDL.split("D:", 1)[1].startswith("P(")  # protected: nothing inherited
    assert entries[0] == ("D", "GA", "NU")  # network logons denied, before anything is allowed
    assert ("A", "GA", "SY") in entries and ("A", "GA", "BA") in entries
    [users] = [e for e in entries if e[2] == "AU"]
    mask = int(users[1], 16)
    assert users[0] == "A" and mask == pipe.USER_ACCESS
    assert mask & pipe.FILE_CREATE_PIPE_INSTANCE == 0  # no instance of the daemon's pipe made by a user
    for right in (0x00010000, 0x00040000, 0x00080000, 0x10000000, 0x40000000):  # DELETE, WRITE_DAC, WRITE_OWNER, GA, GW
        assert mask & right == 0
    assert mask & pipe.FILE_READ_DATA and mask & pipe.FILE_WRITE_DATA
    assert {e[2] for e in entries} == {"NU", "SY", "BA", "AU"}  # not Everyone, not anonymous logons


def test_what_a_client_opens_with_is_what_users_are_granted() -> None:
    # GENERIC_READ maps to FILE_GENERIC_READ on a pipe; GENERIC_WRITE would ask for FILE_CREATE_PIPE_INSTANCE
    generic_read_mapped = pipe.CLIENT_ACCESS & ~pipe.GENERIC_READ | pipe.FILE_GENERIC_READ
    assert generic_read_mapped == pipe.USER_ACCESS


@pytest.mark.parametrize(("owner", "own", "trusted"), [
    (pipe.SYSTEM_SID, ALICE_SID, True),
    (pipe.ADMINISTRATORS_SID, ALICE_SID, True),
    (ALICE_SID, ALICE_SID, True),  # a daemon alice started herself
    (BOB_SID, ALICE_SID, False),  # bob's pipe squatting the name
    ("S-1-5-32-545", ALICE_SID, False),  # Users
    ("S-1-1-0", ALICE_SID, False),  # Everyone
    (None, ALICE_SID, False),  # no owner at all (a hostile server's descriptor)
])
def test_the_client_trusts_a_pipe_of_system_administrators_or_its_own_account(owner: str | None, own: str,
                                                                             trusted: bool) -> None:
    problem = pipe.owner_problem(owner, own)
    assert (problem is None) is trusted
    if problem is not None:
        assert (owner or "no owner") in problem and "not the daemon's" in problem


def test_the_account_is_named_as_psutil_names_a_process_user() -> None:
    assert pipe.account("alice", "CORP") == "CORP\\alice"
    assert pipe.account("alice", "") == "alice"
    assert pipe.account(None, "CORP") is None and pipe.account("", "CORP") is None


# -- Windows user names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "fold", "same"), [
    ("CORP\\alice", "alice", True, True),  # a process's user and a home folder's
    ("alice", "CORP\\Alice", True, True),
    ("CORP\\alice", "corp\\ALICE", True, True),
    ("CORP\\alice", "OTHER\\alice", True, False),  # two domains: two users
    ("CORP\\alice", "bob", True, False),
    ("CORP\\alice", "alice", False, False),  # Linux: names are what they are
    ("alice", "Alice", False, False),
    ("", "alice", True, False),
    (None, None, True, False),
])
def test_windows_user_names_match_across_domain_and_case(a: str | None, b: str | None, fold: bool,
                                                        same: bool) -> None:
    assert same_user(a, b, fold_case=fold) is same


def test_the_pipe_module_imports_here_without_windows() -> None:
    # its Windows half is defined only on Windows; the pure half and the constants are everywhere
    assert not hasattr(pipe, "PipeServer") and not hasattr(pipe, "call_pipe")
    assert Path(localsock.__file__).with_name("_pipe_windows.py").is_file()


# -- the Unix socket's client against a server that trickles -----------------------------------------------


def test_the_socket_client_has_one_deadline_for_the_whole_answer(tmp_path: Path) -> None:
    # a server (root's, as the client trusts) that sends a byte every 0.1 s and never a newline: each byte
    # came well within the timeout, the whole answer never does
    path = tmp_path / "run" / localsock.SOCKET_NAME
    path.parent.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    sent = []
    done = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            while not done.wait(0.1) and len(sent) < 200:  # 20 s at most
                try:
                    conn.sendall(b"{")
                except OSError:  # the client gave up
                    return
                sent.append(1)

    worker = threading.Thread(target=trickle)
    worker.start()
    try:
        with pytest.raises(TimeoutError, match="no whole answer within 1 s"):
            localsock.call(path, {"op": "list"}, timeout_s=1.0)
        assert 3 <= len(sent) < 200  # bytes came, and the client left long before the server stopped
    finally:
        done.set()
        worker.join(5)
        listener.close()


def test_a_client_that_does_not_take_its_answer_is_dropped_at_once() -> None:
    # it sends every request it may and reads nothing: the first answer (larger than the socket's buffer)
    # cannot be taken in time, and the connection ends there, not after 32 answers each waiting its timeout
    class Large(Echo):
        def answer(self, line: bytes, peer: Peer) -> dict[str, Any]:
            super().answer(line, peer)
            return {"ok": True, "blob": "x" * (4 << 20)}

    ours, theirs = socket.socketpair()
    handler = Large()
    conn = localsock._SocketConnection(theirs)
    ours.sendall(b'{"op": "list"}\n' * localsock.MAX_REQUESTS_PER_CONNECTION)
    worker = threading.Thread(target=serve_connection, args=(conn, Peer(1000, superuser=False), handler),
                              kwargs={"read_timeout_s": 2.0, "write_timeout_s": 0.3})
    worker.start()
    worker.join(30)
    try:
        assert not worker.is_alive()
        assert len(handler.peers) == 1  # one request answered (or tried), then dropped
    finally:
        conn.close()
        ours.close()
