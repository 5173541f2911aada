"""The daemon's inbox (endpoint/service/inbox.py) and the socket's ``inbox``, ``inbox_ack`` and ``mine`` ops
(endpoint/service/registration/socket_handler.py): a real state file and inbox file, a real socket server
thread, and a client run as the real uid ``nobody`` (setpriv, the system python3) beside this root
process, so that the kernel tells the daemon who asks. A user sees only their own items and sightings;
nothing of a credential but its kind. The collector's side, and a real daemon child, are in
tests/e2e/test_inbox_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TESTS

from endpoint.service import localsock
from endpoint.service.inbox import INBOX_FILE, MAX_KEPT, Inbox, clean_item, merge
from endpoint.service.inventory import Inventory
from endpoint.service.registration.mine import render
from endpoint.service.registration.socket_handler import Handler

pytestmark = pytest.mark.timeout(60)

SYSTEM_PYTHON = "/usr/bin/python3"
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
COLLECTOR = "http://127.0.0.1:9"
NOBODYS, ALICES, MACHINE = "0b0d1e5000000000aaaa", "a11ce00000000000bbbb", "0ac41e0000000000cccc"
FINGERPRINT = "hmac-FAKE0000"


def sighting(sid: str, user: str | None, name: str) -> dict[str, Any]:
    return {
        "id": sid, "signature": "claude-code", "name": name, "vendor": "Anthropic", "type": "coding", "user": user,
        "running": True, "confidence": 0.7, "parent": None,
        "processes": [{"pid": 4242, "ppid": 1, "name": "node", "exe": "/usr/bin/node", "user": user or "root",
                       "cmdline": ["node", "claude", "--api-key", "[REDACTED:anthropic]"], "started": 1.7e9}],
        "configs": [{"path": f"/home/{user}/.claude.json", "client": "claude-code", "format": "json",
                     "scope": "user"}],
        "mcp_servers": [{"name": "github", "transport": "stdio", "command": "npx", "args": ["-y", "server-github"],
                         "url": None, "source": "/x", "enabled": True}],
        "endpoints": [{"host": "api.anthropic.com", "port": 443, "provider": "anthropic", "via": "sni",
                       "first_seen": 1.7e9, "last_seen": 1.7e9, "count": 1}],
        "credentials": [{"kind": "anthropic", "fingerprint": FINGERPRINT, "source": "env", "where": "pid 4242 env"}],
        "flags": ["plaintext_secret"], "evidence": [{"kind": "process", "rule": "exe", "detail": "node claude"}],
        "first_seen": "2026-01-01T00:00:00+00:00", "last_seen": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip


def item(item_id: int, sid: str, user: str | None, kind: str = "request", text: str = "please register it",
         **extra: Any) -> dict[str, Any]:
    return {"id": item_id, "kind": kind, "sighting_id": sid, "sighting_name": "Cursor", "user": user,
            "status": None, "text": text, "sent_by": "it-admin", "created_at": "2026-12-01T10:00:00+00:00", **extra}


# -- pure: what arrives, and what is kept -----------------------------------------------------------------


def test_an_item_the_collector_sends_is_kept_once_whatever_it_resends() -> None:
    kept, added = merge([], [item(1, ALICES, "alice"), item(2, ALICES, "alice")], {}, "now")
    again, added_again = merge(kept, [item(2, ALICES, "alice"), item(3, ALICES, "alice")], {}, "later")
    assert (added, added_again) == (2, 1)
    assert [i["id"] for i in again] == [1, 2, 3] and again[1]["received_at"] == "now"


def test_an_item_goes_to_the_user_of_its_sighting_as_the_daemon_knows_it() -> None:
    # the collector says bob; the daemon reported that sighting as alice's: alice it is
    kept, _ = merge([], [item(1, ALICES, "bob"), item(2, "f" * 20, "carol")], {ALICES: "alice"}, "now")
    assert [i["user"] for i in kept] == ["alice", "carol"]


def test_the_oldest_read_items_go_first_when_too_many_are_kept() -> None:
    kept = [{**item(n, ALICES, "alice"), "received_at": "t", "read_at": "t" if n % 2 else None}
            for n in range(1, MAX_KEPT + 1)]
    out, _ = merge(kept, [item(MAX_KEPT + 1, ALICES, "alice")], {}, "now")
    assert len(out) == MAX_KEPT and 1 not in {i["id"] for i in out} and 2 in {i["id"] for i in out}


@pytest.mark.parametrize("bad", [None, [], {"id": "1", "kind": "request", "sighting_id": "x"},
                                 {"id": 0, "kind": "request", "sighting_id": "x"},
                                 {"id": True, "kind": "request", "sighting_id": "x"},
                                 {"id": 1, "kind": "telepathy", "sighting_id": "x"},
                                 {"id": 1, "kind": "request", "sighting_id": "x" * 129}])
def test_what_is_not_an_item_is_dropped(bad: Any) -> None:
    assert clean_item(bad) is None


def test_long_text_is_cut_to_the_collectors_bounds() -> None:
    cleaned = clean_item(item(1, ALICES, "alice", text="x" * 10_000, sent_by=["not", "text"]))
    assert cleaned is not None and len(cleaned["text"]) == 4000 and cleaned["sent_by"] == ""


# -- the file ----------------------------------------------------------------------------------------------


def test_the_inbox_file_is_private_and_holds_its_cursor(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    assert inbox.store(COLLECTOR, [item(4, ALICES, "alice"), item(7, ALICES, "alice")], {}) == 2
    assert (tmp_path / INBOX_FILE).stat().st_mode & 0o777 == 0o600
    doc = inbox.read(COLLECTOR)
    assert doc["cursor"] == 7 and [i["id"] for i in doc["items"]] == [4, 7]


def test_another_collectors_inbox_or_a_file_others_can_read_is_not_used(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.store(COLLECTOR, [item(4, ALICES, "alice")], {})
    assert inbox.read("https://other.example.org")["items"] == []
    (tmp_path / INBOX_FILE).chmod(0o644)
    assert inbox.read(COLLECTOR) == {"collector_url": COLLECTOR, "cursor": 0, "notify": True, "items": []}


def test_a_broken_inbox_file_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / INBOX_FILE
    for text in ("{", "[]", '{"schema": "agentroster.inbox/1", "items": 3}', '{"schema": "other", "items": []}'):
        path.write_text(text)
        path.chmod(0o600)
        assert Inbox(tmp_path).read()["items"] == []


# -- the socket, with two real uids -------------------------------------------------------------------------


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ar-inbox-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(base: Path) -> Iterator[localsock.LocalServer]:
    """A daemon's socket over a state with nobody's, alice's and a machine-wide sighting, and an inbox with
    an item for each."""
    data = base / "data"
    inventory = Inventory(data)
    try:
        inventory.record([sighting(NOBODYS, "nobody", "Claude Code"), sighting(ALICES, "alice", "Cursor"),
                          sighting(MACHINE, None, "Ollama")], device={"hostname": "h"})
    finally:
        inventory.close()
    Inbox(data).store(COLLECTOR, [item(1, NOBODYS, "nobody", text="nobody, register your Claude Code"),
                                  item(2, ALICES, "alice", text="alice, register your Cursor"),
                                  item(3, MACHINE, None, kind="question", text="who runs Ollama?")], {})
    running = localsock.LocalServer(localsock.socket_path(data), Handler(data), read_timeout_s=2.0)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def nobody(base: Path) -> Any:
    """``nobody(path, *request lines)`` → the answers, from a client run as uid nobody."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, setpriv (util-linux) and the system python3 to run a client as another uid")
    script = base / "client.py"
    shutil.copyfile(TESTS / "localsock_client.py", script)
    script.chmod(0o644)

    def run(path: Path, *lines: str) -> Any:
        done = subprocess.run([*AS_NOBODY, SYSTEM_PYTHON, str(script), str(path), "requests", *lines],
                              capture_output=True, text=True, timeout=45, cwd=base)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return run


def test_a_user_sees_only_their_own_inbox_items(server, nobody) -> None:
    [answer] = nobody(server.path, '{"op": "inbox"}')
    assert answer["ok"] and answer["user"] == "nobody"
    assert [(i["id"], i["text"]) for i in answer["items"]] == [(1, "nobody, register your Claude Code")]


def test_root_sees_every_users_items_and_acts_for_one_with_as_user(server) -> None:
    assert [i["id"] for i in localsock.call(server.path, {"op": "inbox"})["items"]] == [1, 2, 3]
    answer = localsock.call(server.path, {"op": "inbox", "as_user": "alice"})
    assert [i["id"] for i in answer["items"]] == [2]


def test_a_user_marks_read_only_their_own_items(server, nobody) -> None:
    others, own, listed = nobody(server.path, '{"op": "inbox_ack", "ids": [2, 3, 99]}',
                                 '{"op": "inbox_ack", "ids": [1]}', '{"op": "inbox"}')
    assert (others["acked"], own["acked"]) == (0, 1)
    assert listed["items"][0]["read_at"] is not None
    everything = {i["id"]: i["read_at"] for i in localsock.call(server.path, {"op": "inbox"})["items"]}
    assert everything[2] is None and everything[3] is None


@pytest.mark.parametrize("line", ['{"op": "inbox_ack"}', '{"op": "inbox_ack", "ids": "1"}',
                                  '{"op": "inbox_ack", "ids": [true]}', '{"op": "inbox", "all": true}',
                                  '{"op": "mine", "user": "alice"}'])
def test_a_malformed_inbox_request_is_answered_invalid(server, line) -> None:
    import socket

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(20)
    conn.connect(str(server.path))
    try:
        conn.sendall(line.encode() + b"\n")
        from localsock_client import answer

        got = answer(conn)
    finally:
        conn.close()
    assert got["ok"] is False and got["code"] == "invalid"


def test_what_is_held_about_a_user_is_their_own_and_holds_no_fingerprint(server, nobody) -> None:
    [answer] = nobody(server.path, '{"op": "mine"}')
    assert answer["ok"] and answer["user"] == "nobody"
    [mine] = answer["sightings"]
    assert (mine["id"], mine["name"]) == (NOBODYS, "Claude Code")
    assert mine["evidence_kinds"] == {"process": 1}
    assert {"processes", "configs", "mcp_servers", "endpoints", "credentials", "evidence"} <= set(mine["fields"])
    assert mine["credentials"] == [{"kind": "anthropic", "source": "env", "where": "pid 4242 env",
                                    "fingerprint": "sent"}]
    assert [i["id"] for i in answer["inbox"]] == [1]
    text = json.dumps(answer)
    assert FINGERPRINT not in text and ALICES not in text and MACHINE not in text and "alice" not in text
    page = render(answer)
    assert "Claude Code" in page and "--api-key [REDACTED:anthropic]" in page and "#1 new: it-admin asks you" in page
    assert FINGERPRINT not in page


# -- agentroster status --mine without a daemon: the data dir itself (root) ---------------------------------


def test_status_mine_reads_the_data_dir_when_no_daemon_listens(base: Path) -> None:
    from support import AGENTROSTER

    data = base / "data"
    inventory = Inventory(data)
    try:
        inventory.record([sighting(NOBODYS, "nobody", "Claude Code"), sighting(ALICES, "alice", "Cursor")],
                         device={"hostname": "h"})
    finally:
        inventory.close()
    Inbox(data).store(COLLECTOR, [item(1, NOBODYS, "nobody"), item(2, ALICES, "alice", text="for alice only")], {})
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    done = subprocess.run([AGENTROSTER, "status", "--mine", "--json", "--data-dir", str(data)], capture_output=True,
                          text=True, timeout=60, env={**env, "SUDO_USER": "nobody"})
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [s["id"] for s in doc["sightings"]] == [NOBODYS] and [i["id"] for i in doc["inbox"]] == [1]
    assert doc["statuses"] is None and "for alice only" not in done.stdout and FINGERPRINT not in done.stdout


# -- fetching from a collector that answers badly ------------------------------------------------------------
# The real collector never sends these answers (tests/e2e/test_inbox_e2e.py fetches from one); a broken or
# hostile one is stood in for at the HTTP boundary by httpx.MockTransport.


def collector_answering(*answers: Any) -> tuple[Any, list[str]]:
    import httpx

    asked: list[str] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("ack", ""))
        answer = queue.pop(0) if queue else {"data": [], "acked": 0, "more": False}
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    return httpx.Client(base_url=COLLECTOR, transport=httpx.MockTransport(handle)), asked


def test_an_entry_that_is_not_an_item_is_passed_over_and_acknowledged(tmp_path: Path) -> None:
    from endpoint.service.inbox import fetch

    http, asked = collector_answering({"data": [{"id": 5, "kind": "telepathy", "sighting_id": ALICES},
                                                item(6, ALICES, "bob")], "acked": 0, "more": False})
    assert fetch(http, "FAKE-device-key", Inbox(tmp_path), COLLECTOR, lambda: {ALICES: "alice"}) == 1
    doc = Inbox(tmp_path).read(COLLECTOR)
    assert [(i["id"], i["user"]) for i in doc["items"]] == [(6, "alice")] and doc["cursor"] == 6
    assert asked == ["0", "6"]  # the second request acknowledges what arrived


@pytest.mark.parametrize("answer", ["not json", {"items": []}, {"data": "x"}, 503])
def test_an_answer_that_is_not_an_inbox_changes_nothing(tmp_path: Path, answer: Any) -> None:
    import httpx

    from endpoint.service.inbox import InboxUnavailable, fetch

    response = httpx.Response(answer) if isinstance(answer, int) else \
        httpx.Response(200, text=answer) if isinstance(answer, str) else httpx.Response(200, json=answer)
    http, _ = collector_answering(response)
    with pytest.raises(InboxUnavailable):
        fetch(http, "FAKE-device-key", Inbox(tmp_path), COLLECTOR, dict)
    assert not (tmp_path / INBOX_FILE).exists()
