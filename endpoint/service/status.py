"""The daemon's status: what it writes about itself every few seconds (and each report carries), and
``agentroster status``, which reads that back from its state file read-only and renders it.

``agentroster status`` exits with an LSB status code that MDM detection scripts test (``exit_code``):
0 running and enrolled (a report acknowledged), 3 not running, 4 unknown (no state, or it cannot be
read), and two from LSB's range for applications: ``RUNNING_NOT_ENROLLED`` and ``SETTINGS_PROBLEM``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from endpoint.service.settings import shown_url

if TYPE_CHECKING:
    from contract.scan import ScanError, Sighting
    from endpoint.service.inventory import Inventory
    from endpoint.service.reporter import Reporter
    from endpoint.service.settings import Settings, SettingsProblem
    from endpoint.service.trackers.files import FileTracker
    from endpoint.service.trackers.network import NetworkTracker
    from endpoint.service.trackers.processes import ProcessTracker

STALE_AFTER_S = 30.0  # the daemon writes its status every few seconds; older than this, it is not running

# LSB's init-script status codes (0-4), and two of its 150-199 range, reserved for applications
RUNNING_OK = 0
NOT_RUNNING = 3
UNKNOWN = 4
RUNNING_NOT_ENROLLED = 150  # running, but no device key or no report acknowledged yet (e.g. no collector)
SETTINGS_PROBLEM = 151  # running, but some setting was refused (the status's settings_problems say which)


# -- what the daemon writes -------------------------------------------------------------------------------


class SelfSample:
    """This process's own CPU (since the last sample) and RSS, as the status shows them."""

    def __init__(self) -> None:
        self.cpu_percent = 0.0
        self.rss_mb = 0.0
        self._proc: Any = None

    def sample(self) -> None:
        import psutil

        if self._proc is None:
            self._proc = psutil.Process()
            self._proc.cpu_percent(None)
        try:
            self.cpu_percent = round(self._proc.cpu_percent(None), 2)
            self.rss_mb = round(self._proc.memory_info().rss / (1 << 20), 1)
        except psutil.Error:
            pass


class DaemonState(Protocol):
    """What the status is made of: the daemon's parts (``endpoint.service.daemon.Daemon``)."""

    settings: Settings
    inventory: Inventory
    reporter: Reporter | None
    processes: ProcessTracker
    resources: SelfSample
    device: dict[str, Any]
    started_at: float
    last_scan_at: float | None
    last_fingerprint_s: float
    last_sightings: list[Sighting]
    last_errors: list[ScanError]
    units_failed: int
    degraded: list[str]
    tick_failures: int
    spool_error: str
    local_socket_error: str
    shed_level: int
    shed_reason: str
    cpu_percent_window: float | None

    def sensor_health(self) -> dict[str, str]: ...

    @property
    def settings_problems(self) -> list[SettingsProblem]: ...


def sensor_health(sensors_on: frozenset[str], *, files: FileTracker, network: NetworkTracker) -> dict[str, str]:
    """Each sensor's state in a few words: "ok…", "limited: …" or "off: why"."""
    health: dict[str, str] = {}
    network_health = network.health()
    if network_health is not None:
        health["network"] = network_health
    health["processes"] = "ok" if "processes" in sensors_on else "off: not in the sensors setting"
    health["files"] = files.health() if "files" in sensors_on else "off: not in the sensors setting"
    return health


def scan_health(daemon: DaemonState) -> dict[str, Any]:
    """The last scan's units_failed and degraded sensors, with the sightings the inventory could not
    encode (the fingerprint's units too)."""
    unencodable = daemon.inventory.unencodable
    failed, degraded = daemon.units_failed + unencodable, set(daemon.degraded)
    if unencodable:
        degraded.add("fingerprint")
    return {"units_failed": min(failed, 1_000_000), "degraded": sorted(degraded)}


def device_status(daemon: DaemonState) -> dict[str, Any]:
    """The DeviceStatus each report carries."""
    stats = daemon.inventory.spool_stats()
    return {"spool": stats.health, "spool_reports": stats.reports, "spool_bytes": stats.bytes,
            "shedding": daemon.shed_level > 0, "cpu_percent": daemon.resources.cpu_percent,
            "rss_mb": daemon.resources.rss_mb, "sensors": daemon.sensor_health(), **scan_health(daemon)}


def daemon_status(daemon: DaemonState) -> dict[str, Any]:
    """What the daemon writes for ``agentroster status``."""
    inventory = daemon.inventory
    meta = inventory.meta()
    stats = inventory.spool_stats()
    from endpoint.service.settings import shown_url

    url = daemon.settings.collector_url
    return {
        "pid": os.getpid(), "started_at": daemon.started_at, "collector_url": shown_url(url) if url else None,
        "enrolled": inventory.device_key() is not None, "device_id": meta.get("device_id"),
        "device": daemon.device, "epoch": inventory.epoch, "next_seq": int(meta.get("next_seq", 1)),
        "acked_seq": int(meta.get("acked_seq", 0)), "acked_at": float(meta.get("acked_at", 0)) or None,
        "spool": {"health": stats.health, "reports": stats.reports, "bytes": stats.bytes,
                  "max_bytes": inventory.spool_max_bytes, "coalesced": stats.coalesced,
                  "error": daemon.spool_error},
        "reporter": daemon.reporter.stats.as_dict() if daemon.reporter else None,
        "sensors": daemon.sensor_health(), "shedding": daemon.shed_level > 0, "shed_level": daemon.shed_level,
        "shed_reason": daemon.shed_reason, "cpu_percent": daemon.resources.cpu_percent,
        "cpu_percent_window": daemon.cpu_percent_window, "rss_mb": daemon.resources.rss_mb,
        "sightings": len(daemon.last_sightings), "errors": len(daemon.last_errors), **scan_health(daemon),
        "tick_failures": daemon.tick_failures, "last_scan_at": daemon.last_scan_at,
        "fingerprint_ms": round(daemon.last_fingerprint_s * 1000, 1), "processes": len(daemon.processes.records),
        "settings_problems": [p.as_dict() for p in daemon.settings_problems],
        "settings_warnings": list(daemon.settings.warnings),
        "local_socket_error": daemon.local_socket_error or None,
    }


# -- what `agentroster status` reads ------------------------------------------------------------------------


def read_status(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The status document, with what the state file says besides (raises ``StateError`` if there is none)."""
    from endpoint.service.inventory import Inventory

    inventory = Inventory(data_dir, readonly=True)
    try:
        found = inventory.read_status()
        meta = inventory.meta()
        spool = inventory.spool_stats()
        enrolled = inventory.device_key() is not None
    finally:
        inventory.close()
    updated, doc = found if found is not None else (None, {})
    doc = dict(doc)
    doc["status_updated_at"] = updated
    doc["running"] = updated is not None and time.time() - updated < STALE_AFTER_S and _alive(doc.get("pid"))
    doc["enrolled"] = enrolled
    if "collector_url" not in doc:  # no status row yet: the state's URL, shown as the status row shows it
        stored = meta.get("collector_url")
        doc["collector_url"] = shown_url(stored) if isinstance(stored, str) and stored else None
    doc["device_id"] = meta.get("device_id")
    doc["epoch"] = meta.get("epoch")
    doc["next_seq"] = int(meta.get("next_seq", 1))
    doc["acked_seq"] = int(meta.get("acked_seq", 0))
    doc["acked_at"] = float(meta["acked_at"]) if "acked_at" in meta else None
    # the spool as it is now (the daemon's row may be a few seconds old)
    doc["spool"] = {**doc.get("spool", {}), "reports": spool.reports, "bytes": spool.bytes}
    doc["data_dir"] = str(Path(data_dir))
    doc.setdefault("settings_problems", [])
    doc.setdefault("settings_warnings", [])
    # what MDM scripts read, under plain names
    doc["version"] = _version()
    doc["spool_depth"] = doc["spool"]["reports"]
    doc["last_report_acked_at"] = _iso(doc["acked_at"])
    doc["exit_code"] = exit_code(doc)
    return doc


def exit_code(doc: Mapping[str, Any]) -> int:
    """The LSB status code for a status document (see the module's docstring)."""
    if not doc.get("running"):
        return NOT_RUNNING
    if doc.get("settings_problems"):
        return SETTINGS_PROBLEM
    if not doc.get("enrolled") or not doc.get("acked_at"):
        return RUNNING_NOT_ENROLLED
    return RUNNING_OK


def _version() -> str:
    import contract

    return contract.__version__


def _iso(ts: object) -> str | None:
    if not isinstance(ts, int | float) or not ts:
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill there is TerminateProcess whatever the signal: it would end the daemon
        import psutil

        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _when(ts: object, now: float) -> str:
    if not isinstance(ts, int | float) or not ts:
        return "never"
    ago = max(0.0, now - float(ts))
    stamp = datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")
    if ago < 120:
        return f"{stamp} ({ago:.0f} s ago)"
    if ago < 7200:
        return f"{stamp} ({ago / 60:.0f} min ago)"
    return f"{stamp} ({ago / 3600:.1f} h ago)"


def render(doc: Mapping[str, Any], *, now: float | None = None) -> str:
    """The status as lines a person reads."""
    now = time.time() if now is None else now
    reporter = doc.get("reporter") or {}
    spool = doc.get("spool") or {}
    lines = [
        f"daemon:     {'running' if doc.get('running') else 'not running'}"
        + (f" (pid {doc['pid']})" if doc.get("running") and doc.get("pid") else "")
        + f"; status written {_when(doc.get('status_updated_at'), now)}",
        f"collector:  {doc.get('collector_url') or '(none configured: reports are kept in the local spool)'}",
        f"enrolled:   {'yes, device ' + str(doc.get('device_id')) if doc.get('enrolled') else 'no'}",
        f"reports:    epoch {doc.get('epoch')}, last sent seq {reporter.get('last_sent_seq') or '-'} "
        f"{_when(reporter.get('last_sent_at'), now)}; last acked seq {doc.get('acked_seq') or '-'} "
        f"{_when(doc.get('acked_at'), now)}",
        f"queue:      {spool.get('reports', 0)} reports, {spool.get('bytes', 0)} bytes"
        + (f" of {spool['max_bytes']}" if spool.get("max_bytes") else "")
        + f"; spool {spool.get('health', 'normal')}"
        + (f", coalesced {spool['coalesced']}x" if spool.get("coalesced") else ""),
    ]
    for problem in doc.get("settings_problems") or []:
        lines.append(f"settings:   {problem.get('message', problem) if isinstance(problem, Mapping) else problem}")
    for warning in doc.get("settings_warnings") or []:
        lines.append(f"settings:   warning: {warning}")
    if reporter.get("last_error"):
        lines.append(f"last error: {reporter['last_error']} ({_when(reporter.get('last_error_at'), now)})")
    if spool.get("error"):
        lines.append(f"spool:      {spool['error']}")
    if doc.get("local_socket_error"):
        lines.append(f"local socket: {doc['local_socket_error']} (users cannot list or register their agents "
                     "without an administrator or sudo; tried again every minute)")
    for name, health in sorted((doc.get("sensors") or {}).items()):
        lines.append(f"sensor:     {name}: {health}")
    reason = str(doc.get("shed_reason") or "")
    lines.append(f"shedding:   {'yes: ' + reason if doc.get('shedding') else 'no' + (f' ({reason})' if reason else '')}")
    window = doc.get("cpu_percent_window")
    lines.append(f"resources:  {doc.get('cpu_percent', 0)} % CPU now"
                 + (f", {window:.2f} % over the guard's window" if isinstance(window, int | float) else "")
                 + f", {doc.get('rss_mb', 0)} MB RSS")
    if doc.get("last_scan_at"):
        lines.append(f"sightings:  {doc.get('sightings', 0)} ({doc.get('errors', 0)} errors), last change "
                     f"{_when(doc.get('last_scan_at'), now)}")
    failed, degraded = doc.get("units_failed") or 0, doc.get("degraded") or []
    lines.append("last scan:  " + (f"incomplete: {failed} unit{'s' if failed != 1 else ''} could not be processed"
                                   f" ({', '.join(map(str, degraded))}); each is an internal error in the report"
                                   if failed else "complete"))
    if doc.get("tick_failures"):
        lines.append(f"failing:    {doc['tick_failures']} ticks in a row failed; retrying with backoff (see the log)")
    return "\n".join(lines)
