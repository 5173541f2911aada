"""The real ``agentroster daemon`` on Windows: run in the foreground by a Windows CPython under Wine over a
data dir of the test's own, with its named pipe named from that data dir, and reached from other Windows
processes by the real ``agentroster status --mine --json``, ``agentroster register`` and ``agentroster
status --json``; stopped with Ctrl+C, after which its pipe is gone.

The scan finds what the test planted in the Wine user's profile (``C:\\users\\<user>``): a Cursor MCP config
and a Claude Desktop config (under ``AppData\\Roaming``, the Windows-only path) holding an obviously fake key.

Ctrl+C: Wine turns a Unix SIGINT sent to a Windows process into the console's CTRL_C_EVENT, which is what
a person pressing Ctrl+C in the daemon's console sends; Python on Windows raises SIGINT for it and the
daemon's handler stops it cleanly (a service is stopped by the service manager instead:
endpoint/service/winservice.py, tested on Linux through ``ServiceHost``).

What Wine cannot show is in docs/development.md: every Wine process runs as one user, an administrator, so
the callers here see every user's agents (``any_user``); a second user's view is tested on Linux.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest
from wine_python import WinePython, winpath

from endpoint.scan.platforms import is_this_machine

pytestmark = pytest.mark.timeout(240)

PROGRAMS = Path(__file__).with_name("pipe_programs.py")
FAKE_KEY = "sk-ant-api03-FAKEkey0nly4agentr0sterTests_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-012345AA"

# The command line's own main() in a Windows process, with the endpoint's pipe client watched (not replaced):
# each request it sends and whether the daemon answered it, printed as the last line after the command's
# own output. That tells an answer of the daemon from the page `status --mine` reads from the data dir
# itself when no daemon listens.
CLI = r"""
import json, sys
from endpoint.service import localsock
sent = []
real_call = localsock.call
def watched(path, request, **kw):
    try:
        answer = real_call(path, request, **kw)
    except Exception as exc:
        sent.append({"path": str(path), "op": request.get("op"), "error": type(exc).__name__, "message": str(exc)})
        raise
    sent.append({"path": str(path), "op": request.get("op"), "ok": answer.get("ok")})
    return answer
localsock.call = watched
from endpoint.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\n" + json.dumps({"exit": code, "pipe": sent}))
"""


class Daemon:
    """``agentroster daemon`` in a Windows process; its log (stderr) read line by line by a thread."""

    def __init__(self, win_python: WinePython, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        # cwd on C: as a service's is (C:\Windows\System32); --root C:\ is that drive, this machine's own
        self.process = win_python.popen(["-m", "endpoint.cli", "daemon", "--data-dir", winpath(data_dir),
                                         "--root", "C:\\"], cwd=win_python.prefix / "drive_c",
                                        stdout=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    @property
    def log(self) -> str:
        with self._new_line:
            return "\n".join(self.lines)

    def wait_for(self, words: str, timeout: float = 90) -> str:
        """The first log line holding ``words``; fails (with the log) after ``timeout`` or when it exits."""
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                found = next((line for line in self.lines if words in line), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    pytest.fail(f"the daemon never logged {words!r} (exit {self.process.poll()}):\n" + "\n".join(self.lines))
                self._new_line.wait(min(left, 1.0))

    def press_ctrl_c(self) -> int:
        os.kill(self.process.pid, signal.SIGINT)  # the Windows process's own pid: Wine's loader execs it
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code


@pytest.fixture(scope="module")
def wine_user(win_python: WinePython) -> dict[str, Any]:
    """The Wine user's account as its token says (``pipe_programs.py whoami``), profile folder, host name."""
    done = win_python.run([winpath(PROGRAMS), "client", json.dumps({"name": "", "mode": "whoami"})], timeout=90)
    assert done.returncode == 0, done.stderr
    me = json.loads(done.stdout.strip().splitlines()[-1])
    env = win_python.run("import json, os, socket; print(json.dumps([os.environ['USERPROFILE'], os.environ['USERNAME'], "
                         "socket.gethostname()]))", timeout=90)
    assert env.returncode == 0, env.stderr
    profile, me["username"], me["hostname"] = json.loads(env.stdout)
    windows = PureWindowsPath(profile)
    assert windows.drive.upper() == "C:", profile
    me["profile"] = profile
    me["profile_dir"] = win_python.prefix.joinpath("drive_c", *windows.parts[1:])
    assert me["profile_dir"].is_dir(), me
    return me


@pytest.fixture(scope="module")
def planted(wine_user: dict[str, Any]) -> Iterator[dict[str, str]]:
    """A Cursor MCP config and a Claude Desktop config (with a fake key) in the Wine user's profile; the
    Windows paths of both. Removed at the end: the prefix is the session's."""
    home: Path = wine_user["profile_dir"]
    cursor = home / ".cursor" / "mcp.json"
    claude = home / "AppData" / "Roaming" / "Claude" / "claude_desktop_config.json"
    for path, config in ((cursor, {"mcpServers": {"fs": {"command": "npx", "args": [
                             "-y", "@modelcontextprotocol/server-filesystem", "C:\\work"]}}}),
                         (claude, {"mcpServers": {"github": {"command": "npx", "args": [
                             "-y", "@modelcontextprotocol/server-github"], "env": {"ANTHROPIC_API_KEY": FAKE_KEY}}}})):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config))
    profile = wine_user["profile"]
    yield {"cursor": profile + "\\.cursor\\mcp.json",
           "claude": profile + "\\AppData\\Roaming\\Claude\\claude_desktop_config.json"}
    cursor.unlink()
    claude.unlink()


@pytest.fixture(scope="module")
def daemon(win_python: WinePython, planted: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon, its first full scan done; stopped with Ctrl+C by the last test (or killed at the end)."""
    running = Daemon(win_python, tmp_path_factory.mktemp("windows-daemon") / "data")
    running.wait_for("first scan done")
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait(timeout=30)


def cli(win_python: WinePython, *args: str) -> tuple[str, dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run ``agentroster ARGS`` in a new Windows process: its output, and what went over the pipe."""
    done = win_python.run(["-c", CLI, *args], timeout=120)
    out, _, last = done.stdout.rstrip().rpartition("\n")
    try:
        watched = json.loads(last)
    except ValueError:
        pytest.fail(f"agentroster {' '.join(args)} ended without its last line (exit {done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr}")
    return out, watched, done


def pipe_of(win_python: WinePython, data_dir: Path) -> str:
    done = win_python.run(["-c", "import sys; from endpoint.service import localsock; "
                                 "print(localsock.socket_path(sys.argv[1]))", winpath(data_dir)], timeout=90)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_daemon_serves_its_pipe_named_from_its_data_dir(win_python: WinePython, daemon: Daemon) -> None:
    pipe = pipe_of(win_python, daemon.data_dir)
    assert re.fullmatch(r"\\\\\.\\pipe\\agentroster-[0-9a-f]{16}", pipe), pipe  # not the default \\.\pipe\agentroster
    assert daemon.wait_for("local socket:").endswith(f"local socket: {pipe}")
    ready = daemon.wait_for("ready under")
    assert "ready under C:\\;" in ready and "processes ok" in ready, ready
    scanned = daemon.wait_for("first scan done")
    assert "watching 1 homes" in scanned and "0 sightings" not in scanned, scanned
    # every sensor ran on Windows: no failed unit, no stopped thread, no traceback
    assert "Traceback" not in daemon.log and " ERROR " not in daemon.log, daemon.log
    assert "could not be processed" not in daemon.log, daemon.log
    # what the session's close kills when `wineserver -k` cannot find the server (wine_python.py): the daemon too
    assert daemon.process.pid in win_python.prefix_processes()


def test_status_mine_reaches_the_daemon_and_shows_the_wine_users_agents(win_python: WinePython, daemon: Daemon,
                                                                        wine_user: dict[str, Any],
                                                                        planted: dict[str, str]) -> None:
    out, watched, done = cli(win_python, "status", "--mine", "--json", "--data-dir", winpath(daemon.data_dir))
    assert watched["exit"] == 0, done.stderr
    assert watched["pipe"] == [{"path": pipe_of(win_python, daemon.data_dir), "op": "mine", "ok": True}]
    page = json.loads(out)
    # the daemon named the caller from its token (DOMAIN\name), not from anything the client sent
    assert page["user"] == wine_user["account"] and "\\" in page["user"]
    assert page["any_user"] is True  # Wine's user is an administrator
    by_name = {s["name"]: s for s in page["sightings"]}
    assert {"Cursor", "fs", "Claude Desktop", "github"} <= set(by_name), sorted(by_name)
    cursor, claude = by_name["Cursor"], by_name["Claude Desktop"]
    assert cursor["user"].lower() == wine_user["username"].lower()  # the home's user: the profile folder's
    # the paths as Windows names them (C:\users\...), not relative to the scan root
    assert [c.lower() for c in cursor["configs"]] == [planted["cursor"].lower()]
    assert [c.lower() for c in claude["configs"]] == [planted["claude"].lower()]
    assert by_name["fs"]["parent"] == cursor["id"] and by_name["github"]["parent"] == claude["id"]
    # the key by its kind and where it was found; its fingerprint (the tests' fake org key) is sent, not shown
    [key] = by_name["github"]["credentials"]
    assert key["kind"] == "anthropic" and key["fingerprint"] == "sent" and key["where"].lower().startswith(
        planted["claude"].lower()), key
    assert "FAKE" not in done.stdout + done.stderr


def test_register_lists_the_agents_through_the_pipe(win_python: WinePython, daemon: Daemon) -> None:
    out, watched, done = cli(win_python, "register", "--data-dir", winpath(daemon.data_dir))
    assert watched["exit"] == 0, done.stderr
    assert watched["pipe"] == [{"path": pipe_of(win_python, daemon.data_dir), "op": "list", "ok": True}]
    lines = out.splitlines()
    assert re.match(r"\d+ agents \(every user's\) known to the daemon on this machine", lines[0]), out
    rows = {}  # the agent's first word (a child's comes after "└") -> its row
    for line in lines[2:]:
        if re.match(r"[0-9a-f]{8} ", line):
            rows[next(word for word in line.split()[1:] if word != "└")] = line
    assert {"Cursor", "fs", "Claude", "github"} <= set(rows), out
    assert rows["Cursor"].split()[-1] == "no"  # not registered
    # registering needs an enrolled daemon: the daemon says so, through the same pipe
    short = rows["Cursor"].split()[0]
    out, watched, done = cli(win_python, "register", short, "--owner", "it@example.com", "--purpose", "FAKE test",
                             "--data-dir", winpath(daemon.data_dir))
    assert watched["exit"] == 1 and [w["op"] for w in watched["pipe"]] == ["show", "register"], done
    assert "not enrolled" in done.stderr.lower(), done.stderr


def test_status_says_it_runs_and_leaves_it_running(win_python: WinePython, daemon: Daemon,
                                                   wine_user: dict[str, Any]) -> None:
    done = win_python.run(["-m", "endpoint.cli", "status", "--json", "--data-dir", winpath(daemon.data_dir)],
                          timeout=120)
    doc = json.loads(done.stdout)
    assert done.returncode == 150 == doc["exit_code"], done.stderr  # running, not enrolled (no collector)
    assert doc["running"] is True
    assert doc["device"]["os"] == "windows"
    assert doc["device"]["hostname"] == wine_user["hostname"] != ""  # the host's name, not the root folder's
    assert doc["sensors"]["processes"] == "ok" and doc["sensors"]["files"].startswith("ok")
    assert "stopped" not in doc["sensors"]["network"] and doc["units_failed"] == 0
    # asking whether the daemon lives did not end it (os.kill on Windows is TerminateProcess)
    time.sleep(0.5)
    assert daemon.process.poll() is None, daemon.log
    _, watched, _ = cli(win_python, "register", "--data-dir", winpath(daemon.data_dir))
    assert watched["pipe"][0]["ok"] is True


def test_ctrl_c_stops_the_daemon_and_closes_its_pipe(win_python: WinePython, daemon: Daemon) -> None:
    pipe = pipe_of(win_python, daemon.data_dir)
    assert daemon.press_ctrl_c() == 0, daemon.log
    assert "signal 2: stopping" in daemon.log and daemon.lines[-1].endswith("agentroster.daemon: stopped")
    # a client now finds no daemon: `status --mine` says so and reads the data dir itself (an administrator)
    out, watched, done = cli(win_python, "status", "--mine", "--json", "--data-dir", winpath(daemon.data_dir))
    [asked] = watched["pipe"]
    assert asked["error"] == "DaemonNotListening" and f"{pipe}: no daemon is serving this pipe" == asked["message"]
    page = json.loads(out)
    assert watched["exit"] == 0 and "Cursor" in {s["name"] for s in page["sightings"]}
    status = win_python.run(["-m", "endpoint.cli", "status", "--json", "--data-dir", winpath(daemon.data_dir)],
                            timeout=120)
    assert status.returncode == 3 and json.loads(status.stdout)["running"] is False, status.stderr


def test_no_secret_reaches_the_log_or_the_data_dir(daemon: Daemon) -> None:
    assert FAKE_KEY not in daemon.log and "FAKEkey0nly" not in daemon.log
    for path in daemon.data_dir.rglob("*"):
        if path.is_file():
            assert b"FAKEkey0nly" not in path.read_bytes(), path


@pytest.mark.parametrize(("root", "live"), [("/", True), ("", True), ("/mnt/image", False), ("relative", False),
                                            ("C:\\", False)])  # on Linux no path has a drive: C:\ is a name
def test_which_scan_root_is_this_machine_on_linux(root: str, live: bool) -> None:
    assert is_this_machine(root) is live


def test_which_scan_root_is_this_machine_on_windows(win_python: WinePython) -> None:
    roots = ["C:\\", "c:/", "D:\\", "\\", "C:\\Users", "Z:\\mnt\\image", "C:"]
    done = win_python.run(["-c", "import json, sys; from endpoint.scan.platforms import is_this_machine; "
                                 "print(json.dumps([is_this_machine(r) for r in sys.argv[1:]]))", *roots], timeout=90)
    assert done.returncode == 0, done.stderr
    # a drive's root is this machine's own; a folder of it (an image mounted there) and a bare "C:" are not;
    # "\\" (the daemon's default) is made C:\ by the daemon (os.path.abspath) before it is asked
    assert dict(zip(roots, json.loads(done.stdout), strict=True)) == {
        "C:\\": True, "c:/": True, "D:\\": True, "\\": False, "C:\\Users": False, "Z:\\mnt\\image": False,
        "C:": False}
