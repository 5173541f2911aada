"""The frameworks of a process's environment are its user's or root's: never another user's (issue 13).

A process's ``VIRTUAL_ENV`` and ``HOME`` are whatever its user set: one of ``nobody``'s processes that names
``www-data``'s virtualenv (or sets HOME to www-data's home, whose ``~/.local`` holds a user site) must not make
the root scan list what www-data installed. The processes are real, run as ``nobody`` and read from /proc
by the process sensor; the files are real and belong to real users. The scan remembers each site-packages
folder it read; what it remembers for one user's process must not answer for another's, nor for root's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import chown_tree

import signatures
from endpoint.scan.evidence import ProcessRecord, Project
from endpoint.scan.projects import ProjectReader, interests_of
from endpoint.scan.sensors.processes import iter_processes, read_details

LIB = signatures.load()
ATTACKER, VICTIM = "nobody", "www-data"  # real unprivileged users every Debian has
SYSTEM_PYTHON = "/usr/bin/python3"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _site(prefix: Path, *dists: tuple[str, str]) -> Path:
    """A site-packages folder below ``prefix`` holding the dist-info of each (name, version)."""
    site = prefix / "lib" / "python3.11" / "site-packages"
    for name, version in dists:
        _write(site / f"{name.replace('-', '_')}-{version}.dist-info" / "METADATA",
               f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    return site


def _venv(folder: Path, *dists: tuple[str, str]) -> Path:
    _write(folder / "pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = false\n")
    _site(folder, *dists)
    return folder


@pytest.fixture
def shared_tree() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp dirs are root-only)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, setpriv (util-linux) and the system python3 to run a process as another user")
    base = Path(tempfile.mkdtemp(prefix="ar-venvs-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _run_as(user: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python3 -m app.main`` (it sleeps) run as ``user`` in ``cwd`` with ``env``."""
    entry = pwd.getpwnam(user)
    started = cwd / "app" / "started"
    started.unlink(missing_ok=True)  # the processes share one project: each must touch it anew
    proc = subprocess.Popen(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
                             "env", "-i", *(f"{k}={v}" for k, v in env.items()), SYSTEM_PYTHON, "-m", "app.main"],
                            cwd=cwd, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # setpriv and env exec python; wait for python to import app.main
        with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:  # env's argv names app.main too: python's first
            if fh.read().split(b"\0")[0] == SYSTEM_PYTHON.encode() and started.exists():
                return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the process did not start")


def _project_of(proc: subprocess.Popen[bytes], reader: ProjectReader) -> Project:
    [record] = [r for r in iter_processes(LIB.credential_kind, pids=[proc.pid], read_env=False)
                if isinstance(r, ProcessRecord)]
    read_details(record, LIB.credential_kind, projects=reader)
    assert record.project is not None
    return record.project


@pytest.mark.timeout(90)
def test_a_process_naming_another_users_venv_or_home_does_not_list_its_packages(shared_tree: Path) -> None:
    victim_home = shared_tree / "victim"
    _venv(victim_home / ".venv", ("langgraph", "0.6.0"))
    _site(victim_home / ".local", ("crewai", "0.100.0"))
    chown_tree(victim_home, VICTIM)
    attacker_home = shared_tree / "attacker"
    _venv(attacker_home / ".venv", ("openai-agents", "0.2.0"))
    project_dir = attacker_home / "proj"
    _write(project_dir / "app" / "__init__.py", "")
    _write(project_dir / "app" / "main.py", "import pathlib, time\n"
                                             "pathlib.Path(__file__).with_name('started').touch()\ntime.sleep(60)\n")
    chown_tree(attacker_home, ATTACKER)
    procs = [_run_as(ATTACKER, project_dir, {"VIRTUAL_ENV": str(victim_home / ".venv"), "HOME": str(attacker_home)}),
             _run_as(ATTACKER, project_dir, {"HOME": str(victim_home)}),
             _run_as(ATTACKER, project_dir, {"VIRTUAL_ENV": str(attacker_home / ".venv"), "HOME": str(attacker_home)})]
    try:
        reader = ProjectReader(interests_of(LIB), maps=False)
        by_venv, by_home, own = (_project_of(p, reader) for p in procs)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    for project in (by_venv, by_home):
        assert not [p for p in project.packages if str(victim_home) in p[3]], project.packages
        assert not {"langgraph", "crewai"} & {p[1] for p in project.packages}
        foreign = [(where, code) for where, code, _ in project.errors if code == "not_owner"]
        assert len(foreign) == 1 and foreign[0][0].startswith(str(victim_home)), project.errors
    assert ("pypi", "openai-agents", "0.2.0", str(attacker_home / ".venv")) in own.packages, "its own venv is listed"
    assert own.errors == ()


def _records(venv: Path, cwd: Path) -> dict[str, ProcessRecord]:
    # Shaped by hand (a root process and nobody's, running the same module with the same VIRTUAL_ENV): what
    # matters here is whose files they are, and the files are real and owned by the real users.
    def record(uid: int) -> ProcessRecord:
        return ProcessRecord(pid=os.getpid(), ppid=1, name="python3", exe=SYSTEM_PYTHON,
                             cmdline=["python3", "-m", "agentpkg.main"], user=str(uid), uid=uid, create_time=0.0,
                             env_values={"VIRTUAL_ENV": str(venv)}, cwd=str(cwd))

    return {"root": record(0), "user": record(pwd.getpwnam(ATTACKER).pw_uid)}


def _shared_venv(base: Path) -> tuple[Path, Path, Path]:
    """A root-owned venv into which nobody made an editable install of its own package (a .pth file of
    nobody's naming nobody's source folder, whose module imports LangGraph)."""
    venv = _venv(base / "shared" / ".venv", ("langgraph", "0.6.0"))
    src = base / "attacker" / "src"
    _write(src / "agentpkg" / "__init__.py", "")
    _write(src / "agentpkg" / "main.py", "from langgraph.graph import StateGraph\n")
    chown_tree(base / "attacker", ATTACKER)
    pth = _write(venv / "lib" / "python3.11" / "site-packages" / "__editable__.agentpkg-0.1.pth", f"{src}\n")
    entry = pwd.getpwnam(ATTACKER)
    os.chown(pth, entry.pw_uid, entry.pw_gid)
    return venv, src, pth


@pytest.mark.parametrize("first", ["root", "user"])
def test_a_site_read_for_one_user_does_not_answer_for_another(shared_tree: Path, first: str) -> None:
    venv, _, pth = _shared_venv(shared_tree)
    records = _records(venv, shared_tree / "attacker")
    reader = ProjectReader(interests_of(LIB), maps=False)
    projects = {who: reader.read(records[who]) for who in (first, "user" if first == "root" else "root")}
    user, root = projects["user"], projects["root"]
    assert user is not None and root is not None
    assert "langgraph.graph" in {m for m, _ in user.imports}, "nobody's own editable install is on its process's path"
    assert user.errors == ()
    assert root.imports == (), "nobody's .pth file puts nothing on a root process's path"
    assert [(where, code) for where, code, _ in root.errors] == [(str(pth), "not_owner")], root.errors
