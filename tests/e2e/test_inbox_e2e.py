"""End to end: collector → device → employee. A real `agentroster server` on 127.0.0.1 (SQLite file), a
real long-running `agentroster daemon` child reporting tmp homes to it, and the real local socket.

An admin asks for a registration, rejects one with a comment and asks a question; each reaches the
daemon's inbox once, is acknowledged at the collector, and is shown by `agentroster status --mine` to
the sighting's user only (root under sudo acts for that user through the socket, as the daemon
decides). Items sent while the daemon is down arrive when it is back, and a restart delivers nothing
twice. The companion (pytest-qt) registers an agent through its window and tells the user the admin's
answer. Two real uids on the socket are in tests/endpoint/test_device_inbox.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import build_homes
from support import AGENTROSTER, TESTS

sys.path.append(str(TESTS / "console" / "server"))
import servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SETTINGS_ENV = {  # fast timers for tests; the defaults are minutes
    "AGENTROSTER_HEARTBEAT_INTERVAL_S": "1",
    "AGENTROSTER_REPORT_INTERVAL_S": "0.5",
    "AGENTROSTER_FULL_SCAN_INTERVAL_S": "3600",
    "AGENTROSTER_SENSORS": "files",
    "AGENTROSTER_LOG_LEVEL": "info",
}


@dataclass
class Machine:
    tmp: Path
    root: Path
    collector: servers.CollectorProcess
    admin: str
    secret: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    def start(self) -> None:
        argv = [AGENTROSTER, "daemon", "--collector", self.collector.base_url, "--enroll-secret-file",
                str(self.secret), "--data-dir", str(self.data_dir), "--root", str(self.root)]
        with open(self.tmp / "daemon.log", "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         env={**os.environ, **SETTINGS_ENV}, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def admin_call(self, method: str, path: str, **kw: Any) -> Any:
        answer = httpx.request(method, self.collector.base_url + path, timeout=30,
                               headers={"authorization": f"Bearer {self.admin}"}, **kw)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def device_id(self) -> str:
        return str(self.admin_call("GET", "/api/v1/devices")["data"][0]["id"])

    def agents(self) -> list[dict[str, Any]]:
        return list(self.admin_call("GET", "/api/v1/agents", params={"limit": 500})["data"])

    def inbox(self) -> list[dict[str, Any]]:
        path = self.data_dir / "inbox.json"
        return list(json.loads(path.read_text())["items"]) if path.exists() else []

    def sent(self) -> list[dict[str, Any]]:
        return list(self.admin_call("GET", "/api/v1/inbox/sent", params={"device": self.device_id()})["data"])

    def as_user(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`agentroster …` as root under sudo for ``user``: the daemon answers for that user only."""
        return subprocess.run([AGENTROSTER, *args, "--data-dir", str(self.data_dir)], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "SUDO_USER": user}, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        path = self.tmp / "daemon.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def eventually(check: Callable[[], Any], what: str, machine: Machine, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something true (a hang guard, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError, httpx.HTTPError, AssertionError, IndexError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})\n{machine.log()}")


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """A collector and a daemon that enrolled and reported two users' homes."""
    tmp = tmp_path_factory.mktemp("inbox")
    url = f"sqlite:///{tmp}/collector.sqlite3"
    tokens = servers.provision(url)
    collector = servers.CollectorProcess(url, log=tmp / "server.log").start()
    secret = tmp / "enroll-secret"
    secret.write_text(tokens["enroll_secret"] + "\n")
    secret.chmod(0o600)
    root = tmp / "root"
    build_homes(root, homes=2)
    m = Machine(tmp, root, collector, tokens["admin"], secret)
    # the org's policy nudges its users (else the companion stays quiet); its own nudges come after 30 days,
    # so that only what each test sends arrives
    m.admin_call("PUT", "/api/v1/policy", json={"ladder": "notify", "notify_after_days": 30})
    m.start()
    try:
        eventually(lambda: len({a["user"] for a in m.agents() if a["user"]}) >= 2, "both users' agents reported", m)
        yield m
    finally:
        m.stop(signal.SIGKILL)
        collector.stop()


def top_level(m: Machine) -> dict[str, dict[str, Any]]:
    """One top-level agent per user, as the collector holds them."""
    out: dict[str, dict[str, Any]] = {}
    for a in sorted(m.agents(), key=lambda a: a["id"]):
        if a["user"] and not a.get("parent") and a["type"] != "tool_server":
            out.setdefault(a["user"], a)
    return out


def test_requests_decisions_and_questions_reach_the_sightings_user_only_once(machine: Machine) -> None:
    m = machine
    device = m.device_id()
    (user_a, agent_a), (user_b, agent_b) = sorted(top_level(m).items())[:2]
    m.admin_call("POST", f"/api/v1/agents/{device}/{agent_a['id']}/actions",
                 json={"action": "request_registration", "note": "please register it this week"})
    registered = m.as_user(user_a, "register", agent_a["id"], "--owner", f"{user_a}@example.org", "--purpose",
                           "writes the release notes")
    assert registered.returncode == 0, registered.stderr
    registration = m.admin_call("GET", "/api/v1/registrations", params={"sighting": agent_a["id"]})["data"][0]
    m.admin_call("POST", f"/api/v1/registrations/{registration['id']}/reject",
                 json={"note": "say which data systems it touches"})
    m.admin_call("POST", "/api/v1/inbox/questions",
                 json={"device_id": device, "sighting_id": agent_b["id"], "question": "Which databases does it read?"})

    items = eventually(lambda: len(m.inbox()) >= 3 and m.inbox(), "the three items in the daemon's inbox", m)
    assert sorted((i["kind"], i["user"], i["sighting_id"]) for i in items) == sorted([
        ("request", user_a, agent_a["id"]), ("decision", user_a, agent_a["id"]), ("question", user_b, agent_b["id"])])
    assert len({i["id"] for i in items}) == len(items) == 3
    eventually(lambda: all(s["delivered_at"] for s in m.sent()), "acknowledged at the collector", m)

    mine = m.as_user(user_a, "status", "--mine", "--json")
    assert mine.returncode == 0, mine.stderr
    doc = json.loads(mine.stdout)
    assert doc["user"] == user_a and {s["user"] for s in doc["sightings"]} == {user_a}
    got = {(i["kind"], i.get("status"), i["text"]) for i in doc["inbox"]}
    assert got == {("request", None, "please register it this week"),
                   ("decision", "rejected", "say which data systems it touches")}
    assert "Which databases" not in mine.stdout and agent_b["id"] not in mine.stdout
    assert any(s["id"] == agent_a["id"] and s["evidence_kinds"] for s in doc["sightings"])

    page = m.as_user(user_b, "status", "--mine")
    assert page.returncode == 0, page.stderr
    assert "asks about" in page.stdout and "Which databases does it read?" in page.stdout
    assert "please register it this week" not in page.stdout


def test_an_item_sent_while_the_daemon_is_down_arrives_once_it_is_back(machine: Machine) -> None:
    m = machine
    device = m.device_id()
    before = {i["id"] for i in m.inbox()}
    m.stop(signal.SIGKILL)
    (_, agent_a), *_ = sorted(top_level(m).items())
    m.admin_call("POST", "/api/v1/inbox/questions",
                 json={"device_id": device, "sighting_id": agent_a["id"], "question": "Is it still in use?"})
    assert not any(i["text"] == "Is it still in use?" for i in m.inbox())
    m.start()
    eventually(lambda: any(i["text"] == "Is it still in use?" for i in m.inbox()), "the question after a restart", m)
    eventually(lambda: all(s["delivered_at"] for s in m.sent()), "acknowledged at the collector", m)
    m.stop(signal.SIGTERM)
    m.start()  # and again: nothing arrives twice
    time.sleep(3)
    ids = [i["id"] for i in m.inbox()]
    assert len(ids) == len(set(ids)) == len(before) + 1


def test_the_companion_registers_an_agent_and_hears_the_admins_answer(machine: Machine, qtbot, tmp_path: Path) -> None:
    """The companion (pytest-qt) on the real daemon's socket: notified of an agent not registered, it
    registers it through its window; the admin approves with a comment; the companion tells the user.
    The notification is captured at the OS boundary (``showMessage`` on its tray icon)."""
    from endpoint.companion.app import Companion
    from endpoint.companion.model import Client, SeenStore
    from endpoint.service.localsock import socket_path

    m = machine
    companion = Companion(Client(socket_path(m.data_dir)), seen=SeenStore(tmp_path / "seen.json"),
                          poll_interval_ms=500)
    shown: list[tuple[str, str]] = []
    companion.tray.showMessage = lambda title, text, *_rest: shown.append((title, text))  # type: ignore[method-assign]
    qtbot.addWidget(companion.window)
    try:
        with qtbot.waitSignal(companion.polled, timeout=60_000):
            companion.start()
        assert companion.snapshot is not None, companion.problem
        agent = companion.snapshot.unregistered()[0]
        assert f"agentroster found {agent['name']} on this machine" in [title for title, _ in shown]
        window = companion.open_register(str(agent["id"]))
        assert window is not None
        prefilled = window.fields()
        window.owner.setText("dana@example.org")
        window.purpose.setPlainText("drafts answers to customer tickets")
        window.data_systems.setText("zendesk, billing database")
        with qtbot.waitSignal(window.registered, timeout=60_000):
            window.send()
        registration = m.admin_call("GET", "/api/v1/registrations", params={"sighting": agent["id"]})["data"][0]
        assert (registration["owner"], registration["data_systems"], registration["providers"], registration["tools"]) \
            == ("dana@example.org", ["zendesk", "billing database"], prefilled["providers"], prefilled["tools"])
        m.admin_call("POST", f"/api/v1/registrations/{registration['id']}/approve",
                     json={"note": "approved for the support team"})
        qtbot.waitUntil(lambda: any(title == "IT answered your registration" and "approved for the support team" in text
                                    for title, text in shown), timeout=60_000)
        qtbot.waitUntil(lambda: companion.snapshot is not None
                        and companion.snapshot.registration(str(agent["id"])).endswith("approved"), timeout=60_000)
    finally:
        companion.timer.stop()
