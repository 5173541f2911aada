"""A live scan reads processes in a forked child while it reads files: the result is the same as reading
them one after the other, including the homes that only a running agent's environment names.

Each check runs in a fresh interpreter: the scan forks only a process with no other thread, and a test
session may have threads of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_OPENAI = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"
REPO = Path(__file__).parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked reader is Linux's")

_BOTH_WAYS = """
import json, sys
import endpoint.scan.run
from endpoint.scan.run import ScanOptions, scan

endpoint.scan.run._spare_core = lambda: True  # fork however busy this machine is
started = []
start = endpoint.scan.run._ProcessesAside.start
endpoint.scan.run._ProcessesAside.start = lambda *a: started.append(1) or start(*a)
pid, tmp = int(sys.argv[1]), sys.argv[2]

def summary(document):
    # What the scan says of this test's process and files (the rest of the machine, other agents of
    # the same kind included, may change between two scans).
    return sorted([s["id"], s["signature"], s["user"], pid in {p["pid"] for p in s["processes"]},
                   sorted(c["path"] for c in s["configs"] if tmp in c["path"]),
                   sorted(c["fingerprint"] for c in s["credentials"] if c["where"].startswith(f"pid {pid} ")),
                   "autonomous" in s["flags"]]
                  for s in document["sightings"]
                  if any(p["pid"] == pid for p in s["processes"]) or any(tmp in c["path"] for c in s["configs"]))

aside = summary(scan(ScanOptions(walk_projects=False, aside=True)))
in_turn = summary(scan(ScanOptions(walk_projects=False, aside=False)))
print(json.dumps({"forked": len(started), "aside": aside, "in_turn": in_turn}))
"""

_CHILD = """
import json, os, sys
import signatures
from endpoint.scan.run import _ProcessesAside

aside = _ProcessesAside.start(signatures.load(), set())
records = aside.result().records
print(json.dumps({"me": os.getpid(), "child": aside.pid,
                  "records": {r.pid: [sorted(r.env_keys), [c.kind for c in r.credentials]] for r in records}}))
"""


def _sleeper(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    code = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(120)"
    proc = subprocess.Popen([sys.executable, *(args or ("-c", code))], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    return proc


def _run(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, check=True)
    return json.loads(done.stdout)


@pytest.mark.timeout(180)
def test_processes_read_aside_give_the_same_sightings(tmp_path: Path) -> None:
    home = tmp_path / "srv" / "bot-home"  # outside any /home: found only through the agent's HOME
    home.mkdir(parents=True)
    (home / ".aider.conf.yml").write_text("model: gpt-4o\nyes-always: true\n")
    aider = tmp_path / "venv" / "bin" / "aider"
    aider.parent.mkdir(parents=True)
    aider.write_text("import sys, time\nsys.stdout.write('up\\n'); sys.stdout.flush()\ntime.sleep(120)\n")
    proc = _sleeper({**os.environ, "HOME": str(home), "OPENAI_API_KEY": FAKE_OPENAI}, str(aider), "--yes-always",
                    cwd=home)
    try:
        found = _run(_BOTH_WAYS, str(proc.pid), str(tmp_path))
    finally:
        proc.kill()
        proc.wait()
    assert found["forked"] == 1
    (ours,) = [s for s in found["aside"] if s[3]]
    assert ours[1] == "aider" and ours[4] == [f"{home}/.aider.conf.yml"] and ours[5] and ours[6]
    assert found["aside"] == found["in_turn"]


@pytest.mark.timeout(180)
def test_the_child_sends_back_every_process_with_its_details() -> None:
    proc = _sleeper({**os.environ, "OPENAI_API_KEY": FAKE_OPENAI})
    try:
        found = _run(_CHILD)
    finally:
        proc.kill()
        proc.wait()
    records = found["records"]
    assert str(found["me"]) not in records and str(found["child"]) not in records  # the scan is not scanned
    env_keys, kinds = records[str(proc.pid)]  # an interpreter: its environment was read for an LLM key
    assert "OPENAI_API_KEY" in env_keys and kinds == ["openai"]


def test_records_and_matches_cross_the_pipe_unchanged() -> None:
    import signatures
    from endpoint.scan.evidence import Credential, ProcessRecord, ScanError
    from endpoint.scan.run import Processes, decode_processes, encode_processes
    from signatures.matching import Match

    lib = signatures.load()
    sig = lib.by_id["claude-code"]
    record = ProcessRecord(41, 1, "claude", "/usr/bin/node", ["claude", "--dangerously-skip-permissions", "é\udcff"],
                           "alice", None, 1700000000.25, frozenset({"HOME", "ANTHROPIC_API_KEY"}),
                           {"HOME": "/home/alice"}, [Credential("anthropic", "hmac-sha256:ab", "env", "pid 41 env X")],
                           "/home/alice/src")
    plain = ProcessRecord(42, 41, "sleep", "", [], "bob", 1001, 0.0)
    sent = Processes([record, plain], [ScanError("pid 7", "unreadable", "process: gone")],
                     {41: Match(sig, "process.names", "name claude")})
    got = decode_processes(encode_processes(sent), lib)
    assert got.records == [record, plain] and got.errors == sent.errors
    assert got.matched == sent.matched and got.matched[41].signature is sig
    assert all(type(c) is Credential for c in got.records[0].credentials)


def test_the_instant_count_of_runnable_tasks_is_read_from_loadavg() -> None:
    from endpoint.scan.run import runnable_now

    assert runnable_now(b"0.52 0.58 0.59 3/1085 4242\n") == 3
    assert runnable_now(b"7.00 7.00 7.00 1/90 12") == 1
    for broken in (b"", b"0.52 0.58 0.59", b"0.52 0.58 0.59 x/1085 1", b"0.5 0.5 0.5 0/10 1", b"a b c 3- 1",
                   b"0.1 0.1 0.1 3/ 9", b"0.1 0.1 0.1 /9 9"):
        assert runnable_now(broken) is None


def test_processes_are_read_aside_only_when_a_core_would_be_idle() -> None:
    from endpoint.scan.run import spare_core

    assert spare_core(2, 1)  # only the scan runs: the other core is idle
    assert not spare_core(2, 2)  # something else runs on the other core
    assert spare_core(8, 5) and not spare_core(8, 8)
    assert not spare_core(1, 1)  # one core: a second process could only take turns with the first
