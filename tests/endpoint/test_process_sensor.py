"""The process sensor on real child processes: what it reads, what it leaves out, and hostile argv."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time

import pytest

import signatures
from endpoint.scan.evidence import ProcessRecord, ScanError
from endpoint.scan.sensors import _procs_linux, _procs_psutil, processes

LINUX = sys.platform.startswith("linux")
FAKE_ANTHROPIC = "sk-ant-api03-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE-FAKEAA"
SLEEPER = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(120)"


@pytest.fixture(scope="module")
def lib() -> signatures.Library:
    return signatures.load()


def start(argv: list[str | bytes], **kw: object) -> subprocess.Popen[bytes]:
    """A child that has finished starting (its argv is in place) when this returns."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            **kw)  # type: ignore[call-overload]
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    return proc


@pytest.fixture
def children() -> list[subprocess.Popen[bytes]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


def records(lib: signatures.Library, pids: list[int], **kw: object) -> list[ProcessRecord | ScanError]:
    return list(processes.iter_processes(lib.credential_kind, pids=pids, **kw))  # type: ignore[arg-type]


@pytest.mark.timeout(60)
def test_a_child_is_read_with_its_parent_owner_and_command_line(lib, children) -> None:
    child = start([sys.executable, "-c", SLEEPER, "--model", "sonnet"])
    children.append(child)
    (record,) = records(lib, [child.pid], read_env=False)
    assert isinstance(record, ProcessRecord)
    assert record.ppid == os.getpid()
    assert record.cmdline == [sys.executable, "-c", SLEEPER, "--model", "sonnet"]
    assert record.exe == os.path.realpath(sys.executable)
    assert record.uid == os.getuid() and record.user == pwd.getpwuid(os.getuid()).pw_name
    assert abs(record.create_time - time.time()) < 600
    assert record.env_keys == frozenset() and record.credentials == []


@pytest.mark.timeout(60)
def test_the_environment_is_read_on_request_and_reduced_to_names_kept_values_and_fingerprints(lib, children) -> None:
    env = {**os.environ, "ANTHROPIC_API_KEY": FAKE_ANTHROPIC, "HOME": "/home/somebody", "CLAUDECODE": "1"}
    child = start([sys.executable, "-c", SLEEPER], env=env)
    children.append(child)
    (record,) = records(lib, [child.pid], read_env=False)
    assert isinstance(record, ProcessRecord)
    assert processes.read_details(record, lib.credential_kind, keep_env=("HOME",)) is None
    assert {"ANTHROPIC_API_KEY", "HOME", "CLAUDECODE"} <= record.env_keys
    assert record.env_values == {"HOME": "/home/somebody"}
    (cred,) = [c for c in record.credentials if c.kind == "anthropic"]
    assert cred.source == "env" and cred.where == f"pid {child.pid} env ANTHROPIC_API_KEY"
    assert FAKE_ANTHROPIC not in repr(record)


@pytest.mark.timeout(60)
def test_processes_sharing_an_environment_are_reduced_once_each_credited_with_its_own_pid(lib, children) -> None:
    shared = {**os.environ, "ANTHROPIC_API_KEY": FAKE_ANTHROPIC, "HOME": "/home/somebody"}
    other = {**shared, "HOME": "/home/someone-else"}
    started = [start([sys.executable, "-c", SLEEPER], env=env) for env in (shared, shared, other)]
    children.extend(started)
    envs: dict = {}
    asked: list[str | None] = []

    def classify(name, value):
        asked.append(name)
        return lib.credential_kind(name, value)

    found = [r for r in records(lib, [c.pid for c in started], read_env=False) if isinstance(r, ProcessRecord)]
    assert len(found) == 3
    for record in found:
        assert processes.read_details(record, classify, keep_env=("HOME",), envs=envs) is None
    if hasattr(_procs_linux, "environ_bytes") and LINUX:
        assert len(envs) == 2  # the two identical environments were reduced once
        assert asked.count("ANTHROPIC_API_KEY") == 2
    homes = [r.env_values for r in found]
    assert homes == [{"HOME": "/home/somebody"}, {"HOME": "/home/somebody"}, {"HOME": "/home/someone-else"}]
    for record in found:
        alone = ProcessRecord(record.pid, record.ppid, record.name, record.exe, record.cmdline, record.user,
                              record.uid, record.create_time)
        processes.read_details(alone, lib.credential_kind, keep_env=("HOME",))
        assert (record.env_keys, record.env_values, record.credentials) == \
            (alone.env_keys, alone.env_values, alone.credentials)
        (cred,) = [c for c in record.credentials if c.kind == "anthropic"]
        assert cred.where == f"pid {record.pid} env ANTHROPIC_API_KEY"
    assert FAKE_ANTHROPIC not in repr(envs)


@pytest.mark.timeout(60)
def test_a_secret_on_the_command_line_is_redacted(lib, children) -> None:
    child = start([sys.executable, "-c", SLEEPER, "--api-key", FAKE_ANTHROPIC])
    children.append(child)
    (record,) = records(lib, [child.pid])
    assert isinstance(record, ProcessRecord)
    assert record.cmdline[-2:] == ["--api-key", "[REDACTED:anthropic]"]
    assert [c.kind for c in record.credentials if c.source == "cmdline"] == ["anthropic"]
    assert FAKE_ANTHROPIC not in repr(record)


@pytest.mark.timeout(60)
def test_undecodable_argv_bytes_cannot_break_the_json(lib, children) -> None:
    child = start([sys.executable.encode(), b"-c", SLEEPER.encode(), b"caf\xe9-\xff\xfe"])
    children.append(child)
    (record,) = records(lib, [child.pid])
    assert isinstance(record, ProcessRecord)
    assert record.cmdline[-1] == "caf\ufffd-\ufffd\ufffd"
    json.dumps(record.cmdline, ensure_ascii=False).encode("utf-8")  # strict: raises on a lone surrogate


@pytest.mark.timeout(60)
def test_a_long_command_line_loses_only_the_argument_cut_off_at_the_cap(lib, children) -> None:
    big = ["a" * 100_000, "b" * 100_000, "c" * 100_000]  # 300 kB, past the 256 KiB cap
    child = start([sys.executable, "-c", SLEEPER, *big])
    children.append(child)
    (record,) = records(lib, [child.pid], read_env=False)
    assert isinstance(record, ProcessRecord)
    assert record.cmdline == [sys.executable, "-c", SLEEPER, *big[:2]]


@pytest.mark.skipif(not LINUX, reason="watches the zombie's state in /proc")
@pytest.mark.timeout(60)
def test_a_process_that_is_gone_or_a_zombie_yields_nothing(lib) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while _state(zombie.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert records(lib, [gone.pid, zombie.pid]) == []
    finally:
        zombie.wait()


@pytest.mark.skipif(not LINUX, reason="kernel threads are a Linux /proc notion")
def test_kernel_threads_are_skipped(lib) -> None:
    kthreads = [pid for pid in _procs_linux.pids() if _flags(pid) & 0x00200000]
    if not kthreads:
        pytest.skip("no kernel thread is visible in this pid namespace")
    assert records(lib, kthreads[:20]) == []


@pytest.mark.skipif(not LINUX, reason="/proc ownership is Linux's")
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to switch users")
@pytest.mark.timeout(60)
def test_a_non_dumpable_process_is_credited_to_its_real_owner(lib, children) -> None:
    nobody = pwd.getpwnam("nobody")
    code = (f"import ctypes, os, sys, time; os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid}); "
            "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(120)")
    child = start([sys.executable, "-c", code])
    children.append(child)
    assert os.stat(f"/proc/{child.pid}/stat").st_uid == 0  # what /proc shows for a non-dumpable process
    (record,) = records(lib, [child.pid], read_env=False)
    assert isinstance(record, ProcessRecord)
    processes.read_details(record, lib.credential_kind)
    assert (record.uid, record.user) == (nobody.pw_uid, "nobody")


@pytest.mark.skipif(not LINUX, reason="compares the /proc reader with psutil on Linux")
@pytest.mark.timeout(60)
def test_the_proc_reader_agrees_with_psutil(children) -> None:
    child = start([sys.executable, "-c", SLEEPER, "x y", "--flag=1"], env={**os.environ, "AGENTROSTER_T": "1"})
    children.append(child)
    ours, theirs = _procs_linux.read(child.pid, {}), _procs_psutil.read(child.pid, {})
    assert ours is not None and theirs is not None
    assert ours._replace(create_time=0.0) == theirs._replace(create_time=0.0)
    assert abs(ours.create_time - theirs.create_time) < 1.0
    assert _procs_linux.environ(child.pid) == _procs_psutil.environ(child.pid)
    assert _procs_linux.cwd(child.pid) == _procs_psutil.cwd(child.pid)


def test_all_processes_are_listed_but_this_one_when_skipped(lib) -> None:
    found = [r for r in processes.iter_processes(lib.credential_kind, read_env=False, skip_pids={os.getpid()})
             if isinstance(r, ProcessRecord)]
    pids = {r.pid for r in found}
    assert os.getpid() not in pids and os.getppid() in pids


@pytest.mark.parametrize(("data", "argv"), [
    (b"node\0/usr/lib/cli.js\0--yes\0", ["node", "/usr/lib/cli.js", "--yes"]),
    (b"nginx: worker process", ["nginx:", "worker", "process"]),  # a rewritten title
    (b"postgres: writer \0", ["postgres:", "writer", ""]),
    (b"", []),
])
def test_command_lines_split_as_ps_shows_them(data: bytes, argv: list[str]) -> None:
    assert _procs_linux._cmdline(data) == argv


def test_remembering_asks_the_classifier_once_per_name_and_value() -> None:
    asked: list[tuple[str | None, str]] = []

    def classify(name: str | None, value: str) -> None:
        asked.append((name, value))

    remembered = processes.remembering(classify)
    for _ in range(3):
        remembered("PATH", "/usr/bin")
        remembered("TOKEN", "abc")
    assert asked == [("PATH", "/usr/bin"), ("TOKEN", "abc")]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return ""
    return data[data.rfind(b")") + 2:].split()[0].decode()


def _flags(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return 0
    return int(data[data.rfind(b")") + 2:].split()[6])
