"""Plain helpers shared by tests (a module, not a conftest: conftest names clash across folders)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

TESTS = Path(__file__).parent
REPO = TESTS.parent
AGENTROSTER = str(Path(sys.executable).with_name("agentroster"))


def run_agentroster(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the installed `agentroster` command as a user would."""
    return subprocess.run([AGENTROSTER, *args], capture_output=True, text=True, timeout=timeout, **kw)


def e2e_agents() -> ModuleType:
    """tests/e2e/agents.py (real agents, netns helpers), loaded once under a name no package can shadow."""
    name = "agentroster_e2e_agents"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TESTS / "e2e" / "agents.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def sighting_with_pid(scan: dict[str, Any], pid: int) -> dict[str, Any]:
    """The sighting of a scan document that holds process ``pid``; fails naming what the scan holds."""
    for sighting in scan["sightings"]:
        if any(p.get("pid") == pid for p in sighting.get("processes", [])):
            return sighting  # type: ignore[no-any-return]
    names = [(s.get("name"), [p.get("pid") for p in s.get("processes", [])]) for s in scan["sightings"]]
    raise AssertionError(f"no sighting holds pid {pid}; sightings: {names}")


def chown_tree(path: Path, user: str) -> None:
    """Give ``path`` and everything below it to the account ``user`` (and its group), links left as links."""
    import os
    import pwd

    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(path):
        os.lchown(folder, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)
