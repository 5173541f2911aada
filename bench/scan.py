"""Measures ``agentroster scan`` against its performance budget and its peers; prints figures, asserts nothing.

(a) Full endpoint scan: 1,000 extra idle processes (varied argv, a few shaped like agents) and about
    200 config files (``tests/factories.py`` homes passed with ``--home``), then ``agentroster scan
    --json`` N times: median wall ms and peak RSS, with ``ps -eo pid,args`` on the same machine as a
    yardstick. Budget: median wall <= 3x ``ps``'s in the same run, <= 60 MB. Measured twice: as this checkout runs it (the
    ``.venv`` editable install, whose import finder every start loads) and as MDM deploys it (a wheel
    built from this checkout and installed into a fresh venv beside it, which takes its dependencies
    from ``.venv``'s site-packages through a ``.pth`` line); ``--no-wheel`` skips the second.
(b) Ten homes from ``build_homes`` (~100 real configs): ``agentroster scan --json --root DIR
    --no-processes`` once over all ten versus each peer (``bench/peers.py``) run once per home, summed;
    every tool runs in the same lo-only network namespace. Prints the wall ratio to the fastest peer,
    how many MCP servers each found (and how many of the planted ones), and every server a peer found
    that agentroster did not. Budget: >= 4x faster than the fastest peer, finding all they find.

agentroster runs with its bytecode cached (in a temporary PYTHONPYCACHEPREFIX, filled by the warm-up
run), as an installed package has it: PYTHONDONTWRITEBYTECODE in the caller's environment would
otherwise charge every run for compiling agentroster's sources. Its signature cache is a temporary
one too (AGENTROSTER_CACHE_DIR, filled by the warm-up run, as a deployed machine's is): the shared
one is keyed by the packs' paths, so that another checkout or install scanning at the same time would
otherwise make a timed run parse and validate the packs again.

(p) Project resolution: 40 Python services (``python3 -m svc.main``, a few local modules each) and 10 Node
    ones (``node server.js`` in a folder with a package.json) that are no agents, then the process part of
    a scan (``scan(files=False)``, in this process, no aside child) N times with the projects of
    interpreters resolved and N times without, alternating: the median wall ms of each and their ratio,
    and how many of the 50 were flagged (they must not be).

``python bench/scan.py [--quick] [--only a|b|p] [--no-wheel]``. Every process it starts is killed before it exits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for extra in (REPO / "bench", REPO / "tests", REPO):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import peers  # noqa: E402  (bench/peers.py, found through the sys.path entry above)
from factories import HomesManifest, build_homes  # noqa: E402

BUDGET_PS_RATIO = 3.0
BUDGET_RSS_MB = 60
BUDGET_PEER_RATIO = 4.0
IDLE_PROCESSES = 1000
CONFIG_FILES = 200

# argv[0] shapes for the idle processes: most ordinary, a few looking like agents or MCP servers.
ORDINARY = ["bash", "python3", "node", "postgres: writer", "nginx: worker process", "java", "gunicorn",
            "redis-server", "containerd-shim", "code", "chrome", "sshd: alice", "cron", "dockerd"]
AGENT_SHAPED = ["claude", "aider", "codex", "gemini", "ollama", "goose", "mcp-server-fetch", "cursor"]


def agentroster_command() -> list[str]:
    script = REPO / ".venv" / "bin" / "agentroster"
    if script.exists():
        return [str(script)]
    found = shutil.which("agentroster")
    if found:
        return [found]
    sys.exit("agentroster is not installed: .venv/bin/pip install -e . --no-deps")


# ----------------------------------------------------------------------------- idle processes


def start_idle_processes(count: int) -> list[subprocess.Popen[bytes]]:
    """``sleep`` children in one new process group, with argv[0] and arguments varied."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    procs: list[subprocess.Popen[bytes]] = []
    for i in range(count):
        name = AGENT_SHAPED[i % len(AGENT_SHAPED)] if i % 100 == 0 else ORDINARY[i % len(ORDINARY)]
        argv = [name, str(3600 + i), *(["0"] * (i % 4))]  # sleep adds its arguments up
        group = procs[0].pid if procs else 0  # all in the first one's new process group
        procs.append(subprocess.Popen(argv, executable=sleep, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=group))
    return procs


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    if procs:
        try:
            os.killpg(procs[0].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    median_ms: float
    min_ms: float
    max_rss_mb: float
    runs: int
    last: peers.RunResult
    cpu_median_ms: float = 0.0  # user + system time: what a busy shared machine moves least
    cpu_min_ms: float = 0.0


def _timed(argv: list[str], env: dict[str, str] | None) -> tuple[peers.RunResult, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = peers.timed_run(argv, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def installed_env(tmp: Path) -> dict[str, str]:
    """The environment to run agentroster in: bytecode and signatures cached under ``tmp``, as an installed
    package has them after its first run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    env["AGENTROSTER_CACHE_DIR"] = str(tmp / "signatures-cache")
    env["AGENTROSTER_FINGERPRINT_KEY"] = "bench-org-key-not-a-secret"  # an enrolled machine has the org's key
    return env


def wheel_install(tmp: Path) -> tuple[list[str] | None, str]:
    """agentroster as a wheel installs it: built from this checkout (a copy, so that the build leaves no
    files here) and installed without dependencies into a fresh venv, whose ``.pth`` line adds ``.venv``'s
    site-packages for them (their own ``.pth`` files, the editable finder's among them, are not run).
    The command, or None and why not."""
    source, wheels, venv = tmp / "wheel-src", tmp / "wheels", tmp / "wheel-venv"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in ("contract", "endpoint", "signatures", "console"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        [base, "-m", "venv", "--without-pip", str(venv)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            return None, f"{' '.join(step[:4])}… failed: {done.stderr.strip()[-300:]}"
    python = venv / "bin" / "python"
    wheel = sorted(wheels.glob("agentroster-*.whl"))
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
               *map(str, wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=600)
    if not wheel or done.returncode != 0:
        return None, f"pip install of the wheel failed: {done.stderr.strip()[-300:]}"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import sysconfig

    (Path(site) / "agentroster-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    where = subprocess.run([str(python), "-c", "import endpoint; print(endpoint.__file__)"], capture_output=True,
                           text=True, cwd=tmp).stdout.strip()  # not from here: '' on sys.path is the cwd
    if not where.startswith(site):
        return None, f"the wheel venv imports endpoint from {where or '?'}, not from {site}"
    return [str(venv / "bin" / "agentroster")], f"endpoint from {where}"


def measure(argv: list[str], reps: int, *, warmup: int = 1, env: dict[str, str] | None = None) -> Timing:
    for _ in range(warmup):
        peers.timed_run(argv, env=env)
    timed = [_timed(argv, env) for _ in range(reps)]
    runs = [r for r, _ in timed]
    failed = [r for r in runs if r.returncode != 0]
    if failed:
        raise RuntimeError(f"{' '.join(argv[:4])}… exited {failed[0].returncode}: {failed[0].stderr[-800:]}")
    walls = [r.wall_s * 1000 for r in runs]
    return Timing(statistics.median(walls), min(walls), max(r.max_rss_mb for r in runs), reps, runs[-1],
                  statistics.median(cpu for _, cpu in timed), min(cpu for _, cpu in timed))


def _verdict(ok: bool) -> str:
    return "within budget" if ok else "OVER BUDGET"


# ----------------------------------------------------------------------------- (a) full scan


def homes_for_files(files: int) -> int:
    """Homes to build for about ``files`` config files (a built home holds about twelve)."""
    return max(1, math.ceil(files / 12))


def bench_full_scan(reps: int, tmp: Path, *, wheel: bool = True) -> None:
    manifest = build_homes(tmp / "machine", homes=homes_for_files(CONFIG_FILES), seed=1)
    homes = [arg for h in manifest.homes for arg in ("--home", str(h.path))]
    scan_argv = [*agentroster_command(), "scan", "--json", *homes]
    wheel_argv, wheel_note = wheel_install(tmp) if wheel else (None, "skipped (--no-wheel)")
    procs = start_idle_processes(IDLE_PROCESSES)
    try:
        total = sum(1 for _ in Path("/proc").glob("[0-9]*"))
        scan = measure(scan_argv, reps, env=installed_env(tmp))
        wheel_scan = measure([*wheel_argv, *scan_argv[1:]], reps, env=installed_env(tmp)) if wheel_argv else None
        ps = measure(["ps", "-eo", "pid,args"], reps)
        sightings = len(json.loads(scan.last.stdout).get("sightings", []))
    finally:
        stop_processes(procs)
    print(f"(a) full scan: {total} processes ({IDLE_PROCESSES} extra idle), {len(manifest.files)} config files "
          f"in {len(manifest.homes)} homes, {reps} runs")
    print(f"    agentroster scan --json   median {scan.median_ms:7.1f} ms  (best {scan.min_ms:.1f}, CPU "
          f"{scan.cpu_median_ms:.1f}, best CPU {scan.cpu_min_ms:.1f})  peak RSS {scan.max_rss_mb:5.1f} MB  "
          f"{sightings} sightings  [.venv, editable install]")
    if wheel_scan is not None:
        same = json.loads(wheel_scan.last.stdout).get("sightings") is not None
        print(f"    agentroster scan --json   median {wheel_scan.median_ms:7.1f} ms  (best {wheel_scan.min_ms:.1f}, CPU "
              f"{wheel_scan.cpu_median_ms:.1f}, best CPU {wheel_scan.cpu_min_ms:.1f})  peak RSS "
              f"{wheel_scan.max_rss_mb:5.1f} MB  [wheel in a fresh venv{'' if same else ', NO JSON'}]")
    print(f"    wheel install: {wheel_note}")
    print(f"    ps -eo pid,args           median {ps.median_ms:7.1f} ms  (best {ps.min_ms:.1f}, CPU "
          f"{ps.cpu_median_ms:.1f}, best CPU {ps.cpu_min_ms:.1f})  peak RSS {ps.max_rss_mb:5.1f} MB")
    print(f"    load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores: on a busy machine wall time "
          f"waits for a core; CPU time does not")
    ratio = scan.median_ms / ps.median_ms
    print(f"    ratio scan/ps             {ratio:7.2f}x  (editable install)")
    if wheel_scan is not None:
        print(f"    ratio scan/ps             {wheel_scan.median_ms / ps.median_ms:7.2f}x  (wheel install)")
    print(f"    budget <= {BUDGET_PS_RATIO:.0f}x ps (editable install): {_verdict(ratio <= BUDGET_PS_RATIO)};  "
          f"<= {BUDGET_RSS_MB} MB: {_verdict(scan.max_rss_mb <= BUDGET_RSS_MB)}")


# ----------------------------------------------------------------------------- (b) homes vs peers

Key = tuple[str, str, str]  # (user, path relative to their home, MCP server name)


def _home_prefixes(manifest: HomesManifest) -> list[tuple[str, str]]:
    """(path prefix, user) pairs: the real path and the path as seen from --root, longest first."""
    pairs = []
    for home in manifest.homes:
        pairs.append((str(home.path), home.user))
        pairs.append(("/" + str(home.path.relative_to(manifest.root)), home.user))
    return sorted(pairs, key=lambda p: -len(p[0]))


def _key(path: str, name: str, prefixes: list[tuple[str, str]]) -> Key:
    for prefix, user in prefixes:
        if path.startswith(prefix + "/"):
            return (user, path[len(prefix) + 1 :], name)
    return ("?", path, name)


def agentroster_found(doc: dict[str, Any], manifest: HomesManifest) -> set[Key]:
    """Every declared MCP server the scan reports, on any sighting, by the file that declares it."""
    prefixes = _home_prefixes(manifest)
    found: set[Key] = set()
    for sighting in doc.get("sightings", []):
        for server in sighting.get("mcp_servers", []):
            found.add(_key(str(server.get("source", "")), str(server.get("name", "")), prefixes))
    return found


def planted(manifest: HomesManifest) -> set[Key]:
    return {(f.user, str(f.path.relative_to(manifest.home(f.user).path)), s.name)
            for f in manifest.files for s in f.servers if s.transport != "builtin"}


@dataclass
class ToolRun:
    name: str
    wall_s: float
    max_rss_mb: float
    found: set[Key]
    errors: list[str]


def run_agentroster(root: Path, manifest: HomesManifest, prefix: list[str], reps: int) -> ToolRun:
    timing = measure([*prefix, *agentroster_command(), "scan", "--json", "--root", str(root), "--no-processes"], reps,
                     env=installed_env(root.parent))
    doc = json.loads(timing.last.stdout)
    errors = [f"{e.get('where')}: {e.get('error')}" for e in doc.get("errors", [])]
    return ToolRun("agentroster", timing.median_ms / 1000, timing.max_rss_mb, agentroster_found(doc, manifest), errors)


def run_peer_over_homes(peer: str, manifest: HomesManifest, prefix: list[str], reps: int) -> ToolRun:
    totals: list[float] = []
    found: set[Key] = set()
    errors: list[str] = []
    rss = 0.0
    for _ in range(reps):
        total = 0.0
        for home in manifest.homes:
            result = peers.run_peer(peer, home.path, prefix=prefix)
            total += result.wall_s
            rss = max(rss, result.max_rss_mb)
            found |= {(home.user, path, name) for path, name in result.found}
            if result.error:
                errors.append(f"{home.user}: {result.error}")
        totals.append(total)
    return ToolRun(peer, statistics.median(totals), rss, found, errors)


def bench_homes(reps: int, peer_reps: int, tmp: Path) -> None:
    root = tmp / "ten-homes"
    manifest = build_homes(root, homes=10, seed=0)
    expected = planted(manifest)
    for peer in peers.PINNED:
        peers.ensure_installed(peer)
    with peers.offline_namespace("arbench-homes") as prefix:
        ours = run_agentroster(root, manifest, prefix, reps)
        others = [run_peer_over_homes(peer, manifest, prefix, peer_reps) for peer in peers.PINNED]
    print(f"(b) {len(manifest.homes)} homes, {len(manifest.files)} files, {len(expected)} planted MCP servers "
          f"(agentroster: median of {reps}; peers: median of {peer_reps} sums over the homes)")
    print(f"    {'tool':18} {'wall':>9} {'vs agentroster':>15} {'peak RSS':>9} {'servers':>8} {'planted found':>14}")
    for run in [ours, *others]:
        ratio = run.wall_s / ours.wall_s if ours.wall_s else float("inf")
        hits = len(run.found & expected)
        print(f"    {run.name:18} {run.wall_s * 1000:7.0f}ms {ratio:14.1f}x {run.max_rss_mb:7.1f}MB "
              f"{len(run.found):8d} {hits:6d}/{len(expected):<7d}")
    fastest = min(others, key=lambda r: r.wall_s)
    ratio = fastest.wall_s / ours.wall_s if ours.wall_s else float("inf")
    print(f"    fastest peer: {fastest.name}, agentroster is {ratio:.1f}x faster; budget >= {BUDGET_PEER_RATIO}x: "
          f"{_verdict(ratio >= BUDGET_PEER_RATIO)}")
    _print_misses(ours, others, expected)
    _print_errors(ours, manifest)


def _print_misses(ours: ToolRun, others: list[ToolRun], expected: set[Key]) -> None:
    missed_any = False
    for run in others:
        for user, path, name in sorted(run.found - ours.found):
            missed_any = True
            tag = "planted" if (user, path, name) in expected else "not planted"
            print(f"    MISSED (found by {run.name}, {tag}): {user}: {path} :: {name}")
        for error in run.errors[:5]:
            print(f"    {run.name} error: {error}")
    if not missed_any:
        print("    agentroster found every server the peers found: within budget")
    for user, path, name in sorted(expected - ours.found)[:20]:
        print(f"    agentroster did not report planted {user}: {path} :: {name}")


def _print_errors(ours: ToolRun, manifest: HomesManifest) -> None:
    """errors[] entries on the planted junk files are expected; anything else is listed."""
    junk = {"/" + str(f.path.relative_to(manifest.root)) for f in manifest.files if f.broken}
    junk |= {str(f.path) for f in manifest.files if f.broken}
    expected = [e for e in ours.errors if e.split(":", 1)[0] in junk]
    print(f"    agentroster errors[]: {len(expected)} on the {len(junk) // 2} planted broken files")
    for error in [e for e in ours.errors if e not in expected][:10]:
        print(f"    agentroster unexpected error: {error}")


# ----------------------------------------------------------------------------- entry point


# ----------------------------------------------------------------------------- (p) project resolution

PROJECT_PYTHON, PROJECT_NODE = 40, 10


def start_project_processes(tmp: Path) -> list[subprocess.Popen[bytes]]:
    """Python and Node services that are no agents, each from a project folder of its own, in one group."""
    procs: list[subprocess.Popen[bytes]] = []
    node = shutil.which("node")
    for i in range(PROJECT_PYTHON + (PROJECT_NODE if node else 0)):
        folder = tmp / "projects" / f"svc{i}"
        if i < PROJECT_PYTHON:
            package = folder / "svc"
            package.mkdir(parents=True)
            (package / "__init__.py").write_text("")
            (package / "main.py").write_text("import json, time\nfrom svc import models, util\ntime.sleep(3600)\n")
            (package / "models.py").write_text("from dataclasses import dataclass\nfrom .util import helper\n")
            (package / "util.py").write_text("import logging\nimport http.server\ndef helper(): pass\n")
            argv = [sys.executable, "-m", "svc.main"]
        else:
            folder.mkdir(parents=True)
            (folder / "package.json").write_text(json.dumps({"name": f"web{i}", "dependencies": {"express": "^4"}}))
            (folder / "server.js").write_text("const lib = require('./lib');\nsetInterval(() => {}, 1000);\n")
            (folder / "lib.js").write_text("module.exports = {};\n")
            argv = [node or "node", "server.js"]
        group = procs[0].pid if procs else 0
        procs.append(subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, process_group=group))
    return procs


def bench_projects(reps: int, tmp: Path) -> None:
    import time

    import signatures
    from endpoint.scan.run import ScanOptions, scan

    lib = signatures.load()
    procs = start_project_processes(tmp)
    try:
        time.sleep(2.0)  # every interpreter started and imported its modules
        walls: dict[bool, list[float]] = {True: [], False: []}
        found: dict[str, Any] = {}
        for rep in range(reps + 1):
            for projects in (False, True):
                start = time.perf_counter()
                doc = scan(ScanOptions(files=False, aside=False, projects=projects), lib=lib)
                if rep:  # the first round warms caches up
                    walls[projects].append((time.perf_counter() - start) * 1000)
                if projects:
                    found = doc
        pids = {p.pid for p in procs}
        flagged = sum(1 for s in found["sightings"] for p in s["processes"] if p["pid"] in pids)
        without, with_ = statistics.median(walls[False]), statistics.median(walls[True])
        print(f"(p) project resolution over {len(procs)} non-agent Python and Node processes "
              f"({len(found['sightings'])} sightings on the machine), median of {reps}:")
        print(f"    process scan without it {without:.1f} ms, with it {with_:.1f} ms: ratio {with_ / without:.2f}x; "
              f"{flagged} of the {len(procs)} flagged (must be 0)")
    finally:
        stop_processes(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", choices=["a", "b", "p"], help="run one part")
    parser.add_argument("--no-wheel", action="store_true", help="(a): do not also measure a wheel install")
    args = parser.parse_args()
    reps, peer_reps = (3, 1) if args.quick else (15, 3)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    with tempfile.TemporaryDirectory(prefix="agentroster-bench-") as tmp:
        if args.only in (None, "a"):
            bench_full_scan(reps, Path(tmp), wheel=not args.no_wheel)
        if args.only in (None, "b"):
            bench_homes(reps, peer_reps, Path(tmp))
        if args.only in (None, "p"):
            bench_projects(reps, Path(tmp))


if __name__ == "__main__":
    main()
