"""The devices tab over a real collector: hosts with OS, version, last seen, sightings and stale marks,
the selected device's users, and a jump to its agents."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import console_support as support
import fleet
import pytest
from PySide6.QtCore import Qt

from console.app import viewmodels as vm

pytestmark = pytest.mark.timeout(120)


def test_devices_are_listed_with_their_sightings(make_console: Any, qtbot: Any, modeltest: Any,
                                                 collector: support.RunningCollector) -> None:
    console = make_console()
    modeltest(console.devices.model)
    qtbot.waitUntil(lambda: console.devices.device_list.count is not None, timeout=10_000)
    expected = collector.get("/api/v1/devices", limit=500)
    assert console.devices.device_list.count == expected["count"]
    row = next(i for i, d in enumerate(console.devices.device_list.rows) if d.id == collector.known_device)
    cells = [console.devices.model.data(console.devices.model.index(row, c)) for c in range(console.devices.model.columnCount())]
    assert cells[0] == "zoe-laptop" and cells[1] == "macos 6.1" and cells[3] == "0.1.0"
    assert cells[5] == "reporting" and cells[6] == "3"


def test_selecting_a_device_shows_its_users_and_opens_its_agents(make_console: Any, qtbot: Any,
                                                                 collector: support.RunningCollector) -> None:
    console = make_console()
    qtbot.waitUntil(lambda: console.devices.device_list.count is not None, timeout=10_000)
    view = console.window.devices
    row = next(i for i, d in enumerate(console.devices.device_list.rows) if d.id == collector.known_device)
    view.table.setCurrentIndex(console.devices.model.index(row, 0))
    qtbot.waitUntil(lambda: view.users.text() == "Users: zoe", timeout=10_000)
    view.show_agents.click()
    assert console.window.tabs.currentWidget() is console.window.agents
    qtbot.waitUntil(lambda: console.agents.roster.filter.device == collector.known_device and console.agents.roster.count == 3,
                    timeout=10_000)


def test_stale_devices_are_marked_and_filtered(make_console: Any, qtbot: Any, tmp_path: Path) -> None:
    # A collector of this test's own that calls a device stale after ~2 ms without a report.
    stale = support.start(f"sqlite:///{tmp_path}/stale.sqlite3", tmp_path / "server.log", "--stale-hours", "0.000001")
    try:
        stale.snapshot(f"host:old-{uuid.uuid4().hex[:6]}", [support.sighting()])
        console = make_console(token=stale.admin, url=stale.url)
        qtbot.waitUntil(lambda: console.devices.device_list.count == 1, timeout=10_000)
        assert console.devices.model.data(console.devices.model.index(0, 5)) == "stale"
        console.window.devices.stale.setCurrentIndex(console.window.devices.stale.findData(False))
        qtbot.waitUntil(lambda: console.devices.device_list.stale is False and console.devices.device_list.count == 0,
                        timeout=10_000)
        assert console.window.devices.count.text() == "0 devices"
    finally:
        stale.close()


def test_a_device_on_the_overview_opens_its_ungoverned_agents(make_console: Any, qtbot: Any, modeltest: Any,
                                                              collector: support.RunningCollector) -> None:
    console = make_console()
    qtbot.waitUntil(lambda: console.overview.latest is not None, timeout=10_000)
    table = console.window.overview.devices_table
    modeltest(table.model())
    top = console.overview.latest.top_ungoverned_devices[0]
    device_id, hostname = top.device_id, top.hostname
    assert table.model().data(table.model().index(0, 0)) == hostname
    table.activated.emit(table.model().index(0, 0))
    assert console.window.tabs.currentWidget() is console.window.agents
    qtbot.waitUntil(lambda: console.agents.roster.filter.device == device_id and console.agents.roster.count is not None
                    and not console.agents.roster.loading, timeout=10_000)
    assert console.agents.roster.filter.governed is False
    assert console.agents.roster.count == collector.get("/api/v1/agents", device=device_id, governed="false")["count"]


def test_devices_whose_last_scan_was_incomplete_are_shown_and_filtered(make_console: Any, qtbot: Any,
                                                                       tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/health.sqlite3", tmp_path / "server.log")
    try:
        fine, broken = f"host:fine-{uuid.uuid4().hex[:6]}", f"host:broken-{uuid.uuid4().hex[:6]}"
        own.snapshot(fine, [support.sighting()])
        broken_id = own.snapshot(broken, [support.sighting()])
        doc = fleet.report(fleet.device_doc(broken), kind="heartbeat", seq=2,
                                   status={"units_failed": 3, "degraded": ["files", "fingerprint"]})
        answer = own.http.post("/api/v1/reports", json=doc, headers={"authorization": f"Bearer {own.keys[broken]}"})
        assert answer.status_code == 200, answer.text
        console = make_console(token=own.admin, url=own.url)
        qtbot.waitUntil(lambda: console.devices.device_list.count == 2, timeout=10_000)
        column = [name for name, _ in vm.DEVICE_COLUMNS].index("Last scan")
        shown = {d.id: console.devices.model.data(console.devices.model.index(i, column))
                 for i, d in enumerate(console.devices.device_list.rows)}
        assert shown[broken_id] == "incomplete: 3 units failed (files, fingerprint)"
        assert set(shown.values()) == {"complete", "incomplete: 3 units failed (files, fingerprint)"}
        view = console.window.devices
        view.stale.setCurrentIndex(view.stale.findData("incomplete"))
        qtbot.waitUntil(lambda: console.devices.device_list.stale == "incomplete" and console.devices.device_list.count == 1,
                        timeout=10_000)
        assert [d.id for d in console.devices.device_list.rows] == [broken_id]
        view.table.setCurrentIndex(console.devices.model.index(0, 0))
        qtbot.waitUntil(lambda: "last scan incomplete: 3 units failed" in view.users.text(), timeout=10_000)
    finally:
        own.close()


def test_the_overview_counts_incomplete_scans_and_opens_the_devices_so_filtered(make_console: Any, qtbot: Any,
                                                                               tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/health.sqlite3", tmp_path / "server.log")
    try:
        own.snapshot(f"host:fine-{uuid.uuid4().hex[:6]}", [support.sighting()])
        broken = f"host:broken-{uuid.uuid4().hex[:6]}"
        broken_id = own.snapshot(broken, [support.sighting()])
        doc = fleet.report(fleet.device_doc(broken), kind="heartbeat", seq=2, status={"units_failed": 1})
        answer = own.http.post("/api/v1/reports", json=doc, headers={"authorization": f"Bearer {own.keys[broken]}"})
        assert answer.status_code == 200, answer.text
        console = make_console(token=own.admin, url=own.url)
        card = console.window.overview.cards[vm.INCOMPLETE_SCANS]
        qtbot.waitUntil(lambda: card.value.text() == "1", timeout=10_000)
        assert console.window.devices.stale.currentData() is None  # the devices tab lists them all until asked
        console.window.tabs.setCurrentWidget(console.window.overview)
        qtbot.mouseClick(card, Qt.MouseButton.LeftButton)
        assert console.window.tabs.currentWidget() is console.window.devices
        qtbot.waitUntil(lambda: console.devices.device_list.stale == vm.INCOMPLETE
                        and console.devices.device_list.count == 1, timeout=10_000)
        assert [d.id for d in console.devices.device_list.rows] == [broken_id]
        console.window.devices.stale.setCurrentIndex(0)  # and from the keyboard
        console.window.tabs.setCurrentWidget(console.window.overview)
        card.setFocus()
        qtbot.keyClick(card, Qt.Key.Key_Space)
        assert console.window.tabs.currentWidget() is console.window.devices
        assert console.window.devices.stale.currentData() == vm.INCOMPLETE
    finally:
        own.close()


def test_an_identity_conflict_is_shown_and_an_admin_accepts_it(make_console: Any, qtbot: Any, tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/conflict.sqlite3", tmp_path / "server.log")
    try:
        host = f"install:{uuid.uuid4().hex}"
        real = own.snapshot(host, [support.sighting()])
        own.enroll(host, proof=False)  # the enroll secret alone: a device apart, flagged
        console = make_console(token=own.admin, url=own.url)
        qtbot.waitUntil(lambda: console.devices.device_list.count == 2, timeout=10_000)
        column = [name for name, _ in vm.DEVICE_COLUMNS].index("Identity")
        rows = {d.id: i for i, d in enumerate(console.devices.device_list.rows)}
        conflict = next(d for d in console.devices.device_list.rows if d.id != real)
        assert conflict.identity_conflict == real
        assert console.devices.model.data(console.devices.model.index(rows[conflict.id], column)) == f"conflict: claims device {real}"
        assert console.devices.model.data(console.devices.model.index(rows[real], column)) == ""
        view = console.window.devices
        view.table.setCurrentIndex(console.devices.model.index(rows[real], 0))
        assert not view.accept_identity.isEnabled()
        view.table.setCurrentIndex(console.devices.model.index(rows[conflict.id], 0))
        qtbot.waitUntil(view.accept_identity.isEnabled, timeout=10_000)
        view.accept_identity.click()
        qtbot.waitUntil(lambda: {d["id"]: d["revoked"] for d in own.get("/api/v1/devices")["data"]}
                        == {real: True, conflict.id: False}, timeout=10_000)
        qtbot.waitUntil(lambda: all(d.identity_conflict is None for d in console.devices.device_list.rows), timeout=10_000)
    finally:
        own.close()


def test_a_viewer_cannot_accept_an_identity(make_console: Any, qtbot: Any, tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/viewer.sqlite3", tmp_path / "server.log")
    try:
        host = f"install:{uuid.uuid4().hex}"
        own.snapshot(host, [support.sighting()])
        own.enroll(host, proof=False)
        console = make_console(token=own.viewer, url=own.url)
        qtbot.waitUntil(lambda: console.devices.device_list.count == 2 and console.session.role == "viewer", timeout=10_000)
        conflict = next(i for i, d in enumerate(console.devices.device_list.rows) if d.identity_conflict)
        console.window.devices.table.setCurrentIndex(console.devices.model.index(conflict, 0))
        assert not console.window.devices.accept_identity.isEnabled()
    finally:
        own.close()
