"""``agentroster status``: what the daemon last wrote about itself, read from its state file read-only."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STALE_AFTER_S = 30.0  # the daemon writes its status every few seconds; older than this, it is not running


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
    doc.setdefault("collector_url", meta.get("collector_url"))
    doc["device_id"] = meta.get("device_id")
    doc["epoch"] = meta.get("epoch")
    doc["next_seq"] = int(meta.get("next_seq", 1))
    doc["acked_seq"] = int(meta.get("acked_seq", 0))
    doc["acked_at"] = float(meta["acked_at"]) if "acked_at" in meta else None
    # the spool as it is now (the daemon's row may be a few seconds old)
    doc["spool"] = {**doc.get("spool", {}), "reports": spool.reports, "bytes": spool.bytes}
    doc["data_dir"] = str(Path(data_dir))
    return doc


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
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
        f"collector:  {doc.get('collector_url') or '(none configured)'}",
        f"enrolled:   {'yes, device ' + str(doc.get('device_id')) if doc.get('enrolled') else 'no'}",
        f"reports:    epoch {doc.get('epoch')}, last sent seq {reporter.get('last_sent_seq') or '-'} "
        f"{_when(reporter.get('last_sent_at'), now)}; last acked seq {doc.get('acked_seq') or '-'} "
        f"{_when(doc.get('acked_at'), now)}",
        f"queue:      {spool.get('reports', 0)} reports, {spool.get('bytes', 0)} bytes"
        + (f" of {spool['max_bytes']}" if spool.get("max_bytes") else "")
        + f"; spool {spool.get('health', 'normal')}"
        + (f", coalesced {spool['coalesced']}x" if spool.get("coalesced") else ""),
    ]
    if reporter.get("last_error"):
        lines.append(f"last error: {reporter['last_error']} ({_when(reporter.get('last_error_at'), now)})")
    if spool.get("error"):
        lines.append(f"spool:      {spool['error']}")
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
