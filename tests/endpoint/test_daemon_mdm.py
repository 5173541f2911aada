"""The daemon as an MDM deploys it: a bad managed config never stops it, settings reload without a
restart, one daemon per data dir, systemd's notifications, and `agentroster status`'s LSB exit codes.

Real parts throughout: `agentroster daemon` child processes over a tmp data dir, reading the managed
file `<--root>/etc/agentroster/endpoint.toml` (root-owned: these tests need root, as CI runs them);
an AF_UNIX datagram socket the test binds as systemd's NOTIFY_SOCKET; a real collector on 127.0.0.1
for enrollment; signals sent to the child. The in-process tests run a real Daemon over tmp homes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import AGENTROSTER, TESTS

from endpoint.service import status as status_mod
from endpoint.service.daemon import Daemon
from endpoint.service.instance_lock import AlreadyRunning, InstanceLock
from endpoint.service.sdnotify import Notifier
from endpoint.service.settings import (
    Loaded,
    ManagedValues,
    SettingsError,
    StaticSource,
    load_daemon_settings,
)

if sys.platform == "win32":  # pragma: no cover - the daemon's tests run on Linux and macOS
    pytest.skip("POSIX signals and flock", allow_module_level=True)

FAKE_SECRET = "FAKE-enroll-secret-0000"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root: the daemon trusts a managed file only when root owns it")
FAST = {  # fast timers: the defaults are minutes
    "AGENTROSTER_HEARTBEAT_INTERVAL_S": "3",
    "AGENTROSTER_REPORT_INTERVAL_S": "0.5",
    "AGENTROSTER_FULL_SCAN_INTERVAL_S": "3600",
}


# -- helpers ---------------------------------------------------------------------------------------


class NotifySocket:
    """What systemd would be: a datagram socket the daemon's NOTIFY_SOCKET names; keeps every message."""

    def __init__(self, address: str) -> None:
        self.address = address  # a path, or @name for an abstract socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
            self.sock.settimeout(0.0)
            continue

    def wait_for(self, check: Callable[[dict[str, str]], bool], what: str, timeout: float = 60.0,
                 after: int = 0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(0.2)
            self.read()
            for message in self.messages[after:]:
                if check(message):
                    return message
        raise AssertionError(f"no {what} among {self.messages}")

    def close(self) -> None:
        self.sock.close()


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    root: Path
    extra: list[str] = field(default_factory=list)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        return status_mod.read_status(self.data_dir)

    def wait_log(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.log_text()
            if text in found:
                return found
            assert self.proc.poll() is None, f"the daemon exited with {self.proc.returncode}:\n{found[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"never logged {text!r}:\n{self.log_text()[-3000:]}")

    def wait_status(self, check: Callable[[dict[str, Any]], Any], what: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                doc = self.status()
                if check(doc):
                    return doc
            except Exception:  # the state file may not exist yet
                pass
            time.sleep(0.2)
        raise AssertionError(f"never: {what}; last status {doc}\n{self.log_text()[-3000:]}")


def agentroster(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTROSTER, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **FAST, **(env or {})}, stdin=subprocess.DEVNULL)


def managed_file(root: Path, text: str, mode: int = 0o644) -> Path:
    """``<root>/etc/agentroster/endpoint.toml``, written in place of the old one as config management does."""
    path = root / "etc" / "agentroster" / "endpoint.toml"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    new = path.with_suffix(".new")
    new.write_text(text)
    new.chmod(mode)
    new.replace(path)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    home = tmp_path / "root" / "home" / "alice"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {"fs": {"command": "npx", "args": ["-y", "x"]}}}))
    for d in (tmp_path, tmp_path / "root"):
        d.chmod(0o755)
    return tmp_path / "root"


@pytest.fixture
def start_daemon(tmp_path: Path, root: Path) -> Iterator[Callable[..., Child]]:
    started: list[Child] = []

    def start(*args: str, env: dict[str, str] | None = None, data_dir_flag: bool = True, name: str = "d") -> Child:
        data = tmp_path / f"data-{name}"
        log = tmp_path / f"daemon-{name}.log"
        flag = ["--data-dir", str(data)] if data_dir_flag else []  # else the managed file says
        argv = [AGENTROSTER, "daemon", *flag, "--root", str(root), *args]
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                    env={**os.environ, **FAST, **(env or {})})
        child = Child(proc, data, log, root, list(args))
        started.append(child)
        return child

    yield start
    for child in started:
        if child.proc.poll() is None:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait(timeout=30)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(str(tmp_path / "notify.sock") if len(str(tmp_path)) < 90
                        else f"@agentroster-test-{uuid.uuid4().hex}")
    yield sock
    sock.close()


# -- a bad managed config never stops the daemon ---------------------------------------------------------


@needs_root
def test_bad_managed_values_start_the_daemon_and_the_status_names_each(start_daemon, root, notify):
    toml = managed_file(root, f'process_interval_s = "soon"\nmax_cpu_percent = 500\nsensors = ["files"]\n'
                              f'enroll_secret = "{FAKE_SECRET}"\ncolour = "blue"\n')
    env = {"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "1000000"}
    child = start_daemon(env=env)
    notify.wait_for(lambda m: m.get("READY") == "1", "READY=1")
    assert child.proc.poll() is None

    done = agentroster("status", "--json", "--data-dir", str(child.data_dir))
    doc = json.loads(done.stdout)
    assert done.returncode == doc["exit_code"] == status_mod.SETTINGS_PROBLEM == 151, done.stderr
    assert doc["running"] and doc["pid"] == child.proc.pid and doc["version"]
    problems = {p["setting"]: p for p in doc["settings_problems"]}
    assert set(problems) == {"process_interval_s", "max_cpu_percent", "enroll_secret"}
    assert all(p["source"] == f"managed:{toml}" for p in problems.values())
    assert problems["process_interval_s"]["problem"] == "expected a number, got 'soon'"
    assert problems["process_interval_s"]["using"] == "using the default (5)"
    assert "at most 100" in problems["max_cpu_percent"]["problem"]
    assert "other users can read it (mode 0644)" in problems["enroll_secret"]["problem"]
    assert problems["enroll_secret"]["using"] == "not used: the device does not enroll with it"
    assert any("unknown key 'colour' ignored" in w for w in doc["settings_warnings"])
    assert doc["sensors"]["processes"].startswith("off")  # the good managed value beside the bad ones is taken

    human = agentroster("status", "--data-dir", str(child.data_dir))
    assert human.returncode == 151
    assert f"settings:   process_interval_s (from managed:{toml}): expected a number" in human.stdout
    assert "collector:  (none configured: reports are kept in the local spool)" in human.stdout

    # the log says each problem once; the loop pings the watchdog every half WATCHDOG_USEC; STATUS= says it
    time.sleep(3.5)
    log = child.log_text()
    assert log.count("settings: process_interval_s (from managed:") == 1
    assert log.count("settings: enroll_secret (from managed:") == 1
    notify.read()
    assert sum(1 for m in notify.messages if m.get("WATCHDOG") == "1") >= 4
    assert any("settings problem" in m.get("STATUS", "") for m in notify.messages)
    assert FAKE_SECRET not in log + done.stdout + human.stdout + json.dumps(notify.messages)

    seen = len(notify.messages)
    os.kill(child.proc.pid, signal.SIGTERM)
    assert child.proc.wait(timeout=30) == 0
    notify.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1", after=seen)
    stopped = agentroster("status", "--json", "--data-dir", str(child.data_dir))
    assert stopped.returncode == json.loads(stopped.stdout)["exit_code"] == status_mod.NOT_RUNNING


@needs_root
def test_a_refused_managed_file_and_a_refused_secret_file_keep_it_running(start_daemon, root, tmp_path):
    managed_file(root, 'collector_url = "http://127.0.0.1:9"\n', mode=0o666)  # world-writable: refused whole
    secret = tmp_path / "secret"
    secret.write_text(FAKE_SECRET)
    secret.chmod(0o644)
    child = start_daemon("--enroll-secret-file", str(secret), env={"AGENTROSTER_SENSORS": "files"})
    doc = child.wait_status(lambda d: d["running"], "running")
    problems = {p["setting"]: p for p in doc["settings_problems"]}
    assert "is world-writable (mode 0666); refused (chmod 0644)" in problems[None]["problem"]
    assert problems[None]["using"] == "using the defaults for the settings it would give"
    assert doc["collector_url"] is None  # the refused file's URL is not used
    fix = problems["enroll_secret_file"]["problem"]
    assert f"chown root {secret} && chmod 0600 {secret}" in fix
    assert FAKE_SECRET not in json.dumps(doc) + child.log_text()


def test_a_ca_bundle_that_is_no_pem_keeps_it_running_at_start_and_on_reload(start_daemon, root, tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    toml = managed_file(root, f'collector_url = "https://127.0.0.1:9"\nca_bundle = "{junk}"\n')
    child = start_daemon(env={"AGENTROSTER_SENSORS": "files"})
    doc = child.wait_status(lambda d: d["running"] and d["settings_problems"], "running with a problem")
    assert child.proc.poll() is None
    problems = {p["setting"]: p for p in doc["settings_problems"]}
    assert "cannot be set up" in problems["ca_bundle"]["problem"]
    assert problems["ca_bundle"]["using"] == "keeping reports in the local spool"
    missing = tmp_path / "gone.pem"  # a reload to a bundle that is not there: still running, still saying so
    toml.write_text(f'collector_url = "https://127.0.0.1:9"\nca_bundle = "{missing}"\n')
    os.kill(child.proc.pid, signal.SIGHUP)
    child.wait_log("settings read again")
    doc = child.wait_status(lambda d: any(p["setting"] == "ca_bundle" for p in d["settings_problems"]), "the problem")
    assert child.proc.poll() is None and doc["running"]


def test_a_wrong_command_line_flag_still_exits_2(tmp_path):
    done = agentroster("daemon", "--collector", "ftp://nope", "--data-dir", str(tmp_path / "d"), "--once")
    assert done.returncode == 2 and "collector_url (from cli): must be an https:// URL" in done.stderr


# -- reload without a restart ----------------------------------------------------------------------------


@needs_root
def test_a_changed_managed_file_and_sighup_reload_the_settings(start_daemon, root, notify):
    data_dir = f'data_dir = "{root.parent}/data-d"\n'  # from the managed file: a change takes a restart
    managed_file(root, 'sensors = ["files"]\nprocess_interval_s = 5\nlog_level = "info"\n' + data_dir)
    child = start_daemon("--log-level", "info", env={"NOTIFY_SOCKET": notify.address}, data_dir_flag=False)
    notify.wait_for(lambda m: m.get("READY") == "1", "READY=1")

    # a new good file: applied within a few seconds, one line per changed setting; the flag still wins
    seen = len(notify.messages)
    toml = managed_file(root, 'sensors = []\nprocess_interval_s = 2\nlog_level = "debug"\nmax_rss_mb = 300\n' + data_dir)
    child.wait_log("settings: process_interval_s: 5 -> 2 (from managed:")
    log = child.wait_log("settings: max_rss_mb: 150 -> 300")
    assert "settings: sensors: files -> none" in log and "settings: log_level" not in log
    reloading = notify.wait_for(lambda m: m.get("RELOADING") == "1", "RELOADING=1", after=seen)
    assert int(reloading["MONOTONIC_USEC"]) > 0
    notify.wait_for(lambda m: m.get("READY") == "1", "READY=1 after the reload", after=seen)
    child.wait_status(lambda d: d["sensors"]["files"].startswith("off"), "the files sensor off")

    # a bad value: the last good one is kept, and said
    managed_file(root, 'sensors = []\nprocess_interval_s = -1\nmax_rss_mb = 300\n' + data_dir)
    child.wait_log("settings: process_interval_s (from managed:")
    doc = child.wait_status(lambda d: d["settings_problems"], "a settings problem")
    [problem] = doc["settings_problems"]
    assert problem["using"] == "keeping its last good value (2)" and problem["source"] == f"managed:{toml}"

    # data_dir cannot change live: kept, and said; the bad value fixed is said resolved
    managed_file(root, f'sensors = []\nprocess_interval_s = 2\nmax_rss_mb = 300\ndata_dir = "{root}/elsewhere"\n')
    log = child.wait_log("settings: resolved: process_interval_s")
    doc = child.wait_status(lambda d: [p["setting"] for p in d["settings_problems"]] == ["data_dir"], "data_dir kept")
    assert doc["data_dir"] == str(child.data_dir)
    assert "takes a restart" in doc["settings_problems"][0]["problem"]

    # SIGHUP reads them again, with nothing changed
    os.kill(child.proc.pid, signal.SIGHUP)
    child.wait_log("settings read again (SIGHUP): nothing changed")
    assert child.proc.poll() is None


@needs_root
def test_fixing_the_secret_files_mode_enrolls_without_a_restart(start_daemon, root, tmp_path):
    sys.path.append(str(TESTS / "console" / "server"))
    import servers

    database_url = f"sqlite:///{tmp_path}/collector.sqlite3"
    tokens = servers.provision(database_url)
    collector = servers.CollectorProcess(database_url, log=tmp_path / "server.log").start()
    try:
        secret = tmp_path / "secret"
        secret.write_text(tokens["enroll_secret"])
        secret.chmod(0o640)
        child = start_daemon("--collector", collector.base_url, "--enroll-secret-file", str(secret),
                             env={"AGENTROSTER_SENSORS": "files"})
        doc = child.wait_status(lambda d: d["running"] and d["spool_depth"] >= 1, "running, spooling")
        assert doc["exit_code"] == status_mod.SETTINGS_PROBLEM and not doc["enrolled"]
        assert [p["setting"] for p in doc["settings_problems"]] == ["enroll_secret_file"]

        secret.chmod(0o600)  # what the status said to do
        doc = child.wait_status(lambda d: d["exit_code"] == 0, "enrolled and acknowledged")
        assert doc["enrolled"] and doc["last_report_acked_at"] and doc["spool_depth"] == 0
        done = agentroster("status", "--data-dir", str(child.data_dir))
        assert done.returncode == status_mod.RUNNING_OK, done.stdout + done.stderr
        assert "settings: resolved: enroll_secret_file" in child.log_text()
        assert tokens["enroll_secret"] not in child.log_text() + done.stdout
    finally:
        collector.stop()


# -- one daemon per data dir ----------------------------------------------------------------------------


@needs_root
def test_a_second_daemon_on_the_same_data_dir_exits_2_naming_the_first(start_daemon, tmp_path):
    first = start_daemon(env={"AGENTROSTER_SENSORS": "files"})
    first.wait_status(lambda d: d["running"], "the first daemon running")
    running = agentroster("status", "--data-dir", str(first.data_dir))
    assert running.returncode == status_mod.RUNNING_NOT_ENROLLED == 150  # no collector: never enrolled

    for extra in (["--once"], []):
        second = agentroster("daemon", "--data-dir", str(first.data_dir), "--root", str(first.root), *extra,
                             env={"AGENTROSTER_SENSORS": "files"}, timeout=60)
        assert second.returncode == 2
        assert f"another agentroster daemon (pid {first.proc.pid}) is already running" in second.stderr
    assert first.proc.poll() is None

    os.killpg(first.proc.pid, signal.SIGKILL)  # the kernel drops the lock with the process
    first.proc.wait(timeout=30)
    again = agentroster("daemon", "--data-dir", str(first.data_dir), "--root", str(first.root), "--once",
                        env={"AGENTROSTER_SENSORS": "files"})
    assert again.returncode == 0, again.stderr
    assert agentroster("status", "--data-dir", str(first.data_dir)).returncode == status_mod.NOT_RUNNING


def test_the_lock_in_process(tmp_path):
    lock = InstanceLock(tmp_path / "data").acquire()
    try:
        with pytest.raises(AlreadyRunning) as info:
            InstanceLock(tmp_path / "data").acquire()  # flock is per open file: a second open in one process conflicts
        assert info.value.pid == os.getpid() and info.value.code == "already_running"
        assert oct((tmp_path / "data" / "daemon.lock").stat().st_mode & 0o777) == "0o600"
    finally:
        lock.release()
    InstanceLock(tmp_path / "data").acquire().release()


# -- status exit codes ------------------------------------------------------------------------------------


def test_status_without_state_is_unknown_4(tmp_path):
    done = agentroster("status", "--json", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == status_mod.UNKNOWN == 4
    assert json.loads(done.stdout)["exit_code"] == 4 and "no state yet" in done.stderr


@pytest.mark.parametrize(("doc", "code"), [
    ({"running": False, "enrolled": True, "acked_at": 1.0}, 3),
    ({"running": True, "enrolled": False, "acked_at": None}, 150),
    ({"running": True, "enrolled": True, "acked_at": None}, 150),
    ({"running": True, "enrolled": True, "acked_at": 1.0, "settings_problems": [{"setting": "x"}]}, 151),
    ({"running": True, "enrolled": True, "acked_at": 1.0, "settings_problems": []}, 0),
])
def test_exit_code_of_a_status(doc, code):
    assert status_mod.exit_code(doc) == code


# -- sd_notify, the watchdog, and stopping from another thread ---------------------------------------------


@pytest.fixture
def small_root(tmp_path: Path) -> Path:
    home = tmp_path / "r" / "home" / "bob"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor" / "mcp.json").write_text('{"mcpServers": {"fs": {"command": "npx"}}}')
    return tmp_path / "r"


def _daemon(tmp_path: Path, root: Path, notifier: Notifier | None = None) -> Daemon:
    loaded = load_daemon_settings({"data_dir": str(tmp_path / "data"), "root": str(root)},
                                  env={"AGENTROSTER_SENSORS": "files"})
    daemon = Daemon(loaded.settings, loaded=loaded, notifier=notifier)
    daemon.start_local_socket = lambda: None  # type: ignore[method-assign]  # not needed here
    return daemon


def test_a_wedged_loop_stops_the_watchdog_pings(tmp_path, small_root, notify, monkeypatch):
    daemon = _daemon(tmp_path, small_root, Notifier(notify.address, watchdog_usec=200_000))
    wedge = threading.Event()
    release = threading.Event()
    real_tick = daemon._tick

    def tick(due: dict[str, float]) -> None:  # the fault: one tick hangs until released (fault injection)
        if wedge.is_set():
            release.wait(30)
        real_tick(due)

    monkeypatch.setattr(daemon, "_tick", tick)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        notify.wait_for(lambda m: m.get("READY") == "1", "READY=1")
        time.sleep(1.0)
        notify.read()
        assert sum(1 for m in notify.messages if m.get("WATCHDOG") == "1") >= 3
        wedge.set()
        time.sleep(0.5)  # the tick in progress wedges
        notify.read()
        before = sum(1 for m in notify.messages if m.get("WATCHDOG") == "1")
        time.sleep(1.5)
        notify.read()
        assert sum(1 for m in notify.messages if m.get("WATCHDOG") == "1") == before
    finally:
        wedge.clear()
        release.set()
        daemon.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.mark.parametrize("runner", ["main", "worker"])
def test_stop_from_another_thread_ends_run_cleanly(tmp_path, small_root, runner):
    daemon = _daemon(tmp_path, small_root)
    if runner == "main":  # as a service wrapper whose stop request comes on the manager's thread
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        stopper = threading.Timer(1.5, daemon.stop)
        stopper.start()
        started = time.monotonic()
        try:
            assert daemon.run() == 0
        finally:
            for sig, handler in handlers.items():  # run() in the main thread took them: give pytest its own back
                signal.signal(sig, handler)
        stopper.join()
    else:
        thread = threading.Thread(target=daemon.run)
        thread.start()
        time.sleep(1.5)
        started = time.monotonic()
        daemon.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert time.monotonic() - started < 20
    assert status_mod.read_status(tmp_path / "data")["sightings"] >= 1


def test_notifier_abstract_socket_and_someone_elses_watchdog():
    sock = NotifySocket(f"@agentroster-test-{uuid.uuid4().hex}")
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": sock.address, "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog_interval_s == 2.0
        assert notifier.ready("watching\n2 homes") and notifier.watchdog() and notifier.stopping()
        assert not notifier.status("watching 2 homes")  # the same line is not sent twice
        sock.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
        assert sock.messages[0] == {"READY": "1", "STATUS": "watching 2 homes"}
        notifier.close()
    finally:
        sock.close()
    other = Notifier.from_env({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, pid=4242)
    assert other.watchdog_interval_s == 0 and not Notifier.from_env({}).enabled
    assert not Notifier.from_env({"NOTIFY_SOCKET": "relative/path"}).enabled


# -- loading, forgiving --------------------------------------------------------------------------------------


class Refusing:
    """A managed source that is refused as a whole (a real file's refusals are tested above)."""

    where = "/etc/agentroster/endpoint.toml"

    def read(self) -> ManagedValues:
        raise SettingsError(None, self.where, "is world-writable (mode 0666); refused (chmod 0644)")


def test_a_refused_source_on_reload_keeps_the_values_last_read_from_it():
    first = load_daemon_settings(env={}, managed=StaticSource({"process_interval_s": 2, "sensors": ["files"]},
                                                              "/etc/agentroster/endpoint.toml"))
    assert first.problems == () and first.settings.process_interval_s == 2
    again = load_daemon_settings(env={}, managed=Refusing(), previous=first)
    assert again.settings.process_interval_s == 2 and again.settings.sensors == frozenset({"files"})
    [problem] = again.problems
    assert problem.setting is None and problem.using == "keeping the values last read from it"
    at_start = load_daemon_settings(env={}, managed=Refusing())
    assert at_start.settings.process_interval_s == 5 and "using the defaults" in at_start.problems[0].using


def test_a_bad_env_value_is_a_problem_but_a_bad_flag_raises():
    loaded = load_daemon_settings(env={"AGENTROSTER_SPOOL_MAX_BYTES": "lots"})
    assert loaded.settings.spool_max_bytes == 50 * 1024 * 1024
    assert loaded.problems[0].source == "env:AGENTROSTER_SPOOL_MAX_BYTES"
    with pytest.raises(SettingsError):
        load_daemon_settings({"log_level": "loud"}, env={})


def test_both_secret_settings_in_one_source_use_neither():
    loaded = load_daemon_settings(env={"AGENTROSTER_ENROLL_SECRET": FAKE_SECRET,
                                       "AGENTROSTER_ENROLL_SECRET_FILE": "/etc/agentroster/secret"})
    assert loaded.settings.enroll_secret is None and loaded.settings.enroll_secret_file is None
    assert "using neither" in str(loaded.problems[0]) and FAKE_SECRET not in str(loaded.problems[0])
    assert isinstance(loaded, Loaded)


def test_a_changed_secret_or_url_is_logged_without_its_value():
    from endpoint.service.settings import Secret, describe_change

    line = describe_change("enroll_secret", Secret(FAKE_SECRET), Secret(FAKE_SECRET + "-new"), "managed:/x")
    assert FAKE_SECRET not in line and line.startswith("enroll_secret: changed, now set")
    url = describe_change("collector_url", "https://a.example/", "https://b.example/api?token=FAKE-token", "env:X")
    assert url == "collector_url: https://a.example/ -> https://b.example/api (from env:X)"
