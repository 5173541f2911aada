"""The endpoint daemon: watch the machine, keep the latest evidence per source, report what changed.

Collection is incremental and fingerprinting is whole: every ``process_interval_s`` only the new pids
are read (exited ones are dropped); watchdog observers on every config location of every home turn a
config edit into a rescan of that home within a debounce of ~200 ms; the network sensor runs in its own
thread; a full rescan every ``full_scan_interval_s`` is the safety net. Whenever some evidence changed,
the fingerprint engine runs again over all of it (cheap for a few hundred records), the inventory spools
the difference, and the reporter (a thread of its own) sends it.

Producers (observers, the network sensor, signals) and the one consumer (the main loop) meet in an
``EventQueue`` that drops repeats, as watchdog's do.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import random
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from endpoint.scan import faults
from endpoint.scan.evidence import ArtifactRecord, ConfigRecord, NetworkRecord, ProcessRecord, ScanError
from endpoint.scan.homes import (
    Home,
    expand_home_template,
    expand_machine_template,
    find_homes,
    is_home_template,
    template_platforms,
)
from endpoint.service.inventory import Inventory

if TYPE_CHECKING:
    from endpoint.service.localsock import LocalServer
    from endpoint.service.reporter import Reporter
    from endpoint.service.settings import Settings
    from signatures import Library

log = logging.getLogger("agentroster.daemon")

DEBOUNCE_S = 0.2  # a burst of file events (write, rename, chmod) becomes one rescan
STATUS_EVERY_S = 5.0  # how often the status row for `agentroster status` is written
MACHINE = "machine"  # the source key of machine-wide files
MAX_WATCHED_DIRS = 4096  # beyond this, directories are left to the full rescan (inotify has limits too)
TICK_BACKOFF_MAX_S = 300.0  # a tick that keeps failing is retried at 1, 2, 4 … s, then every 5 minutes
STOP = ("stop",)


class EventQueue:
    """Events (tuples) from producer threads to the main loop; an event already waiting is not queued
    twice, so a storm of file events for one home is one rescan."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._cond = threading.Condition()

    def put(self, event: tuple[str, ...]) -> None:
        with self._cond:
            if event not in self._items:
                self._items[event] = None
                self._cond.notify()

    def get_all(self, timeout: float) -> list[tuple[str, ...]]:
        """Every waiting event, after waiting up to ``timeout`` seconds for the first."""
        with self._cond:
            if not self._items and timeout > 0:
                self._cond.wait(timeout)
            items = list(self._items)
            self._items.clear()
            return items


def jittered(interval_s: float, rng: random.Random = random.Random()) -> float:  # noqa: B008
    """80-100 % of an interval: never longer than the setting says (a new process is seen within
    process_interval_s), and a fleet started at once does not scan and report in step."""
    return interval_s * rng.uniform(0.8, 1.0)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- processes -------------------------------------------------------------------------------------------


def read_pids(pids: Iterable[int], classify: Any) -> Iterator[ProcessRecord | ScanError]:
    """Records for just these pids, without their environment (``read_details`` adds it where it matters)."""
    from endpoint.scan.sensors.processes import iter_processes

    return iter_processes(classify, pids=pids, read_env=False)


def live_pids() -> set[int]:
    import psutil

    return set(psutil.pids())


class MatchCache:
    """The signature library, with its process and command matches remembered between fingerprint passes:
    the engine runs again over every process whenever something changed, but the same command line
    matches the same signatures (a full rescan clears the memory)."""

    MAX_ENTRIES = 50_000

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self._process: dict[tuple[Any, ...], Any] = {}
        self._command: dict[tuple[Any, ...], Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lib, name)

    def match_process(self, facts: Any, read_script: Any = None) -> Any:
        key = (facts.name, facts.exe, tuple(facts.cmdline), facts.env_keys, facts.platform)
        found = self._process.get(key)
        if found is None:
            if len(self._process) >= self.MAX_ENTRIES:
                self._process.clear()
            found = self._process[key] = self.lib.match_process(facts, read_script)
        return found

    def match_command(self, command: str, args: Any) -> Any:
        key = (command, tuple(args))
        if key not in self._command:
            if len(self._command) >= self.MAX_ENTRIES:
                self._command.clear()
            self._command[key] = self.lib.match_command(command, args)
        return self._command[key]

    def clear(self) -> None:
        self._process.clear()
        self._command.clear()


# -- what to watch ---------------------------------------------------------------------------------------


@dataclass
class WatchPlan:
    """Directories to watch, each with the names in it that matter (glob patterns), per source."""

    dirs: dict[str, set[str]] = field(default_factory=dict)
    missing: set[tuple[str, str]] = field(default_factory=set)  # (directory, child) not there when planned

    def add(self, target: str, boundary: str) -> None:
        """Watch for ``target`` (a path, maybe with ``*``): its nearest existing directory within
        ``boundary``, and in it the name of the next component on the way to the target."""
        boundary = boundary.rstrip("/") or "/"
        if not (target == boundary or target.startswith(boundary.rstrip("/") + "/")):
            return
        rel = target[len(boundary):].strip("/")
        parts = [p for p in rel.split("/") if p]
        directory = boundary
        for index, part in enumerate(parts):
            if index == len(parts) - 1 or "*" in part or any(c in part for c in "?["):
                self.dirs.setdefault(directory, set()).add(part)
                return
            candidate = os.path.join(directory, part)
            if not os.path.isdir(candidate) or os.path.islink(candidate):
                self.dirs.setdefault(directory, set()).add(part)
                if not os.path.lexists(candidate):
                    self.missing.add((directory, part))
                return
            directory = candidate

    def stale(self) -> bool:
        """A directory that was missing when planned exists now (made between the plan and its watch)."""
        return any(os.path.isdir(p) and not os.path.islink(p) for p in (os.path.join(d, c) for d, c in self.missing))

    def matches(self, directory: str, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.dirs.get(directory, ()))


def home_plan(lib: Library, home: Home, configs: Iterable[ConfigRecord]) -> WatchPlan:
    plan = WatchPlan()
    for _sig, fm in lib.file_templates:
        if fm.scope == "user" and is_home_template(fm.path) \
                and template_platforms(fm.path, list(fm.platforms)) & home.platforms:
            plan.add(expand_home_template(fm.path, home), home.path)
    project_templates = [fm.path[len("{project}"):] for _s, fm in lib.file_templates if fm.scope == "project"]
    projects = {os.path.dirname(c.path) for c in configs if c.scope == "project"}
    for config in configs:
        plan.add(config.path, home.path)
    for project in projects:  # a project that holds one config: the others a client could add there
        for template in project_templates:
            plan.add(project + template, home.path)
    return plan


def machine_plan(lib: Library, root: str) -> WatchPlan:
    plan = WatchPlan()
    for _sig, fm in lib.file_templates:
        if fm.scope == "managed" and not is_home_template(fm.path):
            for pattern in expand_machine_template(fm.path, root):
                plan.add(pattern, root)
    return plan


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Watcher:
    """watchdog observers, one watch per directory (non-recursive), shared by the sources that need it."""

    def __init__(self, events: EventQueue) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.events = events
        self.observer = Observer(timeout=0.2)
        self.plans: dict[str, WatchPlan] = {}
        self.watches: dict[str, Any] = {}
        self.inodes: dict[str, tuple[int, int] | None] = {}
        self.unwatched = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                for path in (event.src_path, getattr(event, "dest_path", "")):
                    if path:
                        outer.seen(os.fsdecode(path))

        self.handler = Handler()

    def start(self) -> None:
        self.observer.daemon = True
        self.observer.start()

    def seen(self, path: str) -> None:
        directory, name = os.path.split(path.rstrip("/"))
        with self._lock:
            sources = [s for s, plan in self.plans.items() if plan.matches(directory, name)]
        for source in sources:
            self.events.put(("files", source))

    def arm(self, source: str, plan: WatchPlan) -> None:
        """Watch what ``plan`` needs for ``source``; drop the watches no source needs any more."""
        with self._lock:
            self.plans[source] = plan
            wanted = set().union(*(p.dirs for p in self.plans.values())) if self.plans else set()
        for directory in [d for d in self.watches if d not in wanted or _inode(d) != self.inodes.get(d)]:
            # not needed any more, or deleted (and maybe made again: the old watch sees nothing)
            self.inodes.pop(directory, None)
            try:
                self.observer.unschedule(self.watches.pop(directory))
            except (KeyError, ValueError, OSError):
                pass
        unwatched = 0
        for directory in sorted(wanted - set(self.watches)):
            if len(self.watches) >= MAX_WATCHED_DIRS:
                unwatched += 1
                continue
            try:
                self.inodes[directory] = _inode(directory)
                self.watches[directory] = self.observer.schedule(self.handler, directory, recursive=False)
            except OSError as exc:
                unwatched += 1
                message = f"{directory}: {exc.strerror or exc}"
                if message not in self.errors:
                    self.errors = [*self.errors[-9:], message]
        self.unwatched = unwatched

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=0.5)


# -- the daemon ------------------------------------------------------------------------------------------


class Daemon:
    """One endpoint daemon over one data dir; ``run()`` until SIGTERM / SIGINT or ``stop()``."""

    def __init__(self, settings: Settings, *, lib: Library | None = None,
                 enroll_secret: Callable[[], str | None] | None = None) -> None:
        import signatures
        from endpoint.scan import credentials
        from endpoint.scan.run import device_info

        self.settings = settings
        self.root = os.path.abspath(str(settings.root))
        self.lib = lib or signatures.load()
        self.matches = MatchCache(self.lib)
        self.device = device_info(self.root)
        self.inventory = Inventory(settings.data_dir, spool_max_bytes=settings.spool_max_bytes)
        if self.inventory.recovered:
            log.warning("state: %s", self.inventory.recovered)
        from endpoint.service import identity

        # The collector knows this device by its per-install identity (root-only, unguessable), not by
        # the machine-id or host name that anyone can read; the hardware identity goes along for the console.
        self.device["id"] = identity.install_id(settings.data_dir)
        self.hardware_id = identity.hardware_id(root=self.root) if self.root == os.path.abspath(os.sep) else ""
        self.events = EventQueue()
        self._stop = threading.Event()
        self._enroll_secret = enroll_secret or (lambda: None)
        credentials.use_data_dir(settings.data_dir)  # the org's fingerprint key, from enrollment
        self._key = credentials.fingerprint_key()
        keep = {"HOME", "USERPROFILE"}
        for sig in self.lib.signatures:
            keep.update(e.partition("=")[0] for e in sig.autonomy.env)
        self._keep_env = frozenset(keep)
        # evidence: the latest per source
        self.procs: dict[int, ProcessRecord] = {}
        self._young: set[int] = set()  # read just after they started: read once more (exec may follow fork)
        self._proc_errors: dict[int, ScanError] = {}
        self._relevant: set[int] = set()  # pids that can change the sightings (see _matters)
        self.files: dict[str, list[ConfigRecord | ArtifactRecord | ScanError]] = {}
        self.homes: dict[str, Home] = {}
        self.network: Any = None
        self.sensors: dict[str, str] = {}
        self.last_sightings: list[dict[str, Any]] = []
        self.last_errors: list[dict[str, Any]] = []
        self.units_failed = 0  # units the last fingerprint could not process (its internal errors)
        self.degraded: list[str] = []  # the sensors those units came from
        self._log_limit = faults.LogLimit()  # a failing unit is logged once an hour, not at every rescan
        self.tick_failures = 0  # ticks failed in a row: the next waits 2**n s (TICK_BACKOFF_MAX_S at most)
        self.reporter: Reporter | None = None
        self._watcher: _Watcher | None = None
        self._pending_files: dict[str, float] = {}  # source -> when its first event came
        self._dirty = False
        self.started_at = time.time()
        self.last_scan_at: float | None = None
        self.last_fingerprint_s = 0.0
        self.cpu_percent = 0.0
        self.rss_mb = 0.0
        self.spool_error = ""
        self._self_proc: Any = None
        from endpoint.service.guard import Guard, Limits, ProcessSampler

        self.guard = Guard(Limits.from_settings(settings))
        self._guard_sampler = ProcessSampler()
        self.shed_level = 0
        self.shed_reason = ""
        self.cpu_percent_window: float | None = None
        self._network_past: list[NetworkRecord] = []  # what a sensor stopped by the guard had seen
        self.local_socket: LocalServer | None = None

    # -- sensors -------------------------------------------------------------------------------------
    @property
    def _on(self) -> frozenset[str]:
        return frozenset(self.settings.sensors)

    def _classify(self) -> Any:
        return self.lib.credential_kind

    def poll_processes(self, *, everything: bool = False) -> bool:
        """Read new pids (or all), drop exited ones; True when the set of process records changed."""
        if "processes" not in self._on:
            return False
        now = time.time()
        pids = live_pids() - {os.getpid()}
        gone = set(self.procs) - pids
        for pid in gone:
            self.procs.pop(pid, None)
        for pid in set(self._proc_errors) - pids:
            self._proc_errors.pop(pid, None)
        fresh = pids if everything else (pids - set(self.procs) - set(self._proc_errors)) | (self._young & pids)
        self._young = set()
        changed = bool(gone & self._relevant) or everything
        self._relevant -= gone
        if everything:
            self.procs, self._proc_errors, self._relevant = {}, {}, set()

        for record in faults.isolated_records(read_pids(sorted(fresh), self._classify()), "processes"):
            if isinstance(record, ScanError):
                pid = int(record.where.split()[-1]) if record.where.split()[-1].isdigit() else -1
                self._proc_errors[pid] = record
                continue
            if not everything and now - record.create_time < 2 * self.settings.process_interval_s:
                self._young.add(record.pid)
            old = self.procs.get(record.pid)
            if old is not None and (old.cmdline, old.exe, old.ppid) == (record.cmdline, record.exe, record.ppid):
                continue  # read again while young, and still the same program
            self.procs[record.pid] = record
            failed: list[ScanError] = []
            matters = False
            with faults.isolated(failed, f"pid {record.pid}"):
                matters = self._matters(record)
            if failed:  # a bug on this one process: an error entry, and the others are still read
                self._proc_errors[record.pid] = failed[0]
                self.procs.pop(record.pid, None)
                continue
            if matters:
                self._relevant.add(record.pid)
                changed = True
            elif record.pid in self._relevant:  # exec'd into something that does not matter
                self._relevant.discard(record.pid)
                changed = True
        return changed

    def _matters(self, record: ProcessRecord) -> bool:
        """Whether a new process can change the sightings (its environment is read only then): it
        matches a signature, holds a credential, is the child of one that matters, or is an interpreter
        with an LLM key, an LLM SDK script or a provider's host on its command line. The rest of a busy
        machine's churn (shells, compilers, test runners) does not make the engine run again; the full
        rescan looks at everything anyway."""
        from endpoint.scan.engine import INTERPRETERS, LLM_SDK_MODULES, _hosts_in
        from endpoint.scan.platforms import PLATFORM
        from endpoint.scan.run import read_script
        from endpoint.scan.sensors.processes import read_details
        from signatures.matching import ProcessFacts

        def facts() -> ProcessFacts:
            return ProcessFacts(name=record.name, exe=record.exe, cmdline=tuple(record.cmdline),
                                env_keys=record.env_keys, platform=PLATFORM)

        def details() -> None:
            error = read_details(record, self._classify(), keep_env=self._keep_env, key=self._key)
            if error is not None:
                self._proc_errors[record.pid] = error

        cwd = record.cwd

        def reader(path: str) -> str | None:
            return read_script(os.path.join(cwd, path) if cwd and not os.path.isabs(path) else path)

        if record.credentials or record.ppid in self._relevant or self.matches.match_process(facts(), reader):
            details()
            return True
        names = {os.path.basename(p).lower().removesuffix(".exe") for p in (record.exe, record.name,
                                                                              *record.cmdline[:1]) if p}
        if not any(n.rstrip("0123456789.") in INTERPRETERS for n in names):
            return False
        details()
        llm_kinds = {p.credential for p in self.lib.providers if p.credential}
        if any(c.kind in llm_kinds for c in record.credentials) or self.matches.match_process(facts(), reader):
            return True
        joined = " ".join(record.cmdline)
        if any(self.lib.provider_for_host(h) is not None for h in _hosts_in(joined)):
            return True
        script = next((a for a in record.cmdline[1:] if not a.startswith("-")), "")
        text = reader(script) if script.endswith(".py") or "python" in " ".join(names) and script else None
        return bool(text) and any(f"import {m}" in text or f"from {m}" in text for m in LLM_SDK_MODULES)

    def scan_files(self, sources: Iterable[str] | None = None) -> None:
        """Rescan the files of these sources (home paths, or MACHINE); all of them when None."""
        if "files" not in self._on:
            return
        from endpoint.scan.sensors.files import FileScan

        scan = FileScan(self.lib, self.root)
        if sources is None:
            extra = [h for h in self._agent_homes() if h not in self.homes]
            self.homes = {h.path: h for h in find_homes(self.root, extra)}
            wanted = [MACHINE, *self.homes]
            for gone in set(self.files) - set(wanted):
                self.files.pop(gone, None)
        else:
            wanted = list(sources)
        for source in wanted:
            if source == MACHINE:
                self.files[MACHINE] = list(scan.machine())
            elif source in self.homes:
                self.files[source] = list(scan.home(self.homes[source]))
            if self._watcher is not None:
                self._arm(source)
        self._dirty = True

    def _arm(self, source: str) -> None:
        assert self._watcher is not None
        if source == MACHINE:
            plan = machine_plan(self.lib, self.root)
        else:
            configs = [r for r in self.files.get(source, []) if isinstance(r, ConfigRecord)]
            plan = home_plan(self.lib, self.homes[source], configs)
        self._watcher.arm(source, plan)
        if plan.stale():  # `mkdir -p` outran the watch: look again
            self.events.put(("files", source))

    def _new_agent_homes(self) -> list[str]:
        extra = [h for h in self._agent_homes() if os.path.realpath(h) not in self.homes]
        if not extra:
            return []
        found = {h.path: h for h in find_homes(self.root, extra)}
        new = [path for path in found if path not in self.homes]
        self.homes.update(found)
        return new

    def _agent_homes(self) -> list[str]:
        homes = []
        for proc in self.procs.values():
            home = proc.env_values.get("HOME") or proc.env_values.get("USERPROFILE")
            if home and os.path.isabs(home) and home != "/" and home not in homes and os.path.isdir(home) \
                    and (self.root == "/" or home.startswith(self.root.rstrip("/") + "/")):
                homes.append(home)  # a home outside the usual places (a service's, a throwaway one)
        return homes

    def start_network(self) -> None:
        if "network" not in self._on:
            self.sensors["network"] = "off: not in the sensors setting"
            return
        try:
            from endpoint.scan.sensors.network import NetworkSensor
        except ImportError as exc:  # scapy (the network extra) is not installed
            self.sensors["network"] = f"off: {exc}"
            return
        lib = self.lib

        def provider_for(host: str, port: int) -> str | None:
            found = lib.provider_for_host(host) if host else None
            found = found or lib.provider_for_port(port)
            return found.id if found else None

        hosts = sorted({h for p in lib.providers for h in p.hosts if "*" not in h})
        try:
            sensor = NetworkSensor(provider_for, watch_hosts=hosts,
                                   on_record=lambda _record: self.events.put(("network",)))
            sensor.start()
        except Exception as exc:  # the sensor says what it cannot do; it must never stop the daemon
            log.warning("network sensor: %s", exc)
            self.sensors["network"] = f"off: {type(exc).__name__}: {exc}"[:300]
            return
        self.network = sensor
        self.sensors["network"] = "ok" if sensor.live else "limited: " + "; ".join(sensor.capabilities[:1])

    def _network_records(self) -> list[NetworkRecord]:
        live = list(self.network.snapshot()) if self.network is not None else []
        return self._network_past + live

    def stop_network(self, why: str) -> None:
        sensor, self.network = self.network, None
        if sensor is not None:
            self._network_past = (self._network_past + list(sensor.snapshot()))[-10_000:]
            threading.Thread(target=sensor.stop, daemon=True).start()  # may block on a capture read
        self.sensors["network"] = f"off: {why}"

    # -- the resource guard --------------------------------------------------------------------------
    @property
    def interval_factor(self) -> float:
        from endpoint.service.guard import INTERVAL_FACTOR

        return INTERVAL_FACTOR.get(self.shed_level, 1.0)

    def check_resources(self) -> None:
        """Ask the guard how much work to shed, from this process's own CPU time and RSS."""
        try:
            decision = self.guard.observe(self._guard_sampler.sample())
        except Exception as exc:  # psutil on an odd platform: run unguarded, and say so
            self.shed_reason = f"resource guard unavailable: {exc}"[:200]
            return
        self.shed_level, self.shed_reason = decision.level, decision.reason
        self.cpu_percent_window = decision.cpu_percent
        if not decision.changed:
            return
        log.warning("resource guard: %s", decision.reason)
        if not decision.network_allowed and self.network is not None:
            self.stop_network("shed by the resource guard (" + decision.reason[:150] + ")")
        elif decision.network_allowed and self.network is None and "network" in self._on \
                and self.sensors.get("network", "").startswith("off: shed"):
            self.start_network()

    # -- fingerprint and report ----------------------------------------------------------------------
    def fingerprint(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from endpoint.scan import credentials
        from endpoint.scan.engine import Engine
        from endpoint.scan.platforms import PLATFORM
        from endpoint.scan.run import read_script

        key = credentials.fingerprint_key()
        if key != self._key:  # the org's key came with an enrollment: every fingerprint is made again
            self._key = key
            self.full_scan()
        started = time.perf_counter()
        lib = self.lib
        engine = Engine(self.matches, device_id=self.device["id"], platform=PLATFORM, read_script=read_script,
                        classify_credentials=lambda argv: credentials.redact_argv(argv, lib.credential_kind,
                                                                                  where="mcp args", key=key))
        engine.add_processes(self.procs.values())
        records = [r for recs in self.files.values() for r in recs]
        engine.add_configs(r for r in records if isinstance(r, ConfigRecord))
        engine.link()
        engine.add_artifacts(r for r in records if isinstance(r, ArtifactRecord))
        engine.add_network(self._network_records())
        sightings = engine.result(now_iso())
        errors = [r for r in records if isinstance(r, ScanError)] + list(self._proc_errors.values()) + engine.errors
        if self.network is not None:
            errors += [ScanError("network", "limited", str(e)) for e in self.network.errors[:5]]
        self.last_fingerprint_s = time.perf_counter() - started
        unique = {(e.where, e.error, e.detail): e for e in errors}
        self.units_failed, self.degraded = faults.health(unique.values())
        self._log_failed_units(unique.values())
        return sightings, [{"where": e.where, "error": e.error, "detail": e.detail} for e in unique.values()]

    def _log_failed_units(self, errors: Iterable[ScanError]) -> None:
        """One line per failed unit, at most once an hour each (the report carries them every time)."""
        now = time.monotonic()
        for error in errors:
            if error.error == faults.INTERNAL and self._log_limit.due(f"{error.where}\0{error.detail}", now):
                log.warning("%s: could not be processed (%s); the rest is reported", error.where, error.detail)

    def publish(self, *, heartbeat: bool = False) -> None:
        """Fingerprint again if some evidence changed, and spool what the collector must hear."""
        from endpoint.service.reporter import SpoolFull

        if self._dirty or not self.last_scan_at:
            self.last_sightings, self.last_errors = self.fingerprint()
            self.last_scan_at = time.time()
            self._dirty = False
            if "files" in self._on:  # a running agent's home outside the usual places
                for source in self._new_agent_homes():
                    self.events.put(("files", source))
        now = time.time()
        try:
            spooled = self.inventory.record(self.last_sightings, device=self.device, errors=self.last_errors,
                                            snapshot=self.inventory.snapshot_due(now,
                                                                                 self.settings.snapshot_interval_s),
                                            heartbeat=heartbeat, now=now)
            self.spool_error = ""
        except SpoolFull as exc:
            self.spool_error = str(exc)
            log.error("%s", exc)
            return
        if spooled is not None:
            log.debug("spooled %s %d", spooled.kind, spooled.seq)
            if self.reporter is not None:
                self.reporter.wake()

    # -- status --------------------------------------------------------------------------------------
    def _sample_self(self) -> None:
        import psutil

        if self._self_proc is None:
            self._self_proc = psutil.Process()
            self._self_proc.cpu_percent(None)
        try:
            self.cpu_percent = round(self._self_proc.cpu_percent(None), 2)
            self.rss_mb = round(self._self_proc.memory_info().rss / (1 << 20), 1)
        except psutil.Error:
            pass

    def _sensor_health(self) -> dict[str, str]:
        health = dict(self.sensors)
        health["processes"] = "ok" if "processes" in self._on else "off: not in the sensors setting"
        if "files" not in self._on:
            health["files"] = "off: not in the sensors setting"
        elif self._watcher is None:
            health["files"] = "ok (rescans only)"
        elif self._watcher.unwatched:
            health["files"] = f"limited: {self._watcher.unwatched} directories not watched (left to the full rescan)"
        else:
            health["files"] = f"ok: watching {len(self._watcher.watches)} directories"
        if self.network is not None and self.network.errors and health.get("network") == "ok":
            health["network"] = "limited: " + str(self.network.errors[0])[:200]
        return health

    def device_status(self) -> dict[str, Any]:
        """The DeviceStatus each report carries."""
        stats = self.inventory.spool_stats()
        return {"spool": stats.health, "spool_reports": stats.reports, "spool_bytes": stats.bytes,
                "shedding": self.shed_level > 0, "cpu_percent": self.cpu_percent, "rss_mb": self.rss_mb,
                "sensors": self._sensor_health(), **self._health()}

    def _health(self) -> dict[str, Any]:
        """The last scan's units_failed and degraded sensors, with the sightings the inventory could not
        encode (the fingerprint's units too)."""
        failed, degraded = self.units_failed + self.inventory.unencodable, set(self.degraded)
        if self.inventory.unencodable:
            degraded.add("fingerprint")
        return {"units_failed": min(failed, 1_000_000), "degraded": sorted(degraded)}

    def status(self) -> dict[str, Any]:
        """What ``agentroster status`` shows."""
        meta = self.inventory.meta()
        stats = self.inventory.spool_stats()
        return {
            "pid": os.getpid(), "started_at": self.started_at, "collector_url": self.settings.collector_url,
            "enrolled": self.inventory.device_key() is not None, "device_id": meta.get("device_id"),
            "device": self.device, "epoch": self.inventory.epoch, "next_seq": int(meta.get("next_seq", 1)),
            "acked_seq": int(meta.get("acked_seq", 0)), "acked_at": float(meta.get("acked_at", 0)) or None,
            "spool": {"health": stats.health, "reports": stats.reports, "bytes": stats.bytes,
                      "max_bytes": self.inventory.spool_max_bytes, "coalesced": stats.coalesced,
                      "error": self.spool_error},
            "reporter": self.reporter.stats.as_dict() if self.reporter else None,
            "sensors": self._sensor_health(), "shedding": self.shed_level > 0, "shed_level": self.shed_level,
            "shed_reason": self.shed_reason, "cpu_percent": self.cpu_percent,
            "cpu_percent_window": self.cpu_percent_window, "rss_mb": self.rss_mb, "sightings": len(self.last_sightings),
            "errors": len(self.last_errors), **self._health(),
            "tick_failures": self.tick_failures, "last_scan_at": self.last_scan_at,
            "fingerprint_ms": round(self.last_fingerprint_s * 1000, 1), "processes": len(self.procs),
        }

    def write_status(self) -> None:
        self._sample_self()
        try:
            self.inventory.write_status(self.status())
        except Exception as exc:  # the status row is a courtesy: never a reason to stop
            log.warning("status: %s", exc)

    # -- running -------------------------------------------------------------------------------------
    def make_reporter(self) -> Reporter | None:
        from endpoint.service.reporter import Reporter

        url = self.settings.collector_url
        if not url:
            return None
        interval = self.settings.report_interval_s
        return Reporter(self.inventory, collector_url=url, enroll_secret=self._enroll_secret,
                        device=lambda: self.device, status=self.device_status,
                        ca_bundle=self.settings.ca_bundle, drain_reports_per_s=self.settings.drain_reports_per_s,
                        retry_base_s=min(1.0, interval / 4), retry_cap_s=interval * 6, enroll_cap_s=interval * 30,
                        hardware_id=self.hardware_id, on_enrolled=self._enrolled)

    def _enrolled(self) -> None:
        """From the reporter's thread: fingerprint again (the enrollment may have brought the org's key)."""
        self._dirty = True
        self.events.put(("enrolled",))

    def stop(self) -> None:
        self._stop.set()
        self.events.put(STOP)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        self.stop()

    def full_scan(self) -> None:
        self.matches.clear()
        self.poll_processes(everything=True)
        self.scan_files()
        self._dirty = True

    def run_once(self) -> int:
        """One full scan, spooled; then, with a collector, enroll if need be and drain the spool."""
        self.sensors.setdefault("network", "off: not run by --once")
        self.full_scan()
        self._sample_self()
        self.publish()
        self.write_status()
        self.reporter = self.make_reporter()
        if self.reporter is None:
            return 0
        from endpoint.service.reporter import DeviceKeyRejected, ReporterError

        try:
            self.reporter.forget_other_collector()
            if self.inventory.device_key() is None:
                self._enroll_once()
            try:
                while self.reporter.send_next():
                    pass
            except DeviceKeyRejected as exc:  # as the long-running daemon does: enroll again, once
                log.warning("%s: enrolling again", exc)
                self.inventory.forget_device_key(keep_as_proof=True)
                self._enroll_once()
                while self.reporter.send_next():
                    pass
        except ReporterError as exc:
            log.error("%s", exc)
            return 1
        finally:
            self.write_status()
            self.reporter.stop()
        return 0

    def _enroll_once(self) -> None:
        """--once: enroll, and spool again if the enrollment brought the org's fingerprint key."""
        assert self.reporter is not None
        self.reporter.enroll()
        if self._dirty:
            self.publish()

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        s = self.settings
        if "files" in self._on:
            try:
                self._watcher = _Watcher(self.events)
                self._watcher.start()
            except Exception as exc:
                log.warning("file watching unavailable: %s", exc)
                self._watcher = None
        try:
            self.full_scan()
        except Exception as exc:
            self._log_failure("first scan", exc)
        self.start_network()
        try:
            self.publish()
        except Exception as exc:
            self._log_failure("first report", exc)
        self.reporter = self.make_reporter()
        if self.reporter is not None:
            self.reporter.start()
        self.start_local_socket()
        log.info("watching %d homes and %d processes under %s: %d sightings; sensors: %s; collector: %s",
                 len(self.homes), len(self.procs), self.root, len(self.last_sightings),
                 ", ".join(f"{k} {v}" for k, v in sorted(self._sensor_health().items())),
                 self.settings.collector_url or "(none: state and status only)")
        now = time.monotonic()
        due = {"processes": now + jittered(s.process_interval_s), "full": now + jittered(s.full_scan_interval_s),
               "heartbeat": now + jittered(s.heartbeat_interval_s), "status": now}
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                wake = min([*due.values(), *(t + DEBOUNCE_S for t in self._pending_files.values())])
                for event in self.events.get_all(max(0.0, wake - now)):
                    self._handle(event)
                if self._stop.is_set():
                    break
                try:
                    self._tick(due)
                    self.tick_failures = 0
                except Exception as exc:  # one bad record or a transient error must not end the watch
                    self.tick_failures += 1
                    self._log_failure("tick", exc)
                    self._stop.wait(self.tick_backoff_s())  # a failure that repeats does not spin
        finally:
            self.shutdown()
        return 0

    def tick_backoff_s(self) -> float:
        """How long to wait after ``tick_failures`` failed ticks in a row: 1, 2, 4 … s, at most
        TICK_BACKOFF_MAX_S."""
        return min(TICK_BACKOFF_MAX_S, 2.0 ** min(max(self.tick_failures - 1, 0), 16))

    def _log_failure(self, what: str, exc: Exception) -> None:
        """A failure of the daemon's own loop: with its traceback, once an hour for the same failure."""
        import traceback

        detail = faults.describe(exc)
        if self._log_limit.due(f"{what}\0{detail}", time.monotonic()):
            # the frames, not exc_info: the exception's own message may quote a user's file (a key in it)
            frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
            log.error("daemon: %s failed (%s); going on, retrying with backoff\n%s", what, detail, frames)

    def _handle(self, event: tuple[str, ...]) -> None:
        if event[0] == "files" and len(event) > 1:
            self._pending_files.setdefault(event[1], time.monotonic())
        elif event[0] == "network":
            self._dirty = True

    def _tick(self, due: dict[str, float]) -> None:
        s = self.settings
        now = time.monotonic()
        ready = [src for src, first in self._pending_files.items() if now - first >= DEBOUNCE_S]
        if ready:
            for src in ready:
                self._pending_files.pop(src, None)
            self.scan_files(ready)
        slower = self.interval_factor  # > 1 while the resource guard sheds work
        if now >= due["processes"]:
            if self.poll_processes():
                self._dirty = True
            due["processes"] = now + jittered(s.process_interval_s * slower)
        if now >= due["full"]:
            self.full_scan()
            due["full"] = now + jittered(s.full_scan_interval_s * slower)
        heartbeat = now >= due["heartbeat"]
        if heartbeat:
            due["heartbeat"] = now + jittered(s.heartbeat_interval_s)
        if self._dirty or heartbeat:
            self.publish(heartbeat=heartbeat)
        if now >= due["status"]:
            self.check_resources()
            self.write_status()
            due["status"] = now + STATUS_EVERY_S

    def start_local_socket(self) -> None:
        """The socket where users list and register their own agents (``endpoint/service/localsock.py``); without
        it (Windows, a bad path) ``agentroster register`` needs root, and the daemon runs on."""
        if os.name != "posix":
            return
        from endpoint.service.localsock import Handler, LocalServer, LocalSocketError, socket_path

        path = socket_path(self.settings.data_dir)
        try:
            server = LocalServer(path, Handler(self.settings.data_dir, ca_bundle=self.settings.ca_bundle))
            server.start()
        except (LocalSocketError, NotImplementedError, OSError) as exc:
            log.warning("local socket: %s; `agentroster register` needs sudo", exc)
            return
        self.local_socket = server
        log.info("local socket: %s", path)

    def shutdown(self) -> None:
        """Flush state and stop every thread, within about a second."""
        if self.local_socket is not None:
            self.local_socket.stop()
            self.local_socket = None
        if self._watcher is not None:
            self._watcher.stop()
        if self.network is not None:
            self.stop_network("stopped")
        if self.reporter is not None:
            self.reporter.stop(timeout=0.5)
        self.write_status()
        log.info("stopped")


def run_daemon(settings: Settings, *, once: bool = False, enroll_secret: Callable[[], str | None] | None = None) -> int:
    daemon = Daemon(settings, enroll_secret=enroll_secret)
    return daemon.run_once() if once else daemon.run()
