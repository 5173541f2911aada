"""End to end: a real `agentroster server` on 127.0.0.1 (SQLite file), a real `agentroster daemon --once`
run that enrolls and reports a tmp machine's homes, then `agentroster register` (a child process) lists
and registers its sightings; the collector's own `GET /api/v1/registrations` (admin token) says what
arrived. Refusals: another user's sighting, bad input, the collector down, an agent it does not know
yet, a device not enrolled, a state the user cannot read.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import build_homes
from support import AGENTROSTER, TESTS

sys.path.append(str(TESTS / "console" / "server"))
import servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ENV = {"AGENTROSTER_SENSORS": "files", "AGENTROSTER_LOG_LEVEL": "info"}


@dataclass
class Machine:
    """A collector, and a tmp machine whose daemon enrolled with it and reported once."""

    tmp: Path
    root: Path
    data_dir: Path
    collector: servers.CollectorProcess
    admin: str
    secret_file: Path

    def daemon_once(self) -> subprocess.CompletedProcess[str]:
        return run("daemon", "--once", "--collector", self.collector.base_url, "--enroll-secret-file",
                   str(self.secret_file), "--data-dir", str(self.data_dir), "--root", str(self.root))

    def register(self, *args: str, user: str | None = None, stdin: Any = subprocess.DEVNULL,
                 prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """`agentroster register` as root, or as root under sudo for ``user`` (SUDO_USER)."""
        env = {"SUDO_USER": user} if user else {}
        done = run("register", "--data-dir", str(self.data_dir), *args, env=env, stdin=stdin, prefix=prefix,
                   unset=() if user else ("SUDO_USER",))
        key = self.key()
        assert key is None or key not in done.stdout + done.stderr, "the device key was printed"
        return done

    def key(self) -> str | None:
        path = self.data_dir / "device.key"
        return path.read_text().strip() or None if path.exists() else None

    def sightings(self) -> list[dict[str, Any]]:
        db = sqlite3.connect(f"file:{self.data_dir / 'state.sqlite3'}?mode=ro", uri=True, timeout=10)
        try:
            return [json.loads(doc) for (doc,) in db.execute("SELECT doc FROM sighting ORDER BY id")]
        finally:
            db.close()

    def registrations(self, **params: Any) -> dict[str, Any]:
        answer = httpx.get(self.collector.base_url + "/api/v1/registrations", params=params, timeout=30,
                           headers={"authorization": f"Bearer {self.admin}"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def run(*args: str, env: dict[str, str] | None = None, stdin: Any = subprocess.DEVNULL,
        prefix: tuple[str, ...] = (), unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in {**os.environ, **ENV, **(env or {})}.items() if k not in unset}
    return subprocess.run([*prefix, AGENTROSTER, *args], capture_output=True, text=True, timeout=120, env=full,
                          stdin=stdin)


def make_machine(tmp: Path) -> Iterator[Machine]:
    url = f"sqlite:///{tmp}/collector.sqlite3"
    tokens = servers.provision(url)
    collector = servers.CollectorProcess(url, log=tmp / "server.log").start()
    secret = tmp / "enroll-secret"
    secret.write_text(tokens["enroll_secret"] + "\n")
    secret.chmod(0o600)
    root = tmp / f"root-{uuid.uuid4().hex[:8]}"
    build_homes(root, homes=2)
    machine = Machine(tmp, root, tmp / "data", collector, tokens["admin"], secret)
    try:
        yield machine
    finally:
        collector.stop()


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """Shared by the tests that leave the collector up; each registers sightings no other test touches."""
    for m in make_machine(tmp_path_factory.mktemp("register")):
        done = m.daemon_once()
        assert done.returncode == 0, done.stderr
        yield m


@pytest.fixture
def own_machine(tmp_path: Path) -> Iterator[Machine]:
    """A machine of its own, for tests that stop the collector."""
    yield from make_machine(tmp_path)


RESERVED = "Cline"  # alice's Cline is kept unregistered for the bad-input tests


def pick(m: Machine, user: str, *, want: str) -> dict[str, Any]:
    """A top-level sighting of ``user`` with MCP servers ("tools") or a provider key and the autonomous
    flag ("autonomous")."""
    from endpoint.service.registration.cli import provider_ids
    from endpoint.service.registration.policy import prefill

    for s in m.sightings():  # in id order, and ids vary with the tmp path: any of them may come first
        if s["user"] != user or s["parent"] or s["name"] == RESERVED:
            continue
        pre = prefill(s, provider_ids())
        if want == "tools" and pre["tools"] or want == "autonomous" and pre["autonomy"] == "autonomous" \
                and pre["providers"]:
            return s
    raise AssertionError(f"the homes hold no {want} sighting of {user}")


# -- listing and registering ----------------------------------------------------------------------------


def test_list_shows_the_users_own_agents_and_whether_they_were_registered(machine):
    done = machine.register(user="alice")
    assert done.returncode == 0, done.stderr
    mine = [s for s in machine.sightings() if s["user"] == "alice"]
    assert done.stdout.startswith(f"{len(mine)} agents (alice's)")
    rows = done.stdout.splitlines()[2:2 + len(mine)]
    assert {r.split()[0] for r in rows} == {s["id"][:8] for s in mine}
    assert not any(" bob " in r for r in rows)
    everyone = machine.register()  # root itself: every user's
    assert everyone.returncode == 0 and everyone.stdout.startswith(f"{len(machine.sightings())} agents (every")


def test_register_sends_a_pending_registration_prefilled_from_the_evidence(machine):
    target = pick(machine, "alice", want="tools")
    done = machine.register(target["id"][:8], "--owner", "alice@example.com", "--purpose",
                            "refactors the billing service", "--data-system", "git", user="alice")
    assert done.returncode == 0, done.stderr
    assert "pending: an admin will review it" in done.stdout
    number = int(done.stdout.split("registration #")[1].split()[0])

    found = machine.registrations(sighting=target["id"])
    assert found["count"] == 1
    row = found["data"][0]
    assert row["id"] == number and row["status"] == "pending"
    assert row["owner"] == "alice@example.com" and row["purpose"] == "refactors the billing service"
    assert row["tools"] == sorted({m["name"] for m in target["mcp_servers"]}) and row["tools"]
    assert row["data_systems"] == ["git"] and row["autonomy"] == ("autonomous" if "autonomous" in target["flags"]
                                                                  else "supervised")
    listing = machine.register(user="alice").stdout
    line = next(r for r in listing.splitlines() if r.startswith(target["id"][:8]))
    assert line.endswith(f"#{number} pending")  # the collector's status (root reads the data dir itself)
    assert "status at the collector" in listing


def test_autonomous_agent_with_a_provider_key_is_prefilled_so(machine):
    target = pick(machine, "alice", want="autonomous")
    done = machine.register(target["id"], "--owner", "alice@example.com", "--purpose", "pairs on the api",
                            user="alice")
    assert done.returncode == 0, done.stderr
    row = machine.registrations(sighting=target["id"])["data"][0]
    kinds = {c["kind"] for c in target["credentials"]}
    assert row["autonomy"] == "autonomous" and row["providers"] and set(row["providers"]) <= kinds


def test_flags_override_the_prefill_and_a_new_registration_supersedes_the_pending_one(machine):
    target = next(s for s in machine.sightings() if s["user"] == "bob" and s["mcp_servers"] and not s["parent"])
    first = machine.register(target["id"], "--owner", "bob@example.com", "--purpose", "first", user="bob")
    assert first.returncode == 0, first.stderr
    second = machine.register(target["id"], "--owner", "bob@example.com", "--purpose", "second", "--provider",
                              "openai", "--tool", "jira", "--autonomy", "autonomous", "--business-process",
                              "support", user="bob")
    assert second.returncode == 0, second.stderr
    rows = {r["purpose"]: r for r in machine.registrations(sighting=target["id"])["data"]}
    assert rows["first"]["status"] == "superseded" and rows["second"]["status"] == "pending"
    assert (rows["second"]["providers"], rows["second"]["tools"], rows["second"]["autonomy"],
            rows["second"]["business_process"]) == (["openai"], ["jira"], "autonomous", "support")


def test_prompts_at_a_terminal_ask_for_what_is_missing(machine):
    target = next(s for s in machine.sightings() if s["user"] == "bob" and s["parent"])  # an MCP server
    main_fd, tty_fd = pty.openpty()
    try:
        os.write(main_fd, b"bob@example.com\nlooks up tickets\n\ny\n")
        done = machine.register(target["id"], user="bob", stdin=tty_fd)
    finally:
        os.close(tty_fd)
        os.close(main_fd)
    assert done.returncode == 0, done.stderr
    assert "Owner (your email)" in done.stdout and "pending: an admin will review it" in done.stdout
    row = machine.registrations(sighting=target["id"])["data"][0]
    assert (row["owner"], row["purpose"], row["business_process"]) == ("bob@example.com", "looks up tickets", "")


# -- refusals -------------------------------------------------------------------------------------------


def test_a_sighting_of_another_user_is_refused(machine):
    theirs = next(s for s in machine.sightings() if s["user"] == "bob" and not s["parent"])
    before = machine.registrations(sighting=theirs["id"])["count"]
    done = machine.register(theirs["id"], "--owner", "alice@example.com", "--purpose", "mine now", user="alice")
    assert done.returncode == 1
    assert "belongs to bob" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert machine.registrations(sighting=theirs["id"])["count"] == before


@pytest.mark.parametrize(("args", "message"), [
    (("--owner", "a" * 257, "--purpose", "p"), "--owner: too long (at most 256 characters)"),
    (("--owner", "a@example.com", "--purpose", "   "), "--purpose required"),
    (("--owner", "a@example.com"), "--purpose required (stdin is not a terminal"),
    (("--owner", "a@example.com", "--purpose", "p", "--tool", "t" * 129), "--tool #1: too long"),
    (("--owner", "a@example.com", "--purpose", "p", *[a for i in range(101) for a in ("--provider", f"p{i}")]),
     "--provider: too many (at most 100)"),
])
def test_bad_input_is_refused_before_anything_is_sent(machine, args, message):
    target = next(s for s in machine.sightings() if s["user"] == "alice" and s["name"] == RESERVED)
    done = machine.register(target["id"], *args, user="alice")
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert machine.registrations(sighting=target["id"])["count"] == 0


def test_a_bad_id_or_autonomy_is_refused(machine):
    assert machine.register("ffffffffff", "--owner", "a", "--purpose", "p").returncode == 1
    short = machine.register("ab", "--owner", "a", "--purpose", "p")
    assert short.returncode == 1 and "at least 4 characters" in short.stderr
    wrong = machine.register("ffffffff", "--autonomy", "yolo")
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr


def test_collector_down_then_an_agent_it_does_not_know_yet(own_machine):
    m = own_machine
    assert m.daemon_once().returncode == 0
    target = next(s for s in m.sightings() if s["user"] == "alice" and not s["parent"])
    m.collector.stop()
    down = m.register(target["id"], "--owner", "alice@example.com", "--purpose", "p", user="alice")
    assert down.returncode == 1 and "cannot reach the collector" in down.stderr, down.stderr
    assert len(down.stderr.strip().splitlines()) == 1

    # a new agent, seen by the daemon while the collector is down: known here, not there
    config = m.root / "home" / "alice" / ".cursor" / "mcp.json"
    doc = json.loads(config.read_text()) if config.exists() else {"mcpServers": {}}
    doc["mcpServers"]["brand-new-tool"] = {"command": "npx", "args": ["-y", "@example/brand-new-tool"]}
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(doc))
    assert m.daemon_once().returncode == 1
    new = next(s for s in m.sightings() if s["name"] == "brand-new-tool")
    m.collector.start()
    unknown = m.register(new["id"], "--owner", "alice@example.com", "--purpose", "p", user="alice")
    assert unknown.returncode == 1 and "does not know this agent yet" in unknown.stderr, unknown.stderr
    assert m.registrations()["count"] == 0


def test_a_device_not_enrolled_yet_is_told_so(own_machine):
    m = own_machine
    m.collector.stop()
    assert m.daemon_once().returncode == 1  # it scanned and spooled, but never reached the collector
    target = m.sightings()[0]
    done = m.register(target["id"], "--owner", "a@example.com", "--purpose", "p")
    assert done.returncode == 1 and "not enrolled" in done.stderr, done.stderr


def test_no_state_yet_is_a_clear_error(tmp_path):
    done = run("register", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == 1 and "no state yet" in done.stderr


@pytest.mark.root
def test_a_user_who_cannot_read_the_state_is_told_to_use_sudo(machine, tmp_path):
    """The daemon's data dir belongs to someone else and this process lacks root's override of file
    permissions (setpriv drops it; a non-root user cannot run this venv's Python, which lives under /root)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop the file-permission override")
    locked = tmp_path / "locked"
    shutil.copytree(machine.data_dir, locked)
    for path in [locked, *locked.iterdir()]:
        os.chown(path, 65534, 65534)
    locked.chmod(0o700)
    drop = ("setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search",
            "--")
    done = run("register", "--data-dir", str(locked), prefix=drop, env={"SUDO_USER": "alice"})
    assert done.returncode == 1
    assert "readable by root only" in done.stderr and "sudo agentroster register" in done.stderr, done.stderr


def test_a_revoked_device_key_is_refused_with_its_reason(own_machine):
    m = own_machine
    assert m.daemon_once().returncode == 0
    device_id = json.loads(run("status", "--json", "--data-dir", str(m.data_dir)).stdout)["device_id"]
    revoked = httpx.post(f"{m.collector.base_url}/api/v1/devices/{device_id}/revoke", timeout=30,
                         headers={"authorization": f"Bearer {m.admin}"})
    assert revoked.status_code == 200, revoked.text
    target = next(s for s in m.sightings() if s["user"] == "alice" and not s["parent"])
    done = m.register(target["id"], "--owner", "alice@example.com", "--purpose", "p", user="alice")
    assert done.returncode == 1 and "refused this device's key (invalid_device_key)" in done.stderr, done.stderr
    assert m.registrations()["count"] == 0


# -- without root: through the running daemon's local socket ---------------------------------------------------

AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass
class LiveMachine:
    """A collector, and a running `agentroster daemon` (root) whose homes include one of `nobody`, a real
    user of this machine, with its data dir where `nobody` can reach the socket beside it."""

    base: Path
    data_dir: Path
    socket: Path
    collector: servers.CollectorProcess
    admin: str
    log: Path

    def as_nobody(self, *requests: dict[str, Any]) -> list[dict[str, Any]]:
        """The daemon's answers to a stdlib client run as uid nobody (it cannot run this venv's Python)."""
        done = subprocess.run([*AS_NOBODY, SYSTEM_PYTHON, str(self.base / "client.py"), str(self.socket), "requests",
                               *(json.dumps(r) for r in requests)], capture_output=True, text=True, timeout=60,
                              cwd=self.base)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def register(self, *args: str, user: str) -> subprocess.CompletedProcess[str]:
        return run("register", "--data-dir", str(self.data_dir), *args, env={"SUDO_USER": user})

    def registrations(self, **params: Any) -> dict[str, Any]:
        return Machine.registrations(self, **params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMachine]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, setpriv and the system python3 to run a client as another uid")
    import tempfile

    from endpoint.service.localsock import socket_path

    tmp = tmp_path_factory.mktemp("register-live")
    base = Path(tempfile.mkdtemp(prefix="ar-live-", dir="/tmp"))  # pytest's tmp dirs are root-only
    base.chmod(0o755)
    shutil.copyfile(TESTS / "localsock_client.py", base / "client.py")
    (base / "client.py").chmod(0o644)
    root = tmp / "root"
    build_homes(root, homes=2)
    mine = root / "home" / "nobody" / ".cursor"
    mine.mkdir(parents=True)
    (mine / "mcp.json").write_text(json.dumps({"mcpServers": {
        "tickets": {"command": "npx", "args": ["-y", "@example/tickets-mcp"]}}}))
    yield from _live(tmp, base, root, socket_path)


def _live(tmp: Path, base: Path, root: Path, socket_path: Any) -> Iterator[LiveMachine]:
    url = f"sqlite:///{tmp}/live-collector.sqlite3"
    tokens = servers.provision(url)
    collector = servers.CollectorProcess(url, log=tmp / "live-server.log").start()
    secret = tmp / "live-enroll-secret"
    secret.write_text(tokens["enroll_secret"] + "\n")
    secret.chmod(0o600)
    data = base / "data"
    log = (tmp / "live-daemon.log").open("w")
    env = {**os.environ, **ENV, "AGENTROSTER_REPORT_INTERVAL_S": "1"}
    daemon = subprocess.Popen([AGENTROSTER, "daemon", "--collector", collector.base_url, "--enroll-secret-file",
                               str(secret), "--data-dir", str(data), "--root", str(root)], env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    machine = LiveMachine(base, data, socket_path(data), collector, tokens["admin"], tmp / "live-daemon.log")
    try:
        for _ in range(1200):  # enrolled, and its first report acknowledged (the collector knows the agents)
            done = run("status", "--json", "--data-dir", str(data))
            status = json.loads(done.stdout) if done.returncode == 0 else {}
            # READY comes before the first full scan: wait for that scan too (last_scan_at), not only a report
            if status.get("acked_seq", 0) >= 1 and status.get("last_scan_at") and machine.socket.exists():
                break
            assert daemon.poll() is None, (tmp / "live-daemon.log").read_text()
            time.sleep(0.1)
        else:
            raise AssertionError("the daemon did not report: " + (tmp / "live-daemon.log").read_text())
        yield machine
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        collector.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_user_registers_their_own_agent_through_the_daemons_socket(live):
    [listed] = live.as_nobody({"op": "list"})
    assert listed["ok"] and listed["user"] == "nobody", listed
    mine = {s["name"]: s for s in listed["sightings"]}
    assert {s["user"] for s in listed["sightings"]} == {"nobody"} and "tickets" in mine
    target = mine["tickets"]
    shown, sent = live.as_nobody({"op": "show", "id": target["id"][:8]},
                                 {"op": "register", "sighting_id": target["id"], "owner": "nobody@example.com",
                                  "purpose": "files support tickets", "tools": ["tickets"]})
    assert shown["ok"] and shown["sighting"]["id"] == target["id"]
    assert sent["ok"], sent
    registration = sent["registration"]
    assert registration["status"] == "pending" and registration["sighting_id"] == target["id"]
    rows = live.registrations(sighting=target["id"])["data"]
    assert [(r["id"], r["owner"], r["purpose"], r["tools"]) for r in rows] == \
        [(registration["id"], "nobody@example.com", "files support tickets", ["tickets"])]


def test_a_user_is_refused_another_users_agent_through_the_socket(live):
    root_view = run("register", "--data-dir", str(live.data_dir), unset=("SUDO_USER",))
    assert root_view.returncode == 0 and "every user's" in root_view.stdout
    short = next(line.split()[0] for line in root_view.stdout.splitlines()[2:] if " alice " in line)
    from endpoint.service.localsock import call

    alices = call(live.socket, {"op": "show", "id": short})["sighting"]["id"]  # root may look at any
    before = live.registrations()["count"]
    shown, sent = live.as_nobody({"op": "show", "id": alices},
                                 {"op": "register", "sighting_id": alices, "owner": "nobody@example.com",
                                  "purpose": "mine now"})
    # another user's agent is unknown to nobody, as an id of no agent at all is (nothing says whose it is)
    assert shown["code"] == "unknown_sighting" and "no such agent" in shown["error"]
    assert sent["code"] == "unknown_sighting" and "no such agent" in sent["error"]
    assert "alice" not in shown["error"] + sent["error"]
    [forged] = live.as_nobody({"op": "list", "as_user": "alice"})
    assert forged["code"] == "not_yours"
    assert live.registrations()["count"] == before


def test_register_under_sudo_goes_through_the_socket_and_shows_the_collectors_status(live):
    listing = live.register(user="bob")
    assert listing.returncode == 0, listing.stderr
    assert "agents (bob's)" in listing.stdout
    assert "status at the collector" in listing.stdout
    target = next(line.split()[0] for line in listing.stdout.splitlines()[2:] if " bob " in line
                  and line.split()[-1] == "no")
    done = live.register(target, "--owner", "bob@example.com", "--purpose", "drafts replies", user="bob")
    assert done.returncode == 0, done.stderr
    number = int(done.stdout.split("registration #")[1].split()[0])
    assert f"local socket: bob registered {target}" in live.log.read_text()  # sent by the daemon, as bob
    row = next(line for line in live.register(user="bob").stdout.splitlines() if line.startswith(target))
    assert row.endswith(f"#{number} pending")
    approved = httpx.post(f"{live.collector.base_url}/api/v1/registrations/{number}/approve", timeout=30,
                          headers={"authorization": f"Bearer {live.admin}"})
    assert approved.status_code == 200, approved.text
    row = next(line for line in live.register(user="bob").stdout.splitlines() if line.startswith(target))
    assert row.endswith(f"#{number} approved")
    theirs = live.register(target, "--owner", "alice@example.com", "--purpose", "p", user="alice")
    assert theirs.returncode == 1 and "no such agent" in theirs.stderr, theirs.stderr


def test_a_bad_setting_in_the_environment_is_a_warning_not_a_refusal(machine):
    # the daemon runs on with the default for a bad value (docs/endpoint-settings.md); so does register
    done = run("register", "--data-dir", str(machine.data_dir), env={"AGENTROSTER_PROCESS_INTERVAL_S": "0"},
               unset=("SUDO_USER",))
    assert done.returncode == 0, done.stderr
    assert "warning: process_interval_s (from env:AGENTROSTER_PROCESS_INTERVAL_S)" in done.stderr
    assert done.stdout.startswith(f"{len(machine.sightings())} agents (every")
