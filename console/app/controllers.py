"""The console's controller: wires the views' signals to the API (through the worker, off the GUI thread)
and the API's answers back to the models and views.

It also owns the connection state: any call that finds the collector out of reach shows the banner
and starts retrying (1 s, 2 s, 5 s, then every 10 s); when ``/healthz`` answers again the banner goes
and every view reloads. Errors are shown as a line in the status bar, never as a traceback.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QModelIndex, QObject, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog

from console.app import api
from console.app import viewmodels as vm
from console.app.models import AgentTableModel, DeviceTableModel
from console.app.views.agents import WIDTHS
from console.app.views.dialogs import TriageDialog
from console.app.views.main_window import MainWindow
from console.app.worker import Runner

log = logging.getLogger(__name__)

RETRY_MS = (1000, 2000, 5000, 10_000)
OVERVIEW_REFRESH_MS = 60_000
DETAIL_REFRESH_LIMIT = 50  # after triage, rows refreshed in place; beyond this the list reloads
VIEWER_TRIAGE = "Your token is a viewer token: viewers can look but not triage."


class Console(QObject):
    """One signed-in console window over one collector."""

    exportProgress = Signal(int, int)  # rows written, rows in the view
    exported = Signal(str, int)  # path, rows
    connectionChanged = Signal(bool)  # True when the collector answers again

    def __init__(self, client: api.Client, window: MainWindow, settings: QSettings, *,
                 runner: Runner | None = None, page_size: int = 200, retry_ms: tuple[int, ...] = RETRY_MS) -> None:
        super().__init__(window)
        self.client = client
        self.window = window
        self.settings = settings
        self.runner = runner or Runner(self)
        self.retry_ms = retry_ms
        self.role: str | None = None
        self.closed = False
        self._rest_pending = False
        self.connected = True
        self._retries = 0
        self._detail_generation = 0
        self.dialog: TriageDialog | None = None
        self.overview: api.Overview | None = None
        self.registration_list: list[api.Registration] = []
        self.registration_count: int | None = None

        self.choice = vm.ColumnChoice.restore(_strings(settings.value("agents/columns")))
        self.trend = vm.Trend.load(_str(settings.value(self._trend_key())))
        self.roster = vm.AgentList(page_size)
        self.agents = AgentTableModel(self.roster, self.choice, self._load_agents, self)
        self.device_list = vm.DeviceList(page_size)
        self.devices = DeviceTableModel(self.device_list, self._load_devices, self)
        self.selection = vm.Selection()

        self.retry_timer = QTimer(self)
        self.retry_timer.setSingleShot(True)
        self.retry_timer.timeout.connect(self.retry)
        self.overview_timer = QTimer(self)
        self.overview_timer.setInterval(OVERVIEW_REFRESH_MS)
        self.overview_timer.timeout.connect(self.refresh_overview)
        self._wire()

    # -- wiring

    def _wire(self) -> None:
        w = self.window
        w.agents.table.setModel(self.agents)
        self.agents.modelReset.connect(self._show_sort)
        self._show_sort()
        w.devices.table.setModel(self.devices)
        w.agents.build_columns_menu(self.choice)
        w.agents.columns_menu.triggered.connect(lambda action: self.toggle_column(str(action.data())))
        w.agents.filterChanged.connect(self.apply_filter)
        self.agents.countChanged.connect(lambda n: w.agents.show_count(n, len(self.roster.rows)))
        self.agents.rowsInserted.connect(lambda *_: w.agents.show_count(self.roster.count, len(self.roster.rows)))
        self.agents.loadFailed.connect(self.api_error)
        self.agents.countChanged.connect(lambda n: self._first_page_done() if n is not None else None)
        self.agents.loadFailed.connect(lambda _error: self._first_page_done())
        self.devices.countChanged.connect(lambda n: w.devices.show_count(n, len(self.device_list.rows)))
        self.devices.loadFailed.connect(self.api_error)
        table = w.agents.table
        table.selectionModel().selectionChanged.connect(self._selection_changed)
        table.selectionModel().currentRowChanged.connect(self._current_changed)
        table.activated.connect(self._activated)
        self.agents.modelReset.connect(self._selection_changed)
        for action, button in w.agents.triage_buttons.items():
            button.clicked.connect(lambda _=False, a=action: self.ask_triage(a))
        w.agents.export_csv.clicked.connect(lambda: self.ask_export("csv"))
        w.agents.export_json.clicked.connect(lambda: self.ask_export("json"))
        w.devices.stale.currentIndexChanged.connect(lambda _: self.devices.reload(w.devices.stale.currentData()))
        w.devices.table.selectionModel().currentRowChanged.connect(self._device_changed)
        w.devices.show_agents.clicked.connect(self.show_device_agents)
        w.devices.accept_identity.clicked.connect(self.accept_device_identity)
        w.devices.table.activated.connect(lambda _index: self.show_device_agents())
        w.registrations.status.currentIndexChanged.connect(lambda _: self.load_registrations())
        w.registrations.table.selectionModel().currentRowChanged.connect(
            lambda *_: w.registrations.enable_for(self._current_registration_status()))
        w.registrations.rows.modelReset.connect(
            lambda: w.registrations.enable_for(self._current_registration_status()))
        w.registrations.approve.clicked.connect(lambda: self.decide_registration(True))
        w.registrations.reject.clicked.connect(lambda: self.decide_registration(False))
        w.registrations.open_agent.clicked.connect(self.open_registration_agent)
        w.overview.devices_table.activated.connect(self._top_device_activated)
        w.policy.save.clicked.connect(self.save_policy)
        w.policy.reload.clicked.connect(self.load_policy)
        w.banner.retry.clicked.connect(self.retry)
        w.refresh_action.triggered.connect(self.refresh_all)
        self.runner.busy.connect(lambda n: w.busy.setVisible(n > 0))
        self.exportProgress.connect(self._export_progress)

    def start(self) -> None:
        """Restore the window, find out the token's role, and load every view."""
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.window.restoreGeometry(QByteArray(geometry))
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray | bytes):
            self.window.restoreState(QByteArray(state))
        self.window.who.setText(f"{self.client.base_url}")
        self.runner.call(self.client.role, on_done=self._got_role, on_error=self.api_error)
        self.refresh_all()
        self.overview_timer.start()

    def shutdown(self) -> None:
        """Stop timers and start no new calls; waits for the calls in flight (at exit)."""
        self.closed = True
        self.retry_timer.stop()
        self.overview_timer.stop()
        self.runner.wait(10_000)

    def save_state(self) -> None:
        self.settings.setValue("window/geometry", self.window.saveGeometry())
        self.settings.setValue("window/state", self.window.saveState())
        self.settings.setValue("agents/columns", list(self.choice.visible))
        self.settings.setValue(self._trend_key(), self.trend.dump())
        self.settings.sync()

    def _trend_key(self) -> str:
        return "overview/trend/" + self.client.base_url.replace("/", "_").replace(":", "_")

    def refresh_all(self) -> None:
        """Reload every view; the roster's first page goes first, the rest once it is in (a collector
        answers one request faster than five at once)."""
        self._rest_pending = True
        self.agents.reload()

    def _first_page_done(self) -> None:
        if self._rest_pending:
            self._rest_pending = False
            self.refresh_overview()
            self.devices.reload(self.window.devices.stale.currentData())
            self.load_registrations()
            self.load_policy()

    # -- role

    def _got_role(self, role: str) -> None:
        self.role = role
        admin = role == "admin"
        self.window.who.setText(f"{role} at {self.client.base_url}")
        self.window.agents.set_can_triage(admin, VIEWER_TRIAGE)
        self.window.policy.set_can_edit(admin)
        self.window.registrations.can_decide = admin
        self.window.registrations.enable_for(self._current_registration_status())

    @property
    def can_triage(self) -> bool:
        return self.role == "admin"

    # -- errors and the connection

    @Slot(object)
    def api_error(self, error: api.ApiError) -> None:
        if isinstance(error, api.ServerUnreachable) or (isinstance(error, api.ServerError) and error.status == 503):
            self.connection_lost(error)
            return
        if isinstance(error, api.Unauthorized):
            self.window.banner.show_message(f"{error.message} (agentroster console --server "
                                            f"{self.client.base_url} asks for a token again).")
        self.window.show_message(error.message, error=True)

    def connection_lost(self, error: api.ApiError) -> None:
        if self.connected:
            self.connected = False
            self._retries = 0
            self.connectionChanged.emit(False)
        self._schedule_retry(error.message)

    def _schedule_retry(self, why: str) -> None:
        if self.retry_timer.isActive():
            return
        delay = self.retry_ms[min(self._retries, len(self.retry_ms) - 1)]
        self.window.banner.show_message(f"Lost the connection to the collector at {self.client.base_url}. {why} "
                                        f"Retrying in {delay / 1000:.0f} s…")
        self.retry_timer.start(delay)

    @Slot()
    def retry(self) -> None:
        self.retry_timer.stop()
        self._retries += 1
        self.runner.call(self.client.health, on_done=self._health, on_error=lambda e: self._schedule_retry(e.message))

    def _health(self, ok: bool) -> None:
        if not ok:
            self._schedule_retry("Its database does not answer.")
            return
        was_lost = not self.connected
        self.connected = True
        self.window.banner.hide()
        self.window.show_message("Connected again." if was_lost else "")
        if was_lost:
            self.connectionChanged.emit(True)
            if self.role is None:
                self.runner.call(self.client.role, on_done=self._got_role, on_error=self.api_error)
            self.refresh_all()

    # -- loaders for the models

    def _load_agents(self, request: vm.PageRequest, ok: Callable[[api.AgentPage], None],
                     failed: Callable[[api.ApiError], None]) -> None:
        if self.closed:
            return
        self.runner.call(lambda: self.client.agents(request.params, sort=request.sort, order=request.order,
                                                    limit=request.limit, cursor=request.cursor),
                         on_done=ok, on_error=failed)

    def _load_devices(self, request: tuple[int, int, vm.DeviceFilter], ok: Callable[[api.DevicePage], None],
                      failed: Callable[[api.ApiError], None]) -> None:
        _generation, skip, chosen = request
        if self.closed:
            return
        query = vm.device_query(chosen)
        self.runner.call(lambda: self.client.devices(**query, skip=skip, limit=self.device_list.page_size),
                         on_done=ok, on_error=failed)

    # -- overview and policy

    def refresh_overview(self) -> None:
        self.runner.call(self.client.overview, on_done=self._got_overview, on_error=self.api_error)

    def _got_overview(self, overview: api.Overview) -> None:
        self.overview = overview
        self.trend.add(datetime.now(UTC), overview.ungoverned)
        self.settings.setValue(self._trend_key(), self.trend.dump())
        self.window.overview.show_overview(overview, self.trend.points(overview))
        self.window.agents.show_fleet_counts(dict(overview.by_type), overview.governed, overview.ungoverned)

    def _top_device_activated(self, index: QModelIndex) -> None:
        """From the overview's worst devices to that device's ungoverned agents."""
        devices = self.overview.top_ungoverned_devices if self.overview else ()
        if 0 <= index.row() < len(devices):
            self.window.tabs.setCurrentWidget(self.window.agents)
            self.window.agents.set_filter(vm.AgentFilter(device=devices[index.row()][0], governed=False))

    def load_policy(self) -> None:
        self.runner.call(self.client.policy, on_done=self.window.policy.show_policy, on_error=self.api_error)

    def save_policy(self) -> None:
        if not self.can_triage:
            self.window.show_message("Your token is a viewer token: viewers can read the policy but not change it.",
                                     error=True)
            return
        policy = self.window.policy.edited()
        self.window.policy.status.setText("Saving… (every agent is re-assessed)")

        def saved(new: api.Policy) -> None:
            self.window.policy.show_policy(new)
            self.window.show_message(f"Policy saved (version {new.version}).")
            self.refresh_all()

        self.runner.call(self.client.put_policy, policy, on_done=saved, on_error=self.api_error)

    # -- agents: filter, columns, selection, detail

    @Slot()
    def apply_filter(self) -> None:
        self.agents.set_filter(self.window.agents.current_filter())

    def _show_sort(self) -> None:
        """The header's sort arrow on the column the collector sorts by (none when it is hidden)."""
        header = self.window.agents.table.horizontalHeader()
        column = next((i for i, c in enumerate(self.choice.columns) if c.sort == self.roster.sort), -1)
        order = Qt.SortOrder.AscendingOrder if self.roster.order == "asc" else Qt.SortOrder.DescendingOrder
        header.blockSignals(True)
        try:
            header.setSortIndicator(column, order)
        finally:
            header.blockSignals(False)
        header.viewport().update()
        if header.count() and header.sectionSize(0) != WIDTHS.get(self.choice.visible[0], 110):
            self.window.agents.apply_widths(self.choice)

    def toggle_column(self, key: str) -> None:
        if self.choice.toggle(key):
            self.agents.set_columns(self.choice)
            self.settings.setValue("agents/columns", list(self.choice.visible))
        self.window.agents.build_columns_menu(self.choice)

    def _selection_changed(self, *_args: Any) -> None:
        rows = sorted({i.row() for i in self.window.agents.table.selectionModel().selectedRows()})
        self.selection.set(a.key for r in rows if (a := self.agents.agent_at(r)) is not None)
        self.window.agents.selection.setText(self.selection.describe())

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        agent = self.agents.agent_at(current.row()) if current.isValid() else None
        if agent is not None:
            self.open_detail(agent)

    def _activated(self, index: QModelIndex) -> None:
        agent = self.agents.agent_at(index.row())
        if agent is not None:
            self.open_detail(agent)
            self.window.detail_dock.show()
            self.window.detail.tabs.setFocus()

    def open_detail(self, agent: api.Agent) -> None:
        self._detail_generation += 1
        generation = self._detail_generation
        self.window.detail.show_loading(agent)

        def fetch() -> tuple[api.AgentDetail, api.AgentDetail | None, tuple[api.Agent, ...]]:
            detail = self.client.agent(agent.device_id, agent.id)
            parent = None
            if detail.agent.parent:
                try:
                    parent = self.client.agent(agent.device_id, detail.agent.parent)
                except api.NotFound:
                    parent = None
            # its sub-agents and servers: the device's sightings whose parent it is (one page of a device)
            same_device = self.client.agents({"device": agent.device_id}, sort="name", order="asc",
                                             limit=api.PAGE_MAX)
            return detail, parent, tuple(a for a in same_device.agents if a.parent == agent.id)

        def done(result: tuple[api.AgentDetail, api.AgentDetail | None, tuple[api.Agent, ...]]) -> None:
            if generation == self._detail_generation:
                self.window.detail.show_detail(*result)
                self.agents.update_agent(result[0].agent)

        def failed(error: api.ApiError) -> None:
            if generation == self._detail_generation:
                self.window.detail.show_error(error.message)
            self.api_error(error)

        self.runner.call(fetch, on_done=done, on_error=failed)

    # -- triage

    def ask_triage(self, action: str) -> None:
        """From a button: ask for the owner or note where the action needs one, then apply it."""
        if not self.can_triage:
            self.window.show_message(VIEWER_TRIAGE, error=True)
            return
        if not self.selection.keys:
            self.window.show_message("Select one or more agents first.", error=True)
            return
        if action in ("assign_owner", "note"):
            self.dialog = TriageDialog(action, self.selection.describe(), self.window)
            self.dialog.accepted.connect(lambda: self.triage(action, *self.dialog.values()) if self.dialog else None)
            self.dialog.open()
            return
        self.triage(action)

    def triage(self, action: str, owner: str | None = None, note: str | None = None,
               targets: list[tuple[str, str]] | None = None) -> None:
        """Apply one triage action to the selection (or ``targets``); the collector stores who and when."""
        keys = list(targets if targets is not None else self.selection.keys)
        if not keys:
            return
        label = vm.ACTION_LABELS.get(action, action)
        self.window.show_message(f"{label}: {len(keys)} agent{'s' if len(keys) != 1 else ''}…")

        def done(result: api.TriageResult) -> None:
            self.window.show_message(f"{label}: {result.applied} agent{'s' if result.applied != 1 else ''}.")
            self._after_triage(action, keys)

        self.runner.call(lambda: self.client.triage(keys, action, owner=owner, note=note), on_done=done,
                         on_error=self.api_error)

    def _after_triage(self, action: str, keys: list[tuple[str, str]]) -> None:
        self.refresh_overview()
        if action == "false_positive" or len(keys) > DETAIL_REFRESH_LIMIT:
            self.agents.reload()  # hidden rows leave the list; counts change
            return
        for device_id, sighting_id in keys:
            def done(detail: api.AgentDetail) -> None:
                self.agents.update_agent(detail.agent)
                shown = self.window.detail.detail
                if shown is not None and shown.agent.key == detail.agent.key:
                    self.open_detail(detail.agent)
            self.runner.call(self.client.agent, device_id, sighting_id, on_done=done, on_error=self.api_error)

    # -- registrations

    def load_registrations(self) -> None:
        status = self.window.registrations.status.currentData()

        def done(page: api.RegistrationPage) -> None:
            if self.window.registrations.status.currentData() != status:
                return  # the admin chose another status meanwhile
            self.registration_list = list(page.registrations)
            self.registration_count = page.count
            self.window.registrations.rows.set_rows([vm.registration_row(r) for r in page.registrations])
            shown = len(page.registrations)
            self.window.registrations.count.setText(
                f"{page.count:,} registration{'s' if page.count != 1 else ''}"
                + (f" (newest {shown:,} shown)" if shown < page.count else ""))

        self.runner.call(lambda: self.client.registrations(status, limit=500), on_done=done, on_error=self.api_error)

    def _current_registration(self) -> api.Registration | None:
        row = self.window.registrations.current_row()
        return self.registration_list[row] if 0 <= row < len(self.registration_list) else None

    def _current_registration_status(self) -> str | None:
        current = self._current_registration()
        return current.status if current else None

    def decide_registration(self, approve: bool) -> None:
        registration = self._current_registration()
        if registration is None:
            return
        if not self.can_triage:
            self.window.show_message("Your token is a viewer token: viewers can read registrations, not decide them.",
                                     error=True)
            return
        note = self.window.registrations.note.text().strip() or None

        def done(decided: api.Registration) -> None:
            self.window.show_message(f"Registration by {decided.owner} {decided.status}.")
            self.window.registrations.note.clear()
            self.load_registrations()
            self.refresh_overview()
            self.agents.reload()

        self.runner.call(self.client.decide_registration, registration.id, approve, note, on_done=done,
                         on_error=self.api_error)

    def open_registration_agent(self) -> None:
        registration = self._current_registration()
        if registration is not None:
            self.open_detail(api.Agent(device_id=registration.device_id, id=registration.sighting_id, name="",
                                       type="unknown"))
            self.window.detail_dock.show()

    # -- devices

    def _device_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        device = self.devices.device_at(current.row()) if current.isValid() else None
        self.window.devices.show_agents.setEnabled(device is not None)
        self.window.devices.accept_identity.setEnabled(
            self.can_triage and device is not None and device.identity_conflict is not None and not device.revoked)
        self.window.devices.users.setText("")
        if device is None:
            return

        def users() -> list[str]:
            page = self.client.agents({"device": device.id}, sort="user", order="asc", limit=api.PAGE_MAX)
            return sorted({a.user for a in page.agents if a.user})

        def show(names: list[str]) -> None:
            selected = self.window.devices.table.currentIndex()
            if self.devices.device_at(selected.row()) is device:
                health = f"; last scan {vm.scan_health(device)}" if device.incomplete else ""
                self.window.devices.users.setText("Users: " + (", ".join(names) or "(machine-wide only)") + health)

        self.runner.call(users, on_done=show, on_error=self.api_error)

    def accept_device_identity(self) -> None:
        """An admin accepts the selected device's claim to another device's identity (that one is revoked)."""
        device = self.devices.device_at(self.window.devices.table.currentIndex().row())
        if device is None or device.identity_conflict is None:
            return
        if not self.can_triage:
            self.window.show_message("Your token is a viewer token: viewers can look at devices, not accept them.",
                                     error=True)
            return
        self.window.devices.accept_identity.setEnabled(False)

        def done(accepted: api.Device) -> None:
            self.window.show_message(f"Device {accepted.id} now holds the identity; device "
                                     f"{device.identity_conflict} is revoked.")
            self.devices.reload(self.window.devices.stale.currentData())

        self.runner.call(lambda: self.client.accept_identity(device.id), on_done=done, on_error=self.api_error)

    def show_device_agents(self) -> None:
        device = self.devices.device_at(self.window.devices.table.currentIndex().row())
        if device is None:
            return
        self.window.tabs.setCurrentWidget(self.window.agents)
        self.window.agents.set_filter(vm.AgentFilter(device=device.id))

    # -- export

    def ask_export(self, kind: str) -> None:
        suffix = "csv" if kind == "csv" else "json"
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export the agents as {suffix.upper()}",
                                              f"agents.{suffix}", f"{suffix.upper()} (*.{suffix})")
        if path:
            self.export(kind, Path(path))

    def export(self, kind: str, path: Path) -> None:
        """Write every agent of the current filtered view (paged from the collector, never all in memory)."""
        roster_filter, sort, order = self.roster.filter, self.roster.sort, self.roster.order
        columns = list(self.choice.columns)
        self.window.show_message(f"Exporting {roster_filter.describe()} to {path}…")

        def job() -> int:
            pages = self.client.iter_agents(roster_filter.params(), sort=sort, order=order)
            try:
                fd, tmp = tempfile.mkstemp(prefix=".agents-", suffix=".part", dir=str(path.parent))
            except OSError as exc:
                raise api.ApiError(f"Could not write in {path.parent}: {exc.strerror or exc}") from None
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                    if kind == "csv":
                        n = vm.export_csv(pages, columns, out, self.exportProgress.emit)
                    else:
                        meta = {"filter": roster_filter.params(), "sort": sort, "order": order,
                                "collector": self.client.base_url,
                                "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
                        n = vm.export_json(pages, out, meta, self.exportProgress.emit)
                os.replace(tmp, path)
            except OSError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise api.ApiError(f"Could not write {path}: {exc.strerror or exc}") from None
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return n

        def done(rows: int) -> None:
            self.window.show_message(f"Exported {rows:,} agents to {path}.")
            self.exported.emit(str(path), rows)

        def failed(error: api.ApiError) -> None:
            self.api_error(error)
            self.window.show_message(f"Export failed: {error.message}", error=True)

        self.runner.call(job, on_done=done, on_error=failed)

    @Slot(int, int)
    def _export_progress(self, written: int, total: int) -> None:
        self.window.show_message(f"Exporting… {written:,} of {total:,} agents")


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
