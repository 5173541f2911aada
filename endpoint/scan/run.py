"""One scan of a machine: run the sensors, fingerprint the evidence, return the contract's document.

``scan()`` never raises for a file, process or packet it could not read, nor for one the code could
not process (a bug reachable from a user's file: ``endpoint.scan.faults``): each such failure is an entry
of ``errors[]`` (code ``internal`` for the second kind) and the rest of the scan completes.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import contract
from endpoint.scan import credentials, safeio
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import (
    ArtifactRecord,
    ConfigRecord,
    Credential,
    NetworkRecord,
    ProcessRecord,
    Project,
    ScanError,
)
from endpoint.scan.faults import isolated_records
from endpoint.scan.homes import find_homes
from endpoint.scan.platforms import PLATFORM, is_this_machine

if TYPE_CHECKING:
    from endpoint.scan.sensors.processes import Reduced
    from signatures import Library, Match

SCHEMA = "agentroster.scan/1"


class ScanOptions:
    """What one scan looks at (every argument keyword-only but ``root``)."""

    __slots__ = ("root", "homes", "processes", "files", "walk_projects", "network", "network_errors", "aside",
                 "projects")

    def __init__(self, root: str = "/", *, homes: list[str] | None = None, processes: bool = True,
                 files: bool = True, walk_projects: bool = True, network: list[NetworkRecord] | None = None,
                 network_errors: list[ScanError] | None = None, aside: bool = True, projects: bool = True) -> None:
        self.root = root
        self.homes: list[str] = [] if homes is None else homes
        self.processes = processes
        self.files = files
        self.walk_projects = walk_projects
        self.network: list[NetworkRecord] = [] if network is None else network
        self.network_errors: list[ScanError] = [] if network_errors is None else network_errors
        self.aside = aside  # read processes in a forked child while this process reads files (Linux, a core spare)
        self.projects = projects  # resolve the projects interpreters run (endpoint.scan.projects); off: bench only


def device_info(root: str = "/") -> dict[str, Any]:
    """Who this device is: a stable id (machine-id where there is one), host name and OS."""
    machine_id = ""
    for candidate in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            machine_id = safeio.read_text(os.path.join(root, candidate), boundary=root, limit=256).strip()
        except safeio.ReadRefused:
            continue
        if machine_id:
            break
    node, release, machine = _uname()
    live = is_this_machine(root)  # C:\ on Windows: its host name, not the name of a folder
    hostname = node if live else os.path.basename(os.path.abspath(root))
    return {"id": machine_id or f"host:{hostname}", "hostname": hostname, "os": PLATFORM,
            "os_version": release if live else "", "arch": machine,
            "agentroster_version": contract.__version__}


def _uname() -> tuple[str, str, str]:
    """Host name, OS release and machine: from os.uname() where there is one (platform and socket cost
    an import each)."""
    if hasattr(os, "uname"):
        uname = os.uname()
        return uname.nodename, uname.release, uname.machine
    import platform
    import socket

    return socket.gethostname(), platform.release(), platform.machine()


def scanned_at(seconds: float | None = None) -> str:
    """An instant in UTC as ISO 8601 to the second (``2026-01-31T09:30:00+00:00``), as ``datetime``
    would write it, without the import of ``datetime`` on every start."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def read_script(path: str) -> str | None:
    """The head of a script an interpreter runs, for its import lines; None when it is not a plain file."""
    try:
        data = safeio.read_bytes(path, boundary="/", limit=safeio.MAX_SCRIPT_BYTES)
    except safeio.ReadRefused:
        return None
    return data.decode("utf-8", "replace")


def scan(options: ScanOptions | None = None, *, lib: Library | None = None) -> dict[str, Any]:
    import signatures

    options = options or ScanOptions()
    lib = lib or signatures.load()
    root = os.path.abspath(options.root)
    errors: list[ScanError] = list(options.network_errors)
    device = device_info(root)
    key = credentials.fingerprint_key()
    if key is None:  # a public key would let anyone test guesses against a fingerprint: none at all
        errors.append(ScanError("fingerprint_key", credentials.NO_FINGERPRINT_KEY,
                                "no organisation key (enroll the daemon): credential fingerprints are left out"))
    from endpoint.scan.sensors.processes import remembering

    classify = remembering(lib.credential_kind)  # the same servers' arguments recur in home after home
    engine = Engine(lib, device_id=device["id"], platform=PLATFORM, read_script=read_script,
                    classify_credentials=lambda argv: credentials.redact_argv(argv, classify, where="mcp args",
                                                                              key=key),
                    home=os.path.expanduser("~"))
    live = root == "/"
    network_pids = {r.pid for r in options.network if r.pid is not None}
    read_processes = options.processes and live
    aside = _ProcessesAside.start(lib, network_pids, options.projects) if read_processes and options.aside and _spare_core() else None
    records: list[Any] = []
    if options.files:
        from endpoint.scan.sensors.files import FileScan

        files = FileScan(lib, root, walk_projects=options.walk_projects)
        homes = find_homes(root, list(options.homes))
        records += _collect(files.run(homes), errors)
    if read_processes:
        found = aside.result() if aside is not None else None
        if found is None:
            _add_processes(engine, lib, errors, network_pids=network_pids, projects=options.projects)
        else:
            engine.add_processes(found.records, matched=found.matched)
            errors += found.errors
    if options.files and read_processes:
        # The homes of running agents (their HOME) may lie outside /home: a throwaway or service home.
        scanned = {home.path for home in homes}
        for home in find_homes(root, _agent_homes(engine), only_extra=True):
            if home.path not in scanned:
                records += _collect(files.home(home), errors)
    engine.add_configs(r for r in records if isinstance(r, ConfigRecord))
    engine.add_artifacts(r for r in records if isinstance(r, ArtifactRecord))
    engine.add_network(options.network)
    now = scanned_at()
    sightings = engine.result(now)
    errors += engine.errors
    if live and options.processes and hasattr(os, "geteuid") and os.geteuid() != 0:
        errors.append(ScanError("processes", "not_root", "not running as root: other users' process environments "
                                "and some executables could not be read"))
    return {
        "schema": SCHEMA,
        "device": device,
        "scanned_at": now,
        "sightings": sightings,
        "errors": [{"where": e.where, "error": e.error, "detail": e.detail} for e in errors],
    }


def _add_processes(engine: Engine, lib: Library, errors: list[ScanError], *, network_pids: set[int],
                   skip_pids: Collection[int] = (), projects: bool = True) -> None:
    """Every process into the engine; environments are read only where the engine says they matter."""
    from endpoint.scan.sensors.processes import DEFAULT_KEEP_ENV, iter_processes, read_details, remembering

    keep = set(DEFAULT_KEEP_ENV)
    for sig in lib.signatures:
        keep.update(e.partition("=")[0] for e in sig.autonomy.env)
    key = credentials.fingerprint_key()
    users: dict[int, str] = {}
    envs: dict[tuple[int, int], Reduced] = {}
    classify = remembering(lib.credential_kind)
    from endpoint.scan.projects import ProjectReader, interests_of

    reader = ProjectReader(interests_of(lib), enabled=projects)  # one per scan: the scan's budget for projects

    def details(record: ProcessRecord) -> None:
        error = read_details(record, classify, keep_env=keep, key=key, users=users, envs=envs, projects=reader)
        if error is not None:
            errors.append(error)

    records = _collect(isolated_records(iter_processes(classify, read_env=False, skip_pids={os.getpid(), *skip_pids}),
                                        "processes"), errors)
    engine.add_processes(records, read_details=details, details_for=network_pids)


def _spare_core() -> bool:
    """Whether another core is idle now: else a second process only competes with the first."""
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may run on
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/proc/loadavg", "rb") as fh:
            running = runnable_now(fh.read(256))
    except OSError:
        running = None
    if running is None:  # no /proc: the last minute's load average stands in for now
        try:
            running = round(os.getloadavg()[0]) + 1
        except (AttributeError, OSError):
            return False
    return spare_core(cores, running)


def spare_core(cores: int, running: int) -> bool:
    """Whether a second process would have a core to itself: ``running`` tasks (this one among them) on
    ``cores`` leave one idle."""
    return cores > 1 and running <= cores - 1


def runnable_now(loadavg: bytes) -> int | None:
    """Tasks runnable at this instant, from ``/proc/loadavg`` ("0.52 0.58 0.59 3/1085 4242": 3, the reader
    included); None when the text is not that.

    The instant, not the load average: a one-minute average still counts the work that ended seconds
    ago (a burst of process starts, the previous scan), and a scan lasts a tenth of a second.
    """
    fields = loadavg.split()
    if len(fields) < 4:
        return None
    running, _, total = fields[3].partition(b"/")
    return int(running) if running.isdigit() and total.isdigit() and int(running) > 0 else None


class Processes(NamedTuple):
    """What the process sensor found: its records (details read where the engine wanted them), the
    errors, and the engine's match for each matched pid."""

    records: list[ProcessRecord]
    errors: list[ScanError]
    matched: dict[int, Match]


class _ProcessesAside:
    """The process sensor run in a forked child while the scan reads files.

    The two sensors share nothing until the engine takes their records, and each is mostly Python
    work, so on two cores they take about the time of the longer one (plus some CPU for the fork and
    the records sent back: not worth it when no core is idle). The child sends its records, and the
    signature each matched one got, back through a pipe (as marshal data: a few times quicker to
    write and read than pickle); whatever goes wrong there, the scan reads the processes itself.
    """

    def __init__(self, pid: int, fd: int, lib: Library) -> None:
        self.pid = pid
        self.fd = fd
        self.lib = lib

    @classmethod
    def start(cls, lib: Library, network_pids: set[int], projects: bool = True) -> _ProcessesAside | None:
        threads = sys.modules.get("threading")
        if not sys.platform.startswith("linux") or (threads is not None and threads.active_count() > 1):
            return None  # fork is only safe in a process with no other thread
        parent = os.getpid()
        read_fd, write_fd = os.pipe()
        gc.freeze()  # the child's collector then leaves the parent's objects (and their pages) alone
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return None
        finally:
            if os.getpid() == parent:
                gc.unfreeze()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                gc.disable()  # short-lived: what it allocates is freed at exit
                os.close(read_fd)
                data = encode_processes(_read_processes(lib, network_pids, skip_pids={parent}, projects=projects))
                with os.fdopen(write_fd, "wb") as out:
                    out.write(data)
                code = 0
            finally:
                os._exit(code)  # no atexit handlers, no flush of the parent's buffered output
        os.close(write_fd)
        return cls(pid, read_fd, lib)

    def result(self) -> Processes | None:
        """The child's records, errors and matches; None if it failed (the caller then reads them itself)."""
        with os.fdopen(self.fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not data:
            return None
        try:
            return decode_processes(data, self.lib)
        except (ValueError, EOFError, TypeError, KeyError):
            return None


def encode_processes(found: Processes) -> bytes:
    """``found`` as marshal data of plain tuples (records field by field, a match as its signature's id)."""
    import marshal

    records = [(r.pid, r.ppid, r.name, r.exe, r.cmdline, r.user, r.uid, r.create_time, r.env_keys, r.env_values,
                [tuple(c) for c in r.credentials], r.cwd, r.project.to_plain() if r.project else None,
                tuple(r.container) if r.container else None)
               for r in found.records]
    matched = [(pid, m.signature.id, m.rule, m.detail) for pid, m in found.matched.items()]
    return marshal.dumps((records, [tuple(e) for e in found.errors], matched))


def decode_processes(data: bytes, lib: Library) -> Processes:
    """What ``encode_processes`` wrote, with each match's signature taken from ``lib``."""
    import marshal

    from signatures.matching import Match

    records_data, errors_data, matched_data = marshal.loads(data)  # from our own child
    records = [ProcessRecord(pid, ppid, name, exe, cmdline, user, uid, started, env_keys, env_values,
                             [Credential(*c) for c in creds], cwd, Project.from_plain(project) if project else None,
                             tuple(container) if container else None)
               for pid, ppid, name, exe, cmdline, user, uid, started, env_keys, env_values, creds, cwd, project, container
               in records_data]
    return Processes(records, [ScanError(*e) for e in errors_data],
                     {pid: Match(lib.by_id[sig], rule, detail) for pid, sig, rule, detail in matched_data})


def _read_processes(lib: Library, network_pids: set[int], *, skip_pids: Collection[int],
                    projects: bool = True) -> Processes:
    errors: list[ScanError] = []
    engine = Engine(lib, device_id="", platform=PLATFORM, read_script=read_script)
    _add_processes(engine, lib, errors, network_pids=network_pids, skip_pids=skip_pids, projects=projects)
    return Processes(list(engine.procs.values()), errors + engine.errors, engine.matched)


def _collect(records: Iterable[Any], errors: list[ScanError]) -> Iterable[Any]:
    for record in records:
        if isinstance(record, ScanError):
            errors.append(record)
        else:
            yield record


def _agent_homes(engine: Engine) -> list[str]:
    """Homes of running agents (their HOME), which may lie outside /home: a throwaway or service home."""
    homes = []
    for sighting in engine.sightings.values():
        for proc in sighting.processes.values():
            home = proc.env_values.get("HOME") or proc.env_values.get("USERPROFILE")
            if home and os.path.isabs(home) and home not in homes and os.path.isdir(home) and home != "/":
                homes.append(home)
    return homes
