"""The console window's controller: one controller per tab (overview, agents, devices, registrations,
policy) plus the connection and export, made and joined here. Every network call runs off the GUI thread
(the worker); the role the token has decides what each tab lets the user do."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QObject, QSettings

from console.app import api, theme
from console.app import viewmodels as vm
from console.app.controllers.agents import AgentsController
from console.app.controllers.connection import RETRY_MS, ConnectionController
from console.app.controllers.devices import DevicesController
from console.app.controllers.export import ExportController
from console.app.controllers.fleet import FleetController
from console.app.controllers.overview import OverviewController
from console.app.controllers.policy import PolicyController
from console.app.controllers.registrations import RegistrationsController
from console.app.controllers.session import VIEWER_TRIAGE, Session
from console.app.views.main_window import MainWindow
from console.app.worker import Runner


class Console(QObject):
    """One signed-in console window over one collector."""

    def __init__(self, client: api.Client, window: MainWindow, settings: QSettings, *,
                 runner: Runner | None = None, page_size: int = 200, retry_ms: tuple[int, ...] = RETRY_MS) -> None:
        super().__init__(window)
        self.client = client
        self.window = window
        self.settings = settings
        self.runner = runner or Runner(self)
        self.session = Session(client, window, settings, self.runner)
        self._rest_pending = False

        self.connection = ConnectionController(self.session, self, retry_ms=retry_ms)
        report = self.connection.show_error
        self.overview = OverviewController(
            self.session, self, on_error=report, open_agent=lambda key, name: self.agents.open_detail(key, name),
            sort_roster=lambda key: self.agents.model.reload(sort=key, order="desc"))
        self.agents = AgentsController(self.session, self, page_size=page_size, on_error=report,
                                       on_triaged=self._after_triage)
        self.devices = DevicesController(self.session, self, page_size=page_size, on_error=report)
        self.registrations = RegistrationsController(self.session, self, on_error=report,
                                                     on_decided=self._after_decision,
                                                     open_agent=self.agents.open_detail)
        self.policy = PolicyController(self.session, self, on_error=report, on_saved=self.refresh_all)
        self.fleet = FleetController(self.session, self, on_error=report, open_roster=self.open_roster,
                                     approve_filter=self._act_on_filter, on_saved=self.refresh_all)
        self.export = ExportController(self.session, self, roster=self.agents.roster, choice=self.agents.choice,
                                       on_error=report)

        # the roster's first page first, the other tabs once it is in
        self.agents.model.countChanged.connect(lambda n: self._first_page_done() if n is not None else None)
        self.agents.model.loadFailed.connect(lambda _error: self._first_page_done())
        self.connection.reconnected.connect(self._reconnected)
        window.refresh_action.triggered.connect(self.refresh_all)
        window.export_csv_action.triggered.connect(lambda: self.export.ask("csv"))
        window.export_json_action.triggered.connect(lambda: self.export.ask("json"))
        window.theme_group.triggered.connect(lambda action: self.set_theme(str(action.data())))
        self.runner.busy.connect(lambda n: window.busy.setVisible(n > 0))

    def open_roster(self, chosen: vm.AgentFilter) -> None:
        """The agents tab, filtered to ``chosen`` (from the fleet, the overview…)."""
        self.window.tabs.setCurrentWidget(self.window.agents)
        self.window.agents.set_filter(chosen)

    def _act_on_filter(self, action: str, chosen: vm.AgentFilter) -> None:
        if not self.session.can_triage:
            self.window.show_message(VIEWER_TRIAGE, error=True)
            return
        self.agents.triage_whole_filter(action, chosen)

    def set_theme(self, chosen: str) -> None:
        """View → Theme: the system's palette, or the console's light or dark one; remembered."""
        picked: theme.Theme = next((t for t in theme.THEMES if t == chosen), "system")
        theme.apply(picked)
        self.window.theme_actions[picked].setChecked(True)
        self.settings.setValue("window/theme", picked)

    def start(self) -> None:
        """Restore the window, find out the token's role, and load every view."""
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.window.restoreGeometry(QByteArray(geometry))
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray | bytes):
            self.window.restoreState(QByteArray(state))
        theme.watch()
        saved_theme = self.settings.value("window/theme")
        if isinstance(saved_theme, str) and saved_theme in theme.THEMES and saved_theme != "system":
            self.set_theme(saved_theme)
        self.window.who.setText(f"Signing in to {self.client.base_url}…")
        self.runner.call(self.client.role, on_done=self._got_role, on_error=self.connection.show_error)
        self.refresh_all()
        self.overview.timer.start()

    def shutdown(self) -> None:
        """Stop timers and start no new calls; waits for the calls in flight (at exit)."""
        self.session.closed = True
        self.connection.stop()
        self.overview.timer.stop()
        self.runner.wait(10_000)

    def save_state(self) -> None:
        self.settings.setValue("window/geometry", self.window.saveGeometry())
        self.settings.setValue("window/state", self.window.saveState())
        self.agents.save_state()
        self.overview.save_state()
        self.settings.sync()

    def refresh_all(self) -> None:
        """Reload every view; the roster's first page goes first, the rest once it is in (a collector
        answers one request faster than five at once)."""
        self._rest_pending = True
        self.agents.reload()

    def _first_page_done(self) -> None:
        if self._rest_pending:
            self._rest_pending = False
            self.overview.refresh()
            self.devices.reload()
            self.registrations.load()
            self.policy.load()
            self.fleet.load()

    def _after_triage(self) -> None:
        """Counts change with every action: the overview's and the fleet's."""
        self.overview.refresh()
        self.fleet.load()

    def _after_decision(self) -> None:
        self.overview.refresh()
        self.agents.reload()

    def _reconnected(self) -> None:
        if self.session.role is None:
            self.runner.call(self.client.role, on_done=self._got_role, on_error=self.connection.show_error)
        self.refresh_all()

    def _got_role(self, role: str) -> None:
        self.session.role = role
        admin = role == "admin"
        self.window.who.setText(f"{role} at {self.client.base_url}")
        self.agents.set_role(admin)
        self.fleet.set_role(admin)
        self.window.policy.set_can_edit(admin)
        self.registrations.set_role(admin)
