"""A policy change reaches the user whose agent it flips, end to end at the device: a real collector
(``agentroster server``, SQLite) where an admin saves the policy, the daemon's real inbox fetch with the
device key, its real state and inbox files, and the real local socket asked by a client run as the real
uid ``nobody`` (setpriv, the system python3): nobody sees the news about their agent, never alice's.
``agentroster status --mine``'s line for it and the companion's notification are checked on the item."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import TESTS

from endpoint.companion.model import Snapshot, notifications
from endpoint.service import localsock
from endpoint.service.inbox import Inbox, fetch
from endpoint.service.inventory import Inventory
from endpoint.service.registration.mine import message_line
from endpoint.service.registration.socket_handler import Handler

sys.path.append(str(TESTS / "console" / "server"))
import fleet
import servers

pytestmark = pytest.mark.timeout(120)

SYSTEM_PYTHON = "/usr/bin/python3"
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
NOBODYS, ALICES = "0b0d1e5000000000dddd", "a11ce00000000000eeee"


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ar-policy-news-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def as_nobody(base: Path) -> Any:
    """``as_nobody(socket, *request lines)`` → the answers, from a client run as uid nobody."""
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


def test_a_policy_change_reaches_only_the_user_whose_agent_it_flips(base: Path, as_nobody: Any) -> None:
    url = f"sqlite:///{base / 'collector.db'}"
    tokens = servers.provision(url)
    collector = servers.CollectorProcess(url, log=base / "server.log").start()
    try:
        admin = httpx.Client(base_url=collector.base_url, timeout=30,
                             headers={"authorization": f"Bearer {tokens['admin']}"})
        host = "host:policy-news"
        enrolled = httpx.post(collector.base_url + "/api/v1/enroll", timeout=30, json={
            "enroll_secret": tokens["enroll_secret"], "host_identifier": host, "device": fleet.device_doc(host)})
        assert enrolled.status_code == 200, enrolled.text
        key = enrolled.json()["device_key"]
        agents = [fleet.sighting(id=NOBODYS, user="nobody"),
                  fleet.sighting(id=ALICES, signature="cursor", name="Cursor", user="alice", vendor="Anysphere")]
        sent = httpx.post(collector.base_url + "/api/v1/reports", timeout=30, headers={"authorization": f"Bearer {key}"},
                          json=fleet.report(fleet.device_doc(host), kind="snapshot", upserts=agents))
        assert sent.status_code == 200, sent.text
        # cursor sanctioned, then claude-code instead: alice's Cursor no longer covered, nobody's Claude Code allowed
        for sanctioned in (["cursor"], ["claude-code"]):
            saved = admin.put("/api/v1/policy", json={"sanctioned_signatures": sanctioned})
            assert saved.status_code == 200, saved.text
        version = saved.json()["version"]

        data = base / "data"
        inventory = Inventory(data)
        try:
            inventory.record(agents, device={"hostname": "policy-news"})
        finally:
            inventory.close()
        with httpx.Client(base_url=collector.base_url, timeout=30) as http:
            users = {NOBODYS: "nobody", ALICES: "alice"}
            assert fetch(http, key, Inbox(data), collector.base_url, lambda: users) == 3
            assert fetch(http, key, Inbox(data), collector.base_url, lambda: users) == 0  # acknowledged: once
    finally:
        collector.stop()

    running = localsock.LocalServer(localsock.socket_path(data), Handler(data), read_timeout_s=2.0)
    running.start()
    try:
        [answer] = as_nobody(running.path, '{"op": "inbox"}')
        everything = localsock.call(running.path, {"op": "inbox"})
    finally:
        running.stop()
    assert answer["ok"] and answer["user"] == "nobody" and answer["notify"] is False  # the ladder only reports
    [news] = answer["items"]
    assert (news["kind"], news["sighting_id"], news["status"]) == ("policy", NOBODYS, "governed")
    assert news["text"] == f"IT's policy (version {version}) now allows Claude Code: nothing to do."
    assert "Cursor" not in json.dumps(answer)
    # alice's news is held for her alone: the governed-then-no-longer-covered pair of her Cursor
    assert sorted((i["user"], i["status"]) for i in everything["items"]) == [
        ("alice", "governed"), ("alice", "ungoverned"), ("nobody", "governed")]

    assert message_line(news) == f"#{news['id']} new: {news['text']}"
    [note] = notifications(Snapshot(user="nobody", items=[news]), ())
    assert note.title == "IT's policy now allows an agent of yours" and note.target == ("messages", str(news["id"]))


def test_message_line_says_what_changed_and_what_to_do() -> None:
    item = {"id": 7, "kind": "policy", "sighting_id": ALICES, "sighting_name": "Cursor", "status": "ungoverned",
            "text": "IT's policy (version 4) no longer covers Cursor: register it (agentroster register) or stop "
                    "using it.", "sent_by": "it-admin"}
    assert message_line(item) == f"#7 new: {item['text']}"
    # an item without the collector's sentence still says what changed, with the next step
    bare = {**item, "text": None}
    assert message_line(bare) == ("#7 new: IT's policy no longer covers Cursor: register it (agentroster register) "
                                  "or stop using it")
    assert message_line({**bare, "status": "governed", "read_at": "x"}) == \
        "#7 IT's policy now allows Cursor: nothing to do"
    [note] = notifications(Snapshot(user="alice", items=[item]), ())
    # no longer covered: a click opens the registration of that agent
    assert note.title == "IT's policy no longer covers an agent of yours" and note.target == ("register", ALICES)
    assert notifications(Snapshot(user="alice", items=[item]), ["item:7"]) == []
