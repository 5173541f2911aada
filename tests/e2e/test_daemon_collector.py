"""End to end: the real `agentroster daemon` (a child process) watching tmp homes and real stand-in agent
processes, reporting over real HTTP to a real `agentroster server` on 127.0.0.1, on a SQLite file and on
PostgreSQL. Faults: the collector down for a while, restarted mid-ingest, the daemon killed with SIGKILL,
a tiny spool, a device key that stops working.

"Exactly once" is checked in the collector's own store: every sighting the daemon holds is present at
the collector, nothing else is, and no sighting was ever recorded as new twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import build_homes
from support import AGENTROSTER, TESTS

sys.path.append(str(TESTS / "console" / "server"))
import fleet
import servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FAKE_OPENAI = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"
SETTINGS_ENV = {  # fast timers for tests; the defaults are minutes
    "AGENTROSTER_PROCESS_INTERVAL_S": "0.5",
    "AGENTROSTER_HEARTBEAT_INTERVAL_S": "3",
    "AGENTROSTER_REPORT_INTERVAL_S": "0.5",
    "AGENTROSTER_FULL_SCAN_INTERVAL_S": "3600",
    "AGENTROSTER_SENSORS": "processes,files",
    "AGENTROSTER_LOG_LEVEL": "debug",
}


# -- collectors ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[servers.PostgresCluster]:
    bindir = servers.postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    cluster = servers.PostgresCluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/collector.sqlite3"
    cluster: servers.PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"d{uuid.uuid4().hex[:12]}")


@dataclass
class Collector:
    process: servers.CollectorProcess
    database_url: str
    admin: str
    enroll_secret: str

    @property
    def url(self) -> str:
        return self.process.base_url

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(self.url + path, params=params, headers={"authorization": f"Bearer {self.admin}"},
                           timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def present_ids(self, device_id: str) -> set[str]:
        ids, cursor = set(), None
        while True:
            page = self.get("/api/v1/agents", device=device_id, limit=500, **({"cursor": cursor} if cursor else {}))
            ids |= {s["id"] for s in page["data"]}
            cursor = page.get("next_cursor")
            if not cursor:
                return ids

    def names(self, device_id: str) -> set[str]:
        return {s["name"] for s in self.get("/api/v1/agents", device=device_id, limit=500)["data"]}

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                return list(conn.execute(sqlalchemy.text(sql), params).all())
        finally:
            engine.dispose()

    def applied_twice(self, device_id: str) -> list[Any]:
        """Evidence of a report applied twice in the collector's history: one (sighting, epoch, seq) with
        two entries, or a sighting recorded as new twice without going in between."""
        rows = self._rows("SELECT sighting_id, epoch, seq, change, id FROM sighting_history WHERE device_id = :d "
                          "ORDER BY sighting_id, id", d=device_id)
        problems: list[Any] = []
        seen: set[tuple[str, str, int]] = set()
        last: dict[str, str] = {}
        for sid, epoch, seq, change, _id in rows:
            if (sid, epoch, seq) in seen:
                problems.append(("twice in one report", sid, epoch, seq))
            seen.add((sid, epoch, seq))
            if change == "new" and last.get(sid) in ("new", "changed"):
                problems.append(("new again while present", sid, epoch, seq))
            last[sid] = change
        return problems

    def position(self, device_id: str) -> tuple[str, int]:
        epoch, seq = self._rows("SELECT epoch, seq FROM device WHERE id = :d", d=device_id)[0]
        return str(epoch), int(seq)


@pytest.fixture
def collector(database_url: str, tmp_path: Path) -> Iterator[Collector]:
    tokens = servers.provision(database_url)
    process = servers.CollectorProcess(database_url, log=tmp_path / "server.log").start()
    yield Collector(process, database_url, tokens["admin"], tokens["enroll_secret"])
    process.stop()


# -- the daemon ------------------------------------------------------------------------------------


@dataclass
class Daemon:
    tmp: Path
    collector: Collector
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def log(self) -> Path:
        return self.tmp / "daemon.log"

    def start(self) -> Daemon:
        secret = self.tmp / "enroll-secret"
        if not secret.exists():
            secret.write_text(self.collector.enroll_secret + "\n")
            secret.chmod(0o600)
        argv = [AGENTROSTER, "daemon", "--collector", self.collector.url, "--enroll-secret-file", str(secret),
                "--data-dir", str(self.data_dir), "--root", str(self.root)]
        env = {**os.environ, **SETTINGS_ENV, **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                         start_new_session=True)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def state(self) -> dict[str, Any]:
        """The daemon's own state file, read as `agentroster status` does."""
        db = sqlite3.connect(f"file:{self.data_dir / 'state.sqlite3'}?mode=ro", uri=True, timeout=10)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            ids = {r[0] for r in db.execute("SELECT id FROM sighting")}
            spool = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool").fetchone()
            names = {json.loads(r[0])["name"] for r in db.execute("SELECT doc FROM sighting")}
        finally:
            db.close()
        return {"meta": meta, "ids": ids, "spool_reports": spool[0], "spool_bytes": spool[1], "names": names}

    def status(self) -> dict[str, Any]:
        done = subprocess.run([AGENTROSTER, "status", "--json", "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=60)
        doc = dict(json.loads(done.stdout))
        assert done.returncode == doc["exit_code"], done.stderr  # LSB's code: 0 only once running and enrolled
        return doc

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def make_daemon(tmp_path: Path, collector: Collector) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(root: Path, **env: str) -> Daemon:
        daemon = Daemon(tmp_path, collector, root, env)
        made.append(daemon)
        return daemon.start()

    yield make
    for daemon in made:
        daemon.stop()


def eventually(check: Callable[[], Any], what: str, *, daemon: Daemon | None = None, timeout: float = 90) -> Any:
    """Poll ``check`` until it returns something true (a hang guard, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, sqlite3.Error, httpx.HTTPError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what} (last: {last!r})\n{daemon.tail() if daemon else ''}")


def in_step(daemon: Daemon, collector: Collector) -> bool:
    """The collector holds exactly the sightings the daemon holds, and the spool is empty."""
    state = daemon.state()
    device_id = state["meta"].get("device_id")
    return bool(device_id and state["spool_reports"] == 0 and state["ids"]
                and collector.present_ids(device_id) == state["ids"])


def exactly_once(daemon: Daemon, collector: Collector) -> str:
    eventually(lambda: in_step(daemon, collector), "the collector holds every sighting of the daemon", daemon=daemon)
    device_id = daemon.state()["meta"]["device_id"]
    assert collector.applied_twice(device_id) == []

    def same_position() -> bool:  # the collector's last applied report is the daemon's last acknowledged one
        meta = daemon.state()["meta"]
        return collector.position(device_id) == (meta["epoch"], int(meta["acked_seq"]))

    eventually(same_position, "the collector's position is the daemon's", daemon=daemon)
    return str(device_id)


# -- machines --------------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / f"root-{uuid.uuid4().hex[:8]}"  # its name is the device's host name
    build_homes(root, homes=2)
    return root


def edit_config(root: Path, name: str, rel: str = ".cursor/mcp.json") -> Path:
    """A user adds an MCP server to a client's config (written whole, then renamed, as editors do)."""
    path = root / "home" / "alice" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(path.read_text()) if path.exists() else {"mcpServers": {}}
    doc.setdefault("mcpServers", {})[name] = {"command": "npx", "args": ["-y", f"@example/{name}"]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return path


def stand_in_agent(root: Path, spawn: Callable[..., subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """A process laid out as pip installs aider, run as a user runs it."""
    script = root / "opt" / "venv" / "bin" / "aider"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("import time\ntime.sleep(600)\n")
    env = {**os.environ, "HOME": str(root / "home" / "alice"), "OPENAI_API_KEY": FAKE_OPENAI}
    return spawn([sys.executable, str(script), "--yes-always", "--model", "gpt-4o"], env=env)


# -- tests -----------------------------------------------------------------------------------------


def test_daemon_reports_homes_new_processes_and_config_edits(collector, make_daemon, root, spawn):
    daemon = make_daemon(root)
    device_id = exactly_once(daemon, collector)
    status = daemon.status()
    assert status["enrolled"] and status["running"] and status["collector_url"] == collector.url
    assert status["sensors"]["processes"] == "ok" and status["sensors"]["files"].startswith("ok")

    agent = stand_in_agent(root, spawn)
    found = eventually(lambda: [s for s in collector.get("/api/v1/agents", device=device_id, signature="aider",
                                                         limit=50)["data"] if s["running"]],
                       "the new aider process is a running sighting at the collector", daemon=daemon)
    assert found[0]["user"] is not None

    edit_config(root, "edit-probe-one")
    eventually(lambda: "edit-probe-one" in collector.names(device_id), "a config edit", daemon=daemon)
    # a client whose config directory does not exist yet: the nearest parent is watched
    assert not (root / "home" / "alice" / ".codeium").exists()
    edit_config(root, "edit-probe-two", ".codeium/windsurf/mcp_config.json")
    eventually(lambda: "edit-probe-two" in collector.names(device_id), "a config in a new directory", daemon=daemon)
    edit_config(root, "edit-probe-three", ".codeium/windsurf/mcp_config.json")
    eventually(lambda: "edit-probe-three" in collector.names(device_id), "an edit in the re-armed watch",
               daemon=daemon)

    agent.kill()
    agent.wait(timeout=10)
    eventually(lambda: not [s for s in collector.get("/api/v1/agents", device=device_id, signature="aider",
                                                     limit=50)["data"] if s["running"]],
               "the exited process is no longer running at the collector", daemon=daemon)
    assert exactly_once(daemon, collector) == device_id
    log = daemon.tail()
    assert collector.enroll_secret not in log and "ard_" not in log, "a credential reached the log"

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0


def test_collector_down_for_a_while_then_everything_is_delivered_once(collector, make_daemon, root):
    daemon = make_daemon(root)
    exactly_once(daemon, collector)
    collector.process.stop()
    for n in range(4):
        edit_config(root, f"while-down-{n}")
        eventually(lambda n=n: f"while-down-{n}" in daemon.state()["names"], "the edit is in the state", daemon=daemon)
    eventually(lambda: daemon.state()["spool_reports"] >= 1, "reports wait in the spool", daemon=daemon)
    status = eventually(lambda: (s := daemon.status())["reporter"] and s["reporter"]["last_error"] and s,
                        "the status says why", daemon=daemon)
    assert "CollectorUnreachable" in status["reporter"]["last_error"]
    collector.process.start()
    device_id = exactly_once(daemon, collector)
    assert {f"while-down-{n}" for n in range(4)} <= collector.names(device_id)


def test_collector_killed_mid_ingest_then_restarted(collector, make_daemon, tmp_path):
    root = tmp_path / f"big-{uuid.uuid4().hex[:8]}"
    build_homes(root, homes=12)  # a first snapshot of a few hundred sightings
    daemon = make_daemon(root)
    eventually(lambda: daemon.state()["meta"].get("device_id"), "enrolled", daemon=daemon)
    collector.process.stop(signal.SIGKILL)  # while the snapshot is on its way or being applied
    edit_config(root, "after-crash")
    collector.process.start()
    device_id = exactly_once(daemon, collector)
    assert "after-crash" in collector.names(device_id)


def test_daemon_killed_mid_report_resumes_with_the_same_epoch(collector, make_daemon, root):
    daemon = make_daemon(root)
    exactly_once(daemon, collector)
    epoch = daemon.state()["meta"]["epoch"]
    for n in range(3):
        edit_config(root, f"before-kill-{n}")
        time.sleep(0.1)
    daemon.signal(signal.SIGKILL)  # somewhere between an edit, its report and its ack
    daemon.wait(timeout=30)
    edit_config(root, "while-dead")
    daemon.start()
    wanted = {"before-kill-0", "before-kill-1", "before-kill-2", "while-dead"}
    eventually(lambda: wanted <= daemon.state()["names"], "the restarted daemon sees every edit", daemon=daemon)
    device_id = exactly_once(daemon, collector)
    assert daemon.state()["meta"]["epoch"] == epoch
    assert wanted <= collector.names(device_id)


def test_tiny_spool_coalesces_into_a_snapshot_and_stays_bounded(collector, make_daemon, root):
    daemon = make_daemon(root, AGENTROSTER_SPOOL_MAX_BYTES="15000")
    exactly_once(daemon, collector)
    collector.process.stop()
    for n in range(12):
        edit_config(root, f"spooled-{n}")
        eventually(lambda n=n: f"spooled-{n}" in daemon.state()["names"], "the edit is in the state", daemon=daemon)
    status = eventually(lambda: (s := daemon.status())["spool"].get("coalesced") and s, "the spool coalesced",
                        daemon=daemon)
    state = daemon.state()
    snapshot_size = state["spool_bytes"] if state["spool_reports"] == 1 else 0
    assert state["spool_bytes"] <= max(15000, snapshot_size)
    assert status["spool"]["health"] in ("normal", "warning", "full")
    collector.process.start()
    device_id = exactly_once(daemon, collector)
    assert {f"spooled-{n}" for n in range(12)} <= collector.names(device_id)


def test_the_enroll_secret_alone_cannot_take_over_the_daemons_device(collector, make_daemon, root):
    daemon = make_daemon(root)
    device_id = exactly_once(daemon, collector)
    key = (daemon.data_dir / "device.key").read_text()
    host_identifier = (daemon.data_dir / "install.id").read_text().strip()
    rows = {d["id"]: d for d in collector.get("/api/v1/devices", limit=500)["data"]}
    assert rows[device_id]["host_identifier"] == host_identifier  # the per-install identity, not the host name
    held = collector.present_ids(device_id)
    # someone with the org's enroll secret (every machine has it) claims this device's identity ...
    doc = fleet.device_doc(host_identifier, hostname=root.name)
    answer = httpx.post(collector.url + "/api/v1/enroll", timeout=30, json={
        "enroll_secret": collector.enroll_secret, "host_identifier": host_identifier, "device": doc})
    assert answer.status_code == 200, answer.text
    intruder = answer.json()
    assert intruder["device_id"] != device_id and intruder["identity_conflict"] is True
    # ... and says that nothing runs there
    empty = httpx.post(collector.url + "/api/v1/reports", timeout=30, json=fleet.report(doc, kind="snapshot"),
                       headers={"authorization": f"Bearer {intruder['device_key']}"})
    assert empty.json()["applied"] is True
    # the real device goes on reporting under its own key, and nothing it reported is gone
    edit_config(root, "after-intruder")
    eventually(lambda: "after-intruder" in collector.names(device_id), "the device still reports", daemon=daemon)
    assert (daemon.data_dir / "device.key").read_text() == key
    assert held <= collector.present_ids(device_id)
    assert exactly_once(daemon, collector) == device_id
    rows = {d["id"]: d for d in collector.get("/api/v1/devices", limit=500)["data"]}
    assert rows[intruder["device_id"]]["identity_conflict"] == device_id
    assert rows[device_id]["identity_conflict"] is None and rows[device_id]["revoked"] is False


def contract_sighting(name: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:20], "signature": None, "name": name, "vendor": "", "type": "tool_server",
            "user": "alice", "running": False, "confidence": 0.7, "parent": None, "processes": [], "configs": [],
            "mcp_servers": [], "endpoints": [], "credentials": [], "flags": [], "evidence": [],
            "first_seen": "2026-01-01T00:00:00+00:00", "last_seen": "2026-01-01T00:00:00+00:00"}


def test_replayed_and_out_of_order_reports_are_applied_exactly_once(collector, tmp_path):
    from contract.report import finish_body
    from endpoint.service.inventory import Inventory
    from endpoint.service.reporter import Reporter

    host = f"host:replay-{uuid.uuid4().hex[:8]}"
    device = {"id": host, "hostname": host[5:], "os": "linux", "os_version": "", "arch": "x86_64",
              "agentroster_version": "0.1.0"}
    inv = Inventory(tmp_path / "state")
    rep = Reporter(inv, collector_url=collector.url, enroll_secret=lambda: collector.enroll_secret,
                   device=lambda: device)
    one, two, three = (contract_sighting(n) for n in ("one", "two", "three"))

    def post(body: bytes) -> dict[str, Any]:
        answer = httpx.post(collector.url + "/api/v1/reports", content=finish_body(body, sent_at="x", status={}),
                            headers={"authorization": f"Bearer {inv.device_key()}",
                                     "content-type": "application/json"}, timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def spooled(seq: int) -> bytes:
        return bytes(inv.db.execute("SELECT body FROM spool WHERE seq = ?", (seq,)).fetchone()[0])

    inv.record([one], device=device)
    rep.enroll()
    snapshot = inv.pending().body
    assert rep.send_next()
    inv.record([one, two], device=device)
    delta = inv.pending().body
    assert rep.send_next()
    assert post(snapshot)["duplicate"] and post(delta)["duplicate"]  # a report in flight, sent again

    inv.record([one, two, three], device=device)  # seq 3
    inv.record([one, three], device=device)  # seq 4
    early = post(spooled(4))  # seq 4 overtakes seq 3
    assert early["need_snapshot"] and not early["applied"]
    while rep.send_next():
        pass
    device_id = inv.meta()["device_id"]
    assert collector.present_ids(device_id) == {one["id"], three["id"]}
    assert collector.applied_twice(device_id) == []
    assert collector.position(device_id) == (inv.epoch, inv.acked_seq)
    rep.stop()


def test_a_snapshot_over_the_collectors_cap_arrives_in_parts(database_url, tmp_path):
    """A device whose snapshot is bigger than the collector takes in one report (here a 48 KiB cap, so
    that a few hundred sightings exceed it) sends it in parts; the collector holds every sighting once,
    and marks gone only what no part of a later snapshot carried."""
    from contract.report import finish_body
    from endpoint.service.inventory import Inventory
    from endpoint.service.reporter import Reporter

    tokens = servers.provision(database_url)
    process = servers.CollectorProcess(database_url, extra=("--max-report-mib", str(48 / 1024)),
                                       log=tmp_path / "server.log").start()
    collector = Collector(process, database_url, tokens["admin"], tokens["enroll_secret"])
    host = f"host:big-{uuid.uuid4().hex[:8]}"
    device = {"id": host, "hostname": host[5:], "os": "linux", "os_version": "", "arch": "x86_64",
              "agentroster_version": "0.1.0"}
    inv = Inventory(tmp_path / "state", max_report_bytes=40 << 10)
    rep = Reporter(inv, collector_url=collector.url, enroll_secret=lambda: collector.enroll_secret,
                   device=lambda: device)
    try:
        sightings = [contract_sighting(f"server-{i:03d}") for i in range(300)]
        for s in sightings:
            s["configs"] = [{"path": f"/home/alice/project-{s['name']}/.mcp.json", "client": "claude-code",
                             "format": "json", "scope": "project"}]
        inv.record(sightings, device=device)
        rep.enroll()
        parts = [json.loads(body) for (body,) in inv.db.execute("SELECT body FROM spool ORDER BY seq")]
        assert len(parts) >= 3 and [p["part"] for p in parts] == list(range(1, len(parts) + 1))
        assert {p["parts"] for p in parts} == {len(parts)} and {p["kind"] for p in parts} == {"snapshot"}
        whole = finish_body(json.dumps({**parts[0], "upserts": sightings, "part": 1, "parts": 1}).encode(),
                            sent_at="x", status={})
        refused = httpx.post(collector.url + "/api/v1/reports", content=whole, timeout=30,
                             headers={"authorization": f"Bearer {inv.device_key()}", "content-type": "application/json"})
        assert refused.status_code == 413  # what one report of it all would get
        while rep.send_next():
            pass
        device_id = inv.meta()["device_id"]
        assert collector.present_ids(device_id) == {s["id"] for s in sightings}

        kept = sightings[50:]
        inv.record(kept, device=device, snapshot=True)
        assert inv.spool_stats().reports >= 3
        while rep.send_next():
            pass
        assert collector.present_ids(device_id) == {s["id"] for s in kept}
        assert collector.applied_twice(device_id) == []
        assert collector.position(device_id) == (inv.epoch, inv.acked_seq)
    finally:
        rep.stop()
        process.stop()


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTROSTER, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **SETTINGS_ENV, **(env or {})})


def test_once_scans_delivers_and_says_so_in_status(collector, root, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(collector.enroll_secret)
    secret.chmod(0o600)
    data = tmp_path / "once"
    done = run("daemon", "--once", "--collector", collector.url, "--enroll-secret-file", str(secret),
               "--data-dir", str(data), "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert collector.enroll_secret not in done.stderr
    status = run("status", "--data-dir", str(data))
    assert status.returncode == 3, status.stderr  # LSB: not running (--once has ended)
    assert "enrolled:   yes" in status.stdout and "0 reports" in status.stdout
    assert "daemon:     not running" in status.stdout
    device_id = json.loads(run("status", "--json", "--data-dir", str(data)).stdout)["device_id"]
    assert len(collector.present_ids(device_id)) > 10


def test_once_with_the_collector_down_keeps_the_report_and_fails(collector, root, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(collector.enroll_secret)
    secret.chmod(0o600)
    collector.process.stop()
    data = tmp_path / "down"
    done = run("daemon", "--once", "--collector", collector.url, "--enroll-secret-file", str(secret),
               "--data-dir", str(data), "--root", str(root))
    assert done.returncode == 1 and "refused" in done.stderr
    doc = json.loads(run("status", "--json", "--data-dir", str(data)).stdout)
    assert doc["spool"]["reports"] == 1 and not doc["enrolled"]
    collector.process.start()


def test_print_settings_shows_where_each_comes_from_and_never_the_secret(tmp_path):
    done = run("daemon", "--print-settings", "--collector", "https://collector.example:8443",
               "--data-dir", str(tmp_path / "d"), env={"AGENTROSTER_ENROLL_SECRET": "are_FAKE_SECRET_VALUE"})
    assert done.returncode == 0, done.stderr
    assert "https://collector.example:8443" in done.stdout and "(cli)" in done.stdout
    assert "are_FAKE_SECRET_VALUE" not in done.stdout + done.stderr
    bad = run("daemon", "--collector", "ftp://nope", "--data-dir", str(tmp_path / "d"))
    assert bad.returncode == 2 and "collector_url" in bad.stderr


def test_status_without_state_is_a_clear_error(tmp_path):
    done = run("status", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == 4 and "no state yet" in done.stderr  # LSB: status unknown


def _tls_files(tmp: Path) -> dict[str, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it (openssl, as an admin would)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command (Debian: apt-get install openssl; ./dev test installs it)")

    def ssl_cmd(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60, cwd=tmp)

    ssl_cmd("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=agentroster test CA")
    ssl_cmd("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (tmp / "ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    ssl_cmd("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext")
    return {"ca": tmp / "ca.pem", "cert": tmp / "server.pem", "key": tmp / "server.key"}


def test_tls_collector_is_trusted_through_the_ca_bundle_only(tmp_path, root):
    import ssl

    files = _tls_files(tmp_path)
    url = f"sqlite:///{tmp_path}/tls.sqlite3"
    tokens = servers.provision(url)
    port = servers.free_port()
    with open(tmp_path / "server.log", "ab") as log:
        server = subprocess.Popen([AGENTROSTER, "server", "--database-url", url, "--port", str(port),
                                   "--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    try:
        trusted = ssl.create_default_context(cafile=str(files["ca"]))
        eventually(lambda: httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trusted, timeout=2).status_code
                   == 200, "the TLS collector is up")
        secret = tmp_path / "secret"
        secret.write_text(tokens["enroll_secret"])
        secret.chmod(0o600)
        argv = ("daemon", "--once", "--collector", f"https://127.0.0.1:{port}", "--enroll-secret-file", str(secret),
                "--root", str(root))
        untrusted = run(*argv, "--data-dir", str(tmp_path / "a"))
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        trusting = run(*argv, "--data-dir", str(tmp_path / "b"), env={"AGENTROSTER_CA_BUNDLE": str(files["ca"])})
        assert trusting.returncode == 0, trusting.stderr
        doc = json.loads(run("status", "--json", "--data-dir", str(tmp_path / "b")).stdout)
        assert doc["enrolled"] and doc["spool"]["reports"] == 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


LLM_CALLER = """
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for line in sys.stdin:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname=line.strip()):
                pass
    except OSError:
        pass
"""


def test_an_llm_call_becomes_an_endpoint_at_the_collector(collector, make_daemon, root, tmp_path):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:  # a provider's port: takes the ClientHello, says nothing
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    script = root / "opt" / "venv" / "bin" / "aider"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(LLM_CALLER)
    agent = subprocess.Popen([sys.executable, str(script), str(listener.getsockname()[1]), "--yes-always"],
                             stdin=subprocess.PIPE, env={**os.environ, "HOME": str(root / "home" / "alice")},
                             start_new_session=True)
    try:
        daemon = make_daemon(root, AGENTROSTER_SENSORS="processes,files,network")
        device_id = exactly_once(daemon, collector)
        network = daemon.status()["sensors"]["network"]
        if network != "ok":
            pytest.skip(f"the network sensor cannot capture here: {network}")
        assert agent.stdin is not None
        agent.stdin.write(b"api.mistral.ai\n")
        agent.stdin.flush()
        found = eventually(lambda: collector.get("/api/v1/agents", device=device_id, provider="mistral")["data"],
                           "the call to api.mistral.ai is an endpoint of a sighting", daemon=daemon)
        detail = collector.get(f"/api/v1/agents/{device_id}/{found[0]['id']}")
        assert any(e["host"] == "api.mistral.ai" and e["provider"] == "mistral" for e in detail["endpoints"])
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        agent.kill()
        agent.wait(timeout=10)
        listener.close()
        for conn in held:
            conn.close()


def test_a_config_directory_removed_and_made_again_is_still_watched(collector, make_daemon, root):
    daemon = make_daemon(root)
    device_id = exactly_once(daemon, collector)
    edit_config(root, "first-life")
    eventually(lambda: "first-life" in collector.names(device_id), "the first edit", daemon=daemon)
    shutil.rmtree(root / "home" / "alice" / ".cursor")
    eventually(lambda: "first-life" not in collector.names(device_id), "the removed config's server is gone",
               daemon=daemon)
    edit_config(root, "second-life")  # the directory again, a new inode
    eventually(lambda: "second-life" in collector.names(device_id), "an edit in the new directory", daemon=daemon)
    edit_config(root, "third-edit")
    eventually(lambda: "third-edit" in collector.names(device_id), "a further edit there", daemon=daemon)


# -- fault isolation (issue 9) ---------------------------------------------------------------------

POISON_WRAPPER = '''
"""`agentroster` with redact_url broken for VS Code's ${input:...} URLs, as issue 9 found it: the test's
stand-in for any bug a user's file can reach, kept whatever becomes of that one."""
import sys

from endpoint.scan.engine import declarations

real = declarations.redact_url


def broken(url):
    if "${input:" in url:
        raise ValueError(f"Port could not be cast to integer value as {url!r}")
    return real(url)


declarations.redact_url = broken
from endpoint.cli import main  # noqa: E402

sys.exit(main())
'''


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_file_that_breaks_the_code_hides_nothing_else_and_the_device_shows_incomplete(collector, root, tmp_path):
    """Issue 9's VS Code file (``"url": "https://${input:…}/…"``) beside 100 good servers of the same
    user, through the real daemon to a real collector. The daemon runs with redact_url monkeypatched
    to raise on that URL (a mock, said here: the real crash is being fixed on its own, and the rule under
    test is that any such bug costs one entry, not the machine)."""
    mallory = root / "home" / "mallory"
    good = {f"good-{i}": {"command": "npx", "args": ["-y", f"@example/good-{i}"]} for i in range(100)}
    windsurf = mallory / ".codeium" / "windsurf" / "mcp_config.json"
    windsurf.parent.mkdir(parents=True)
    windsurf.write_text(json.dumps({"mcpServers": good}))
    vscode = mallory / ".config" / "Code" / "User" / "mcp.json"
    vscode.parent.mkdir(parents=True)
    vscode.write_text(json.dumps({"inputs": [{"id": "home-assistant-domain", "type": "promptString"}],
                                  "servers": {"home-assistant": {"type": "sse", "url":
                                                                 "https://${input:home-assistant-domain}/mcp_server/sse"}}}))
    wrapper = tmp_path / "poisoned_agentroster.py"
    wrapper.write_text(POISON_WRAPPER)
    secret = tmp_path / "enroll-secret"
    secret.write_text(collector.enroll_secret + "\n")
    secret.chmod(0o600)
    daemon = Daemon(tmp_path, collector, root)  # its helpers; started here through the wrapper
    argv = [sys.executable, str(wrapper), "daemon", "--collector", collector.url, "--enroll-secret-file",
            str(secret), "--data-dir", str(daemon.data_dir), "--root", str(root)]
    with open(daemon.log, "ab") as out:
        daemon.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                       env={**os.environ, **SETTINGS_ENV}, start_new_session=True)
    try:
        device_id = exactly_once(daemon, collector)

        def mallorys_names() -> set[str]:
            names: set[str] = set()
            cursor = None
            while True:
                page = collector.get("/api/v1/agents", device=device_id, user="mallory", limit=500,
                                     **({"cursor": cursor} if cursor else {}))
                names |= {s["name"] for s in page["data"]}
                cursor = page.get("next_cursor")
                if not cursor:
                    return names

        names = mallorys_names()
        assert {f"good-{i}" for i in range(100)} <= names and "home-assistant" not in names
        assert len(collector.present_ids(device_id)) > 100  # the other homes are all there too

        def incomplete() -> dict[str, Any] | None:
            found = collector.get("/api/v1/devices", incomplete="true", limit=500)["data"]
            return next((d for d in found if d["id"] == device_id), None)

        device = eventually(incomplete, "the device is listed as incomplete", daemon=daemon)
        assert device["status"]["units_failed"] == 1 and device["status"]["degraded"] == ["files"]
        # rescans (an edit of the same home) do not log the same failure again
        doc = json.loads(windsurf.read_text())
        doc["mcpServers"]["good-extra"] = {"command": "npx", "args": ["-y", "@example/good-extra"]}
        windsurf.write_text(json.dumps(doc))
        eventually(lambda: "good-extra" in mallorys_names(), "an edit beside the poison", daemon=daemon)
        log = daemon.log.read_text(errors="replace")
        assert log.count("servers/home-assistant: could not be processed") == 1, log[-3000:]
        assert "Traceback" not in log and "${input" not in log
        assert daemon.status()["units_failed"] == 1
    finally:
        daemon.stop()


def once(collector: Collector, root: Path, data: Path, secret: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run("daemon", "--once", "--collector", collector.url, "--enroll-secret-file", str(secret),
               "--data-dir", str(data), "--root", str(root), env=env)


def secret_file(collector: Collector, tmp_path: Path, mode: int = 0o600) -> Path:
    secret = tmp_path / "secret"
    secret.write_text(collector.enroll_secret)
    secret.chmod(mode)
    return secret


def device_row(collector: Collector, device_id: str) -> dict[str, Any]:
    return next(d for d in collector.get("/api/v1/devices", limit=500)["data"] if d["id"] == device_id)


def test_enrolling_again_with_the_old_key_keeps_the_device_and_without_it_is_a_conflict(collector, root, tmp_path):
    secret, data = secret_file(collector, tmp_path), tmp_path / "data"
    assert once(collector, root, data, secret).returncode == 0
    device_id = json.loads(run("status", "--json", "--data-dir", str(data)).stdout)["device_id"]
    assert device_row(collector, device_id)["hardware_id"] == ""  # --root: no hardware of its own
    old_key = (data / "device.key").read_text()
    # what the reporter does with a key the collector refused: it is kept aside, as proof, for the next enrollment
    os.replace(data / "device.key", data / "device.key.previous")
    done = once(collector, root, data, secret)
    assert done.returncode == 0, done.stderr
    assert json.loads(run("status", "--json", "--data-dir", str(data)).stdout)["device_id"] == device_id
    assert (data / "device.key").read_text() != old_key and not (data / "device.key.previous").exists()
    assert device_row(collector, device_id)["identity_conflict"] is None
    # a copy of the data dir without the key (an image clone): a device apart, flagged for an admin
    (data / "device.key").unlink()
    done = once(collector, root, data, secret)
    assert done.returncode == 0, done.stderr
    assert "identity conflict" in done.stderr
    other = json.loads(run("status", "--json", "--data-dir", str(data)).stdout)["device_id"]
    assert other != device_id and device_row(collector, other)["identity_conflict"] == device_id
    assert len(collector.present_ids(device_id)) > 10  # the first device's sightings are untouched


def test_once_enrolls_again_when_the_collector_refuses_its_key(collector, root, tmp_path):
    secret, data = secret_file(collector, tmp_path), tmp_path / "data"
    assert once(collector, root, data, secret).returncode == 0
    device_id = json.loads(run("status", "--json", "--data-dir", str(data)).stdout)["device_id"]
    # the device's identity is no longer the one its key was given for (an upgrade from the machine-id
    # identity does this): the collector answers 403 device_mismatch
    (data / "install.id").write_text("install:" + "b" * 32)
    done = once(collector, root, data, secret)
    assert done.returncode == 0, done.stderr
    assert "device_mismatch" in done.stderr
    again = json.loads(run("status", "--json", "--data-dir", str(data)).stdout)["device_id"]
    assert again != device_id and len(collector.present_ids(again)) > 10


def test_an_enroll_secret_others_can_read_is_not_used_and_the_daemon_runs_on(collector, root, tmp_path):
    secret, data = secret_file(collector, tmp_path, 0o640), tmp_path / "data"
    with open(tmp_path / "daemon.log", "ab") as out:
        proc = subprocess.Popen([AGENTROSTER, "daemon", "--collector", collector.url, "--enroll-secret-file",
                                 str(secret), "--data-dir", str(data), "--root", str(root)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, env={**os.environ, **SETTINGS_ENV}, start_new_session=True)
    try:  # no restart loop: it runs, spools, does not enroll, and the status says why and what to run
        def refused() -> dict[str, Any] | None:
            done = run("status", "--json", "--data-dir", str(data))
            doc = json.loads(done.stdout) if done.stdout else {}
            return doc if doc.get("running") and doc.get("settings_problems") and doc["spool"]["reports"] else None

        doc = eventually(refused, "the daemon running with the secret file refused")
        assert doc["exit_code"] == 151 and not doc["enrolled"] and proc.poll() is None
        [problem] = doc["settings_problems"]
        assert "readable by root only" in problem["problem"] and f"chmod 0600 {secret}" in problem["problem"]
        log = (tmp_path / "daemon.log").read_text()
        assert collector.enroll_secret not in log + json.dumps(doc)
        assert collector.get("/api/v1/devices")["data"] == []
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_the_org_fingerprint_key_comes_with_enrollment_and_scan_uses_it(collector, root, tmp_path):
    cursor = root / "home" / "alice" / ".cursor"
    cursor.mkdir(parents=True, exist_ok=True)
    (cursor / "mcp.json").write_text(json.dumps({"mcpServers": {"keyed": {
        "command": "uvx", "args": ["mcp-server-keyed"], "env": {"OPENAI_API_KEY": FAKE_OPENAI}}}}))
    secret, data = secret_file(collector, tmp_path), tmp_path / "data"
    no_key = {"AGENTROSTER_FINGERPRINT_KEY": ""}
    done = once(collector, root, data, secret, **no_key)
    assert done.returncode == 0, done.stderr
    org_key = collector._rows("SELECT value FROM fingerprint_key")[0][0]
    key_file = data / "fingerprint.key"
    assert key_file.read_text() == org_key and (key_file.stat().st_mode & 0o777) == 0o600
    assert org_key not in done.stderr + done.stdout
    expected = "hmac-sha256:" + hmac.new(org_key.encode(), FAKE_OPENAI.encode(), hashlib.sha256).hexdigest()[:32]
    device_id = json.loads(run("status", "--json", "--data-dir", str(data)).stdout)["device_id"]
    stored = collector._rows("SELECT fingerprints FROM sighting WHERE device_id = :d AND gone = :g", d=device_id,
                             g=False)
    at_collector = {f for (row,) in stored for f in json.loads(row)}
    assert expected in at_collector
    # `agentroster scan` run by root on this machine: the key the daemon was given
    scanned = run("scan", "--json", "--root", str(root), env={**no_key, "AGENTROSTER_DATA_DIR": str(data)})
    assert scanned.returncode == 0, scanned.stderr
    found = {c["fingerprint"] for s in json.loads(scanned.stdout)["sightings"] for c in s["credentials"]}
    # the same key: the same fingerprints as the daemon's (the daemon also watches this machine's live
    # processes, which `scan --root` does not: a process holding a key may add one at the collector)
    assert expected in found and found <= at_collector
    # and without it, no fingerprint at all (never one under a public constant)
    elsewhere = tmp_path / "not-enrolled"
    elsewhere.mkdir()
    bare = json.loads(run("scan", "--json", "--root", str(root),
                          env={**no_key, "AGENTROSTER_DATA_DIR": str(elsewhere)}).stdout)
    assert {c["fingerprint"] for s in bare["sightings"] for c in s["credentials"]} == {None}
    assert "no_fingerprint_key" in {e["error"] for e in bare["errors"]}


def test_reports_spooled_under_an_old_identity_do_not_block_the_next_enrollment(collector, root, tmp_path):
    secret, data = secret_file(collector, tmp_path), tmp_path / "data"
    collector.process.stop()  # the collector is away: the first report stays in the spool
    assert once(collector, root, data, secret).returncode == 1
    collector.process.start()
    # the identity changes while that report waits (an upgrade from the machine-id identity does this)
    (data / "install.id").write_text("install:" + "c" * 32)
    done = once(collector, root, data, secret)
    assert done.returncode == 0, done.stderr
    status = json.loads(run("status", "--json", "--data-dir", str(data)).stdout)
    assert status["spool"]["reports"] == 0
    assert device_row(collector, status["device_id"])["host_identifier"] == "install:" + "c" * 32
    assert len(collector.present_ids(status["device_id"])) > 10
