"""endpoint.scan.projects read as an attacker would steer it: a local user shaping a process's command line and
environment (both are the user's to write: argv can be rewritten in place, the environment is theirs) so
that the root scan reads what the user could not.

Each attack is a process record of ``nobody``'s shaped as the process sensor reads it from /proc, over real
files: root's own in a folder made in root's real home, a real root child process whose working folder a
``/proc/PID/cwd`` path reaches, real folders and links. Such a process of ``nobody``'s would exit at once
(it cannot read root's home), so the record is the attack as the scanner sees it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import signatures
from endpoint.scan.evidence import ProcessRecord, Project
from endpoint.scan.projects import ROOT_HOME, ProjectReader, interests_of

LIB = signatures.load()
ATTACKER = "nobody"
SECRET_CODE = "from langgraph.graph import StateGraph\nMODEL = 'gpt-4o-root-only-secret'\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _uid() -> int:
    return pwd.getpwnam(ATTACKER).pw_uid


def _python(argv: list[str], cwd: str, env: dict[str, str] | None = None, uid: int | None = None) -> ProcessRecord:
    return ProcessRecord(pid=os.getpid(), ppid=1, name="python3", exe="/nonexistent/bin/python3",
                         cmdline=argv, user=ATTACKER, uid=_uid() if uid is None else uid, create_time=0.0,
                         env_values=env or {}, cwd=cwd)


def _read(record: ProcessRecord) -> Project | None:
    return ProjectReader(interests_of(LIB), maps=False).read(record)


def _leaked(project: Project | None) -> bool:
    return project is not None and (bool(project.imports) or "gpt-4o-root-only-secret" in project.models
                                    or any(name == "langgraph" for _, name, _, _ in project.packages))


@pytest.fixture
def roots_folder() -> Iterator[Path]:
    """A folder of root's own in root's real home, holding root's agent code and n8n store."""
    if os.geteuid() != 0 or not os.path.isdir(ROOT_HOME):
        pytest.skip("needs root and root's home to hold files only root may read")
    folder = Path(tempfile.mkdtemp(prefix="ar-attack-", dir=ROOT_HOME))
    _write(folder / "secret_agent.py", SECRET_CODE)
    _write(folder / "app" / "__init__.py", "")
    _write(folder / "app" / "main.py", SECRET_CODE)
    _write(folder / ".venv" / "pyvenv.cfg", "home = /usr/bin\n")
    _write(folder / ".venv" / "lib" / "python3.11" / "site-packages" / "langgraph-0.6.0.dist-info" / "METADATA",
           "Name: langgraph\nVersion: 0.6.0\n\n")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("shape", ["PYTHONPATH", "--app-dir", "../ script path", "VIRTUAL_ENV"])
def test_a_users_process_cannot_make_the_scan_read_roots_home(roots_folder: Path, tmp_path: Path, shape: str) -> None:
    cwd = tmp_path / "home" / "nobody"
    cwd.mkdir(parents=True)
    if shape == "PYTHONPATH":
        record = _python(["python3", "-m", "secret_agent"], str(cwd), {"PYTHONPATH": str(roots_folder)})
    elif shape == "VIRTUAL_ENV":
        record = _python(["python3", "-m", "app.main"], str(cwd), {"VIRTUAL_ENV": str(roots_folder / ".venv")})
    elif shape == "--app-dir":
        record = _python(["python3", "-m", "uvicorn", "--app-dir", str(roots_folder), "app.main:app"], str(cwd))
    else:
        record = _python(["python3", os.path.relpath(roots_folder / "secret_agent.py", cwd)], str(cwd))
    project = _read(record)
    assert not _leaked(project), project
    assert project is not None and "root_only" in {code for _, code, _ in project.errors}, project.errors
    root_record = _python(record.cmdline, record.cwd, record.env_values, uid=0)
    assert _leaked(_read(root_record)), "root's own process still reads root's files"


def test_a_users_n8n_folder_in_roots_home_is_not_read(roots_folder: Path) -> None:
    import sqlite3

    (roots_folder / ".n8n").mkdir()
    db = sqlite3.connect(roots_folder / ".n8n" / "database.sqlite")
    db.execute("CREATE TABLE workflow_entity (name TEXT, active BOOLEAN, nodes TEXT)")
    db.execute("INSERT INTO workflow_entity VALUES ('Root payroll agent', 1, ?)",
               (json.dumps([{"type": "@n8n/n8n-nodes-langchain.agent"}]),))
    db.commit()
    db.close()
    record = ProcessRecord(pid=os.getpid(), ppid=1, name="node", exe="/usr/bin/node",
                           cmdline=["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], user=ATTACKER,
                           uid=_uid(), create_time=0.0, env_values={"N8N_USER_FOLDER": str(roots_folder)})
    project = _read(record)
    assert project is not None and project.workflows == ()
    assert [code for _, code, _ in project.errors] == ["root_only"]


@pytest.fixture
def roots_process(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A real process of root's (a sleep) whose working folder holds root's agent code."""
    folder = tmp_path / "root-cwd"
    _write(folder / "secret_agent.py", SECRET_CODE)
    proc = subprocess.Popen(["sleep", "60"], cwd=folder)
    yield proc.pid, folder
    proc.kill()
    proc.wait()


@pytest.fixture
def searchable_tmp() -> Iterator[Path]:
    """A folder every user may search: pytest's tmp folders are root's only, which nobody's process could not
    be in (the scan refuses what lies there for it: ``not_readable_by_user``)."""
    folder = Path(tempfile.mkdtemp(prefix="ar-attack-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("uid", "way"), [("nobody", "PYTHONPATH"), ("root", "PYTHONPATH"), ("nobody", ".pth")])
def test_a_path_through_proc_reads_nothing(roots_process: tuple[int, Path], searchable_tmp: Path, uid: str,
                                           way: str) -> None:
    tmp_path = searchable_tmp
    # /proc/PID/cwd is a link the kernel makes to another process's folder: through it, anyone's process could
    # name root's (or another user's) working folder as its own, on its PYTHONPATH or in a .pth file of its venv
    pid, _ = roots_process
    env = {"PYTHONPATH": f"/proc/{pid}/cwd"}
    if way == ".pth":
        venv = tmp_path / "venv"
        _write(venv / "pyvenv.cfg", "home = /usr/bin\n")
        site = venv / "lib" / "python3.11" / "site-packages"
        _write(site / "__editable__.x.pth", f"/proc/{pid}/cwd\n")
        _write(site / "openai_agents-0.2.0.dist-info" / "METADATA", "Name: openai-agents\nVersion: 0.2.0\n\n")
        if uid == "nobody":
            for path in (venv, site, site / "__editable__.x.pth", site.parent, site.parent.parent):
                os.chown(path, _uid(), _uid())
        env = {"VIRTUAL_ENV": str(venv)}
    record = _python(["python3", "-m", "secret_agent"], str(tmp_path), env, uid=_uid() if uid == "nobody" else 0)
    project = _read(record)
    assert not _leaked(project), project
    assert project is not None and [code for _, code, _ in project.errors] == ["pseudo_file"]


@pytest.mark.timeout(20)
def test_a_command_line_of_forty_thousand_app_dirs_costs_only_its_first_folders(tmp_path: Path) -> None:
    # 40,000 "--app-dir=…" options naming as many distinct folders that all exist (two links to "." make
    # them), about what a real command line can hold (2 MB): every one used to be compared with every other
    loops = tmp_path / "loops"
    loops.mkdir()
    os.symlink(".", loops / "a")
    os.symlink(".", loops / "b")
    dirs = ["loops/" + "/".join("ab"[(i >> bit) & 1] for bit in range(16)) for i in range(40_000)]
    _write(tmp_path / "app" / "__init__.py", "")
    _write(tmp_path / "app" / "main.py", "from langgraph.graph import StateGraph\n")
    record = _python(["python3", "-m", "uvicorn", *(f"--app-dir={d}" for d in dirs), "app.main:app"], str(tmp_path),
                     uid=os.getuid())
    project = _read(record)
    assert project is not None and project.entry == "app.main:app"
    assert "langgraph.graph" in {m for m, _ in project.imports}, "the folder the command runs in is still read"


@pytest.mark.parametrize("shape", ["-m ../../x", "uvicorn ../../x:app", "npm main ../", "linked package.json"])
def test_paths_that_climb_out_of_a_project_read_nothing_outside_it(tmp_path: Path, shape: str) -> None:
    outside = tmp_path / "outside"
    _write(outside / "x.py", SECRET_CODE)
    _write(outside / "index.js", "import { StateGraph } from '@langchain/langgraph'\n")
    _write(outside / "package.json", json.dumps({"main": "index.js", "dependencies": {"@langchain/langgraph": "1"}}))
    project_dir = tmp_path / "a" / "b"
    project_dir.mkdir(parents=True)
    if shape in ("-m ../../x", "uvicorn ../../x:app"):
        argv = ["python3", "-m", "../../x"] if shape.startswith("-m") else ["python3", "-m", "uvicorn", "../../x:app"]
        record = _python(argv, str(project_dir), uid=os.getuid())
    else:
        if shape == "npm main ../":
            _write(project_dir / "package.json", json.dumps({"main": "../../outside/index.js"}))
        else:
            os.symlink(outside / "package.json", project_dir / "package.json")
        record = ProcessRecord(pid=os.getpid(), ppid=1, name="npm", exe="/nonexistent/bin/node",
                               cmdline=["npm", "start"], user="u", uid=os.getuid(), create_time=0.0,
                               cwd=str(project_dir))
    project = _read(record)
    assert not _leaked(project), project
    assert project is None or not any(str(outside) in p[3] for p in project.packages), project


@pytest.mark.timeout(6)
def test_thousands_of_imports_over_many_search_folders_are_bounded_in_time(tmp_path: Path) -> None:
    # one import statement naming 30,000 missing modules, looked up in 16 folders on the path, each reached
    # through 30 links: every lookup used to run to the end of the file, long past the process's time
    _write(tmp_path / "a" / "__init__.py", "")
    _write(tmp_path / "a" / "b.py", "from a import (" + ", ".join(f"z{i:05d}" for i in range(30_000)) + ")\n")
    _write(tmp_path / "a" / "main.py", "from langgraph.graph import StateGraph\nimport a.b\n")
    for i in range(16):
        os.symlink(".", tmp_path / f"l{i}")
    path = [str(tmp_path / f"l{i}" / os.path.join(*["l0"] * 30)) for i in range(15)]
    record = _python(["python3", "-m", "a.main"], str(tmp_path), {"PYTHONPATH": os.pathsep.join(path)},
                     uid=os.getuid())
    project = _read(record)
    assert project is not None and "langgraph.graph" in {m for m, _ in project.imports}
    assert "budget" in {code for _, code, _ in project.errors}, project.errors
