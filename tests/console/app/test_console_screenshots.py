"""Screenshots of each main view with realistic data from a real collector, at 1280×800, under the light
and the dark palette, written as PNGs under the test run's output dir (and, with AGENTROSTER_SCREENSHOTS=DIR,
to DIR too, e.g. docs/images) so a person can look at them."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPalette

from console.app import theme

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def system_palette_after() -> Any:
    yield
    theme.apply("system")


def save(widget: Any, name: str, out: Path) -> Path:
    path = out / f"console-{name}.png"
    assert widget.grab().save(str(path))
    extra = os.environ.get("AGENTROSTER_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(extra) / path.name)
    return path


def save_both(window: Any, qtbot: Any, name: str, out: Path) -> list[Path]:
    """The window as it is (light), then under the dark palette (``console-NAME-dark.png``)."""
    shots = [save(window, name, out)]
    try:
        window.theme_actions["dark"].trigger()
        qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() < 80, timeout=5_000)
        qtbot.wait(50)
        shots.append(save(window, f"{name}-dark", out))
    finally:
        window.theme_actions["light"].trigger()
        qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() > 180, timeout=5_000)
    return shots


def test_each_main_view_renders(make_console: Any, qtbot: Any, tmp_path_factory: pytest.TempPathFactory,
                                collector: support.RunningCollector) -> None:
    out = tmp_path_factory.mktemp("screenshots")
    console = make_console()
    window = console.window
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: console.overview.latest is not None, timeout=10_000)
    theme.apply("light")
    # The admin has sanctioned the fleet's Cursor and Ollama installs (through the triage API).
    for signature in ("cursor", "ollama"):
        rows = collector.get("/api/v1/agents", signature=signature, limit=200)["data"]
        answer = collector.http.post("/api/v1/agents/actions", headers={"authorization": f"Bearer {collector.admin}"},
                                     json={"action": "approve", "targets": [
                                         {"device_id": r["device_id"], "sighting_id": r["id"]} for r in rows]})
        assert answer.status_code == 201, answer.text
    # More machines report while the console is open: each refresh adds a real sample to the trend.
    for round_ in range(5):
        before = console.overview.latest
        collector.snapshot(f"host:late-{round_}-{uuid.uuid4().hex[:6]}",
                           [support.sighting(name=f"notebook agent {i}", signature=None, type="unknown",
                                             providers=("openai",)) for i in range(2 + round_ * 3)])
        qtbot.wait(300)
        console.overview.refresh()
        qtbot.waitUntil(lambda before=before: console.overview.latest is not before, timeout=10_000)
    assert len(console.overview.trend.samples) >= 6
    window.tabs.setCurrentWidget(window.overview)
    qtbot.wait(200)
    shots = save_both(window, qtbot, "overview", out)
    window.tabs.setCurrentWidget(window.fleet)
    shown = console.fleet.latest
    console.fleet.load()  # after the approvals above
    qtbot.waitUntil(lambda: console.fleet.latest is not shown and window.fleet.model.rowCount() > 0, timeout=10_000)
    window.fleet.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)  # the most seen kinds first
    window.fleet.table.selectRow(0)
    shots += save_both(window, qtbot, "fleet", out)

    window.tabs.setCurrentWidget(window.agents)
    window.agents.search.setText("ws-0000")  # ten of the simulated fleet's machines, by host
    window.agents.search.returnPressed.emit()
    column = console.agents.model.column_of("device")
    assert column is not None
    window.agents.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)
    qtbot.waitUntil(lambda: console.agents.roster.sort == "device" and console.agents.roster.count is not None
                    and not console.agents.roster.loading, timeout=10_000)
    # the first coding agent with MCP servers: its detail and chain have the most to show
    row = next(i for i, a in enumerate(console.agents.roster.rows) if a.type == "coding" and a.signature != "cursor")
    window.agents.table.selectRow(row)
    qtbot.waitUntil(lambda: window.detail.detail is not None and window.detail.detail.agent.key
                    == console.agents.roster.rows[row].key, timeout=10_000)
    shots += save_both(window, qtbot, "agents", out)
    window.detail.tabs.setCurrentWidget(window.detail.chain_tree)
    shots += save_both(window, qtbot, "detail-chain", out)
    window.detail.tabs.setCurrentWidget(window.detail.timeline_table)
    shots += save_both(window, qtbot, "detail-history", out)

    window.tabs.setCurrentWidget(window.devices)
    qtbot.waitUntil(lambda: console.devices.device_list.count is not None, timeout=10_000)
    shots += save_both(window, qtbot, "devices", out)
    window.tabs.setCurrentWidget(window.registrations)
    host = f"host:reg-shot-{uuid.uuid4().hex[:6]}"
    collector.snapshot(host, [support.sighting(id="crm-sync", name="crm sync agent", signature=None, type="unknown",
                                               providers=("openai", "mistral"))])
    collector.register(host, "crm-sync", owner="maria@example.org", purpose="sync leads from the CRM each night",
                       business_process="sales operations", tools=["salesforce"], data_systems=["crm"],
                       autonomy="autonomous")
    console.registrations.load()
    qtbot.waitUntil(lambda: any(r.sighting_id == "crm-sync" for r in console.registrations.listed), timeout=10_000)
    queue = window.registrations  # the queue with its first registration's declared vs observed below it
    queue.table.setCurrentIndex(queue.rows.index(next(i for i, r in enumerate(console.registrations.listed)
                                                      if r.sighting_id == "crm-sync"), 0))
    qtbot.waitUntil(lambda: queue.comparison.rowCount() > 0, timeout=10_000)
    shots += save_both(window, qtbot, "registrations", out)
    window.tabs.setCurrentWidget(window.policy)
    qtbot.waitUntil(lambda: bool(window.policy.signatures.model.choices), timeout=10_000)
    window.policy.preview.click()
    qtbot.waitUntil(lambda: not window.policy.effect.text().startswith("Previewing"), timeout=10_000)
    shots += save_both(window, qtbot, "policy", out)
    window.show_shortcuts()
    assert window.shortcuts_dialog is not None
    qtbot.waitExposed(window.shortcuts_dialog)
    save(window.shortcuts_dialog, "shortcuts", out)
    window.shortcuts_dialog.close()

    for path in shots:
        image = QImage(str(path))
        assert image.width() >= 1280 and image.height() >= 800, path
        # not a blank grab: a real rendering has many distinct colours
        colours = {image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 29)}
        assert len(colours) > 8, path
