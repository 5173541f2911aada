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

    def __init__(self, session: Session, parent: QObject, *, on_error: Callable[[ConsoleError], None],
                 open_agent: Callable[[tuple[str, str], str], None], sort_roster: Callable[[str], None]) -> None:
        """``open_agent(key, name)`` shows an agent's detail; ``sort_roster(key)`` sorts the roster by ``key``,
        highest (newest) first."""
        super().__init__(parent)
        self.session = session
        self.on_error = on_error
        self.open_agent = open_agent
        self.sort_roster = sort_roster
        self.latest: api.Overview | None = None
        self.trend = vm.Trend.load(_str(session.settings.value(self.trend_key())))
        # what is new counts from the admin's previous visit (kept per collector; this visit's start is kept
        # when the console closes)
        self.since = _when(session.settings.value(self.visit_key()))
        self.started = datetime.now(UTC)
        self.timer = QTimer(self)
        self.timer.setInterval(OVERVIEW_REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        session.window.overview.devices_table.activated.connect(self._top_device_activated)
        view = session.window.overview
        view.incomplete_scans.clicked.connect(self.show_incomplete_scans)
        for label, chosen in (("Agents", vm.AgentFilter(type=vm.AGENT_TYPES)),
                              ("Tool servers", vm.AgentFilter(type="tool_server")),
                              ("Ungoverned", vm.AgentFilter(governed=False))):
            view.cards[label].clicked.connect(lambda chosen=chosen: self.show_agents(chosen))
        view.cards[vm.ESCALATED].clicked.connect(
            lambda: self.show_agents(vm.AgentFilter(ladder="escalate")))  # overdue first (a rung chosen)
        view.cards[vm.NEW_SINCE].clicked.connect(lambda: self.show_agents(vm.AgentFilter(), sort="first_seen"))
        view.cards["Devices"].clicked.connect(lambda: self.show_devices(None))
        view.cards["Stale devices"].clicked.connect(lambda: self.show_devices(True))
        view.riskiest_table.activated.connect(self._risky_activated)
        view.by_flag.barActivated.connect(
            lambda i: self.show_agents(vm.AgentFilter(flag=view.flag_keys[i])) if i < len(view.flag_keys) else None)
        view.by_type.barActivated.connect(
            lambda i: self.show_agents(vm.AgentFilter(type=view.type_keys[i])) if i < len(view.type_keys) else None)
        view.providers.barActivated.connect(
            lambda i: self.show_agents(vm.AgentFilter(provider=view.provider_keys[i]))
            if i < len(view.provider_keys) else None)

    def trend_key(self) -> str:
        return "overview/trend/" + self.session.client.base_url.replace("/", "_").replace(":", "_")

    def visit_key(self) -> str:
        return "overview/last-visit/" + self.session.client.base_url.replace("/", "_").replace(":", "_")

    def refresh(self) -> None:
        self.session.runner.call(self.session.client.overview, self.since, on_done=self._got_overview,
                                 on_error=self.on_error)

    def save_state(self) -> None:
        self.session.settings.setValue(self.trend_key(), self.trend.dump())
        self.session.settings.setValue(self.visit_key(), self.started.isoformat())

    def _got_overview(self, overview: api.Overview) -> None:
        window = self.session.window
        self.latest = overview
        self.trend.add(datetime.now(UTC), overview.ungoverned)
        self.save_state()
        # the roster's type and governed choices carry no counts: fleet-wide figures beside a filtered
        # roster read as counts under the filter, and went stale after every triage
        window.overview.show_overview(overview, self.trend.points(overview))

    def _top_device_activated(self, index: QModelIndex) -> None:
        """From the overview's worst devices to that device's ungoverned agents."""
        devices = self.latest.top_ungoverned_devices if self.latest else ()
        if 0 <= index.row() < len(devices):
            window = self.session.window
            window.tabs.setCurrentWidget(window.agents)
            window.agents.set_filter(vm.AgentFilter(device=devices[index.row()].device_id, governed=False))

    def show_agents(self, chosen: vm.AgentFilter, sort: str | None = None) -> None:
        """The agents tab filtered to ``chosen`` (and, with ``sort``, newest first by that column)."""
        window = self.session.window
        window.tabs.setCurrentWidget(window.agents)
        window.agents.set_filter(chosen)
        if sort is not None:
            self.sort_roster(sort)

    def _risky_activated(self, index: QModelIndex) -> None:
        """From one of the riskiest agents to its detail, and its device's agents riskiest first."""
        rows = self.session.window.overview.riskiest_rows
        if 0 <= index.row() < len(rows):
            risky = rows[index.row()]
            self.show_agents(vm.AgentFilter(device=risky.device_id), sort="risk")
            self.open_agent((risky.device_id, risky.id), risky.name)

    def show_devices(self, stale: bool | None) -> None:
        window = self.session.window
        window.tabs.setCurrentWidget(window.devices)
        window.devices.stale.setCurrentIndex(max(0, window.devices.stale.findData(stale)))

    def show_incomplete_scans(self) -> None:
        """From the overview's count to the devices tab, filtered to the devices whose last scan was incomplete."""
        window = self.session.window
        window.tabs.setCurrentWidget(window.devices)
        window.devices.stale.setCurrentIndex(window.devices.stale.findData(vm.INCOMPLETE))


def _when(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
