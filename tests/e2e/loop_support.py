"""The machine of tests/e2e/test_employee_loop.py, built once per module: a real collector (`agentroster
server` on 127.0.0.1, SQLite file), a real long-running `agentroster daemon` child watching a tmp root
with the homes of two real unprivileged users of this machine (``nobody`` the employee, ``www-data``
another user), a stand-in Claude Code run by ``nobody`` that calls LLM providers through a local port,
and helpers to act as those users: over the daemon's socket, with `agentroster` itself, and through the
companion and the console (pytest-qt).

Why the unprivileged users act as they do here:
- The venv's Python lives under /root, which other users cannot read. `agentroster` runs as the user
  (uid and gid, as the kernel tells the daemon's socket) keeping only the capability to read files
  (CAP_DAC_READ_SEARCH, ambient), so that the interpreter loads; nothing else of root's is kept.
- The org's policy turns the nudge ladder on (the companion notifies nobody otherwise).
- The companion must run in this process for pytest-qt; its socket connections go through a relay run
  as ``nobody`` (the system python3, stdlib only), so each connection the daemon accepts is nobody's,
  as when the companion runs in that user's session.
- Everything these users run or read lives under a 0755 directory in /tmp (pytest's tmp dirs are 0700).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from support import AGENTROSTER, TESTS

sys.path.append(str(TESTS / "console" / "server"))
import servers

EMPLOYEE, OTHER = "nobody", "www-data"  # real unprivileged users every Debian has (base-passwd)
SYSTEM_PYTHON = "/usr/bin/python3"
NODE = shutil.which("node") or shutil.which("nodejs")
FAKE_ANTHROPIC = "sk-ant-api03-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE-FAKEAA"

SETTINGS_ENV = {  # fast timers for tests; the defaults are minutes
    "AGENTROSTER_PROCESS_INTERVAL_S": "0.5",
    "AGENTROSTER_HEARTBEAT_INTERVAL_S": "1",
    "AGENTROSTER_REPORT_INTERVAL_S": "0.5",
    "AGENTROSTER_FULL_SCAN_INTERVAL_S": "3600",
    "AGENTROSTER_SENSORS": "processes,files,network",
    "AGENTROSTER_LOG_LEVEL": "info",
}

CLAUDE_CLI = """\
// Stands in for Claude Code run by the employee: for each host name read on stdin it opens a TLS
// connection naming that host (its ClientHello's SNI) to a local port that never answers, as a call to
// that provider starts, and keeps it open a few seconds; then waits.
const tls = require("tls");
const port = Number(process.argv[process.argv.length - 1]);
let pending = "";
process.stdin.on("data", (chunk) => {
  pending += chunk;
  let end;
  while ((end = pending.indexOf("\\n")) >= 0) {
    const host = pending.slice(0, end).trim();
    pending = pending.slice(end + 1);
    if (host) {
      const conn = tls.connect({host: "127.0.0.1", port, servername: host, rejectUnauthorized: false});
      conn.on("error", () => {});
      setTimeout(() => conn.destroy(), 8000);
    }
  }
});
setInterval(() => {}, 1000);
"""

RELAY = """\
# The companion's connections to the daemon's socket, made as the user this runs as (stdlib only).
import os, socket, sys, threading

listen_path, daemon_path = sys.argv[1], sys.argv[2]


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(conn):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        up.connect(daemon_path)
    except OSError:
        conn.close()
        return
    back = threading.Thread(target=pipe, args=(up, conn), daemon=True)
    back.start()
    pipe(conn, up)
    back.join(60)
    up.close()
    conn.close()


server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(listen_path)
os.chmod(listen_path, 0o666)
server.listen(16)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

AS = {EMPLOYEE: ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"),
      OTHER: ("setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups", "--")}
#: as AS, keeping only the right to read files, for the venv's interpreter under /root
READ_ONLY_ROOT = ("--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search")


class CannotRun(Exception):
    """This machine cannot run the loop (the tests skip, saying why)."""


def missing_tools() -> str:
    """What this machine lacks to run the loop, or "" (said by the tests' skip)."""
    if os.geteuid() != 0:
        return "needs root: the daemon and the users it acts for are real"
    for tool, package in (("setpriv", "util-linux"), (SYSTEM_PYTHON, "python3"), (NODE or "node", "nodejs")):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: apt-get install {package})"
    import pwd

    for user in (EMPLOYEE, OTHER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"needs the user {user} (Debian: base-passwd makes it)"
    return ""


def eventually(check: Callable[[], Any], what: str, tail: Callable[[], str] = str, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something true (a hang guard, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError, httpx.HTTPError, AssertionError, IndexError, KeyError, sqlite3.Error) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})\n{tail()}")


@dataclass
class Machine:
    """The collector, the daemon and the employee's running agent; see the module's docstring."""

    base: Path
    collector: servers.CollectorProcess
    admin: str
    secret: Path
    daemon: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    relay: subprocess.Popen[bytes] | None = None
    provider_port: int = 0
    held: list[socket.socket] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def relay_socket(self) -> Path:
        return self.base / "relay" / "companion.sock"

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    # -- the daemon ------------------------------------------------------------------------------------

    def start_daemon(self) -> None:
        argv = [AGENTROSTER, "daemon", "--collector", self.collector.base_url, "--enroll-secret-file",
                str(self.secret), "--data-dir", str(self.data_dir), "--root", str(self.root)]
        env = {k: v for k, v in {**os.environ, **SETTINGS_ENV}.items() if k != "SUDO_USER"}
        with open(self.base / "daemon.log", "ab") as out:
            self.daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                           start_new_session=True)

    def signal_daemon(self, sig: int) -> None:
        assert self.daemon is not None
        os.killpg(self.daemon.pid, sig)

    def sensor(self, name: str) -> str:
        """The daemon's word on one of its sensors (`agentroster status --json`): "ok", or why not."""
        done = subprocess.run([AGENTROSTER, "status", "--json", "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return str(json.loads(done.stdout)["sensors"][name])

    def log(self) -> str:
        parts = []
        for name in ("daemon.log", "server.log"):
            path = self.base / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-2500:])
        return "\n".join(parts)

    def state(self) -> dict[str, Any]:
        """The daemon's own state file: its meta, and the kinds of the reports waiting in its spool."""
        db = sqlite3.connect(f"file:{self.data_dir / 'state.sqlite3'}?mode=ro", uri=True, timeout=10)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            kinds = [kind for (kind,) in db.execute("SELECT kind FROM spool ORDER BY seq")]
        finally:
            db.close()
        return {"meta": meta, "spooled": len(kinds), "kinds": kinds}

    def inbox(self) -> list[dict[str, Any]]:
        path = self.data_dir / "inbox.json"
        return list(json.loads(path.read_text())["items"]) if path.exists() else []

    # -- the collector, as an admin over HTTP (what the console shows is checked against it) --------

    def api(self, method: str, path: str, **kw: Any) -> Any:
        answer = httpx.request(method, self.collector.base_url + path, timeout=30,
                               headers={"authorization": f"Bearer {self.admin}"}, **kw)
        assert answer.status_code in (200, 201), f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def device_id(self) -> str:
        return str(self.state()["meta"]["device_id"])

    def agent_at_collector(self, sighting_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/api/v1/agents/{self.device_id()}/{sighting_id}"))

    def collector_sighting(self, user: str, name: str) -> dict[str, Any] | None:
        """The top-level sighting of ``user`` named ``name`` at the collector, if it holds one."""
        rows = self.api("GET", "/api/v1/agents", params={"device": self.device_id(), "limit": 500})["data"]
        found = [a for a in rows if a["user"] == user and a["name"] == name and not a.get("parent")]
        return found[0] if found else None

    def rows(self, statement: str, *params: Any) -> list[Any]:
        """A read of the collector's own SQLite file (what no API route says: its report history)."""
        with sqlite3.connect(f"file:{self.collector.database_url.removeprefix('sqlite:///')}?mode=ro", uri=True,
                             timeout=30) as conn:
            return conn.execute(statement, params).fetchall()

    def position(self, device_id: str) -> tuple[str, int]:
        """The (epoch, seq) of the device's last report the collector applied."""
        epoch, seq = self.rows("SELECT epoch, seq FROM device WHERE id = ?", device_id)[0]
        return str(epoch), int(seq)

    def applied_twice(self, device_id: str) -> list[Any]:
        """Evidence of a report applied twice: one (sighting, epoch, seq) with two history entries, or a
        sighting recorded as new twice without going in between."""
        problems: list[Any] = []
        seen: set[tuple[str, str, int]] = set()
        last: dict[str, str] = {}
        for sid, epoch, seq, change in self.rows("SELECT sighting_id, epoch, seq, change FROM sighting_history "
                                                 "WHERE device_id = ? ORDER BY sighting_id, id", device_id):
            if (sid, epoch, seq) in seen:
                problems.append(("twice in one report", sid, epoch, seq))
            seen.add((sid, epoch, seq))
            if change == "new" and last.get(sid) in ("new", "changed"):
                problems.append(("new again while present", sid, epoch, seq))
            last[sid] = change
        return problems

    def sql(self, statement: str, *params: Any) -> None:
        """A write to the collector's own SQLite file (used only to move time, which nobody waits for)."""
        with sqlite3.connect(self.collector.database_url.removeprefix("sqlite:///"), timeout=30) as conn:
            conn.execute(statement, params)

    # -- the employee's agent ---------------------------------------------------------------------------

    def call_provider(self, host: str) -> None:
        """The stand-in agent starts a call to ``host`` (its TLS ClientHello names it)."""
        assert self.agent is not None and self.agent.stdin is not None
        self.agent.stdin.write(host.encode() + b"\n")
        self.agent.stdin.flush()

    def add_mcp_server(self, user: str, name: str, package: str, rel: str = ".claude.json") -> None:
        """``user`` adds an MCP server to a client's config (written whole, then renamed, as editors do)."""
        path = self.home(user) / rel
        doc = json.loads(path.read_text())
        doc.setdefault("mcpServers", {})[name] = {"command": "npx", "args": ["-y", package]}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(path)

    # -- acting as a user -------------------------------------------------------------------------------

    def agentroster_as(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`agentroster …` run as ``user`` (uid and gid; see the module's docstring for the one capability)."""
        setpriv, rest = AS[user][0], AS[user][1:-1]
        env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
        env["HOME"] = str(self.home(user))
        return subprocess.run([setpriv, *rest, *READ_ONLY_ROOT, "--", AGENTROSTER, *args, "--data-dir",
                               str(self.data_dir)], capture_output=True, text=True, timeout=120, env=env,
                              stdin=subprocess.DEVNULL, cwd=self.base)

    def socket_as(self, user: str, *requests: dict[str, Any]) -> list[dict[str, Any]]:
        """Requests to the daemon's socket from a client run as ``user`` (the system python3), on one
        connection; the answers."""
        from endpoint.service.localsock import socket_path

        lines = [json.dumps(r) for r in requests]
        done = subprocess.run([*AS[user], SYSTEM_PYTHON, str(self.base / "localsock_client.py"),
                               str(socket_path(self.data_dir)), "requests", *lines], capture_output=True, text=True,
                              timeout=60, cwd=self.base)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def build(base: Path) -> None:
    """The homes of the two users and the stand-in's install, readable by both."""
    modules = base / "root" / "usr" / "lib" / "node_modules"
    write(modules / "@anthropic-ai" / "claude-code" / "cli.js", CLAUDE_CLI)
    employee, other = base / "root" / "home" / EMPLOYEE, base / "root" / "home" / OTHER
    write(employee / ".claude.json", json.dumps({"numStartups": 4, "mcpServers": {
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]}}}, indent=2))
    write(employee / ".cursor" / "mcp.json", json.dumps({"mcpServers": {
        "linear": {"command": "npx", "args": ["-y", "mcp-remote", "https://mcp.linear.app/sse"]}}}, indent=2))
    write(other / ".cursor" / "mcp.json", json.dumps({"mcpServers": {
        "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]}}},
        indent=2))
    for path in sorted(base.rglob("*")):
        if path.is_dir():
            path.chmod(0o755)
    shutil.copyfile(TESTS / "localsock_client.py", base / "localsock_client.py")
    (base / "localsock_client.py").chmod(0o644)
    write(base / "relay.py", RELAY)
    (base / "relay").mkdir()
    (base / "relay").chmod(0o777)  # the relay (nobody) makes its socket there; closed again once it has


def _hold_provider_port(machine: Machine) -> socket.socket:
    """A provider's port: takes each ClientHello and says nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    machine.provider_port = listener.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            machine.held.append(conn)

    threading.Thread(target=accept, name="provider-port", daemon=True).start()
    return listener


@contextmanager
def running_machine() -> Iterator[Machine]:
    """The whole machine, up until the block ends; every process it started is stopped then."""
    base = Path(tempfile.mkdtemp(prefix="ar-loop-", dir="/tmp"))
    base.chmod(0o755)
    url = f"sqlite:///{base}/collector.sqlite3"
    tokens = servers.provision(url)
    collector = servers.CollectorProcess(url, log=base / "server.log").start()
    secret = write(base / "enroll-secret", tokens["enroll_secret"] + "\n", 0o600)
    machine = Machine(base, collector, tokens["admin"], secret)
    listener = _hold_provider_port(machine)
    try:
        # The org's policy nudges its users (the ladder's notify rung): the companion shows notifications only
        # then. Its own nudges come after 30 days, so that only what each test sends arrives here.
        machine.api("PUT", "/api/v1/policy", json={"ladder": "notify", "notify_after_days": 30})
        build(base)
        assert NODE is not None
        cli = base / "root" / "usr" / "lib" / "node_modules" / "@anthropic-ai" / "claude-code" / "cli.js"
        env = {"HOME": str(machine.home(EMPLOYEE)), "PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": FAKE_ANTHROPIC}
        machine.agent = subprocess.Popen([*AS[EMPLOYEE], NODE, str(cli), str(machine.provider_port)],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         env=env, cwd=machine.home(EMPLOYEE), start_new_session=True)
        machine.start_daemon()
        from endpoint.service.localsock import socket_path

        eventually(lambda: socket_path(machine.data_dir).exists(), "the daemon's socket", machine.log)
        network = machine.sensor("network")
        if network != "ok":  # a provider is seen only in a call's packets (CAP_NET_RAW, as root has)
            raise CannotRun(f"the network sensor cannot capture here: {network}")
        machine.relay = subprocess.Popen([*AS[EMPLOYEE], SYSTEM_PYTHON, str(base / "relay.py"),
                                          str(machine.relay_socket), str(socket_path(machine.data_dir))],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        assert machine.relay.stdout is not None and machine.relay.stdout.readline() == b"ready\n"
        # The companion trusts a socket only where root or its own user put it (a user could plant one to
        # collect what is sent): this socket and its directory become root's, as the daemon's are.
        os.chown(machine.relay_socket, 0, 0)
        machine.relay_socket.parent.chmod(0o755)
        yield machine
    finally:
        for proc in (machine.relay, machine.agent, machine.daemon):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        collector.stop()
        listener.close()
        for conn in machine.held:
            conn.close()
        shutil.rmtree(base, ignore_errors=True)


# -- the companion and the console (pytest-qt) -----------------------------------------------------------


@dataclass
class CompanionRun:
    """A companion in this process whose socket connections are the employee's (through the relay), and
    the notifications it made, captured at the OS boundary."""

    companion: Any
    shown: list[tuple[str, str]]

    def titles(self) -> list[str]:
        return [title for title, _ in self.shown]


def start_companion(machine: Machine, qtbot: Any, seen_file: Path) -> CompanionRun:
    from endpoint.companion.app import Companion
    from endpoint.companion.model import Client, SeenStore

    companion = Companion(Client(machine.relay_socket), seen=SeenStore(seen_file), poll_interval_ms=500)
    shown: list[tuple[str, str]] = []
    # The OS boundary: QSystemTrayIcon.showMessage hands a notification to the desktop's notification
    # service, which offscreen Qt does not have; the recorder takes what would have reached it.
    companion.tray.showMessage = lambda title, text, *_rest: shown.append((title, text))
    qtbot.addWidget(companion.window)
    with qtbot.waitSignal(companion.polled, timeout=60_000):
        companion.start()
    assert companion.problem == "", companion.problem
    return CompanionRun(companion, shown)


def stop_companion(run: CompanionRun) -> None:
    """Stop polling, and let the calls in flight land while the companion's windows still exist (pytest-qt
    deletes them after this)."""
    from PySide6.QtWidgets import QApplication

    run.companion.timer.stop()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(t.name == "agentroster-companion-call" for t in threading.enumerate()):
        time.sleep(0.05)
    QApplication.processEvents()
    run.companion.tray.hide()


def start_console(machine: Machine, qtbot: Any, settings_file: Path) -> Any:
    """The real console (main window and controllers) signed in to the collector with the admin token."""
    from PySide6.QtCore import QSettings

    from console.app import api
    from console.app.controllers import Console
    from console.app.views.main_window import MainWindow

    client = api.Client(machine.collector.base_url, machine.admin, timeout=10)
    window = MainWindow()
    qtbot.addWidget(window)
    console = Console(client, window, QSettings(str(settings_file), QSettings.Format.IniFormat),
                      page_size=50, retry_ms=(200, 400))
    console.start()
    window.show()
    qtbot.waitUntil(lambda: console.session.role == "admin" and console.agents.roster.count is not None,
                    timeout=30_000)
    return console


def stop_console(console: Any) -> None:
    console.shutdown()
    console.client.close()


def show_agent(console: Any, qtbot: Any, device_id: str, sighting_id: str) -> Any:
    """List the device's agents in the console's agents tab and select the row of ``sighting_id``."""
    from PySide6.QtCore import QItemSelectionModel

    from console.app import viewmodels as vm

    console.window.agents.set_filter(vm.AgentFilter(device=device_id))

    def row_of() -> int | None:
        rows = console.agents.roster.rows
        at = [i for i, r in enumerate(rows) if r.id == sighting_id]
        return at[0] if console.agents.roster.filter.device == device_id and at else None

    qtbot.waitUntil(lambda: row_of() is not None, timeout=30_000)
    row = row_of()
    assert row is not None
    table = console.window.agents.table
    table.clearSelection()
    table.selectionModel().select(console.agents.model.index(row, 0),
                                  QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    return console.agents.roster.rows[row]


def select_registration(console: Any, qtbot: Any, status: str | None, registration_id: int) -> None:
    """Choose ``status`` in the registrations queue and select that registration once listed."""
    view = console.window.registrations
    if view.status.currentData() != status:
        view.status.setCurrentIndex(view.status.findData(status))
    console.registrations.load()
    qtbot.waitUntil(lambda: any(r.id == registration_id for r in console.registrations.listed), timeout=30_000)
    row = next(i for i, r in enumerate(console.registrations.listed) if r.id == registration_id)
    view.table.setCurrentIndex(view.rows.index(row, 0))
