"""A platform's SQLite store (n8n, Flowise, Langflow) is read once, charged to the scan, and never reopened by name.

The store lies in a folder its user controls: between any check and SQLite's open, that user can put a
link to another user's database or a FIFO in its place. Here a real unprivileged user (``nobody``) swaps
its n8n ``database.sqlite`` in a tight loop between its own database, a link to ``www-data``'s and a
FIFO, while the root scan reads it again and again: nothing of www-data's may ever come back, and each
read is its own workflows or one error. The other tests use real SQLite files: a WAL-mode store whose
latest flows sit only in its ``-wal``, a store larger than the scan has left, one over the store cap.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import signatures
from endpoint.scan.evidence import ProcessRecord
from endpoint.scan.projects import Budget, ProjectReader, Reads, interests_of
from endpoint.scan.projects.n8n import STORE_BYTES, read_rows

LIB = signatures.load()
AGENT = "@n8n/n8n-nodes-langchain.agent"
ATTACKER, VICTIM = "nobody", "www-data"  # real unprivileged users every Debian has
SYSTEM_PYTHON = "/usr/bin/python3"
SWAPS = 3000  # reads of the store while it is being swapped (the old code leaked about one in a few hundred)
SQL = "SELECT name, active, substr(nodes, 1, ?) FROM workflow_entity LIMIT ?"

# Run as the attacker: keeps replacing database.sqlite (atomically, by rename) with a hard link to its own
# database, a link to the victim's, and a FIFO, until the parent closes its stdin.
SWAPPER = """
import os, select, sys
folder, victim = sys.argv[1], sys.argv[2]
db = os.path.join(folder, "database.sqlite")
tmp = os.path.join(folder, "swap.tmp")
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    for make in (lambda: os.link(os.path.join(folder, "own.sqlite"), tmp),
                 lambda: os.symlink(victim, tmp),
                 lambda: os.mkfifo(tmp)):
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        make()
        os.replace(tmp, db)
"""


def _database(path: Path, names: list[str], *, wal: bool = False) -> sqlite3.Connection:
    """An n8n database at ``path`` holding one AI agent workflow per name; left open (a WAL one's writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # what is written stays in the -wal, as under a live n8n
    db.execute("CREATE TABLE workflow_entity (id TEXT PRIMARY KEY, name TEXT, active BOOLEAN, nodes TEXT)")
    nodes = json.dumps([{"name": "AI Agent", "type": AGENT}])
    for i, name in enumerate(names):
        db.execute("INSERT INTO workflow_entity VALUES (?, ?, 1, ?)", (f"w{i}", name, nodes))
    db.commit()
    return db


def _n8n(folder: Path, uid: int) -> ProcessRecord:
    return ProcessRecord(pid=os.getpid(), ppid=1, name="node", exe="/usr/bin/node",
                         cmdline=["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "start"], user="u", uid=uid,
                         create_time=0.0, env_values={"N8N_USER_FOLDER": str(folder), "HOME": "/nonexistent"})


@pytest.fixture
def shared_tree() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp dirs are root-only)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, setpriv (util-linux) and the system python3 to run a process as another user")
    base = Path(tempfile.mkdtemp(prefix="ar-stores-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(120)
def test_a_store_swapped_for_a_link_or_a_fifo_never_reads_another_users_database(shared_tree: Path) -> None:
    attacker, victim = pwd.getpwnam(ATTACKER), pwd.getpwnam(VICTIM)
    theirs = shared_tree / "victim" / ".n8n" / "database.sqlite"
    _database(theirs, ["Payroll approvals (www-data's)"]).close()
    for path in (theirs, theirs.parent, theirs.parent.parent):
        os.chown(path, victim.pw_uid, victim.pw_gid)
    folder = shared_tree / "attacker" / ".n8n"
    _database(folder / "own.sqlite", ["Own triage"]).close()
    os.link(folder / "own.sqlite", folder / "database.sqlite")
    for path in (folder / "own.sqlite", folder, folder.parent):
        os.chown(path, attacker.pw_uid, attacker.pw_gid)
    swapper = subprocess.Popen(["setpriv", f"--reuid={attacker.pw_uid}", f"--regid={attacker.pw_gid}",
                                "--clear-groups", SYSTEM_PYTHON, "-c", SWAPPER, str(folder), str(theirs)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == "ready\n"
        outcomes: dict[str, int] = {}
        reader = ProjectReader(interests_of(LIB), maps=False, budget=Budget(files=10 * SWAPS, bytes_=1 << 40))
        for _ in range(SWAPS):
            project = reader.read(_n8n(folder.parent, attacker.pw_uid))
            assert project is not None
            names = [w[0] for w in project.workflows]
            assert "Payroll approvals (www-data's)" not in names, "the scan read another user's database"
            if names:
                assert names == ["Own triage"] and project.errors == (), project.errors
                outcomes["own"] = outcomes.get("own", 0) + 1
            else:
                assert len(project.errors) == 1, project.errors
                outcomes[project.errors[0][1]] = outcomes.get(project.errors[0][1], 0) + 1
        assert swapper.poll() is None, "the swapper kept swapping the whole time"
    finally:
        swapper.communicate("stop\n", timeout=30)
    assert outcomes.get("own", 0) > 0, outcomes  # the loop did read the attacker's own store between swaps
    assert set(outcomes) - {"own"}, f"the swaps were seen: {outcomes}"


@pytest.mark.parametrize("executions_mib", [0, 6])
def test_a_wal_store_is_read_with_what_sits_only_in_its_wal(tmp_path: Path, executions_mib: int) -> None:
    # Langflow (and n8n with a pooled SQLite) keep their store in WAL mode: a flow saved a moment ago is in
    # the -wal until a checkpoint, and must be seen, also beside a store larger than a project's sources may
    # be (n8n's executions); nothing of the copy made to read it is left behind
    path = tmp_path / ".n8n" / "database.sqlite"
    if executions_mib:
        path.parent.mkdir()
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE execution_data (data BLOB)")
        db.execute("INSERT INTO execution_data VALUES (?)", (os.urandom(executions_mib << 20),))
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    writer = _database(path, ["Invoice triage", "Draft replies"], wal=True)
    try:
        assert (tmp_path / ".n8n" / "database.sqlite-wal").stat().st_size > 0
        before = set(os.listdir(tempfile.gettempdir()))
        project = ProjectReader(interests_of(LIB), maps=False).read(_n8n(tmp_path, os.getuid()))
    finally:
        writer.close()
    assert project is not None and project.errors == ()
    assert [w[0] for w in project.workflows] == ["Invoice triage", "Draft replies"]
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("agentroster-store-")}


def test_a_checkpointed_wal_store_is_read_from_memory(tmp_path: Path) -> None:
    writer = _database(tmp_path / ".n8n" / "database.sqlite", ["Invoice triage"], wal=True)
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file, its header still says WAL
    try:
        project = ProjectReader(interests_of(LIB), maps=False).read(_n8n(tmp_path, os.getuid()))
    finally:
        writer.close()
    assert project is not None and project.errors == () and [w[0] for w in project.workflows] == ["Invoice triage"]


def test_a_store_is_charged_to_the_scans_byte_budget(tmp_path: Path) -> None:
    _database(tmp_path / ".n8n" / "database.sqlite", [f"Flow {i}" for i in range(200)]).close()
    size = (tmp_path / ".n8n" / "database.sqlite").stat().st_size
    budget = Budget()
    project = ProjectReader(interests_of(LIB), maps=False, budget=budget).read(_n8n(tmp_path, os.getuid()))
    assert project is not None and len(project.workflows) == 200
    assert Budget().bytes - budget.bytes == size and Budget().files - budget.files == 1


def test_a_store_larger_than_the_scan_has_left_is_one_budget_error(tmp_path: Path) -> None:
    _database(tmp_path / ".n8n" / "database.sqlite", [f"Flow {i}" for i in range(200)]).close()
    budget = Budget(bytes_=4096)
    project = ProjectReader(interests_of(LIB), maps=False, budget=budget).read(_n8n(tmp_path, os.getuid()))
    assert project is not None and project.workflows == ()
    assert [(code, "scan's budget" in detail) for _, code, detail in project.errors] == [("budget", True)]
    assert budget.bytes == 4096, "nothing was read"


def test_a_store_over_the_cap_is_one_error_that_says_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / ".n8n"
    folder.mkdir()
    with open(folder / "database.sqlite", "wb") as fh:
        fh.truncate(STORE_BYTES + 1)  # sparse: costs no disk
    reads = Reads(Budget(bytes_=1 << 40), os.getuid())
    assert read_rows(str(folder), "database.sqlite", SQL, (10, 10), reads, "n8n's database") == []
    [(where, code, detail)] = reads.errors
    assert (where, code) == (str(folder / "database.sqlite"), "too_large") and "prune" in detail


@pytest.mark.parametrize(("pad", "code"), [("printf('%.*c', 1900000, 'x')", "too_large"),
                                          ("hex(zeroblob(25000000))", "unreadable")])
def test_a_few_kib_of_store_cannot_make_a_gigabyte_of_rows(tmp_path: Path, pad: str, code: str) -> None:
    # a view (a generated column would do as well) that makes each of 500 workflows' nodes megabytes long:
    # the store is 4 KiB, its rows were a gigabyte in the root scan's memory (or 25 GB: one value of 50 MB)
    (tmp_path / ".n8n").mkdir()
    db = sqlite3.connect(tmp_path / ".n8n" / "database.sqlite")
    db.execute(f"""CREATE VIEW workflow_entity AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                   WHERE i < 500) SELECT 'w' || i AS name, 1 AS active,
                   '[{{"type": "{AGENT}", "pad": "' || {pad} || '"}}]' AS nodes FROM n""")
    db.commit()
    db.close()
    assert (tmp_path / ".n8n" / "database.sqlite").stat().st_size < 16 << 10
    project = ProjectReader(interests_of(LIB), maps=False).read(_n8n(tmp_path, os.getuid()))
    assert project is not None and len(project.workflows) <= (32 << 20) // 1_900_000
    assert [c for _, c, _ in project.errors] == [code], project.errors
