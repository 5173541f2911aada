"""Installs real agent tools into a cache and runs them as a user would, offline, for the e2e tests.

Installs (each once, into ``.cache/agents/<name>``, reused while its pinned spec is unchanged):
Node 22 from the npm registry's ``node`` package (Claude Code needs Node >= 22 and the system one may
be older), Claude Code from npm, aider-chat and mcp-server-fetch from PyPI in their own venvs.

``AgentSession`` then makes a throwaway HOME and a network namespace whose only interface is ``lo``,
starts the fake provider there, and starts Claude Code (with mcp-server-fetch configured in its own
``~/.claude.json``, so Claude Code itself spawns the server) and aider, each interactively under a
pseudo-terminal and pointed at the fake provider, with obviously fake keys. Leaving the session kills
every process it started (whole process groups, anything left in the namespace) and deletes the
namespace and the HOME, also when the test failed.

``python tests/e2e/agents.py`` installs, starts, prints the process tree and timings, and cleans up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import secrets
import select
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import venv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AGENTROSTER_AGENT_CACHE", REPO / ".cache" / "agents"))
FAKE_PROVIDER = Path(__file__).resolve().parent / "fake_provider.py"

NODE_SPEC = "node@22"
CLAUDE_SPEC = "@anthropic-ai/claude-code@" + os.environ.get("AGENTROSTER_E2E_CLAUDE_VERSION", "2.1.332")
AIDER_SPEC = "aider-chat==0.86.2"
FETCH_SPEC = "mcp-server-fetch==2026.10.24"
SYSTEM_PATH = "/usr/bin:/bin"


# ----------------------------------------------------------------------------- installs


@dataclass
class Tools:
    node_bin: Path  # directory holding a Node >= 22 ``node``
    claude: Path
    aider: Path
    fetch: Path
    install_seconds: dict[str, float] = field(default_factory=dict)  # 0.0 where the cache was used


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """One installer at a time (parallel test runs share the cache)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _installed(target: Path, spec: str, exe: Path) -> bool:
    marker = target / ".installed"
    return marker.exists() and marker.read_text() == spec and exe.exists()


def _run(argv: list[str], **kw: object) -> None:
    """Run an install step quietly; on failure raise with the tail of what it printed."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"install step failed ({done.returncode}): {' '.join(argv)}\n{tail}")


def _node_major(node: Path) -> int:
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def _npm_install(target: Path, spec: str, *, path_env: str) -> None:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    env = {**os.environ, "PATH": path_env}
    _run(["npm", "install", "--prefix", str(target), "--no-audit", "--no-fund", "--loglevel=error", spec], env=env)


def ensure_node() -> tuple[Path, float]:
    """A Node >= 22: npm's ``node@22`` package in the cache (it ships the binary inside the package)."""
    target = CACHE / "node22"
    node = target / "node_modules" / ".bin" / "node"
    if _installed(target, NODE_SPEC, node) and _node_major(node) >= 22:
        return node.parent, 0.0
    start = time.monotonic()
    _npm_install(target, NODE_SPEC, path_env=os.environ.get("PATH", SYSTEM_PATH))
    if _node_major(node) < 22:  # an npm that skipped the package's install script: run it ourselves
        _run(["node", "installArchSpecificPackage"], cwd=target / "node_modules" / "node")
    (target / ".installed").write_text(NODE_SPEC)
    return node.parent, time.monotonic() - start


def ensure_claude_code(node_bin: Path) -> tuple[Path, float]:
    target = CACHE / "claude"
    claude = target / "node_modules" / ".bin" / "claude"
    if _installed(target, CLAUDE_SPEC, claude):
        return claude, 0.0
    start = time.monotonic()
    path_env = f"{node_bin}:{os.environ.get('PATH', SYSTEM_PATH)}"
    _npm_install(target, CLAUDE_SPEC, path_env=path_env)
    if subprocess.run([str(claude), "--version"], capture_output=True, timeout=60).returncode != 0:
        pkg = target / "node_modules" / "@anthropic-ai" / "claude-code"  # postinstall skipped: run it
        _run([str(node_bin / "node"), "install.cjs"], cwd=pkg)
    (target / ".installed").write_text(CLAUDE_SPEC)
    return claude, time.monotonic() - start


def ensure_python_tool(name: str, spec: str, exe: str) -> tuple[Path, float]:
    """A PyPI tool in its own venv under the cache."""
    target = CACHE / name
    binary = target / "bin" / exe
    if _installed(target, spec, binary):
        return binary, 0.0
    start = time.monotonic()
    shutil.rmtree(target, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(target)
    _run([str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec])
    (target / ".installed").write_text(spec)
    return binary, time.monotonic() - start


def ensure_tools() -> Tools:
    """Install whatever is missing from the cache; report how long each install took."""
    with _cache_lock():
        node_bin, t_node = ensure_node()
        claude, t_claude = ensure_claude_code(node_bin)
        aider, t_aider = ensure_python_tool("aider", AIDER_SPEC, "aider")
        fetch, t_fetch = ensure_python_tool("fetch", FETCH_SPEC, "mcp-server-fetch")
    seconds = {"node22": t_node, "claude-code": t_claude, "aider-chat": t_aider, "mcp-server-fetch": t_fetch}
    return Tools(node_bin, claude, aider, fetch, seconds)


# ----------------------------------------------------------------------------- network namespace


class OfflineNetns:
    """A network namespace whose only interface is ``lo`` (up); deleting it kills what still runs in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def create(self) -> None:
        self.delete()
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run([*self.prefix, "ip", "link", "set", "lo", "up"], check=True)

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def delete(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)


def sweep_stale_namespaces(prefix: str = "ar-e2e-") -> None:
    """Delete namespaces ``<prefix><pid>`` left by a test run that was killed before it could clean up."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.strip() else ""
        owner = name[len(prefix) :]
        if name.startswith(prefix) and owner.isdigit() and not Path(f"/proc/{owner}").exists():
            OfflineNetns(name).delete()


# ----------------------------------------------------------------------------- processes under a pty


class PtyProcess:
    """A process whose stdin/stdout/stderr is a pseudo-terminal, in its own process group."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        """Keep reading so a full terminal buffer never blocks the program."""
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if ready:
                    chunk = os.read(self.master, 65536)
                    if not chunk:
                        return
                    self.output += chunk
            except (OSError, ValueError):
                return
            if self.proc.poll() is not None and not ready:
                return

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def text(self) -> str:
        return bytes(self.output).decode(errors="replace")

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left of it."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=3)
                break
        with contextlib.suppress(OSError):
            os.close(self.master)


def children(pid: int) -> list[int]:
    """Direct children of pid, from /proc."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found: list[int] = []
        for task in tasks:
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
        return found
    except OSError:
        return []


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def wait_for(predicate: object, timeout: float, interval: float = 0.1) -> object:
    """Poll a zero-argument callable until it returns something truthy, or time out (returns None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        time.sleep(interval)
    return None


# ----------------------------------------------------------------------------- the session


def fake_keys() -> dict[str, str]:
    """Fresh, obviously fake keys in the providers' shapes (random, so a leak check means something)."""
    alnum = string.ascii_letters + string.digits

    def rand(n: int) -> str:
        return "".join(secrets.choice(alnum) for _ in range(n))

    return {
        "ANTHROPIC_API_KEY": f"sk-ant-api03-FAKE{rand(87)}AA",
        "OPENAI_API_KEY": f"sk-proj-FAKE{rand(60)}T3BlbkFJ{rand(60)}",
        "GITHUB_TOKEN": f"ghp_FAKE{rand(32)}",
    }


@dataclass
class SessionInfo:
    home: Path
    project: Path
    keys: dict[str, str]
    provider_pid: int
    provider_port: int
    claude_pid: int
    fetch_pid: int
    aider_pid: int
    start_seconds: float  # from first start to all processes up


class AgentSession:
    """Throwaway HOME + lo-only netns + fake provider + Claude Code (spawning mcp-server-fetch) + aider."""

    def __init__(self, tools: Tools, *, netns: str = "ar-e2e", provider_delay: float = 120.0) -> None:
        self.tools = tools
        self.netns = OfflineNetns(netns)
        self.provider_delay = provider_delay
        self.keys = fake_keys()
        self.tmp = Path(tempfile.mkdtemp(prefix="agentroster-e2e-"))
        self.home = self.tmp / "home" / "tester"
        self.project = self.home / "src" / "demo"
        self._provider: subprocess.Popen[bytes] | None = None
        self._agents: list[PtyProcess] = []
        self.claude: PtyProcess | None = None
        self.aider: PtyProcess | None = None

    # setup -----------------------------------------------------------------------------------

    def _write_home(self) -> None:
        self.project.mkdir(parents=True)
        (self.project / "README.md").write_text("# demo\n")
        key = self.keys["ANTHROPIC_API_KEY"]
        claude_json = {
            "hasCompletedOnboarding": True,
            "theme": "dark",
            "numStartups": 3,
            "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},  # skips the "use this key?" prompt
            "mcpServers": {
                "fetch": {"type": "stdio", "command": str(self.tools.fetch), "args": [],
                          "env": {"GITHUB_TOKEN": self.keys["GITHUB_TOKEN"]}},
            },
            "projects": {str(self.project): {"hasTrustDialogAccepted": True, "allowedTools": [], "mcpServers": {}}},
        }
        (self.home / ".claude.json").write_text(json.dumps(claude_json, indent=2))
        caches = self.home / ".aider" / "caches"  # a fresh model-info cache: aider then fetches no price list
        caches.mkdir(parents=True)
        model = {"max_input_tokens": 128000, "max_output_tokens": 16384, "litellm_provider": "openai",
                 "mode": "chat", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
        (caches / "model_prices_and_context_window.json").write_text(json.dumps({"gpt-4o-mini": model}))

    def _start_provider(self) -> int:
        port_file = self.tmp / "provider.port"
        argv = [*self.netns.prefix, sys.executable, str(FAKE_PROVIDER), "--port-file", str(port_file),
                "--delay", str(self.provider_delay), "--log", str(self.tmp / "provider.jsonl")]
        self._provider = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
        if not wait_for(port_file.exists, 15):
            raise RuntimeError("the fake provider did not start")
        return int(port_file.read_text())

    def _env(self, port: int) -> dict[str, str]:
        return {
            "PATH": f"{self.tools.node_bin}:{SYSTEM_PATH}",
            "HOME": str(self.home),
            "USER": "tester",
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "SHELL": "/bin/bash",
            **self.keys,
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
            "OPENAI_API_BASE": f"http://127.0.0.1:{port}/v1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }

    def _start_claude(self, env: dict[str, str]) -> PtyProcess:
        proc = PtyProcess([*self.netns.prefix, str(self.tools.claude)], env=env, cwd=self.project)
        self._agents.append(proc)
        return proc

    def _start_aider(self, env: dict[str, str]) -> PtyProcess:
        argv = [*self.netns.prefix, str(self.tools.aider), "--model", "openai/gpt-4o-mini",
                "--no-check-update", "--no-show-release-notes", "--analytics-disable", "--no-git",
                "--no-gitignore", "--no-show-model-warnings", "--no-pretty", "--no-fancy-input",
                "--no-detect-urls"]
        proc = PtyProcess(argv, env=env, cwd=self.project)
        self._agents.append(proc)
        return proc

    def _fetch_child(self) -> int | None:
        assert self.claude is not None
        for pid in children(self.claude.pid):
            if any("mcp-server-fetch" in part for part in cmdline(pid)):
                return pid
        return None

    def start(self) -> SessionInfo:
        started = time.monotonic()
        self._write_home()
        self.netns.create()
        port = self._start_provider()
        env = self._env(port)
        self.claude = self._start_claude(env)
        self.aider = self._start_aider(env)
        fetch_pid = wait_for(self._fetch_child, 60)
        if not isinstance(fetch_pid, int):
            raise RuntimeError(f"Claude Code did not spawn mcp-server-fetch; its screen:\n{self.claude.text()[-2000:]}")
        # A prompt each, so both are mid-request against the (slow) provider while the scan runs.
        wait_for(lambda: "Aider v" in self.aider.text() if self.aider else False, 60)
        self.claude.type("Summarise README.md please\r")
        self.aider.type("Say hello\r")
        assert self._provider is not None
        return SessionInfo(self.home, self.project, dict(self.keys), self._provider.pid, port, self.claude.pid,
                           fetch_pid, self.aider.pid, time.monotonic() - started)

    # teardown --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Kill everything started, delete the namespace and the HOME; safe to call twice."""
        for agent in self._agents:
            agent.stop()
        if self._provider is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._provider.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._provider.wait(timeout=5)
        self.netns.delete()  # also kills anything an agent left behind in the namespace
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> AgentSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_tree(pid: int, depth: int = 0) -> list[str]:
    lines = [f"{'  ' * depth}{pid} {' '.join(cmdline(pid))[:160]}"]
    for child in children(pid):
        lines += process_tree(child, depth + 1)
    return lines


def main() -> None:
    started = time.monotonic()
    tools = ensure_tools()
    print(f"tools ready in {time.monotonic() - started:.1f}s: " +
          ", ".join(f"{k} {v:.1f}s" for k, v in tools.install_seconds.items()))
    with AgentSession(tools, netns="ar-e2e-demo") as session:
        info = session.start()
        print(f"agents up in {info.start_seconds:.1f}s, HOME={info.home}")
        for pid in (info.provider_pid, info.claude_pid, info.aider_pid):
            print("\n".join(process_tree(pid)))
        time.sleep(float(os.environ.get("E2E_HOLD_SECONDS", "3")))
    left = [p for p in (info.claude_pid, info.fetch_pid, info.aider_pid, info.provider_pid) if Path(f"/proc/{p}").exists()]
    print(f"after cleanup, still running: {left or 'nothing'}")


if __name__ == "__main__":
    main()
