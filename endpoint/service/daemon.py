"""The endpoint daemon's loop: run, tick, publish.

Collection is incremental and fingerprinting is whole. The trackers (``endpoint/service/trackers/``)
keep the latest evidence per source: the process tracker reads only new pids every
``process_interval_s``, the file tracker rescans a home within ~200 ms of a config edit, the network
tracker's sensor runs in its own thread; a full rescan every ``full_scan_interval_s`` is the safety net.
Whenever some evidence changed, the fingerprint engine runs again over all of it (cheap for a few
hundred records), the inventory spools the difference, and the reporter (a thread of its own) sends it.

Producers (observers, the network sensor, signals) and the one consumer (the loop) meet in an
``EventQueue`` that drops repeats, as watchdog's do.

Settings are loaded again on SIGHUP and when the managed source changes (its stat, looked at every
few seconds): what can change live is applied, a bad value is a settings problem in the status, never
a reason to stop. Under systemd the loop tells the service manager it is ready, reloading or stopping,
and pings its watchdog (``endpoint/service/sdnotify.py``).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from contract import scan as contract
from endpoint.errors import EndpointError
from endpoint.scan import faults
from endpoint.scan.evidence import ArtifactRecord, ConfigRecord, ScanError
from endpoint.scan.platforms import PLATFORM
from endpoint.service.inventory import Inventory
from endpoint.service.sdnotify import Notifier
from endpoint.service.settings import (
    SETTING_NAMES,
    Loaded,
    SettingsError,
    SettingsProblem,
    describe_change,
    shown_url,
)
from endpoint.service.status import SelfSample, daemon_status, device_status, sensor_health
from endpoint.service.trackers.events import STOP, EventQueue
from endpoint.service.trackers.files import FileTracker
from endpoint.service.trackers.network import NetworkTracker
from endpoint.service.trackers.processes import MatchCache, ProcessTracker

if TYPE_CHECKING:
    from endpoint.service.instance_lock import InstanceLock
    from endpoint.service.localsock import Server
    from endpoint.service.managed import SettingsSource
    from endpoint.service.reporter import Reporter
    from endpoint.service.settings import Settings
    from signatures import Library

log = logging.getLogger("agentroster.daemon")

STATUS_EVERY_S = 5.0  # how often the status row for `agentroster status` is written
TICK_BACKOFF_MAX_S = 300.0  # a tick that keeps failing is retried at 1, 2, 4 … s, then every 5 minutes
SETTINGS_CHECK_S = 3.0  # how often the managed source's stat is looked at for a change
LOCAL_SOCKET_RETRY_S = 60.0  # how often a local socket that could not be served is tried again
#: what cannot change while the daemon runs: the state it holds open, and what it watches
RESTART_ONLY = ("data_dir", "root")


def jittered(interval_s: float, rng: random.Random = random.Random()) -> float:  # noqa: B008
    """80-100 % of an interval: never longer than the setting says (a new process is seen within
    process_interval_s), and a fleet started at once does not scan and report in step."""
    return interval_s * rng.uniform(0.8, 1.0)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ScanStopped(EndpointError):
    """The daemon was asked to stop in the middle of a scan: what the scan found so far is dropped."""

    code = "scan_stopped"


# -- the daemon ------------------------------------------------------------------------------------------


class Daemon:
    """One endpoint daemon over one data dir; ``run()`` until SIGTERM / SIGINT or ``stop()``.

    ``settings_source`` is where a reload reads the settings again (none: SIGHUP only says so);
    ``loaded`` is what it gave at start (its origins and problems, for the status)."""

    def __init__(self, settings: Settings, *, lib: Library | None = None,
                 enroll_secret: Callable[[], str | None] | None = None,
                 settings_source: SettingsSource | None = None, loaded: Loaded | None = None,
                 notifier: Notifier | None = None) -> None:
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
        self._enroll_secret = enroll_secret or self._read_enroll_secret
        self.settings_source = settings_source
        self.loaded = loaded or Loaded(settings, {}, ())
        self.restart_needed: list[SettingsProblem] = []  # settings changed that take a restart
        self._settings_stamp = settings_source.stamp(settings) if settings_source is not None else None
        self._settings_checked_at = time.monotonic()
        self.notifier = notifier or Notifier(None)
        self._due: dict[str, float] = {}
        credentials.use_data_dir(settings.data_dir)  # the org's fingerprint key, from enrollment
        self._key = credentials.fingerprint_key()
        # evidence: the latest per source
        self.processes = ProcessTracker(self.lib, self.matches, process_interval_s=settings.process_interval_s,
                                        key=self._key)
        self.files = FileTracker(self.lib, self.root, self.events)
        self.network = NetworkTracker(self.lib, self.events, enabled="network" in self._on)
        self.last_sightings: list[contract.Sighting] = []
        self.last_errors: list[contract.ScanError] = []
        self.units_failed = 0  # units the last fingerprint could not process (its internal errors)
        self.degraded: list[str] = []  # the sensors those units came from
        self._log_limit = faults.LogLimit()  # a failing unit is logged once an hour, not at every rescan
        self.tick_failures = 0  # ticks failed in a row: the next waits 2**n s (TICK_BACKOFF_MAX_S at most)
        self.reporter: Reporter | None = None
        self._dirty = False
        self.started_at = time.time()
        self.last_scan_at: float | None = None
        self.scanned = False  # a full scan has finished since the daemon started
        self._status_in_scan = False  # the status row was written in the middle of a scan
        self.last_fingerprint_s = 0.0
        self.resources = SelfSample()
        self.spool_error = ""
        from endpoint.service.guard import Guard, Limits, ProcessSampler

        self.guard = Guard(Limits.from_settings(settings))
        self._guard_sampler = ProcessSampler()
        self.shed_level = 0
        self.shed_reason = ""
        self.cpu_percent_window: float | None = None
        self.local_socket: Server | None = None
        self.local_socket_error = ""  # why it is not served, while it is not

    @property
    def settings_problems(self) -> list[SettingsProblem]:
        """What the daemon could not take from its settings, and what it uses instead."""
        return [*self.loaded.problems, *self.restart_needed]

    def _read_enroll_secret(self) -> str | None:
        """The enroll secret, read now from the current settings (a file may be fixed or rotated meanwhile)."""
        from endpoint.service.managed import read_enroll_secret
        from endpoint.service.reporter import EnrollmentRejected

        try:
            secret = read_enroll_secret(self.settings)
        except (SettingsError, OSError) as exc:
            raise EnrollmentRejected(f"enroll secret: {exc}") from None
        return secret.reveal() if secret else None

    # -- sensors -------------------------------------------------------------------------------------
    @property
    def _on(self) -> frozenset[str]:
        return frozenset(self.settings.sensors)

    def poll_processes(self, *, everything: bool = False) -> bool:
        """Read new pids (or all), drop exited ones; True when the set of process records changed."""
        if "processes" not in self._on:
            return False
        return self.processes.poll(everything=everything)

    def scan_files(self, sources: Iterable[str] | None = None) -> None:
        """Rescan the files of these sources (home paths, or MACHINE); all of them when None."""
        if "files" not in self._on:
            return
        self.files.scan(sources, agent_homes=self.processes.agent_homes(self.root) if sources is None else (),
                        progress=self.scan_progress)
        self._dirty = True

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
        if not decision.network_allowed and self.network.running:
            self.network.stop("shed by the resource guard (" + decision.reason[:150] + ")")
        elif decision.network_allowed and self.network.shed():
            self.network.start()

    # -- fingerprint and report ----------------------------------------------------------------------
    def fingerprint(self) -> tuple[list[contract.Sighting], list[contract.ScanError]]:
        from endpoint.scan import credentials
        from endpoint.scan.engine import Engine
        from endpoint.scan.run import read_script

        key = credentials.fingerprint_key()
        if key != self._key:  # the org's key came with an enrollment: every fingerprint is made again
            self._key = self.processes.key = key
            self.full_scan()
        started = time.perf_counter()
        lib = self.lib
        # the match cache stands for the library (it passes the rest through)
        engine = Engine(cast("Library", self.matches), device_id=self.device["id"], platform=PLATFORM, read_script=read_script,
                        classify_credentials=lambda argv: credentials.redact_argv(argv, lib.credential_kind,
                                                                                  where="mcp args", key=key),
                        home=os.path.expanduser("~"))
        engine.add_processes(self.processes.records.values())
        records = [r for recs in self.files.records.values() for r in recs]
        engine.add_configs(r for r in records if isinstance(r, ConfigRecord))
        engine.link()
        engine.add_artifacts(r for r in records if isinstance(r, ArtifactRecord))
        engine.add_network(self.network.records())
        sightings = engine.result(now_iso())
        errors = [r for r in records if isinstance(r, ScanError)] + list(self.processes.errors.values()) + engine.errors
        errors += [ScanError("network", "limited", str(e)) for e in self.network.errors[:5]]
        errors += self.network.faults()
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
        from endpoint.service.inventory import SpoolFull

        if self._dirty or not self.last_scan_at:
            self.last_sightings, self.last_errors = self.fingerprint()
            self.last_scan_at = time.time()
            self._dirty = False
            if "files" in self._on:  # a running agent's home outside the usual places
                for source in self.files.add_homes(self.processes.agent_homes(self.root)):
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
    def sensor_health(self) -> dict[str, str]:
        return sensor_health(self._on, files=self.files, network=self.network)

    def device_status(self) -> dict[str, Any]:
        """The DeviceStatus each report carries."""
        return device_status(self)

    def status(self) -> dict[str, Any]:
        """What ``agentroster status`` shows."""
        return daemon_status(self)

    def write_status(self) -> None:
        self.resources.sample()
        try:
            doc = self.status()
            self.inventory.write_status(doc)
        except Exception as exc:  # the status row is a courtesy: never a reason to stop
            log.warning("status: %s", exc)
            return
        self.notifier.status(one_line(doc))

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
        """End ``run()`` cleanly, within about a second; safe from any thread (a Windows service's stop
        request comes on the service manager's thread) and from a signal handler."""
        self._stop.set()
        self.events.put(STOP)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        self.stop()

    def _on_hangup(self, _signum: int, _frame: Any) -> None:
        self.events.put(("reload", "SIGHUP"))  # the loop reloads: a signal handler only says so

    # -- settings, read again ------------------------------------------------------------------------
    def reload(self, why: str) -> None:
        """Read the settings again and apply what can change live; a bad value keeps its last good one."""
        if self.settings_source is None:
            log.info("settings: %s, but this daemon was given its settings directly: nothing to read again", why)
            return
        self.notifier.reloading()
        try:
            stamp = self.settings_source.stamp(self.settings)
            try:
                loaded = self.settings_source.load(self.loaded)
            except SettingsError as exc:  # only a command-line value raises, and it was fine at start
                log.error("settings: reading them again failed (%s); keeping the current settings", exc)
                return
            self._settings_stamp = stamp
            self.apply_settings(loaded, why)
        finally:
            self.notifier.ready()

    def apply_settings(self, loaded: Loaded, why: str = "reload") -> None:
        """Take new settings: intervals, sensors, log level, the collector and its CA bundle, the enroll
        secret, resource limits and the spool's cap change now; ``RESTART_ONLY`` ones keep their value
        (a settings problem says so until the daemon restarts)."""
        from dataclasses import replace

        from endpoint.service.guard import Limits

        old, problems_before = self.settings, [str(p) for p in self.settings_problems]
        new = loaded.settings
        self.restart_needed = []
        kept: dict[str, Any] = {}
        for name in RESTART_ONLY:
            if getattr(new, name) != getattr(old, name):
                kept[name] = getattr(old, name)
                self.restart_needed.append(SettingsProblem(
                    name, loaded.origins.get(name, "default"), f"changed to {getattr(new, name)}, which takes a "
                    "restart of the daemon", f"keeping {getattr(old, name)} until it restarts"))
        if kept:
            new = replace(new, **kept)
        changed = [name for name in SETTING_NAMES if getattr(new, name) != getattr(old, name)]
        self.settings, self.loaded = new, Loaded(new, loaded.origins, loaded.problems)
        log.info("settings read again (%s): %s", why, f"{len(changed)} changed" if changed else "nothing changed")
        for name in changed:
            log.info("settings: %s", describe_change(name, getattr(old, name), getattr(new, name),
                                                     loaded.origins.get(name, "default")))
        self._log_problems(problems_before)
        now = time.monotonic()
        if "log_level" in changed:
            logging.getLogger().setLevel(new.log_level.upper())
        if "process_interval_s" in changed:
            self.processes.process_interval_s = new.process_interval_s
        for key, name in (("processes", "process_interval_s"), ("full", "full_scan_interval_s"),
                          ("heartbeat", "heartbeat_interval_s")):
            if name in changed and key in self._due:
                self._due[key] = now + jittered(getattr(new, name))
        if "sensors" in changed:
            self._apply_sensors(old.sensors, new.sensors)
        if "max_cpu_percent" in changed or "max_rss_mb" in changed:
            self.guard.limits = Limits.from_settings(new)
        if "spool_max_bytes" in changed:
            self.inventory.spool_max_bytes = max(1, int(new.spool_max_bytes))
        reporting = {"collector_url", "ca_bundle", "report_interval_s", "drain_reports_per_s", "enroll_secret",
                     "enroll_secret_file"}
        # not enrolled yet: a new reporter tries at once (the old one may be waiting out an enroll backoff)
        if self._due and (reporting & set(changed) or self.inventory.device_key() is None):
            self._restart_reporter()
        if self._due and "ca_bundle" in changed and self.local_socket is not None:
            self.local_socket.stop()
            self.local_socket = None
            self.start_local_socket()
        self.write_status()

    def _apply_sensors(self, before: frozenset[str], after: frozenset[str]) -> None:
        if "files" in after and "files" not in before:
            if self._due and self.files.watcher is None:
                self.files.start_watching()
            self.scan_files()
        elif "files" in before and "files" not in after:
            self.files.stop()
            self.files.watcher = None
            self.files.records.clear()
        if "processes" in after and "processes" not in before:
            self.poll_processes(everything=True)
        elif "processes" in before and "processes" not in after:
            self.processes.records.clear()
        self.network.enabled = "network" in after
        if self.network.enabled and not self.network.running and self._due:
            self.network.start()
        elif not self.network.enabled and self.network.running:
            self.network.stop("not in the sensors setting")
        self._dirty = True

    def _restart_reporter(self) -> None:
        """A reporter for the current settings, in place of the running one; when the new one cannot be
        made (a CA bundle that is missing or not PEM), the running one goes on and a settings problem says
        why: a bad setting never stops the reporting that works."""
        try:
            fresh = self.make_reporter()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            problem = SettingsProblem("ca_bundle" if self.settings.ca_bundle else None,
                                      self.loaded.origins.get("ca_bundle", "default"),
                                      f"the collector's connection cannot be set up ({type(exc).__name__})",
                                      "keeping the connection made before" if self.reporter is not None
                                      else "keeping reports in the local spool")
            self.restart_needed.append(problem)
            log.warning("settings: %s", problem)
            return
        if self.reporter is not None:
            self.reporter.stop(timeout=2.0)
        self.reporter = fresh
        if fresh is not None:
            fresh.start()

    def _log_problems(self, before: Iterable[str] = ()) -> None:
        """Each settings problem once, when it appears, and once more when it is gone."""
        now = [str(p) for p in self.settings_problems]
        for line in now:
            if line not in before:
                log.warning("settings: %s", line)
        for line in before:
            if line not in now:
                log.info("settings: resolved: %s", line)

    def check_settings_source(self) -> None:
        """Reload when the managed source (or the enroll secret file) changed since it was last read."""
        if self.settings_source is None:
            return
        if self.settings_source.stamp(self.settings) != self._settings_stamp:
            self.reload("the managed settings changed")

    def full_scan(self) -> None:
        self.matches.clear()
        self.poll_processes(everything=True)
        self.scan_files()
        self._dirty = True
        self.scanned = True

    def run_once(self) -> int:
        """One full scan, spooled; then, with a collector, enroll if need be and drain the spool."""
        self._log_problems()
        self.network.state = self.network.state or "off: not run by --once"
        self.full_scan()
        self.resources.sample()
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
            if hasattr(signal, "SIGHUP"):
                signal.signal(signal.SIGHUP, self._on_hangup)
        self._log_problems()
        s = self.settings
        # Ready as soon as it can serve: settings read, state open, the local socket bound, the reporter
        # draining what the last run spooled. The first full scan is the loop's first tick, after READY: a
        # machine with huge homes can take longer than the unit's TimeoutStartSec to scan, and a start
        # that times out is killed and restarted, and scans from zero again.
        if "files" in self._on:
            self.files.start_watching()
        self.network.start()
        self._restart_reporter()
        self.start_local_socket()
        now = time.monotonic()
        due = self._due
        due.update({"processes": now + jittered(s.process_interval_s), "full": now,
                    "heartbeat": now + jittered(s.heartbeat_interval_s), "status": now,
                    "settings": now + SETTINGS_CHECK_S})
        if self.local_socket is None and self.local_socket_error:
            due["local_socket"] = now + LOCAL_SOCKET_RETRY_S
        watchdog_s = self.notifier.watchdog_interval_s
        if watchdog_s:
            due["watchdog"] = now
        self.write_status()  # `agentroster status` says it runs, and systemd's STATUS= that the scan is under way
        self.notifier.ready()
        log.info("ready under %s; the first full scan starts now; sensors: %s; collector: %s", self.root,
                 ", ".join(f"{k} {v}" for k, v in sorted(self.sensor_health().items())),
                 shown_url(self.settings.collector_url) if self.settings.collector_url
                 else "(none: reports are kept in the local spool)")
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                wake = min([*due.values(), *self.files.next_due()])
                events = self.events.get_all(max(0.0, wake - now))
                if self._stop.is_set():
                    break
                now = time.monotonic()
                self.keep_alive(now)  # from the loop (and a scan's progress): a wedged loop stops pinging
                try:
                    for event in events:  # a reload (SIGHUP) that fails is a failed tick, not a dead daemon
                        self._handle(event)
                    if now >= due["settings"]:
                        due["settings"] = now + SETTINGS_CHECK_S
                        self.check_settings_source()
                    self._tick(due)
                    self.tick_failures = 0
                except ScanStopped:  # a stop came in the middle of a scan: drop it, as the next run scans again
                    break
                except Exception as exc:  # one bad record or a transient error must not end the watch
                    self.tick_failures += 1
                    self._log_failure("tick", exc)
                    self._sleep(self.tick_backoff_s())  # a failure that repeats does not spin
        finally:
            self.shutdown()
        return 0

    def keep_alive(self, now: float) -> None:
        """Ping systemd's watchdog when it is due; called from the loop and from a scan's progress, never
        from a thread of its own, so that a wedged loop or a scan stuck on one read stops the pings."""
        due = self._due.get("watchdog")
        if due is not None and now >= due:
            self.notifier.watchdog()
            self._due["watchdog"] = now + self.notifier.watchdog_interval_s

    def scan_progress(self) -> None:
        """Called by a scan after each record and each home: a long scan that moves on keeps the watchdog
        pinged and the status row fresh (older than 30 s, `agentroster status` says not running), and a
        stop ends it (``ScanStopped``) instead of waiting for the last home."""
        if not self._due:  # not under run(): --once, or a caller of its own
            return
        if self._stop.is_set():
            raise ScanStopped
        now = time.monotonic()
        self.keep_alive(now)
        if now >= self._due["status"]:
            self._due["status"] = now + STATUS_EVERY_S
            self.write_status()
            self._status_in_scan = True  # the tick writes it again when the scan is done

    def _sleep(self, seconds: float) -> None:
        """Wait (a stop ends it), pinging the watchdog meanwhile: a loop backing off is not wedged."""
        end = time.monotonic() + seconds
        step = self.notifier.watchdog_interval_s or seconds
        while not self._stop.is_set() and (left := end - time.monotonic()) > 0:
            self._stop.wait(min(step, left))
            if step != seconds:
                self.notifier.watchdog()

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
        if event[0] == "reload":
            self.reload(event[1] if len(event) > 1 else "asked")
        elif event[0] == "files" and len(event) > 1:
            self.files.changed(event[1], time.monotonic())
        elif event[0] == "network":
            self._dirty = True

    def _tick(self, due: dict[str, float]) -> None:
        s = self.settings
        now = time.monotonic()
        ready = self.files.settled(now)
        if ready:
            self.scan_files(ready)
        slower = self.interval_factor  # > 1 while the resource guard sheds work
        if now >= due["processes"]:
            if self.poll_processes():
                self._dirty = True
            due["processes"] = now + jittered(s.process_interval_s * slower)
        first = not self.scanned
        if now >= due["full"]:
            self.full_scan()
            due["full"] = time.monotonic() + jittered(s.full_scan_interval_s * slower)
        if not self.scanned:  # nothing is spooled before the first full scan: an empty one would remove every sighting
            return
        heartbeat = now >= due["heartbeat"]
        if heartbeat:
            due["heartbeat"] = now + jittered(s.heartbeat_interval_s)
        if self._dirty or heartbeat:
            self.publish(heartbeat=heartbeat)
        if first:
            log.info("first scan done in %.1f s: watching %d homes and %d processes under %s: %d sightings",
                     time.monotonic() - now, len(self.files.homes), len(self.processes.records), self.root,
                     len(self.last_sightings))
        if now >= due.get("local_socket", float("inf")):
            self.start_local_socket()
            if self.local_socket is None:
                due["local_socket"] = now + LOCAL_SOCKET_RETRY_S
            else:
                del due["local_socket"]
        if now >= due["status"] or self._status_in_scan:
            self._status_in_scan = False
            self.check_resources()
            self.write_status()
            due["status"] = now + STATUS_EVERY_S

    def start_local_socket(self) -> None:
        """The socket where users list and register their own agents (``endpoint/service/localsock.py``; a
        named pipe on Windows); without it (a bad path, a name another process holds) ``agentroster
        register`` needs root, and the daemon runs on."""
        from endpoint.service.localsock import LocalSocketError, serve, socket_path
        from endpoint.service.registration.socket_handler import Handler

        path = socket_path(self.settings.data_dir)
        try:
            server = serve(path, Handler(self.settings.data_dir, ca_bundle=self.settings.ca_bundle))
            server.start()
        except (LocalSocketError, NotImplementedError, OSError) as exc:
            # tried again every LOCAL_SOCKET_RETRY_S by the loop (a name another process held may come free);
            # `agentroster status` shows why, and the log says it once per reason, not every minute
            if str(exc) != self.local_socket_error:
                log.warning("local socket: %s; `agentroster register` needs %s", exc,
                            "an administrator" if PLATFORM == "windows" else "sudo")
            self.local_socket_error = str(exc)
            return
        self.local_socket = server
        if self.local_socket_error:
            log.info("local socket: %s (served after all: %s)", path, self.local_socket_error)
        else:
            log.info("local socket: %s", path)
        self.local_socket_error = ""

    def shutdown(self) -> None:
        """Flush state and stop every thread, within about a second."""
        self.notifier.stopping()
        if self.local_socket is not None:
            self.local_socket.stop()
            self.local_socket = None
        self.files.stop()
        if self.network.running:
            self.network.stop("stopped")
        if self.reporter is not None:
            self.reporter.stop(timeout=0.5)
        self.write_status()
        self.notifier.close()
        log.info("stopped")


def one_line(doc: dict[str, Any]) -> str:
    """The daemon's state in one line, for ``systemctl status`` (sd_notify's STATUS=)."""
    problems = len(doc.get("settings_problems") or [])
    spool = doc.get("spool") or {}
    found = f"{doc.get('sightings', 0)} sightings" if doc.get("last_scan_at") else "first scan under way"
    parts = [found, "enrolled" if doc.get("enrolled") else
             ("not enrolled" if doc.get("collector_url") else "no collector: spooling locally"),
             f"{spool.get('reports', 0)} reports queued"]
    if problems:
        parts.append(f"{problems} settings problem{'s' if problems != 1 else ''} (agentroster status)")
    return "; ".join(parts)


def run_daemon(settings: Settings, *, once: bool = False, enroll_secret: Callable[[], str | None] | None = None,
               settings_source: SettingsSource | None = None, loaded: Loaded | None = None,
               notifier: Notifier | None = None, lock: InstanceLock | None = None) -> int:
    """Run the daemon (or one pass of it) holding the data dir's single-instance lock; raises
    ``AlreadyRunning`` when another daemon holds it."""
    from endpoint.service.instance_lock import InstanceLock

    lock = lock or InstanceLock(settings.data_dir)
    if not lock.held:
        lock.acquire()
    try:
        daemon = Daemon(settings, enroll_secret=enroll_secret, settings_source=settings_source, loaded=loaded,
                        notifier=notifier if notifier is not None else (Notifier(None) if once else Notifier.from_env()))
        return daemon.run_once() if once else daemon.run()
    finally:
        lock.release()
