"""Runs the peer scanners that agentroster's home-scan budget is measured against, offline.

Each peer is installed on demand, pinned, into its own venv under ``.cache/peers/<name>`` (gitignored),
run on one user home at a time, and its output reduced to the set of (config path relative to the
home, MCP server name) it found, with its wall time.

How each one is invoked, and why nothing it does leaves the machine:

* **snyk-agent-scan 0.6.9** (the successor of mcp-scan)::

      ip netns exec <ns> env -i HOME=<home> PATH=/usr/bin:/bin LANG=C.UTF-8 \\
          .cache/peers/snyk-agent-scan/bin/snyk-agent-scan inspect --json --no-skills \\
          --suppress-mcpserver-io true --storage-file <tmp>/state </dev/null

  ``inspect`` (unlike the default ``scan``) never calls Snyk's analysis API nor pushes results: in
  ``agent_scan/cli.py`` ``run_scan(mode="inspect")`` goes straight to ``inspect_pipeline`` and skips
  ``inspect_analyze_push_pipeline``. It discovers the well-known client configs of the platform it runs
  on below ``Path.home()`` (so ``HOME`` picks the home). Before it contacts any MCP server it asks for
  consent per server on stdin (``agent_scan/consent.py``); stdin is ``/dev/null``, so every answer is
  EOF = "no", every server is recorded as ``user_declined`` and no stdio server is started nor any
  remote one connected. ``--dangerously-run-mcp-servers`` is never passed. On top of that it runs in a
  network namespace whose only interface is ``lo``, so even a bug could reach nothing.

* **nexusshadowscan 0.1.4** (``shadowscan``, a shadow-AI inventory tool)::

      ip netns exec <ns> env -i HOME=<home> PATH=/usr/bin:/bin LANG=C.UTF-8 \\
          .cache/peers/nexusshadowscan/bin/shadowscan -q endpoint --home <home> --no-incremental \\
          -f json -o <tmp>/report.json </dev/null

  ``endpoint`` reads the AI-client config files at their well-known locations (all three OS layouts)
  below ``--home`` with its local ``code.filesystem`` connector: it parses files and starts nothing.
  No connector that talks to a cloud, SaaS or gateway API is configured by this command, and the same
  ``lo``-only namespace applies.

Run as root the namespace is a named ``ip netns``; otherwise ``unshare --user --map-root-user --net``
gives an equally empty one. ``python bench/peers.py HOME...`` prints what each peer finds.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "peers"
PINNED = {"snyk-agent-scan": "snyk-agent-scan==0.6.9", "nexusshadowscan": "nexusshadowscan==0.1.4"}
BASE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass
class RunResult:
    """One finished child process: its output, exit code, wall time and peak RSS."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    max_rss_mb: float


@dataclass
class PeerResult:
    peer: str
    home: Path
    found: set[tuple[str, str]] = field(default_factory=set)  # (path relative to home, server name)
    wall_s: float = 0.0
    max_rss_mb: float = 0.0
    returncode: int = 0
    error: str = ""


# ----------------------------------------------------------------------------- processes


def timed_run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 300) -> RunResult:
    """Run argv with stdin closed; wall time from spawn to reap, peak RSS from wait4 (kB on Linux)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        try:
            _, status, usage = _wait4(proc.pid, timeout)
        except TimeoutError:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return RunResult(proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                         wall, usage.ru_maxrss / 1024)


def _wait4(pid: int, timeout: float) -> tuple[int, int, resource.struct_rusage]:
    deadline = time.monotonic() + timeout
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return wpid, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid} still running after {timeout}s")
        time.sleep(0.0005)


# ----------------------------------------------------------------------------- offline namespace


def is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def offline_namespace(name: str = "arbench") -> Iterator[list[str]]:
    """Yield an argv prefix that runs a command in a network namespace with only ``lo`` (up)."""
    if not is_root():
        yield ["unshare", "--user", "--map-root-user", "--net", "--"]
        return
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


# ----------------------------------------------------------------------------- install


def peer_bin(peer: str) -> Path:
    exe = {"snyk-agent-scan": "snyk-agent-scan", "nexusshadowscan": "shadowscan"}[peer]
    return CACHE / peer / "bin" / exe


def ensure_installed(peer: str) -> Path:
    """Install the pinned peer into its own venv unless that exact version is already there."""
    target = CACHE / peer
    marker = target / ".installed"
    if marker.exists() and marker.read_text() == PINNED[peer] and peer_bin(peer).exists():
        return peer_bin(peer)
    shutil.rmtree(target, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(target)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, PINNED[peer]], check=True)
    marker.write_text(PINNED[peer])
    return peer_bin(peer)


# ----------------------------------------------------------------------------- output parsing


def relative_to_home(path: str, home: Path) -> str:
    """A reported path below ``home``, written relative to it with ``/``."""
    for base in (str(home), str(home.resolve())):
        if path.startswith(base + "/"):
            return path[len(base) + 1 :]
    return path


def parse_snyk(doc: object, home: Path) -> set[tuple[str, str]]:
    """``inspect --json``: {client dir: {"client", "servers": [{"name", "config_path", ...}]}}.

    A per-project server of ``~/.claude.json`` comes back with the project directory (as written in
    that file, so a path of the scanned user's machine) as its ``config_path``: it is put back on
    ``.claude.json``, the file that declares it.
    """
    found: set[tuple[str, str]] = set()
    if not isinstance(doc, dict):
        return found
    for entry in doc.values():
        for server in entry.get("servers") or []:
            path = relative_to_home(server.get("config_path") or entry.get("path") or "", home)
            if "claude code" in str(entry.get("client", "")).lower() and not (home / path).is_file():
                path = ".claude.json"
            found.add((path, server["name"]))
    return found


def parse_nexus(doc: object, home: Path) -> set[tuple[str, str]]:
    """``endpoint -f json``: findings of kind mcp-server, with metadata.path (home-relative) and servers."""
    found: set[tuple[str, str]] = set()
    if not isinstance(doc, dict):
        return found
    for finding in doc.get("findings") or []:
        meta = finding.get("metadata") or {}
        for server in meta.get("servers") or []:
            found.add((relative_to_home(str(meta.get("path", "")), home), server["name"]))
    return found


# ----------------------------------------------------------------------------- runners


def _peer_env(home: Path) -> dict[str, str]:
    return {**BASE_ENV, "HOME": str(home)}


def _snyk_argv(home: Path, scratch: Path) -> tuple[list[str], Callable[[RunResult], object]]:
    argv = [str(peer_bin("snyk-agent-scan")), "inspect", "--json", "--no-skills",
            "--suppress-mcpserver-io", "true", "--storage-file", str(scratch / "state")]
    return argv, lambda run: json.loads(run.stdout)


def _nexus_argv(home: Path, scratch: Path) -> tuple[list[str], Callable[[RunResult], object]]:
    report = scratch / "report.json"
    argv = [str(peer_bin("nexusshadowscan")), "-q", "endpoint", "--home", str(home), "--no-incremental",
            "-f", "json", "-o", str(report)]
    return argv, lambda run: json.loads(report.read_text())


RUNNERS = {
    "snyk-agent-scan": (_snyk_argv, parse_snyk),
    "nexusshadowscan": (_nexus_argv, parse_nexus),
}


def run_peer(peer: str, home: Path, *, prefix: list[str]) -> PeerResult:
    """Run one peer over one home inside the offline namespace given by ``prefix``."""
    build_argv, parse = RUNNERS[peer]
    result = PeerResult(peer=peer, home=home)
    with tempfile.TemporaryDirectory(prefix=f"{peer}-") as tmp:
        argv, load = build_argv(home, Path(tmp))
        run = timed_run([*prefix, *argv], env=_peer_env(home))
        result.wall_s, result.max_rss_mb, result.returncode = run.wall_s, run.max_rss_mb, run.returncode
        try:
            result.found = parse(load(run), home)
        except (OSError, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}; stderr: {run.stderr[-400:]}"
    return result


def main(argv: list[str]) -> int:
    homes = [Path(a).resolve() for a in argv] or [Path.home()]
    for peer in PINNED:
        ensure_installed(peer)
    with offline_namespace() as prefix:
        for home in homes:
            for peer in PINNED:
                res = run_peer(peer, home, prefix=prefix)
                print(f"{peer:16} {home}  {res.wall_s * 1000:7.0f} ms  rc={res.returncode}  "
                      f"{len(res.found)} servers {res.error}")
                for path, name in sorted(res.found):
                    print(f"    {path}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
