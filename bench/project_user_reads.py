"""Measures what judging root's files as a user's process's user could read costs project resolution;
prints figures, asserts nothing.

``bench/scan.py --only p`` runs its services as root, whose reads are not judged. Here 30 real processes
run as ``nobody`` (``setpriv``), each ``python3 -m app.main`` from a project of its own with a venv of its
own (an LLM SDK in it, so its code is read), and with ``PYTHONPATH`` naming a library of root's (0755
folders, 0644 modules that import each other): every one of those modules is a file of root's read for a
user's process, its mode and the folders on its way judged. The projects of all 30 are resolved by a
fresh ``ProjectReader`` N times with the judging and N times without (``Reads._judged`` made to answer
no: the code as it was), alternating; the median wall ms of each and their ratio are printed.

``python bench/project_user_reads.py [--quick]`` as root. Every process it starts is killed before it exits.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROCESSES = 30
SHARED_MODULES = 6
USER = "nobody"
PYTHON = "/usr/bin/python3"
APP = ("import pathlib, time\ntry:\n    import shared_0  # noqa: F401\nexcept ImportError:\n    pass\n"
       "pathlib.Path(__file__).with_name('started').touch()\ntime.sleep(600)\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build(base: Path) -> tuple[Path, list[Path]]:
    """Root's shared library and nobody's projects below ``base``."""
    shared = base / "shared" / "lib"
    for i in range(SHARED_MODULES):
        nxt = f"import shared_{i + 1}\n" if i + 1 < SHARED_MODULES else "from langgraph.graph import StateGraph\n"
        _write(shared / f"shared_{i}.py", f"import json\n{nxt}MODEL = 'gpt-4o-mini'\n")
    entry = pwd.getpwnam(USER)
    projects = []
    for i in range(PROCESSES):
        home = base / f"u{i}"
        _write(home / "proj" / "app" / "__init__.py", "")
        _write(home / "proj" / "app" / "main.py", APP)
        _write(home / ".venv" / "pyvenv.cfg", "home = /usr/bin\n")
        _write(home / ".venv" / "lib" / "python3.11" / "site-packages" / "openai_agents-0.2.0.dist-info" / "METADATA",
               "Metadata-Version: 2.1\nName: openai-agents\nVersion: 0.2.0\n\n")
        for folder, dirs, files in os.walk(home):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.lchown(name, entry.pw_uid, entry.pw_gid)
        projects.append(home)
    return shared, projects


def start(shared: Path, homes: list[Path]) -> list[subprocess.Popen[bytes]]:
    entry = pwd.getpwnam(USER)
    procs = []
    for home in homes:
        env = {"PYTHONPATH": str(shared), "VIRTUAL_ENV": str(home / ".venv")}
        procs.append(subprocess.Popen(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                                       "--clear-groups", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                                       PYTHON, "-m", "app.main"], cwd=home / "proj", stdin=subprocess.DEVNULL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all((h / "proj" / "app" / "started").exists() for h in homes):
        time.sleep(0.1)
    return procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    reps = 5 if parser.parse_args().quick else 21
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        sys.exit("run as root, with setpriv (util-linux): the processes run as nobody")

    import signatures
    from endpoint.scan.evidence import ProcessRecord
    from endpoint.scan.projects import ProjectReader, Reads, interests_of
    from endpoint.scan.sensors.processes import iter_processes

    lib = signatures.load()
    interests = interests_of(lib)
    judged = Reads._judged
    with tempfile.TemporaryDirectory(prefix="agentroster-bench-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        shared, homes = build(base)
        procs = start(shared, homes)
        try:
            pids = [p.pid for p in procs]
            records = [r for r in iter_processes(lib.credential_kind, pids=pids) if isinstance(r, ProcessRecord)]
            walls: dict[bool, list[float]] = {True: [], False: []}
            read = 0
            for rep in range(reps + 1):
                for judging in (False, True):
                    Reads._judged = judged if judging else (lambda self: False)  # type: ignore[method-assign]
                    reader = ProjectReader(interests, maps=False)
                    begin = time.perf_counter()
                    projects = [reader.read(r) for r in records]
                    if rep:  # the first round warms caches up
                        walls[judging].append((time.perf_counter() - begin) * 1000)
                    if judging:
                        read = sum(1 for p in projects if p is not None and "gpt-4o-mini" in p.models)
            Reads._judged = judged  # type: ignore[method-assign]
            without, with_ = statistics.median(walls[False]), statistics.median(walls[True])
            print(f"projects of {len(records)} processes of {USER}'s, each reading {SHARED_MODULES} modules of "
                  f"root's (0644 in 0755 folders), median of {reps}:")
            print(f"    without judging root's files {without:.1f} ms, with it {with_:.1f} ms: ratio "
                  f"{with_ / without:.2f}x; {read} of {len(records)} read root's modules (all should)")
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
