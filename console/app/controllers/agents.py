"""The agents tab: the roster paged from the collector (filter, sort, columns moved and kept, saved views),
the selection (copied as rows, a context menu on it), the detail dock, and triage of the selected agents or
of the agent the detail shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPoint, Qt, QTimer, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView, QApplication, QInputDialog, QMenu, QMessageBox

from console.app import api
from console.app import viewmodels as vm
from console.app.controllers.session import VIEWER_TRIAGE, Session
from console.app.errors import ConsoleError
from console.app.models import AgentTableModel
from console.app.views.agents import WIDTHS
from console.app.views.dialogs import TriageDialog
from console.app.views.timeline import TimelineDialog

DETAIL_REFRESH_LIMIT = 50  # after triage, rows refreshed in place; beyond this the list reloads
CONFIRMED = frozenset({"approve", "false_positive", "request_registration"})  # asked first when on several


class AgentsController(QObject):
    """The roster's model and the agents tab's actions; ``on_triaged`` runs after each triage."""

    def __init__(self, session: Session, parent: QObject, *, page_size: int,
                 on_error: Callable[[ConsoleError], None], on_triaged: Callable[[], None]) -> None:
        super().__init__(parent)
        self.session = session
        self.on_error = on_error
        self.on_triaged = on_triaged
        self.dialog: TriageDialog | None = None
        self._detail_generation = 0
        self.choice = vm.ColumnChoice.restore(_strings(session.settings.value("agents/columns")))
        self.saved_views = vm.SavedViews.load(session.settings.value("agents/views"))
        self._dock_opened = False  # the detail dock shows itself once, at the first agent opened
        self.roster = vm.AgentList(page_size)
        self.model = AgentTableModel(self.roster, self.choice, self._load, self)
        self.selection = vm.Selection()
        self.whole_filter: vm.AgentFilter | None = None  # "all N matching" chosen: actions go to the filter
        self.last_action_id: int | None = None  # what Edit → Undo undoes
        self.confirm_box: QMessageBox | None = None
        self._wire()

    def _wire(self) -> None:
        view = self.session.window.agents
        view.table.setModel(self.model)
        self.model.modelReset.connect(self._show_sort)
        self._show_sort()
        view.build_columns_menu(self.choice)
        view.columns_menu.triggered.connect(lambda action: self.toggle_column(str(action.data())))
        view.filterChanged.connect(self.apply_filter)
        self.model.countChanged.connect(lambda n: view.show_count(n, len(self.roster.rows)))
        self.model.rowsInserted.connect(lambda *_: view.show_count(self.roster.count, len(self.roster.rows)))
        self.model.loadFailed.connect(self.on_error)
        view.table.selectionModel().selectionChanged.connect(self._selection_changed)
        view.table.selectionModel().currentRowChanged.connect(self._current_changed)
        view.table.activated.connect(self._activated)
        self.model.modelReset.connect(self._selection_changed)
        for action, button in view.triage_buttons.items():
            button.clicked.connect(lambda _=False, a=action: self.ask_triage(a))
        window = self.session.window
        for action, menu_action in window.triage_actions.items():
            menu_action.triggered.connect(lambda _=False, a=action: self.ask_triage(a))
        window.detail.triageRequested.connect(self.triage_shown)
        self.model.sortRefused.connect(self._sort_refused)
        view.table.horizontalHeader().sectionMoved.connect(self._column_moved)
        view.table.customContextMenuRequested.connect(self.show_context_menu)
        window.copy_action.triggered.connect(self.copy_rows)
        window.select_all_action.triggered.connect(self.select_all_loaded)
        window.find_action.triggered.connect(self.find)
        window.select_matching_action.triggered.connect(self.select_all_matching)
        view.select_matching.clicked.connect(self.select_all_matching)
        window.undo_action.triggered.connect(self.undo_last)
        self.build_views_menu()
        self._complete_timer = QTimer(self)
        self._complete_timer.setSingleShot(True)
        self._complete_timer.setInterval(250)  # one request once typing pauses, not one per key
        self._complete_timer.timeout.connect(self._complete_device)
        view.texts["device"].textEdited.connect(lambda _text: self._complete_timer.start())

    def _load(self, request: vm.PageRequest, ok: Callable[[api.AgentPage], None],
              failed: Callable[[ConsoleError], None]) -> None:
        if self.session.closed:
            return
        client = self.session.client
        self.session.runner.call(lambda: client.agents(request.params, sort=request.sort, order=request.order,
                                                       limit=request.limit, cursor=request.cursor),
                                 on_done=ok, on_error=failed)

    def reload(self) -> None:
        self.model.reload()

    def set_role(self, admin: bool) -> None:
        self.session.window.agents.set_can_triage(admin, VIEWER_TRIAGE)
        self.session.window.detail.set_can_triage(admin, VIEWER_TRIAGE)
        for action in self.session.window.triage_actions.values():
            action.setEnabled(admin)

    def save_state(self) -> None:
        self.session.settings.setValue("agents/columns", list(self.choice.visible))

    # -- filter, columns, selection, detail

    @Slot()
    def apply_filter(self) -> None:
        chosen = self.session.window.agents.current_filter()
        if chosen.ladder is not None and chosen.ladder != self.roster.filter.ladder:
            self.model.reload(filter=chosen, sort="overdue", order="asc")  # a rung chosen: the overdue first
        else:
            self.model.set_filter(chosen)

    def _show_sort(self) -> None:
        """The header's sort arrow on the column the collector sorts by (none when it is hidden)."""
        view = self.session.window.agents
        header = view.table.horizontalHeader()
        column = next((i for i, c in enumerate(self.choice.columns) if c.sort == self.roster.sort), -1)
        order = Qt.SortOrder.AscendingOrder if self.roster.order == "asc" else Qt.SortOrder.DescendingOrder
        header.blockSignals(True)
        try:
            header.setSortIndicator(column, order)
        finally:
            header.blockSignals(False)
        header.viewport().update()
        if header.count() and header.sectionSize(0) != WIDTHS.get(self.choice.visible[0], 110):
            view.apply_widths(self.choice)

    def _sort_refused(self, title: str) -> None:
        sorted_by = next((c.title for c in vm.COLUMNS if c.sort == self.roster.sort), self.roster.sort)
        self.session.window.show_message(f"The collector cannot sort by {title}; the roster stays sorted by "
                                         f"{sorted_by}. Filter on it instead, or sort by another column.", error=True)
        self._show_sort()

    def _column_moved(self, _logical: int, old_visual: int, new_visual: int) -> None:
        """Keep the order the user dragged the columns into: the model takes it (so copy and export follow
        it too) and the header goes back to showing its sections in model order."""
        header = self.session.window.agents.table.horizontalHeader()
        order = vm.moved_columns(self.choice.visible, old_visual, new_visual)
        header.blockSignals(True)
        try:
            header.moveSection(new_visual, old_visual)
        finally:
            header.blockSignals(False)
        self.choice.visible = order
        self.model.set_columns(self.choice)
        self.session.window.agents.apply_widths(self.choice)
        self._show_sort()
        self.save_state()

    def _complete_device(self) -> None:
        """Offer the hostnames that start with what is typed in the device filter."""
        view = self.session.window.agents
        prefix = view.texts["device"].text().strip()
        if not prefix or self.session.closed:
            return

        def show(found: list[tuple[str, str]]) -> None:
            if view.texts["device"].text().strip() == prefix:  # still what is typed
                view.device_names.setStringList(sorted({hostname for _id, hostname in found}))
                if found and view.texts["device"].hasFocus():
                    view.device_completer.complete()

        # an old collector without completion answers 404: the field still takes a hostname or an id
        self.session.runner.call(self.session.client.complete_devices, prefix, on_done=show,
                                 on_error=lambda _error: None)

    def selected_agents(self) -> list[api.Agent]:
        view = self.session.window.agents
        rows = sorted({i.row() for i in view.table.selectionModel().selectedRows()})
        return [a for r in rows if (a := self.model.agent_at(r)) is not None]

    def copy_rows(self) -> None:
        """Edit → Copy (Ctrl+C): the selected rows, in the columns shown, tab-separated with a header line
        (of the roster, or of whichever other table has the focus: the fleet, the devices…)."""
        window = self.session.window
        focus = QApplication.focusWidget()
        if isinstance(focus, QAbstractItemView) and focus is not window.agents.table and focus.model() is not None:
            rows = sorted({i.row() for i in focus.selectionModel().selectedRows()}) if focus.selectionModel() else []
            if not rows:
                window.show_message("Select one or more rows to copy.", error=True)
                return
            QGuiApplication.clipboard().setText(_table_text(focus.model(), rows))
            window.show_message(f"Copied {len(rows):,} row{'s' if len(rows) != 1 else ''}.")
            return
        agents = self.selected_agents()
        if not agents:
            window.show_message("Select one or more agents to copy.", error=True)
            return
        QGuiApplication.clipboard().setText(vm.rows_as_text(agents, self.choice.columns))
        window.show_message(f"Copied {len(agents):,} row{'s' if len(agents) != 1 else ''}.")

    def select_all_loaded(self) -> None:
        window = self.session.window
        window.tabs.setCurrentWidget(window.agents)
        window.agents.table.selectAll()

    def find(self) -> None:
        window = self.session.window
        window.tabs.setCurrentWidget(window.agents)
        window.agents.focus_search()

    def show_context_menu(self, position: QPoint) -> None:
        view = self.session.window.agents
        index = view.table.indexAt(position)
        if index.isValid() and not view.table.selectionModel().isRowSelected(index.row(), QModelIndex()):
            view.table.selectRow(index.row())
        agents = self.selected_agents()
        if not agents:
            return
        menu = self.context_menu(agents)
        menu.popup(view.table.viewport().mapToGlobal(position))

    def context_menu(self, agents: list[api.Agent]) -> QMenu:
        """Triage, copy, and the device of the first selected agent."""
        window = self.session.window
        menu = QMenu(window.agents.table)
        for action in window.triage_actions.values():
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(window.copy_action)
        first = agents[0]
        device = menu.addAction(f"Show every agent on {_menu_text(first.hostname or first.device_id)}")
        device.triggered.connect(lambda: window.agents.set_filter(vm.AgentFilter(device=first.device_id)))
        if first.type != "tool_server":
            servers = menu.addAction("Show its &servers")
            servers.triggered.connect(lambda: self.show_servers(first))
        detail = menu.addAction("Open the detail")
        detail.triggered.connect(lambda: self._activated(self.model.index(self.roster.rows.index(first), 0))
                                 if first in self.roster.rows else None)
        menu.addAction("Behaviour over time…").triggered.connect(lambda: self.show_timeline(first))
        return menu

    def show_timeline(self, agent: api.Agent) -> TimelineDialog:
        """The agent's behaviour facts and drift events in a dialog; an admin accepts an open event there."""
        dialog = TimelineDialog(agent.name, self.session.window)
        client, key = self.session.client, agent.key

        def load() -> None:
            self.session.runner.call(client.timeline, *key, on_error=self.on_error,
                                     on_done=lambda data: dialog.show_timeline(data, can_accept=self.session.can_triage))

        def accepted(_event: object) -> None:
            load()
            self.open_detail(key, agent.name)  # governed again: the detail dock says so

        def accept(event_id: int) -> None:
            self.session.runner.call(client.accept_drift, *key, event_id, on_error=self.on_error, on_done=accepted)

        dialog.accept_requested.connect(accept)
        load()
        dialog.show()
        return dialog

    def show_servers(self, agent: api.Agent) -> None:
        """The roster lists the servers (and sub-agents) under one agent: the device's sightings it is the
        parent of, tool servers included."""
        window = self.session.window
        window.tabs.setCurrentWidget(window.agents)
        window.agents.set_filter(vm.AgentFilter(device=agent.device_id, parent=agent.id), parent_name=agent.name)

    # -- saved views

    def build_views_menu(self) -> None:
        menu = self.session.window.agents.views_menu
        menu.clear()
        save = menu.addAction("Save this view…")
        save.triggered.connect(self.ask_save_view)
        names = self.saved_views.names()
        if names:
            menu.addSeparator()
        for name in names:
            action = menu.addAction(_menu_text(name))
            action.triggered.connect(lambda _=False, n=name: self.open_view(n))
        if names:
            forget = menu.addMenu("Delete a view")
            for name in names:
                action = forget.addAction(_menu_text(name))
                action.triggered.connect(lambda _=False, n=name: self.delete_view(n))

    def ask_save_view(self) -> None:
        view = self.session.window.agents
        name, ok = QInputDialog.getText(view, "Save this view", "Name of the view:")
        if ok:
            self.save_view(name, view.current_filter())

    def save_view(self, name: str, chosen: vm.AgentFilter) -> None:
        kept = self.saved_views.save(name, chosen)
        self.session.settings.setValue("agents/views", self.saved_views.dump())
        self.build_views_menu()
        self.session.window.show_message(f"Saved the view “{kept}”: {chosen.describe()}.")

    def open_view(self, name: str) -> None:
        chosen = self.saved_views.views.get(name)
        if chosen is not None:
            self.session.window.agents.set_filter(chosen)

    def delete_view(self, name: str) -> None:
        self.saved_views.remove(name)
        self.session.settings.setValue("agents/views", self.saved_views.dump())
        self.build_views_menu()

    def toggle_column(self, key: str) -> None:
        if self.choice.toggle(key):
            self.model.set_columns(self.choice)
            self.save_state()
        self.session.window.agents.build_columns_menu(self.choice)

    def _selection_changed(self, *_args: Any) -> None:
        view = self.session.window.agents
        rows = sorted({i.row() for i in view.table.selectionModel().selectedRows()})
        self.selection.set(a.key for r in rows if (a := self.model.agent_at(r)) is not None)
        self.whole_filter = None
        view.selection.setText(self.selection.describe())
        count = self.roster.count or 0
        every_loaded = bool(rows) and len(rows) == len(self.roster.rows)
        view.select_matching.setVisible(every_loaded and count > len(rows))
        if every_loaded and count > len(rows):
            view.select_matching.setText(f"Select all {count:,} matching")

    def select_all_matching(self) -> None:
        """Edit → Select all matching: the next action goes to the collector for the whole filter, not only
        for the rows loaded."""
        window = self.session.window
        window.tabs.setCurrentWidget(window.agents)
        count = self.roster.count
        if not count:
            window.show_message("No agent matches the filter: nothing to select.", error=True)
            return
        window.agents.table.selectAll()  # the loaded rows show as selected; the filter is what is acted on
        self.whole_filter = self.roster.filter
        window.agents.select_matching.hide()
        window.agents.selection.setText(f"all {count:,} matching agents")

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        agent = self.model.agent_at(current.row()) if current.isValid() else None
        if agent is not None:
            self.open_detail(agent.key, agent.name)

    def _activated(self, index: QModelIndex) -> None:
        agent = self.model.agent_at(index.row())
        if agent is not None:
            self.open_detail(agent.key, agent.name)
            self.session.window.detail_dock.show()
            self.session.window.detail.tabs.setFocus()

    def open_detail(self, key: tuple[str, str], name: str = "") -> None:
        """Show the agent ``key`` (device id, sighting id) in the detail dock; ``name`` while it loads."""
        self._detail_generation += 1
        generation = self._detail_generation
        client, detail_view = self.session.client, self.session.window.detail
        device_id, sighting_id = key
        detail_view.show_loading(name)
        if not self._dock_opened:
            self._dock_opened = True
            window = self.session.window
            if not window.detail_dock.isVisible():
                window.detail_dock.show()
                # a third of the window at most, and what the roster's bar leaves at 1280 pixels
                window.resizeDocks([window.detail_dock], [min(420, window.width() // 3)], Qt.Orientation.Horizontal)

        def fetch() -> tuple[api.AgentDetail, api.AgentDetail | None, tuple[api.Agent, ...], dict[str, Any] | None]:
            detail = client.agent(device_id, sighting_id)
            parent = None
            if detail.parent:
                try:
                    parent = client.agent(device_id, detail.parent)
                except api.NotFound:
                    parent = None
            # its sub-agents and servers: the device's sightings whose parent it is (one page of a device)
            same_device = client.agents({"device": device_id}, sort="name", order="asc", limit=api.PAGE_MAX)
            # a registration's declaration is shown beside what the agent was seen doing: its timeline
            timeline = None
            if detail.registration is not None:
                try:
                    timeline = client.timeline(device_id, sighting_id)
                except api.ApiError:  # the comparison is left out; the detail itself is shown
                    timeline = None
            return detail, parent, tuple(a for a in same_device.data if a.parent == sighting_id), timeline

        def done(result: tuple[api.AgentDetail, api.AgentDetail | None, tuple[api.Agent, ...],
                               dict[str, Any] | None]) -> None:
            if generation == self._detail_generation:
                detail_view.show_detail(*result)
                self.model.update_agent(result[0].agent)

        def failed(error: ConsoleError) -> None:
            if generation == self._detail_generation:
                detail_view.show_error(error.message)
            self.on_error(error)

        self.session.runner.call(fetch, on_done=done, on_error=failed)

    # -- triage

    def triage_shown(self, action: str) -> None:
        """From the detail's buttons: the action on the agent the detail shows."""
        shown = self.session.window.detail.detail
        if shown is None:
            return
        self.ask_triage(action, targets=[(shown.device_id, shown.id)], describe=shown.name)

    def ask_triage(self, action: str, targets: list[tuple[str, str]] | None = None, describe: str = "") -> None:
        """From a button or menu: ask for the owner or note where the action needs one, then apply it to
        the selection (or ``targets``, named ``describe``)."""
        window = self.session.window
        if not self.session.can_triage:
            window.show_message(VIEWER_TRIAGE, error=True)
            return
        whole = self.whole_filter if targets is None else None
        if targets is None and not self.selection.keys and whole is None:
            window.show_message("Select one or more agents first.", error=True)
            return
        if whole is not None:
            what = f"every agent matching {whole.describe()}"
        else:
            what = describe or self.selection.describe()
        if action in ("assign_owner", "note"):
            self.dialog = TriageDialog(action, what, window)
            self.dialog.accepted.connect(
                lambda: self._triage_or_filter(action, *self.dialog.values(), targets=targets, whole=whole)
                if self.dialog else None)
            self.dialog.open()
            return
        self._triage_or_filter(action, targets=targets, whole=whole)

    def _triage_or_filter(self, action: str, owner: str | None = None, note: str | None = None, *,
                          targets: list[tuple[str, str]] | None, whole: vm.AgentFilter | None) -> None:
        if whole is not None:
            self.triage_whole_filter(action, whole, owner=owner, note=note)
            return
        keys = targets if targets is not None else self.selection.keys
        if action in CONFIRMED and len(keys) > 1:
            asked, button = vm.question(action, len(keys))
            self.confirm(asked, f"{asked} These are the {len(keys):,} selected agents. Edit → Undo takes it back.",
                         button, lambda: self.triage(action, owner, note, targets=targets))
            return
        self.triage(action, owner, note, targets=targets)

    def confirm(self, title: str, text: str, button: str, proceed: Callable[[], None]) -> None:
        """Ask before an action on many agents; ``proceed`` when the admin confirms with ``button``."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel, self.session.window)
        box.setTextFormat(Qt.TextFormat.PlainText)  # it names filters and agents
        box.button(QMessageBox.StandardButton.Ok).setText(button)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.accepted.connect(proceed)
        self.confirm_box = box
        box.open()

    def triage_whole_filter(self, action: str, chosen: vm.AgentFilter, owner: str | None = None,
                            note: str | None = None) -> None:
        """Count what the filter matches now (a dry run), ask with that count, then apply the action to the
        filter on the collector in one transaction (refused if the count moved in between)."""
        window, client = self.session.window, self.session.client
        params = chosen.params()
        window.show_message(f"Counting the agents matching {chosen.describe()}…")

        def counted(result: api.FilterApplied) -> None:
            if result.count == 0:
                window.show_message("No agent matches the filter any more: nothing to do.", error=True)
                return
            asked, button = vm.question(action, result.count)
            self.confirm(asked, f"{asked} These are the agents matching {chosen.describe()}, in one action on the "
                         "collector. Edit → Undo takes it back.", button, lambda: apply(result.count))

        def apply(expected: int) -> None:
            window.show_message(f"{vm.question(action, expected)[1]}: {expected:,} agents…")
            self.session.runner.call(lambda: client.triage_filter(params, action, owner=owner, note=note,
                                                                  expected=expected),
                                     on_done=applied, on_error=self.on_error)

        def applied(result: api.FilterApplied) -> None:
            window.show_message(result.message)
            self._remember(result.action_id)
            self.whole_filter = None
            self.on_triaged()
            self.model.reload()
            self._refresh_shown_detail()

        self.session.runner.call(lambda: client.triage_filter(params, action, owner=owner, note=note, dry_run=True),
                                 on_done=counted, on_error=self.on_error)

    def _remember(self, action_id: int | None) -> None:
        self.last_action_id = action_id
        window = self.session.window
        window.undo_action.setEnabled(action_id is not None)
        window.undo_action.setToolTip(f"Undo action #{action_id}" if action_id is not None else "")

    def undo_last(self) -> None:
        """Edit → Undo: the last action this console applied goes back on the collector (every agent it
        changed gets its triage before it)."""
        window = self.session.window
        if self.last_action_id is None:
            window.show_message("Nothing to undo: no action was applied from this console.", error=True)
            return
        if not self.session.can_triage:
            window.show_message(VIEWER_TRIAGE, error=True)
            return
        action_id = self.last_action_id

        def undone(result: api.Undone) -> None:
            window.show_message(result.message)
            self._remember(None)
            self.on_triaged()
            self.model.reload()
            self._refresh_shown_detail()

        window.show_message(f"Undoing action #{action_id}…")
        self.session.runner.call(self.session.client.undo_last_action, action_id, on_done=undone,
                                 on_error=self.on_error)

    def _refresh_shown_detail(self) -> None:
        shown = self.session.window.detail.detail
        if shown is not None:
            self.open_detail((shown.device_id, shown.id), shown.name)

    def triage(self, action: str, owner: str | None = None, note: str | None = None,
               targets: list[tuple[str, str]] | None = None) -> None:
        """Apply one triage action to the selection (or ``targets``); the collector stores who and when."""
        keys = list(targets if targets is not None else self.selection.keys)
        if not keys:
            return
        if len(keys) > api.TRIAGE_MAX:  # the collector would refuse it: say so in words, send nothing
            self.session.window.show_message(
                f"One action takes at most {api.TRIAGE_MAX:,} agents at once and {len(keys):,} are selected. "
                "Select fewer, or narrow the filter.", error=True)
            return
        label = vm.ACTION_LABELS.get(action, action)
        window, client = self.session.window, self.session.client
        window.show_message(f"{label}: {len(keys)} agent{'s' if len(keys) != 1 else ''}…")

        def done(result: api.TriageResult) -> None:
            window.show_message(f"{label}: {result.applied} agent{'s' if result.applied != 1 else ''}."
                                + (" Edit → Undo takes it back." if result.action_id is not None else ""))
            self._remember(result.action_id)
            self._after_triage(action, keys)

        self.session.runner.call(lambda: client.triage(keys, action, owner=owner, note=note), on_done=done,
                                 on_error=self.on_error)

    def _after_triage(self, action: str, keys: list[tuple[str, str]]) -> None:
        self.on_triaged()
        if action == "false_positive" or len(keys) > DETAIL_REFRESH_LIMIT:
            self.model.reload()  # hidden rows leave the list; counts change
            return
        for device_id, sighting_id in keys:
            def done(detail: api.AgentDetail) -> None:
                self.model.update_agent(detail.agent)
                shown = self.session.window.detail.detail
                if shown is not None and shown.id == detail.id and shown.device_id == detail.device_id:
                    self.open_detail((detail.device_id, detail.id), detail.name)
            self.session.runner.call(self.session.client.agent, device_id, sighting_id, on_done=done,
                                     on_error=self.on_error)


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None


def _table_text(model: QAbstractItemModel, rows: list[int]) -> str:
    """Rows of any table as the roster copies its own: a header line, then tab-separated cells."""
    columns = range(model.columnCount())

    def cell(value: object) -> str:
        return " ".join(str("" if value is None else value).replace("\t", " ").splitlines())

    lines = ["\t".join(cell(model.headerData(c, Qt.Orientation.Horizontal)) for c in columns)]
    lines += ["\t".join(cell(model.index(r, c).data()) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def _menu_text(text: str) -> str:
    """A menu item shows its text as written (menus render no HTML) but reads ``&`` as a mnemonic: doubled."""
    return text.replace("&", "&&")
