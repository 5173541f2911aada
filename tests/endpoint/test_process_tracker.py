"""The daemon's process tracker and the engine apply the same "unknown agent" rules
(``endpoint.scan.relevance``): a new process the engine would make an unknown sighting of is one the
daemon reads the details of and fingerprints again for, and one it would not is left alone. Real child
processes, read through the real process sensor."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import signatures
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import ProcessRecord
from endpoint.scan.platforms import PLATFORM
from endpoint.scan.run import read_script
from endpoint.service.trackers.processes import MatchCache, ProcessTracker, read_pids

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads children through /proc")


@pytest.fixture
def children(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    script = tmp_path / "summarise.py"
    script.write_text("if False:\n    import anthropic\nimport time\ntime.sleep(60)\n")
    argvs = {
        # not an interpreter: only its command line naming a hosted provider's API makes it an agent
        "host": ["/bin/sh", "-c", "sleep 60", "https://api.anthropic.com/v1/messages"],
        "sdk": [sys.executable, str(script)],
        "plain": ["/bin/sh", "-c", "sleep 60", "nothing-to-see"],
    }
    procs = {name: subprocess.Popen(argv, cwd=tmp_path) for name, argv in argvs.items()}
    time.sleep(0.3)  # exec'd and running
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def _records(lib: signatures.Library, pids: list[int]) -> dict[int, ProcessRecord]:
    found = {r.pid: r for r in read_pids(pids, lib.credential_kind) if isinstance(r, ProcessRecord)}
    assert set(found) == set(pids)
    return found


def test_the_daemon_and_the_engine_agree_on_which_processes_are_unknown_agents(children):
    lib = signatures.load()
    tracker = ProcessTracker(lib, MatchCache(lib), process_interval_s=1.0, key=None)
    pids = {name: proc.pid for name, proc in children.items()}
    records = _records(lib, list(pids.values()))
    matters = {name: tracker.matters(records[pid]) for name, pid in pids.items()}

    engine = Engine(lib, device_id="d", platform=PLATFORM, read_script=read_script)
    engine.add_processes(records.values())
    engine.link()
    unknown_pids = {int(e["detail"].split(":")[0].removeprefix("pid "))
                    for s in engine.result("2026-01-01T00:00:00+00:00") if s["type"] == "unknown"
                    for e in s["evidence"]}
    engine_says = {name: pid in unknown_pids for name, pid in pids.items()}

    assert engine_says == {"host": True, "sdk": True, "plain": False}
    assert matters == engine_says
