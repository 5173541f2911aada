"""The overview tab: the fleet's counts, refreshed every minute, with the trend of ungoverned agents kept
in the settings per collector; every card and bar opens the list behind it (a worst device its ungoverned
agents, a type's bar the agents of that type, the stale devices' card the devices tab so filtered…)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import QModelIndex, QObject, QTimer

from console.app import api
from console.app import viewmodels as vm
from console.app.controllers.session import Session
from console.app.errors import ConsoleError

OVERVIEW_REFRESH_MS = 60_000


class OverviewController(QObject):
    """Loads the overview and shows it, in its tab and as the agents tab's fleet counts."""

    def __init__(self, session: Session, parent: QObject, *, on_error: Callable[[ConsoleError], None]) -> None:
        super().__init__(parent)
        self.session = session
        self.on_error = on_error
        self.latest: api.Overview | None = None
        self.trend = vm.Trend.load(_str(session.settings.value(self.trend_key())))
        self.timer = QTimer(self)
        self.timer.setInterval(OVERVIEW_REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        session.window.overview.devices_table.activated.connect(self._top_device_activated)
        view = session.window.overview
        view.incomplete_scans.clicked.connect(self.show_incomplete_scans)
        for label, chosen in (("Agents", vm.AgentFilter()), ("Ungoverned", vm.AgentFilter(governed=False)),
                              ("Governed", vm.AgentFilter(governed=True))):
            view.cards[label].clicked.connect(lambda chosen=chosen: self.show_agents(chosen))
        view.cards["Devices"].clicked.connect(lambda: self.show_devices(None))
        view.cards["Stale devices"].clicked.connect(lambda: self.show_devices(True))
        view.by_type.barActivated.connect(
            lambda i: self.show_agents(vm.AgentFilter(type=view.type_keys[i])) if i < len(view.type_keys) else None)
        view.by_governed.barActivated.connect(lambda i: self.show_agents(vm.AgentFilter(governed=i == 1)))
        view.providers.barActivated.connect(
            lambda i: self.show_agents(vm.AgentFilter(provider=view.provider_keys[i]))
            if i < len(view.provider_keys) else None)

    def trend_key(self) -> str:
        return "overview/trend/" + self.session.client.base_url.replace("/", "_").replace(":", "_")

    def refresh(self) -> None:
        self.session.runner.call(self.session.client.overview, on_done=self._got_overview, on_error=self.on_error)

    def save_state(self) -> None:
        self.session.settings.setValue(self.trend_key(), self.trend.dump())

    def _got_overview(self, overview: api.Overview) -> None:
        window = self.session.window
        self.latest = overview
        self.trend.add(datetime.now(UTC), overview.ungoverned)
        self.save_state()
        window.overview.show_overview(overview, self.trend.points(overview))
        window.agents.show_fleet_counts({c.key: c.count for c in overview.by_type}, overview.governed,
                                        overview.ungoverned)

    def _top_device_activated(self, index: QModelIndex) -> None:
        """From the overview's worst devices to that device's ungoverned agents."""
        devices = self.latest.top_ungoverned_devices if self.latest else ()
        if 0 <= index.row() < len(devices):
            window = self.session.window
            window.tabs.setCurrentWidget(window.agents)
            window.agents.set_filter(vm.AgentFilter(device=devices[index.row()].device_id, governed=False))

    def show_agents(self, chosen: vm.AgentFilter) -> None:
        window = self.session.window
        window.tabs.setCurrentWidget(window.agents)
        window.agents.set_filter(chosen)

    def show_devices(self, stale: bool | None) -> None:
        window = self.session.window
        window.tabs.setCurrentWidget(window.devices)
        window.devices.stale.setCurrentIndex(max(0, window.devices.stale.findData(stale)))

    def show_incomplete_scans(self) -> None:
        """From the overview's count to the devices tab, filtered to the devices whose last scan was incomplete."""
        window = self.session.window
        window.tabs.setCurrentWidget(window.devices)
        window.devices.stale.setCurrentIndex(window.devices.stale.findData(vm.INCOMPLETE))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
