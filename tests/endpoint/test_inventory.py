"""The inventory: pure diffing of sighting sets, and the state file (a real SQLite file in tmp_path):
sequence, epoch, spool, coalescing under a byte cap and on a full disk, the device key's file."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from contract.report import finish_body, split_report
from contract.validation import REPORT
from endpoint.service.inventory import (
    Inventory,
    SpoolFull,
    StateError,
    carry_first_seen,
    clean_text,
    content_hash,
    diff,
    spool_health,
)

DEVICE = {"id": "host:test", "hostname": "test", "os": "linux", "os_version": "", "arch": "x86_64",
          "agentroster_version": "0.1.0"}


def sighting(sid: str = "a" * 20, name: str = "Claude Code", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": sid, "signature": "claude-code", "name": name, "vendor": "Anthropic", "type": "coding",
        "user": "alice", "running": False, "confidence": 0.7, "parent": None, "processes": [],
        "configs": [{"path": "/home/alice/.claude.json", "client": "claude-code", "format": "json", "scope": "user"}],
        "mcp_servers": [], "endpoints": [], "credentials": [], "flags": [], "evidence": [],
        "first_seen": "2026-01-01T00:00:00+00:00", "last_seen": "2026-01-01T00:00:00+00:00",
    }
    doc.update(extra)
    return doc


def endpoint(count: int = 1, last_seen: float = 1.0, host: str = "api.anthropic.com") -> dict[str, Any]:
    return {"host": host, "port": 443, "provider": "anthropic", "via": "sni", "first_seen": 1.0,
            "last_seen": last_seen, "count": count}


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    return Inventory(tmp_path / "data", spool_max_bytes=1 << 20)


def body(spooled: Any) -> dict[str, Any]:
    return dict(json.loads(finish_body(spooled.body, sent_at="2026-01-01T00:00:00+00:00", status={})))


# -- pure --------------------------------------------------------------------------------------------


def test_identical_sets_have_no_delta():
    a = sighting()
    assert diff({a["id"]: content_hash(a)}, [dict(a)]).empty


def test_a_new_sighting_and_a_changed_one_are_upserts_and_a_missing_one_is_removed():
    same, changed, gone = sighting("1" * 20), sighting("2" * 20), sighting("3" * 20)
    stored = {s["id"]: content_hash(s) for s in (same, changed, gone)}
    new = sighting("4" * 20)
    delta = diff(stored, [same, {**changed, "flags": ["autonomous"]}, new])
    assert [s["id"] for s in delta.upserts] == ["2" * 20, "4" * 20]
    assert delta.removed == ["3" * 20]


def test_last_seen_and_endpoint_counters_alone_are_not_a_change():
    a = sighting(endpoints=[endpoint(count=1, last_seen=1.0)])
    stored = {a["id"]: content_hash(a)}
    later = {**a, "last_seen": "2026-02-01T00:00:00+00:00", "endpoints": [endpoint(count=40, last_seen=99.0)]}
    assert diff(stored, [later]).empty
    another_host = {**a, "endpoints": [endpoint(), endpoint(host="api.openai.com")]}
    assert len(diff(stored, [another_host]).upserts) == 1


def test_first_seen_is_carried_from_the_stored_sighting():
    a = sighting(first_seen="2026-03-03T00:00:00+00:00")
    out = carry_first_seen([a, sighting("b" * 20)], {a["id"]: "2025-01-01T00:00:00+00:00"})
    assert out[0]["first_seen"] == "2025-01-01T00:00:00+00:00"
    assert out[1]["first_seen"] == "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(("used", "health"), [(0, "normal"), (899, "normal"), (900, "warning"), (999, "warning"),
                                              (1000, "full"), (5000, "full")])
def test_spool_health(used, health):
    assert spool_health(used, 1000) == health


def test_text_that_is_not_utf8_is_made_valid():
    cleaned = clean_text({"cmdline": ["caf\udce9", "ok"], "name": "x\ud800"})
    json.dumps(cleaned, ensure_ascii=False).encode("utf-8")
    assert cleaned["cmdline"][1] == "ok" and "\ufffd" in cleaned["cmdline"][0]


# -- the state file ----------------------------------------------------------------------------------


def many(count: int) -> list[dict[str, Any]]:
    return [sighting(f"{i:020d}", name=f"server {i}", evidence=[{"kind": "config", "rule": "mcp", "detail": "x" * 300}])
            for i in range(count)]


def test_a_report_within_the_limit_is_one_body():
    upserts = many(3)
    (only,) = split_report(epoch="e", seq=7, kind="snapshot", device=DEVICE, upserts=upserts, removed=[], errors=[])
    assert only[0] == "snapshot"
    assert "part" not in json.loads(only[1]) and json.loads(only[1])["upserts"] == upserts


def test_a_snapshot_over_the_limit_comes_in_parts_that_each_fit():
    upserts = many(120)
    errors = [{"where": "/home/alice/.claude.json", "error": "syntax", "detail": "line 3"}]
    bodies = split_report(epoch="e", seq=7, kind="snapshot", device=DEVICE, upserts=upserts, removed=[],
                          errors=errors, max_bytes=16 << 10)
    docs = [json.loads(finish_body(b, sent_at="2026-01-01T00:00:00+00:00", status={})) for _, b in bodies]
    assert len(docs) >= 4
    assert all(len(b) <= (16 << 10) - 4096 for _, b in bodies)
    assert [d["seq"] for d in docs] == list(range(7, 7 + len(docs)))
    assert [(d["part"], d["parts"], d["kind"]) for d in docs] == [(i, len(docs), "snapshot") for i in range(1, len(docs) + 1)]
    assert [u for d in docs for u in d["upserts"]] == upserts  # every sighting once, in order
    assert docs[0]["errors"] == errors and all(not d["errors"] for d in docs[1:])
    for doc in docs:
        REPORT.validate_python(doc, strict=True)


def test_a_delta_over_the_limit_is_several_deltas_with_the_removals_first():
    upserts = many(60)
    bodies = split_report(epoch="e", seq=3, kind="delta", device=DEVICE, upserts=upserts, removed=["gone-1"],
                          errors=[], max_bytes=16 << 10)
    docs = [json.loads(b) for _, b in bodies]
    assert len(docs) >= 2 and {d["kind"] for d in docs} == {"delta"}
    assert all("part" not in d for d in docs)
    assert [d["removed"] for d in docs] == [["gone-1"]] + [[]] * (len(docs) - 1)
    assert [u for d in docs for u in d["upserts"]] == upserts


def test_a_sighting_too_big_for_any_report_is_cut_and_says_so():
    """A config a user controls declaring thousands of MCP servers cannot stop the device from reporting."""
    servers = [{"name": f"s{i}", "transport": "stdio", "command": "uvx", "args": [f"pkg-{i}"], "url": None,
                "source": "/home/alice/.claude.json", "enabled": True, "project": None} for i in range(2000)]
    huge = sighting("h" * 20, mcp_servers=servers)
    bodies = split_report(epoch="e", seq=1, kind="snapshot", device=DEVICE, upserts=[sighting(), huge, sighting("b" * 20)],
                          removed=[], errors=[], max_bytes=64 << 10)
    docs = [json.loads(finish_body(b, sent_at="2026-01-01T00:00:00+00:00", status={})) for _, b in bodies]
    assert all(len(b) <= (64 << 10) - 4096 for _, b in bodies)
    sent = {u["id"]: u for d in docs for u in d["upserts"]}
    assert set(sent) == {"a" * 20, "h" * 20, "b" * 20}
    kept = sent["h" * 20]["mcp_servers"]
    assert 0 < len(kept) < 2000 and kept == servers[:len(kept)]  # the first ones, as they were
    (note,) = [e for d in docs for e in d["errors"]]
    assert note["where"] == "sighting " + "h" * 20 and note["error"] == "truncated"
    assert note["detail"].startswith(f"{2000 - len(kept)} mcp_servers left out")
    for doc in docs:
        REPORT.validate_python(doc, strict=True)


def test_removed_ids_that_do_not_fit_one_delta_go_in_several():
    gone = [f"{i:020d}" for i in range(3000)]
    bodies = split_report(epoch="e", seq=5, kind="delta", device=DEVICE, upserts=many(10), removed=gone, errors=[],
                          max_bytes=16 << 10)
    docs = [json.loads(b) for _, b in bodies]
    assert all(len(b) <= (16 << 10) - 4096 for _, b in bodies)
    assert [r for d in docs for r in d["removed"]] == gone
    assert [u["id"] for d in docs for u in d["upserts"]] == [f"{i:020d}" for i in range(10)]
    assert [d["seq"] for d in docs] == list(range(5, 5 + len(docs)))


def test_the_inventory_spools_a_big_snapshot_in_parts_and_acks_them_in_order(tmp_path):
    inv = Inventory(tmp_path / "data", max_report_bytes=16 << 10)
    last = inv.record(many(80), device=DEVICE)
    assert last is not None
    stats = inv.spool_stats()
    assert stats.reports >= 3 and last.seq == stats.reports and inv.next_seq == last.seq + 1
    first = inv.pending()
    assert first is not None and body(first)["part"] == 1
    inv.acked(first.seq)
    assert body(inv.pending())["part"] == 2
    # the next delta follows the last part
    delta = inv.record(many(81), device=DEVICE)
    assert delta is not None and delta.kind == "delta" and delta.seq == last.seq + 1


def test_a_new_state_starts_an_epoch_with_a_snapshot(inventory):
    first = inventory.record([sighting()], device=DEVICE)
    assert (first.seq, first.kind) == (1, "snapshot")
    assert len(inventory.epoch) == 16 and inventory.epoch == inventory.meta()["epoch"]
    report = REPORT.validate_python(body(first))
    assert report["epoch"] == inventory.epoch and [s["id"] for s in report["upserts"]] == ["a" * 20]


def test_nothing_changed_is_nothing_or_a_heartbeat_once_the_spool_is_empty(inventory):
    first = inventory.record([sighting()], device=DEVICE)
    assert inventory.record([sighting()], device=DEVICE) is None
    assert inventory.record([sighting()], device=DEVICE, heartbeat=True) is None  # a report waits already
    inventory.acked(first.seq)
    beat = inventory.record([sighting()], device=DEVICE, heartbeat=True)
    assert (beat.seq, beat.kind) == (2, "heartbeat")
    assert body(beat)["upserts"] == [] and body(beat)["removed"] == []


def test_a_change_is_a_delta_with_upserts_and_removals(inventory):
    inventory.record([sighting("a" * 20), sighting("b" * 20)], device=DEVICE)
    delta = inventory.record([{**sighting("a" * 20), "running": True}, sighting("c" * 20)], device=DEVICE)
    doc = body(delta)
    assert (delta.seq, delta.kind) == (2, "delta")
    assert sorted(s["id"] for s in doc["upserts"]) == ["a" * 20, "c" * 20]
    assert doc["removed"] == ["b" * 20]
    assert sorted(s["id"] for s in inventory.stored_sightings()) == ["a" * 20, "c" * 20]


def test_errors_are_sent_when_they_change(inventory):
    inventory.record([sighting()], device=DEVICE, errors=[{"where": "/x", "error": "syntax", "detail": "line 1"}])
    inventory.acked(1)
    again = inventory.record([sighting()], device=DEVICE, errors=[{"where": "/x", "error": "syntax",
                                                                   "detail": "line 1"}])
    assert again is None
    fixed = inventory.record([sighting()], device=DEVICE, errors=[])
    assert fixed is not None and fixed.kind == "delta" and body(fixed)["errors"] == []


def test_acked_reports_leave_the_spool_in_order(inventory):
    for n in range(4):
        inventory.record([sighting(name=f"v{n}")], device=DEVICE)
    assert inventory.pending().seq == 1
    inventory.acked(2)
    assert inventory.pending().seq == 3 and inventory.acked_seq == 2
    assert inventory.spool_stats().reports == 2


def test_state_survives_a_reopen_with_the_same_epoch_and_spool(tmp_path):
    first = Inventory(tmp_path / "d")
    first.record([sighting()], device=DEVICE)
    first.record([sighting(name="changed")], device=DEVICE)
    epoch = first.epoch
    first.db.close()  # as a kill would leave it: no orderly close
    again = Inventory(tmp_path / "d")
    assert again.epoch == epoch and again.next_seq == 3
    assert [again.pending().seq, again.spool_stats().reports] == [1, 2]
    assert again.record([sighting(name="changed")], device=DEVICE) is None


def test_data_dir_state_and_key_files_are_private(tmp_path):
    inv = Inventory(tmp_path / "data")
    inv.save_enrollment("ard_FAKEKEY", device_id="d1", collector_url="https://collector.example")
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE(inv.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(inv.key_path.stat().st_mode) == 0o600
    assert inv.device_key() == "ard_FAKEKEY" and inv.meta()["device_id"] == "d1"
    inv.forget_device_key()
    assert inv.device_key() is None and "device_id" not in inv.meta()


def test_a_loose_data_dir_is_tightened(tmp_path):
    loose = tmp_path / "data"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    Inventory(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_the_spool_past_its_cap_is_coalesced_into_one_snapshot(tmp_path):
    inv = Inventory(tmp_path / "d", spool_max_bytes=6000)
    current = [sighting(f"{n:020d}") for n in range(3)]
    inv.record(current, device=DEVICE)
    for n in range(30):
        current = [*current[:3], sighting(f"{100 + n:020d}", name=f"tool {n}")]
        inv.record(current, device=DEVICE)
        stats = inv.spool_stats()
        assert stats.bytes <= 6000 or stats.reports == 1  # bounded: the cap, or one snapshot
    assert inv.coalesced >= 1
    doc = body(inv.pending())
    assert doc["kind"] == "snapshot" and doc["seq"] == inv.pending().seq
    last = inv.next_seq - 1
    spooled = [json.loads(finish_body(bytes(b), sent_at="x", status={})) for (b,) in
               inv.db.execute("SELECT body FROM spool ORDER BY seq")]
    # what the spool would deliver ends in the current state
    ids: set[str] = set()
    for report in spooled:
        if report["kind"] == "snapshot":
            ids = set()
        ids |= {s["id"] for s in report["upserts"]}
        ids -= set(report["removed"])
    assert ids == {s["id"] for s in current} and spooled[-1]["seq"] == last


def test_a_snapshot_bigger_than_the_cap_is_still_kept_alone(tmp_path):
    inv = Inventory(tmp_path / "d", spool_max_bytes=100)
    inv.record([sighting()], device=DEVICE)
    inv.record([sighting(), sighting("b" * 20)], device=DEVICE)
    stats = inv.spool_stats()
    assert stats.reports == 1 and stats.health == "full"
    assert body(inv.pending())["kind"] == "snapshot"


def test_a_full_disk_coalesces_and_then_refuses_without_losing_the_state(tmp_path):
    inv = Inventory(tmp_path / "d")
    base = [sighting(f"{n:020d}") for n in range(5)]
    inv.record(base, device=DEVICE)
    # SQLite's own "database or disk is full" (SQLITE_FULL), as on a full disk: no room to grow
    pages = inv.db.execute("PRAGMA page_count").fetchone()[0]
    inv.db.execute(f"PRAGMA max_page_count = {pages}")
    big = [*base, *(sighting(f"{900 + n:020d}", name="x" * 3000) for n in range(40))]
    with pytest.raises(SpoolFull):
        inv.record(big, device=DEVICE)
    assert {s["id"] for s in inv.stored_sightings()} == {s["id"] for s in base}  # as it was
    assert inv.spool_stats().reports <= 1
    inv.db.execute("PRAGMA max_page_count = 1073741823")  # space again
    spooled = inv.record(big, device=DEVICE)
    assert spooled is not None and len(inv.stored_sightings()) == 45
    assert spooled.kind == "snapshot"  # what the spool lost, a snapshot makes whole


def test_resnapshot_replaces_the_spool_with_the_stored_sightings(inventory):
    inventory.record([sighting("a" * 20)], device=DEVICE)
    inventory.record([sighting("a" * 20), sighting("b" * 20)], device=DEVICE)
    snap = inventory.resnapshot(DEVICE)
    assert inventory.spool_stats().reports == 1 and inventory.pending().seq == snap.seq == 3
    assert sorted(s["id"] for s in body(snap)["upserts"]) == ["a" * 20, "b" * 20]
    assert inventory.coalesced == 0  # asked for, not forced


def test_status_row_round_trips_and_reads_read_only(tmp_path):
    inv = Inventory(tmp_path / "d")
    inv.write_status({"pid": 1, "sensors": {"files": "ok"}}, now=5.0)
    reader = Inventory(tmp_path / "d", readonly=True)
    assert reader.read_status() == (5.0, {"pid": 1, "sensors": {"files": "ok"}})
    with pytest.raises(sqlite3.OperationalError):
        reader.db.execute("DELETE FROM spool")


def test_no_state_or_a_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(StateError, match="no state yet"):
        Inventory(tmp_path / "none", readonly=True)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "state.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError):
        Inventory(bad, readonly=True)


def test_a_broken_state_file_is_set_aside_and_a_new_state_begins(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "state.sqlite3").write_bytes(b"not a database at all" * 100)
    inv = Inventory(data)
    assert "moved to" in inv.recovered and len(list(data.glob("state.sqlite3.broken-*"))) == 1
    assert inv.record([sighting()], device=DEVICE).kind == "snapshot"
