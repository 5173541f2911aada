"""Endpoint daemon benchmark: the real ``agentroster daemon`` in steady state, and how fast it notices.

Sets up 10 user homes (tests/factories.py ``build_homes``), 500 extra processes (``sleep``), a real
``agentroster server`` on SQLite on 127.0.0.1, then runs the daemon with its default intervals (all
sensors on) for ``--seconds`` (default 120): the first half idle, the second half with events. Prints:

- CPU: the daemon's own CPU time over each half, as % of one core (budget: <= 0.3 % in steady state)
- RSS: the daemon's peak resident memory (budget: <= 70 MB)
- detection latency, from the event to the sighting *at the collector* (so reporting is included):
  a new agent process (budget <= 5 s; process_interval_s is 5 s), a config edit (<= 1 s), and an LLM
  call -> endpoint (<= 1 s), the last only when the network sensor can capture (it says why not).

    .venv/bin/python bench/daemon.py
    .venv/bin/python bench/daemon.py --seconds 40 --processes 200

Nothing is asserted; the machine is shared, so its load average is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "console" / "server"))

import servers  # noqa: E402
from factories import build_homes  # noqa: E402

AGENTROSTER = str(Path(sys.executable).with_name("agentroster"))
LLM_CALLS = (("api.mistral.ai", "mistral"), ("api.groq.com", "groq"), ("api.deepseek.com", "deepseek"),
             ("api.cohere.com", "cohere"), ("openrouter.ai", "openrouter"))  # (host, provider id) not called before
FAKE_OPENAI = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"
LLM_CALL = """
import socket, ssl, sys, time
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
while True:
    host = sys.stdin.readline().strip()
    if not host:
        break
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                pass
    except OSError:
        pass
"""


class Probe:
    """The collector's view of the bench device."""

    def __init__(self, url: str, admin: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {admin}"}, timeout=30)
        self.device_id = ""

    def agents(self, **params: Any) -> list[dict[str, Any]]:
        answer = self.http.get("/api/v1/agents", params={"device": self.device_id, "limit": 500, **params})
        answer.raise_for_status()
        return list(answer.json()["data"])


def wait_for(check: Callable[[], Any], timeout: float, poll: float = 0.05) -> float | None:
    """Seconds until ``check`` is true, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(poll)
    return None


def state_meta(data: Path) -> dict[str, str]:
    try:
        db = sqlite3.connect(f"file:{data / 'state.sqlite3'}?mode=ro", uri=True, timeout=5)
        try:
            return dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return {}


def edit_config(home: Path, name: str) -> None:
    path = home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(path.read_text()) if path.exists() else {"mcpServers": {}}
    doc.setdefault("mcpServers", {})[name] = {"command": "npx", "args": ["-y", f"@example/{name}"]}
    tmp = path.with_name("mcp.json.tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


class Sampler(threading.Thread):
    """The daemon's CPU time and peak RSS."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self.threads = 0
        self.stop = threading.Event()

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
                self.threads = self.proc.num_threads()
            except psutil.Error:
                return


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    values = sorted(values)
    return (f"median {statistics.median(values) * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms "
            f"({len(values)} samples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--processes", type=int, default=500, help="extra processes on the machine")
    parser.add_argument("--homes", type=int, default=10)
    parser.add_argument("--sensors", default="processes,files,network",
                        help="the daemon's sensors setting (default: all three)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="agentroster-bench-daemon-"))
    started: list[subprocess.Popen[bytes]] = []
    collector = None
    daemon = None
    try:
        root = tmp / "machine"
        build_homes(root, homes=args.homes)
        home = root / "home" / "alice"
        url = f"sqlite:///{tmp}/collector.sqlite3"
        tokens = servers.provision(url)
        collector = servers.CollectorProcess(url, log=tmp / "server.log").start()
        secret = tmp / "enroll-secret"
        secret.write_text(tokens["enroll_secret"])
        secret.chmod(0o600)
        sleep = shutil.which("sleep") or "/bin/sleep"
        for _ in range(args.processes):
            started.append(subprocess.Popen([sleep, "100000"], stdin=subprocess.DEVNULL, start_new_session=True))
        agent_script = root / "opt" / "venv" / "bin" / "aider"
        agent_script.parent.mkdir(parents=True, exist_ok=True)
        agent_script.write_text(LLM_CALL)
        agent_env = {**os.environ, "HOME": str(home), "OPENAI_API_KEY": FAKE_OPENAI}
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", 8443))  # a TLS port, as a provider's
        except OSError:
            listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        llm_port = str(listener.getsockname()[1])
        threading.Thread(target=_accept_and_close, args=(listener,), daemon=True).start()

        data = tmp / "data"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AGENTROSTER_") or k == "AGENTROSTER_FINGERPRINT_KEY"}
        env.update(AGENTROSTER_LOG_LEVEL="warning", AGENTROSTER_SENSORS=args.sensors)
        with open(tmp / "daemon.log", "ab") as log:
            daemon = subprocess.Popen([AGENTROSTER, "daemon", "--collector", collector.base_url,
                                       "--enroll-secret-file", str(secret), "--data-dir", str(data),
                                       "--root", str(root)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      env=env, start_new_session=True)
        t0 = time.monotonic()
        if wait_for(lambda: int(state_meta(data).get("acked_seq", 0)) >= 1, 180, 0.2) is None:
            raise SystemExit("the daemon's first report was not acknowledged; see " + str(tmp / "daemon.log"))
        print(f"first snapshot acknowledged {time.monotonic() - t0:.1f} s after start "
              f"({args.homes} homes, {args.processes} extra processes)")
        probe = Probe(collector.base_url, tokens["admin"])
        probe.device_id = state_meta(data)["device_id"]
        time.sleep(3)  # let the start settle: the first scan's last events, the status row

        sampler = Sampler(daemon.pid)
        sampler.start()
        half = args.seconds / 2
        cpu0 = sampler.cpu()
        churn0 = _pid_churn()
        time.sleep(half)
        cpu1 = sampler.cpu()
        churn = (_pid_churn() - churn0) / half
        idle_cpu = (cpu1 - cpu0) / half * 100

        edits: list[float] = []
        spawns: list[float] = []
        calls: list[float] = []
        status = _status(data)
        network = (status.get("sensors") or {}).get("network", "unknown")
        caller = subprocess.Popen([sys.executable, str(agent_script), llm_port], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, env=agent_env, start_new_session=True)
        started.append(caller)
        events_start = time.monotonic()
        n = 0
        while time.monotonic() - events_start < half - 6:
            n += 1
            edit_config(home, f"bench-probe-{n}")
            took = wait_for(lambda n=n: any(a["name"] == f"bench-probe-{n}" for a in probe.agents()), 15)
            if took is not None:
                edits.append(took)
            agent = subprocess.Popen([sys.executable, str(agent_script), llm_port], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, env=agent_env, start_new_session=True)
            started.append(agent)
            took = wait_for(lambda pid=agent.pid: _has_pid(probe, pid), 20)
            if took is not None:
                spawns.append(took)
            if network == "ok" and n <= len(LLM_CALLS):
                host, provider = LLM_CALLS[n - 1]
                assert caller.stdin is not None
                caller.stdin.write(host.encode() + b"\n")
                caller.stdin.flush()
                took = wait_for(lambda provider=provider: bool(probe.agents(provider=provider)), 10)
                if took is not None:
                    calls.append(took)
            agent.kill()
            time.sleep(1)
        cpu2 = sampler.cpu()
        busy_cpu = (cpu2 - cpu1) / max(1e-9, time.monotonic() - events_start) * 100
        sampler.stop.set()
        status = _status(data)

        load = os.getloadavg()
        print(f"daemon CPU, idle half ({half:.0f} s): {idle_cpu:.2f} % of one core   (budget <= 0.3 %)")
        print(f"daemon CPU, events half: {busy_cpu:.2f} % of one core ({n} config edits, {n} new agent processes)")
        print(f"daemon peak RSS: {sampler.peak_rss / (1 << 20):.1f} MB   (budget <= 70 MB); "
              f"threads: {sampler.threads}")
        print(f"new agent process -> sighting at the collector: {percentiles(spawns)}   (budget <= 5 s)")
        print(f"config edit -> sighting at the collector: {percentiles(edits)}   (budget <= 1 s)")
        if network == "ok":
            print(f"LLM call -> endpoint at the collector: {percentiles(calls)}   (budget <= 1 s)")
        else:
            print(f"LLM call -> endpoint: not measured: network sensor {network}")
        print(f"sensors: {status.get('sensors')}; last fingerprint pass {status.get('fingerprint_ms')} ms over "
              f"{status.get('processes')} processes, {status.get('sightings')} sightings")
        print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {churn:.0f} new processes/s on the machine "
              "during the idle half (shared machine: other work counts)")
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            t = time.monotonic()
            try:
                daemon.wait(timeout=10)
                print(f"SIGTERM -> exit: {time.monotonic() - t:.2f} s")
            except subprocess.TimeoutExpired:
                daemon.kill()
                print("SIGTERM -> exit: did not exit within 10 s (killed)")
        for proc in started:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in started:
            proc.wait()
        if collector is not None:
            collector.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


def _pid_churn() -> int:
    """Processes forked on this machine since boot (Linux), to tell the idle half's background churn."""
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("processes "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _accept_and_close(listener: socket.socket) -> None:
    """A provider's port that takes the ClientHello and hangs up a second later (no TLS spoken)."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Timer(1.0, conn.close).start()


def _has_pid(probe: Probe, pid: int) -> bool:
    for agent in probe.agents(signature="aider"):
        detail = probe.http.get(f"/api/v1/agents/{agent['device_id']}/{agent['id']}").json()
        if any(p["pid"] == pid for p in detail.get("processes", [])):
            return True
    return False


def _status(data: Path) -> dict[str, Any]:
    done = subprocess.run([AGENTROSTER, "status", "--json", "--data-dir", str(data)], capture_output=True, text=True,
                          timeout=60)
    return dict(json.loads(done.stdout)) if done.returncode == 0 else {}


_ = ssl  # the LLM call stand-in uses ssl in its own process

if __name__ == "__main__":
    main()
