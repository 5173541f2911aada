"""The root scan reads a file of root's for a user's process only when that user could read it itself.

A user's process names whatever it likes (``PYTHONPATH``, a ``.pth`` line of its own venv, a script path,
``N8N_USER_FOLDER``), and the scan runs as root: a module of root's that only root may read, or one in a
folder only root may enter, must not put its imports and model names in that user's sighting. A file of
root's the user may read (others' bits, or its group's for a process in that group) is read as before.

The processes are real, run as ``nobody`` (``setpriv``, with or without a supplementary group) in a folder
every user may enter, and are read from /proc by the process sensor as a scan does; the files are real,
root's, with the modes under test. A process that cannot start at all (a script it may not open) is the
one record shaped by hand, on the pid of a real process of ``nobody``'s, so that its groups are real.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import chown_tree

import signatures
from endpoint.scan.evidence import ProcessRecord, Project
from endpoint.scan.projects import NOT_READABLE, ProjectReader, interests_of
from endpoint.scan.sensors.processes import iter_processes, read_details

LIB = signatures.load()
USER = "nobody"  # a real unprivileged user every Debian has
SYSTEM_PYTHON = "/usr/bin/python3"
SECRET = "from langgraph.graph import StateGraph\nMODEL = 'gpt-4o-root-only-secret'\n"
# the user's own module: it imports secret_agent when it can (as Python would: a module it may not read is skipped)
APP = ("import pathlib, time\ntry:\n    import secret_agent  # noqa: F401\nexcept (ImportError, OSError):\n    pass\n"
       "pathlib.Path(__file__).with_name('started').touch()\ntime.sleep(60)\n")


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def _group() -> int:
    try:
        return grp.getgrnam("staff").gr_gid
    except KeyError:
        return 4242  # a gid with no name serves as well: setpriv and chown take numbers


def _leaked(project: Project | None) -> bool:
    return project is not None and ("gpt-4o-root-only-secret" in project.models
                                    or "langgraph.graph" in {m for m, _ in project.imports})


def _codes(project: Project | None) -> set[str]:
    return {code for _, code, _ in project.errors} if project is not None else set()


@pytest.fixture
def tree() -> Iterator[Path]:
    """A folder every user may enter (pytest's tmp folders are root's only) holding nobody's project: its
    ``app.main`` imports ``secret_agent`` and its venv holds an LLM SDK (so the scan reads its code)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, setpriv (util-linux) and the system python3 to run a process as another user")
    base = Path(tempfile.mkdtemp(prefix="ar-user-reads-", dir="/tmp"))
    base.chmod(0o755)
    user = base / "user"
    _write(user / "proj" / "app" / "__init__.py", "")
    _write(user / "proj" / "app" / "main.py", APP)
    _write(user / ".venv" / "pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = false\n")
    _write(user / ".venv" / "lib" / "python3.11" / "site-packages" / "openai_agents-0.2.0.dist-info" / "METADATA",
           "Metadata-Version: 2.1\nName: openai-agents\nVersion: 0.2.0\n\n")
    chown_tree(user, USER)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _start(argv: list[str], cwd: Path, env: dict[str, str], groups: tuple[int, ...] = (),
           started: Path | None = None) -> subprocess.Popen[bytes]:
    """``argv`` run as nobody (with ``groups`` as its supplementary groups) in ``cwd`` with only ``env``; waits
    until the program itself runs (and, for a project, until it imported what it could: ``started``)."""
    entry = pwd.getpwnam(USER)
    group_args = [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    proc = subprocess.Popen(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", *group_args,
                             "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv],
                            cwd=cwd, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # setpriv and env exec the program: wait for its own argv
        with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
            if fh.read().split(b"\0")[0] == argv[0].encode() and (started is None or started.exists()):
                return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError("the process did not start")


def _project_of(proc: subprocess.Popen[bytes]) -> Project | None:
    [record] = [r for r in iter_processes(LIB.credential_kind, pids=[proc.pid], read_env=False)
                if isinstance(r, ProcessRecord)]
    read_details(record, LIB.credential_kind, projects=ProjectReader(interests_of(LIB), maps=False))
    return record.project


def _run_app(base: Path, env: dict[str, str], groups: tuple[int, ...] = ()) -> Project | None:
    """nobody's ``python3 -m app.main`` with ``env`` (its venv named too), read as the scan reads it."""
    proj = base / "user" / "proj"
    started = proj / "app" / "started"
    proc = _start([SYSTEM_PYTHON, "-m", "app.main"], proj, {"VIRTUAL_ENV": str(base / "user" / ".venv"), **env},
                  groups, started)
    try:
        return _project_of(proc)
    finally:
        proc.kill()
        proc.wait()
        started.unlink(missing_ok=True)


def _roots(folder: Path, mode: int, *, group: int = 0, folder_mode: int = 0o755) -> Path:
    """``folder`` of root's (mode ``folder_mode``) holding ``secret_agent.py`` of root's with ``mode``."""
    _write(folder / "secret_agent.py", SECRET, mode)
    os.chown(folder / "secret_agent.py", 0, group)
    folder.chmod(folder_mode)
    return folder


@pytest.mark.timeout(60)
def test_a_module_only_root_may_read_named_by_pythonpath_is_not_read(tree: Path) -> None:
    folder = _roots(tree / "root-lib", 0o600)
    project = _run_app(tree, {"PYTHONPATH": str(folder)})
    assert not _leaked(project), project
    assert NOT_READABLE in _codes(project), project
    # root's own process (this one; an interpreter with no site-packages, so its code is read) is unchanged
    root_record = ProcessRecord(pid=os.getpid(), ppid=1, name="python3", exe="/nonexistent/bin/python3",
                                cmdline=["python3", "-m", "secret_agent"], user="root", uid=0, create_time=0.0,
                                env_values={"PYTHONPATH": str(folder)}, cwd=str(tree))
    assert _leaked(ProjectReader(interests_of(LIB), maps=False).read(root_record)), "a root process reads it"


@pytest.mark.timeout(60)
def test_a_module_only_root_may_read_named_by_a_pth_line_of_the_users_venv_is_not_read(tree: Path) -> None:
    folder = _roots(tree / "root-editable", 0o600)
    pth = _write(tree / "user" / ".venv" / "lib" / "python3.11" / "site-packages" / "__editable__.x.pth",
                 f"{folder}\n")
    chown_tree(pth, USER)
    project = _run_app(tree, {})
    assert not _leaked(project), project
    assert NOT_READABLE in _codes(project), project


@pytest.mark.timeout(60)
def test_a_readable_module_in_a_folder_only_root_may_enter_is_not_read(tree: Path) -> None:
    closed = tree / "root-closed"
    folder = _roots(closed / "lib", 0o644)
    closed.chmod(0o700)
    project = _run_app(tree, {"PYTHONPATH": str(folder)})
    assert not _leaked(project), project
    assert NOT_READABLE in _codes(project), project


@pytest.mark.timeout(60)
def test_a_readable_module_in_folders_every_user_may_enter_is_read(tree: Path) -> None:
    folder = _roots(tree / "root-open" / "lib", 0o644)
    project = _run_app(tree, {"PYTHONPATH": str(folder)})
    assert _leaked(project), "a module of root's its user may read is read as before"
    assert NOT_READABLE not in _codes(project), project


@pytest.mark.timeout(60)
@pytest.mark.parametrize("in_group", [True, False], ids=["in-group", "not-in-group"])
def test_a_group_readable_module_is_read_only_for_a_process_in_that_group(tree: Path, in_group: bool) -> None:
    folder = _roots(tree / "root-group", 0o640, group=_group())
    project = _run_app(tree, {"PYTHONPATH": str(folder)}, groups=(_group(),) if in_group else ())
    assert _leaked(project) is in_group, project
    assert (NOT_READABLE in _codes(project)) is not in_group, project


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shape", ["0600 file", "0644 file in a 0700 folder"])
def test_a_script_path_to_a_module_only_root_may_read_is_not_read(tree: Path, shape: str) -> None:
    # Python cannot start a script its user may not open, and argv is the user's to rewrite: the record is
    # shaped by hand, on the pid of a real process of nobody's (its groups are read from /proc as a scan does)
    if shape == "0600 file":
        script = _roots(tree / "root-scripts", 0o600) / "secret_agent.py"
    else:
        script = _roots(tree / "root-closed" / "scripts", 0o644) / "secret_agent.py"
        (tree / "root-closed").chmod(0o700)
    proc = _start(["/usr/bin/sleep", "60"], tree / "user", {})
    try:
        record = ProcessRecord(pid=proc.pid, ppid=1, name="python3", exe=SYSTEM_PYTHON,
                               cmdline=["python3", os.path.relpath(script, tree / "user" / "proj")], user=USER,
                               uid=pwd.getpwnam(USER).pw_uid, create_time=0.0,
                               env_values={"VIRTUAL_ENV": str(tree / "user" / ".venv")}, cwd=str(tree / "user" / "proj"))
        project = ProjectReader(interests_of(LIB), maps=False).read(record)
    finally:
        proc.kill()
        proc.wait()
    assert not _leaked(project), project
    assert NOT_READABLE in _codes(project), project


@pytest.mark.timeout(60)
def test_an_n8n_store_only_root_may_read_named_by_n8n_user_folder_is_not_read(tree: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("needs node (the nodejs package) to run a process as n8n runs")
    n8n = _write(tree / "user" / "n8n" / "bin" / "n8n",
                 "require('fs').writeFileSync(__dirname + '/started', '');\nsetInterval(() => {}, 1000);\n")
    chown_tree(tree / "user" / "n8n", USER)
    store = tree / "root-n8n" / ".n8n"
    store.mkdir(parents=True)
    db = sqlite3.connect(store / "database.sqlite")
    db.execute("CREATE TABLE workflow_entity (name TEXT, active BOOLEAN, nodes TEXT)")
    db.execute("INSERT INTO workflow_entity VALUES ('Root payroll agent', 1, "
               "'[{\"type\": \"@n8n/n8n-nodes-langchain.agent\"}]')")
    db.commit()
    db.close()
    (store / "database.sqlite").chmod(0o600)
    node = os.path.realpath(shutil.which("node") or "node")
    proc = _start([node, str(n8n), "start"], tree / "user", {"N8N_USER_FOLDER": str(tree / "root-n8n")},
                  started=n8n.with_name("started"))
    try:
        project = _project_of(proc)
    finally:
        proc.kill()
        proc.wait()
    assert project is not None and project.platform == "n8n", project
    assert project.workflows == (), project
    assert NOT_READABLE in _codes(project), project


@pytest.mark.timeout(60)
@pytest.mark.parametrize("lib_mode", [0o755, 0o700], ids=["lib-0755", "lib-0700"])
def test_a_system_site_packages_of_roots_is_listed_for_a_users_process_when_it_may_list_it(tree: Path,
                                                                                         lib_mode: int) -> None:
    # an interpreter's prefix laid out as /usr and /usr/local are (root's, 0755 folders, 0644 files); the
    # record is shaped on a real process of nobody's: its exe is this prefix's python, which needs no copy
    prefix = tree / "usr"
    _write(prefix / "bin" / "python3", "", 0o755)
    site = prefix / "lib" / "python3.11" / "site-packages"
    _write(site / "langgraph-0.6.0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: langgraph\nVersion: 0.6.0\n\n")
    _write(site / "langgraph" / "__init__.py", "")
    _write(tree / "user" / "proj" / "agent.py", "from langgraph.graph import StateGraph\n")
    chown_tree(tree / "user" / "proj", USER)
    (prefix / "lib").chmod(lib_mode)
    proc = _start(["/usr/bin/sleep", "60"], tree / "user", {})
    try:
        record = ProcessRecord(pid=proc.pid, ppid=1, name="python3", exe=str(prefix / "bin" / "python3"),
                               cmdline=[str(prefix / "bin" / "python3"), "agent.py"], user=USER,
                               uid=pwd.getpwnam(USER).pw_uid, create_time=0.0, cwd=str(tree / "user" / "proj"))
        project = ProjectReader(interests_of(LIB), maps=False).read(record)
    finally:
        proc.kill()
        proc.wait()
    assert project is not None
    listed = ("pypi", "langgraph", "0.6.0", str(site)) in project.packages
    assert listed is (lib_mode == 0o755), project
    assert "langgraph.graph" in {m for m, _ in project.imports} or lib_mode != 0o755, project
    assert (NOT_READABLE in _codes(project)) is (lib_mode != 0o755), project


@pytest.mark.timeout(60)
def test_a_global_n8n_install_of_roots_is_read_for_a_users_n8n(tree: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("needs node (the nodejs package) to run a process as n8n runs")
    package = tree / "usr" / "lib" / "node_modules" / "n8n"
    _write(package / "package.json", '{"name": "n8n", "version": "1.99.0"}')
    started = tree / "user" / "started"
    n8n = _write(package / "bin" / "n8n", f"require('fs').writeFileSync({str(started)!r}, '');\n"
                                          "setInterval(() => {}, 1000);\n")
    store = tree / "user" / "home" / ".n8n"
    store.mkdir(parents=True)
    db = sqlite3.connect(store / "database.sqlite")
    db.execute("CREATE TABLE workflow_entity (name TEXT, active BOOLEAN, nodes TEXT)")
    db.execute("INSERT INTO workflow_entity VALUES ('Support agent', 1, "
               "'[{\"type\": \"@n8n/n8n-nodes-langchain.agent\"}]')")
    db.commit()
    db.close()
    chown_tree(tree / "user", USER)
    node = os.path.realpath(shutil.which("node") or "node")
    proc = _start([node, str(n8n), "start"], tree / "user", {"N8N_USER_FOLDER": str(tree / "user" / "home")},
                  started=started)
    try:
        project = _project_of(proc)
    finally:
        proc.kill()
        proc.wait()
    assert project is not None and ("npm", "n8n", "1.99.0", "node_modules") in project.packages, project
    assert [w[0] for w in project.workflows] == ["Support agent"], project
    assert project.errors == (), project


def test_the_vet_judges_the_file_opened_through_a_link_before_a_byte_is_read(tmp_path: Path) -> None:
    from endpoint.scan import safeio

    target = _write(tmp_path / "real" / "module.py", SECRET, 0o600)
    (tmp_path / "link.py").symlink_to(target)
    seen: list[tuple[str, int, int]] = []

    def vet(opened: str, st: os.stat_result) -> tuple[str, str] | None:
        seen.append((opened, st.st_ino, stat.S_IMODE(st.st_mode)))
        return NOT_READABLE, "closed to the process's user"

    with pytest.raises(safeio.ReadRefused) as refused:
        safeio.read_text_owned(str(tmp_path / "link.py"), boundary=str(tmp_path), vet=vet)
    assert refused.value.code == NOT_READABLE
    assert seen == [(str(target), target.stat().st_ino, 0o600)], "the open file itself, where its link leads"
    text, owner = safeio.read_text_owned(str(target), boundary=str(tmp_path), vet=lambda _path, _st: None)
    assert text == SECRET and owner == os.getuid()


def _container_of_nobody(base: Path, spawn: Any, pythonpath: str) -> int:
    """A process of nobody's, pid 1 of its own pid namespace and pivoted into a root of its own below ``base``
    (as a runtime starts a container), running /srv/agent/run.py with ``pythonpath``: its host pid."""
    if not shutil.which("unshare") or not shutil.which("pivot_root"):
        pytest.skip("needs util-linux's unshare and pivot_root")
    import psutil

    newroot = base / "rootfs"
    binds = [d for d in ("usr", "lib", "lib64", "bin") if os.path.isdir(f"/{d}") and not os.path.islink(f"/{d}")]
    for folder in [*binds, "proc", ".old", "etc"]:
        (newroot / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("lib", "lib64", "bin", "sbin"):  # a merged-/usr system's links, as they are
        if os.path.islink(f"/{folder}"):
            os.symlink(os.readlink(f"/{folder}"), newroot / folder)
    agent = newroot / "srv" / "agent"
    _write(agent / "run.py", "import time\ntime.sleep(120)\nimport secret_agent\n")
    _write(agent / "langgraph" / "__init__.py", "")  # vendored: its interpreter's path holds a framework
    chown_tree(agent, USER)
    uid = pwd.getpwnam(USER).pw_uid
    mounts = " && ".join(f"mount --bind /{d} {newroot}/{d}" for d in binds)
    script = (f"mount --make-rprivate / && mount --bind {newroot} {newroot} && {mounts} && "
              f"mount -t proc proc {newroot}/proc && cd {newroot} && pivot_root . .old && umount -l /.old && "
              f"cd /srv/agent && exec setpriv --reuid={uid} --regid={uid} --clear-groups "
              f"env PYTHONPATH={pythonpath} /usr/bin/python3 /srv/agent/run.py")
    started = spawn(["unshare", "--mount", "--pid", "--fork", "sh", "-c", script], cwd=base)
    deadline = time.monotonic() + 20
    found: list[int] = []
    while not found and time.monotonic() < deadline:
        try:
            found = [c.pid for c in psutil.Process(started.pid).children(recursive=True)
                     if c.cmdline()[:2] == ["/usr/bin/python3", "/srv/agent/run.py"]]
        except psutil.Error:
            pass
        time.sleep(0.1)
    assert found, "the namespaced interpreter did not start"
    return found[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shape", ["0600", "0644", "0644 in a 0700 folder"])
def test_a_module_of_the_containers_root_is_read_for_its_user_only_when_it_may_read_it(
        tmp_path: Path, spawn: Any, shape: str) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to run a process as another user in a namespace")
    lib = "/srv/closed/lib" if "folder" in shape else "/srv/lib"
    _roots(tmp_path / "rootfs" / lib.lstrip("/"), 0o600 if shape == "0600" else 0o644)
    if "folder" in shape:
        (tmp_path / "rootfs" / "srv" / "closed").chmod(0o700)
    pid = _container_of_nobody(tmp_path, spawn, lib)
    [record] = [r for r in iter_processes(LIB.credential_kind, pids=[pid], read_env=False)
                if isinstance(r, ProcessRecord)]
    read_details(record, LIB.credential_kind, projects=ProjectReader(interests_of(LIB), maps=False))
    project = record.project
    assert project is not None and project.root == "/srv/agent", project
    assert _leaked(project) is (shape == "0644"), project
    assert (NOT_READABLE in _codes(project)) is (shape != "0644"), project


@pytest.mark.timeout(60)
def test_a_process_acts_with_its_own_groups_and_a_record_of_no_such_process_with_its_accounts(tree: Path) -> None:
    from endpoint.scan.projects import Budget, Reads, process_groups

    entry = pwd.getpwnam(USER)
    proc = _start(["/usr/bin/sleep", "60"], tree / "user", {}, groups=(_group(), 4243))
    try:
        assert process_groups(proc.pid, entry.pw_uid) == {entry.pw_gid, _group(), 4243}
        assert process_groups(proc.pid, entry.pw_uid + 1) is None, "another uid's process says nothing of this one"
        assert Reads(Budget(), entry.pw_uid, pid=proc.pid).groups() == {entry.pw_gid, _group(), 4243}
    finally:
        proc.kill()
        proc.wait()
    # this test's own process is root's: a record of nobody's on its pid takes the groups of nobody's account
    account = frozenset(os.getgrouplist(USER, entry.pw_gid))
    assert Reads(Budget(), entry.pw_uid, pid=os.getpid()).groups() == account
