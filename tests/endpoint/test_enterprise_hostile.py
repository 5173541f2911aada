"""A hostile project costs bounded reads and yields at most one error: endpoint.scan.projects under attack.

The trees are real (symlink loops, a link out of the project, a 1 GB sparse file, 100,000 modules in
one folder, an import chain thousands of modules long, binary junk, an import cycle, a FIFO named like a
module, a module owned by another user), the reads are the resolver's own. Nothing is timed: the bounds
are counted (files and bytes read).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import signatures
from endpoint.scan.evidence import ProcessRecord
from endpoint.scan.projects import (
    MAX_ERRORS,
    PROCESS_BYTES,
    PROCESS_FILES,
    Budget,
    ProjectReader,
    interests_of,
)
from endpoint.scan.sensors.processes import read_details

LIB = signatures.load()
CHAIN = 3000  # modules in the import chain: far over the per-process file budget


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _record(root: Path, module: str = "app.main") -> ProcessRecord:
    # an interpreter with no site-packages here: only the project's own files are read
    return ProcessRecord(pid=os.getpid(), ppid=1, name="python3", exe="/nonexistent/bin/python3",
                         cmdline=["python3", "-m", module], user="alice", uid=os.getuid(), create_time=0.0,
                         cwd=str(root))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project holding every trap; ``app.main`` imports them all and, at the end, LangGraph."""
    root = tmp_path_factory.mktemp("hostile")
    app = root / "app"
    _write(app / "__init__.py", "")
    _write(app / "main.py", "\n".join([
        "from app import loop, escape, huge, junk, cyc_a, fifo, foreign, chain0",
        "import app.many",
        "import app.wide",
        "from langgraph.graph import StateGraph",
    ]) + "\n")
    os.symlink("loop", app / "loop.py")  # a link to itself
    outside = _write(root.parent / f"{root.name}-outside" / "secret.py", "from crewai import Agent\n")
    os.symlink(outside, app / "escape.py")  # a link out of the project
    with open(app / "huge.py", "wb") as fh:
        fh.truncate(1 << 30)  # 1 GB, sparse
    _write(app / "junk.py", os.urandom(4096) + b"\x00" * 64)
    _write(app / "cyc_a.py", "from app import cyc_b\n")
    _write(app / "cyc_b.py", "from app import cyc_a\nimport smolagents\n")
    os.mkfifo(app / "fifo.py")  # opening it for reading would block forever
    foreign = _write(app / "foreign.py", "from autogen_agentchat import agents\n")
    os.chown(foreign, 54321, 54321)  # someone else's file inside alice's project
    many = app / "many"
    many.mkdir()
    _write(many / "__init__.py", "from . import m0, m1, m2\n")
    for i in range(100_000):
        os.close(os.open(many / f"m{i}.py", os.O_CREAT | os.O_WRONLY, 0o644))
    _write(app / "wide.py", "".join(f"import app.many.m{i}\n" for i in range(2000)))  # 2,000 local imports
    for i in range(CHAIN):
        _write(app / f"chain{i}.py", f"from app import chain{i + 1}\nimport app.chain{(i * 7) % CHAIN}\n")
    return root


def test_a_hostile_project_is_read_within_its_bounds(hostile: Path) -> None:
    budget = Budget()
    reader = ProjectReader(interests_of(LIB), budget=budget, maps=False)
    project = reader.read(_record(hostile))
    assert project is not None and project.entry == "app.main"
    read_files = ProjectReader(interests_of(LIB)).budget.files - budget.files
    assert read_files <= PROCESS_FILES + 1
    assert ProjectReader(interests_of(LIB)).budget.bytes - budget.bytes <= PROCESS_BYTES + (256 << 10)
    codes = {code for _, code, _ in project.errors}
    assert "budget" in codes, "2,000 local imports are more than one process may read"
    assert {"symlink_loop", "symlink_escape", "too_large", "binary", "not_regular"} & codes, project.errors
    assert len(project.errors) <= MAX_ERRORS + 1
    modules = {m for m, _ in project.imports}
    assert "crewai" not in modules, "the file a link points to outside the project is never read"
    assert "autogen_agentchat" not in modules, "another user's file is not the project's"
    assert "langgraph.graph" in modules, "the entry's own imports survive the traps"


def test_an_import_cycle_is_read_once(tmp_path: Path) -> None:
    _write(tmp_path / "app" / "__init__.py", "")
    _write(tmp_path / "app" / "main.py", "from app import a\n")
    _write(tmp_path / "app" / "a.py", "from app import b\nimport agents\n")
    _write(tmp_path / "app" / "b.py", "from app import a, main\n")
    budget = Budget()
    project = ProjectReader(interests_of(LIB), budget=budget, maps=False).read(_record(tmp_path))
    assert project is not None and project.imports == (("agents", "app/a.py"),)
    assert Budget().files - budget.files == 4  # __init__ is not imported; main, a, b, and app's package


def test_the_scan_budget_is_shared_by_every_process(hostile: Path) -> None:
    budget = Budget(files=250, bytes_=64 << 20)
    reader = ProjectReader(interests_of(LIB), budget=budget, maps=False)
    first = reader.read(_record(hostile))
    second = reader.read(_record(hostile))
    assert first is not None and second is not None
    assert budget.files <= 0
    assert any(code == "budget" and "scan's" in detail for _, code, detail in second.errors)
    assert reader.read(_record(hostile)) is not None, "a process past the scan's budget is still named"


def test_read_details_gives_at_most_one_error_for_a_hostile_project(hostile: Path) -> None:
    record = _record(hostile)
    reader = ProjectReader(interests_of(LIB), maps=False)
    error = read_details(record, LIB.credential_kind, projects=reader)
    assert record.project is not None and record.project.errors
    assert error is not None and error.where == f"pid {record.pid} project {hostile}"
    assert "more" in error.detail


def test_a_module_that_is_a_directory_of_junk_is_no_error(tmp_path: Path) -> None:
    """A name that is neither a module nor a package (a folder with no __init__.py) is simply not followed."""
    _write(tmp_path / "app" / "__init__.py", "")
    _write(tmp_path / "app" / "main.py", "from app import data\n")
    (tmp_path / "app" / "data").mkdir()
    _write(tmp_path / "app" / "data" / "blob.bin", b"\x00\x01")
    project = ProjectReader(interests_of(LIB), maps=False).read(_record(tmp_path))
    assert project is not None and project.errors == () and project.imports == ()


def test_json_nested_too_deep_and_quadratic_shapes_cost_one_file_each(tmp_path: Path) -> None:
    # a package.json nested deeper than the parser's recursion, and source shaped to make a careless regex
    # quadratic (an open "class A(" per line, "from" then spaces): the project is still read
    _write(tmp_path / "package.json", "[" * 200_000)
    _write(tmp_path / "app" / "__init__.py", "")
    _write(tmp_path / "app" / "main.py", "from app import tools\nfrom langgraph.graph import StateGraph\n")
    _write(tmp_path / "app" / "tools.py", "# tool\n" + "class A(\n" * 20_000 + "from" + " " * 100_000 + "\n")
    project = ProjectReader(interests_of(LIB), maps=False).read(_record(tmp_path))
    assert project is not None and "langgraph" in {m.split(".")[0] for m, _ in project.imports}
    node = ProcessRecord(pid=os.getpid(), ppid=1, name="node", exe="/nonexistent/bin/node",
                         cmdline=["node", "index.js"], user="alice", uid=os.getuid(), create_time=0.0,
                         cwd=str(tmp_path))
    _write(tmp_path / "index.js", "import 'x'\n" + "\n" * 50_000)
    found = ProjectReader(interests_of(LIB), maps=False).read(node)  # the deep package.json: no exception
    assert found is None or all(code != "internal" for _, code, _ in found.errors)
