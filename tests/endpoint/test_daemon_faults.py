"""The daemon under a unit that breaks the code: the report's health says so, the rest is reported, a
failing tick backs off instead of spinning, and one failure is logged once an hour, not at every rescan.

Failures are injected with pytest's monkeypatch into one real function for ONE unit (a mock, said as
the brief asks); the daemon, its state file, the homes and their files are real.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from contract.validation import DEVICE_STATUS, REPORT
from endpoint.scan import faults
from endpoint.scan.engine import declarations
from endpoint.service.daemon import TICK_BACKOFF_MAX_S, Daemon
from endpoint.service.settings import load_settings
from endpoint.service.status import render

GOOD = 50


@pytest.fixture
def root(tmp_path: Path) -> Path:
    home = tmp_path / "root" / "home" / "alice"
    (home / ".cursor").mkdir(parents=True)
    servers = {f"good-{i}": {"command": "npx", "args": ["-y", f"@example/good-{i}"]} for i in range(GOOD)}
    servers["poison"] = {"type": "sse", "url": "https://${input:domain}/sse"}
    (home / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    return tmp_path / "root"


def _daemon(tmp_path: Path, root: Path) -> Daemon:
    settings, _ = load_settings({"data_dir": str(tmp_path / "data"), "root": str(root), "sensors": "files"}, env={})
    return Daemon(settings)


def _poison_redact_url(monkeypatch: pytest.MonkeyPatch) -> None:
    real = declarations.redact_url

    def broken(url: str) -> str:  # the mock: issue 9's crash, for this one URL, kept after its fix
        if "${input:" in url:
            raise ValueError(f"Port could not be cast to integer value as '{url}'")
        return real(url)

    monkeypatch.setattr(declarations, "redact_url", broken)


def test_a_failing_unit_is_one_error_and_the_health_says_so(tmp_path: Path, root: Path, monkeypatch, caplog):
    _poison_redact_url(monkeypatch)
    daemon = _daemon(tmp_path, root)
    try:
        with caplog.at_level(logging.WARNING, logger="agentroster.daemon"):
            daemon.full_scan()
            daemon.publish()
            for _ in range(5):  # rescans of the same file: the failure is logged once, not at each
                daemon.scan_files()
                daemon.publish()
        names = {s["name"] for s in daemon.last_sightings if s["type"] == "tool_server"}
        assert {f"good-{i}" for i in range(GOOD)} <= names and "poison" not in names
        [error] = [e for e in daemon.last_errors if e["error"] == "internal"]
        assert error["where"] == "/home/alice/.cursor/mcp.json#/mcpServers/poison"
        status = DEVICE_STATUS.validate_python(daemon.device_status())  # the report's own contract
        assert status["units_failed"] == 1 and status["degraded"] == ["files"]
        assert daemon.status()["units_failed"] == 1
        assert "last scan:  incomplete: 1 unit could not be processed (files)" in render(daemon.status())
        logged = [r for r in caplog.records if "mcpServers/poison" in r.getMessage()]
        assert len(logged) == 1
        assert "${input" not in caplog.text
    finally:
        daemon.inventory.close()


def test_a_scan_without_failures_reports_a_clean_health(tmp_path: Path, root: Path):
    daemon = _daemon(tmp_path, root)
    try:
        daemon.full_scan()
        daemon.publish()
        status = daemon.device_status()
        if any(e["error"] == "internal" for e in daemon.last_errors):  # the URL itself breaks redact_url
            assert status["units_failed"] == 1
        else:
            assert status["units_failed"] == 0 and status["degraded"] == []
    finally:
        daemon.inventory.close()


def test_a_tick_that_keeps_failing_backs_off_and_is_logged_once(tmp_path: Path, root: Path, monkeypatch, caplog):
    daemon = _daemon(tmp_path, root)
    calls: list[float] = []

    def broken(due: dict[str, float]) -> None:  # the mock: every tick fails the same way
        calls.append(time.monotonic())
        raise RuntimeError("tick bug")

    monkeypatch.setattr(daemon, "_tick", broken)
    monkeypatch.setattr(daemon, "start_local_socket", lambda: None)
    thread = threading.Thread(target=daemon.run)
    with caplog.at_level(logging.WARNING, logger="agentroster.daemon"):
        thread.start()
        time.sleep(4.5)
        daemon.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    # waits of 1, 2, 4 s: three ticks in 4.5 s (a once-a-second loop would have made five)
    assert 2 <= len(calls) <= 3, calls
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert all(g >= 0.9 for g in gaps) and gaps == sorted(gaps)
    failures = [r for r in caplog.records if "tick failed" in r.getMessage()]
    assert len(failures) == 1


def test_backoff_doubles_up_to_its_cap(tmp_path: Path, root: Path):
    daemon = _daemon(tmp_path, root)
    try:
        waits = []
        for failures in range(1, 14):
            daemon.tick_failures = failures
            waits.append(daemon.tick_backoff_s())
        assert waits[:4] == [1.0, 2.0, 4.0, 8.0] and waits[-1] == TICK_BACKOFF_MAX_S and waits == sorted(waits)
    finally:
        daemon.inventory.close()


def test_log_limit_is_once_per_unit_per_hour_and_bounded():
    limit = faults.LogLimit(period_s=3600, max_units=3)
    assert limit.due("a", 0) and not limit.due("a", 10) and not limit.due("a", 3599)
    assert limit.due("b", 10) and limit.due("a", 3601)
    for unit in "cdef":
        assert limit.due(unit, 20)
    assert len(limit._last) == 3  # the oldest forgotten: the memory does not grow with the units


def test_a_sighting_that_cannot_be_encoded_is_one_error_and_the_others_are_spooled(tmp_path: Path):
    """A bug upstream that leaves something JSON cannot hold in one sighting (here a set: built by the
    test, no mock) costs that sighting, not the device's report."""
    from endpoint.service.inventory import Inventory

    inventory = Inventory(tmp_path / "data")
    try:
        good = [{**_contract_sighting(f"{i:020d}"), "name": f"good-{i}"} for i in range(20)]
        bad = {**_contract_sighting("b" * 20), "flags": {"broad_tools"}}
        device = {"id": "m1", "hostname": "h", "os": "linux", "agentroster_version": "0"}
        spooled = inventory.record([*good[:10], bad, *good[10:]], device=device, snapshot=True, now=1.0)
        assert spooled is not None
        report = json.loads(spooled.body)
        REPORT.validate_python({**report, "sent_at": "2026-01-01T00:00:00+00:00"})
        assert [s["name"] for s in report["upserts"]] == [f"good-{i}" for i in range(20)]
        [error] = report["errors"]
        assert error["where"] == f"sighting {'b' * 20}" and error["error"] == "internal"
        assert error["detail"].startswith("TypeError")
        assert inventory.unencodable == 1
    finally:
        inventory.close()


def _contract_sighting(sid: str) -> dict:
    return {"id": sid, "signature": None, "name": "x", "vendor": "", "type": "unknown", "user": "alice",
            "running": False, "confidence": 0.5, "parent": None, "processes": [], "configs": [], "mcp_servers": [],
            "endpoints": [], "credentials": [], "flags": [], "evidence": [], "first_seen": "2026-01-01T00:00:00+00:00",
            "last_seen": "2026-01-01T00:00:00+00:00"}
