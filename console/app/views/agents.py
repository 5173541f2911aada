"""The agents tab: a filter bar (with the count of matching agents and saved views), triage and export
buttons, and the roster table, whose columns the user chooses and moves, with a context menu on rows."""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from console.app import theme
from console.app import viewmodels as vm
from console.app.plain_text import plain_label, tooltip

#: the widest count the label must show without clipping (a fleet of 100,000 with 4,200 loaded)
WIDEST_COUNT = "999,999 agents match (99,999 loaded)"
SEVERAL = "\x00several"  # the data of the "Several…" item of the type and flag boxes (never a real value)
TRIAGE_ICONS = {"approve": "SP_DialogApplyButton", "assign_owner": "SP_FileDialogContentsView",
                "request_registration": "SP_MessageBoxQuestion", "false_positive": "SP_DialogDiscardButton",
                "note": "SP_FileDialogDetailedView"}  # fmt: skip

#: starting widths in pixels, per column; the user may resize
WIDTHS = {"name": 190, "risk": 50, "servers": 90, "type": 100, "governed": 95, "flags": 250, "device": 130, "user": 90, "providers": 110,
          "signature": 120, "owner": 150, "triage_state": 150, "ladder": 170, "running": 70, "confidence": 90,
          "first_seen": 130, "last_seen": 130, "vendor": 110}  # fmt: skip


def _combo(name: str, items: list[tuple[str, object]]) -> QComboBox:
    box = QComboBox()
    # as wide as a short choice, not the longest: the filter bar must fit 1280 pixels beside the detail
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(12)
    box.setAccessibleName(name)
    box.setToolTip(name)
    for label, value in items:
        box.addItem(label, value)
    return box


def _choose(box: QComboBox, value: object) -> None:
    """Select the item whose data is ``value``; several values (a tuple) get an item of their own at the end."""
    several = box.property("severalIndex")
    if isinstance(several, int) and 0 <= several < box.count():
        box.removeItem(several)
        box.setProperty("severalIndex", None)
    if isinstance(value, tuple) and len(value) > 1:
        labels = [vm.TYPE_LABELS.get(str(v)) or vm.flag_label(str(v)) for v in value]
        box.addItem(", ".join(labels), value)
        box.setProperty("severalIndex", box.count() - 1)
        box.setCurrentIndex(box.count() - 1)
        return
    if isinstance(value, tuple):
        value = value[0] if value else None
    index = next((i for i in range(box.count()) if box.itemData(i) == value), 0)
    box.setCurrentIndex(index)


class AgentsView(QWidget):
    """Widgets only; the controller reads ``current_filter()`` and listens to ``filterChanged``."""

    filterChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)

        bar = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search names, users, hosts, providers, MCP servers…  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search")
        self.type = _combo("Type", [("Any type", None)] + [(vm.TYPE_LABELS[t], t) for t in vm.TYPES])
        self.governed = _combo("Governed", [("Governed or not", None), ("Ungoverned", False), ("Governed", True)])
        self.flag = _combo("Flag", [("Any flag", None)] + [(vm.flag_label(f), f) for f in vm.FLAGS])
        self.triage_state = _combo("Triage state", [("Any triage state", None)]
                                   + [(label, key) for key, label in vm.TRIAGE_STATE_LABELS.items()])
        for box in (self.type, self.flag):
            box.addItem("Several…", SEVERAL)  # ticks in a menu: any of the types, all of the flags
        self.min_risk = _combo("Risk", [("Any risk", None), ("Risk 25+", 25), ("Risk 50+", 50), ("Risk 75+", 75)])
        self.min_risk.setMinimumContentsLength(8)
        bar.addWidget(self.search, 2)
        for widget in (self.type, self.governed, self.flag, self.triage_state, self.min_risk):
            bar.addWidget(widget)
        layout.addLayout(bar)

        more = QHBoxLayout()
        self.texts: dict[str, QLineEdit] = {}
        for key, hint in (("device", "Device (hostname)"), ("user", "User"), ("provider", "Provider"),
                          ("signature", "Signature"), ("owner", "Owner")):
            edit = QLineEdit()
            edit.setPlaceholderText(hint)
            edit.setAccessibleName(hint)
            edit.setClearButtonEnabled(True)
            self.texts[key] = edit
            more.addWidget(edit)
        self.device_names = QStringListModel(self)  # hostnames the collector offers for what is typed
        self.device_completer = QCompleter(self.device_names, self)
        self.device_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.texts["device"].setCompleter(self.device_completer)
        self.texts["device"].setToolTip(tooltip("A hostname (completed as you type) or a device id"))
        # agents first: "Any type" means every type but the MCP tool servers until this is ticked
        self.with_servers = QCheckBox("&List tool servers too")
        self.with_servers.setToolTip(tooltip("The roster lists agents, with a count of the MCP servers each "
                                             "declares; tick this to list the tool servers as rows too"))
        rungs: list[tuple[str, object]] = [("Any rung", None), *((label, key) for key, label in
                                                                        vm.LADDER_LABELS.items()), ("Overdue", "overdue")]
        self.ladder = _combo("Ladder", rungs)
        self.ladder.setMinimumContentsLength(4)  # the second row keeps the window within 1280 pixels
        self.ladder.setToolTip("Where ungoverned agents stand on the policy's nudge ladder; Overdue: past their deadline")
        more.addWidget(self.ladder)
        self.clear = QPushButton("Clear filters")
        more.addWidget(self.clear)
        self.views = QToolButton()
        self.views.setText("Views")
        self.views.setToolTip("Saved views: filters kept under a name")
        self.views.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.views_menu = QMenu(self.views)
        self.views.setMenu(self.views_menu)
        more.addWidget(self.views)
        self.parent_note = plain_label("")  # "Servers of Claude Code": the roster lists one agent's servers
        self.parent_note.setAccessibleName("Listing the servers of one agent")
        self.parent_note.hide()
        more.addWidget(self.parent_note)
        self.count = plain_label("Loading agents…")
        self.count.setAccessibleName("Matching agents")
        self.count.setMinimumWidth(self.count.fontMetrics().horizontalAdvance(WIDEST_COUNT) + 12)
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        more.addWidget(self.count)
        layout.addLayout(more)

        actions = QHBoxLayout()
        self.approve = QPushButton("&Approve")
        self.assign_owner = QPushButton("&Owner…")
        self.request_registration = QPushButton("Request &registration")
        self.false_positive = QPushButton("False &positive")  # Alt+F is the File menu
        self.note = QPushButton("&Note…")
        self.triage_buttons = {"approve": self.approve, "assign_owner": self.assign_owner,
                               "request_registration": self.request_registration,
                               "false_positive": self.false_positive, "note": self.note}  # fmt: skip
        for action, button in self.triage_buttons.items():
            button.setIcon(theme.standard_icon(TRIAGE_ICONS[action]))
            button.setToolTip({"assign_owner": "Assign an owner to the selected agents",
                               "note": "Add a note to the selected agents' history"}.get(action, ""))
            actions.addWidget(button)
        self.selection = plain_label("no agent selected")
        actions.addWidget(self.selection)
        self.select_matching = QPushButton()  # "Select all 3,748 matching": shown when more match than are loaded
        self.select_matching.setFlat(True)
        self.select_matching.setAccessibleName("Select all matching agents")
        self.select_matching.hide()
        actions.addWidget(self.select_matching)
        actions.addStretch(1)
        actions.addWidget(self.with_servers)  # here, not among the filters: their fields need the width
        self.columns = QToolButton()
        self.columns.setText("Columns")
        self.columns.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.columns_menu = QMenu(self.columns)
        self.columns.setMenu(self.columns_menu)
        # one Export button with its two formats: the row must fit beside the detail at 1280 pixels
        self.export = QToolButton()
        self.export.setText("Export")
        self.export.setIcon(theme.standard_icon("SP_DialogSaveButton"))
        self.export.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_menu = QMenu(self.export)
        self.export_csv = self.export_menu.addAction("Export CSV…")
        self.export_json = self.export_menu.addAction("Export JSON…")
        self.export.setMenu(self.export_menu)
        for control in (self.columns, self.export):
            actions.addWidget(control)
        layout.addLayout(actions)

        self.table = QTableView()
        self.table.setAccessibleName("Agents")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSortingEnabled(True)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionsMovable(True)  # the new order is kept (the controller)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        layout.addWidget(self.table, 1)

        self.search.returnPressed.connect(self.filterChanged)
        self._shown = vm.AGENTS_ONLY  # the filter last set, for what the widgets cannot show ("" signature)
        self.several_menu: QMenu | None = None
        for box in (self.governed, self.triage_state, self.min_risk, self.ladder):
            box.currentIndexChanged.connect(self.filterChanged)
        for box, values in ((self.type, vm.TYPES), (self.flag, vm.FLAGS)):
            box.currentIndexChanged.connect(lambda _i, b=box, v=values: self._choice_changed(b, v))
        for edit in self.texts.values():
            edit.returnPressed.connect(self.filterChanged)
        self.with_servers.toggled.connect(lambda _on: self.filterChanged.emit())
        self.clear.clicked.connect(self.clear_filters)

    def _choice_changed(self, box: QComboBox, values: tuple[str, ...]) -> None:
        if box.currentData() != SEVERAL:
            self.filterChanged.emit()
            return
        # "Several…": tick them in a menu under the box; the filter applies when the menu closes
        before = self._shown.type if box is self.type else self._shown.flag
        ticked = set(before) if isinstance(before, tuple) else {before} if before else set()
        menu = QMenu(box)
        for value in values:
            action = menu.addAction(vm.TYPE_LABELS[value] if box is self.type else vm.flag_label(value))
            action.setCheckable(True)
            action.setChecked(value in ticked)
            action.setData(value)
        menu.aboutToHide.connect(lambda: self.choose_several(
            box, tuple(str(a.data()) for a in menu.actions() if a.isChecked())))
        self.several_menu = menu
        menu.popup(box.mapToGlobal(box.rect().bottomLeft()))

    def choose_several(self, box: QComboBox, chosen: tuple[str, ...]) -> None:
        """Show ``chosen`` in ``box`` (nothing ticked: any) and apply the filter."""
        box.blockSignals(True)
        try:
            _choose(box, chosen if len(chosen) > 1 else (chosen[0] if chosen else None))
        finally:
            box.blockSignals(False)
        new = self.current_filter()
        self._shown = new
        self.filterChanged.emit()

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def current_filter(self) -> vm.AgentFilter:
        texts: dict[str, str | None] = {k: e.text().strip() or None for k, e in self.texts.items()}
        for key in vm.KEEP_EMPTY:  # "" (no signature, machine-wide) set from elsewhere shows as an empty field
            if texts.get(key) is None and getattr(self._shown, key) == "":
                texts[key] = ""
        text = texts.get
        def chosen(box: QComboBox) -> str | tuple[str, ...] | None:
            value = box.currentData()
            return value if isinstance(value, str | tuple) and value != SEVERAL else None

        kind = chosen(self.type)
        if kind is None and not self.with_servers.isChecked() and self._shown.parent is None:
            kind = vm.AGENT_TYPES  # agents first; an agent's own servers (parent) are listed whatever their type
        return vm.AgentFilter(type=kind, governed=self.governed.currentData(),
                              flag=chosen(self.flag), triage_state=self.triage_state.currentData(),
                              q=self.search.text().strip() or None, device=text("device"), user=text("user"),
                              provider=text("provider"), signature=text("signature"), owner=text("owner"),
                              min_risk=self.min_risk.currentData(), state=self._shown.state,
                              parent=self._shown.parent, ladder=self.ladder.currentData())

    def set_filter(self, new: vm.AgentFilter, parent_name: str = "") -> None:
        """Show a filter in the widgets (e.g. from a click on the overview) and apply it once; a filter on
        an agent's servers (``parent``) is named after that agent, ``parent_name``."""
        widgets = [self.search, self.type, self.governed, self.flag, self.triage_state, self.min_risk,
                   self.ladder, self.with_servers, *self.texts.values()]
        self._shown = new
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.search.setText(new.q or "")
            # the agents-first filter shows as "Any type" unticked; no type at all lists the servers too
            self.with_servers.setChecked(new.type is None)
            for box, value in ((self.type, None if new.agents_first else new.type), (self.governed, new.governed), (self.flag, new.flag),
                               (self.triage_state, new.triage_state), (self.min_risk, new.min_risk),
                               (self.ladder, new.ladder)):
                _choose(box, value)
            for key, edit in self.texts.items():
                edit.setText(getattr(new, key) or "")
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.parent_note.setVisible(new.parent is not None)
        self.parent_note.setText(f"Servers of {parent_name or new.parent}" if new.parent is not None else "")
        self.parent_note.setToolTip(tooltip("The MCP servers and sub-agents this agent started or declares. "
                                            "Clear filters lists every agent again."))
        self.filterChanged.emit()

    def clear_filters(self) -> None:
        self.set_filter(vm.AGENTS_ONLY)

    def show_count(self, count: int | None, loaded: int) -> None:
        if count is None:
            self.count.setText("Loading agents…")
        elif count == 0:
            self.count.setText("No agent matches")
            self.count.setToolTip("Nothing matches every filter: clear one (Clear filters shows all agents).")
        else:
            self.count.setToolTip("")
            self.count.setText(f"{count:,} agent{'s' if count != 1 else ''} match"
                               + (f" ({loaded:,} loaded)" if loaded < count else ""))

    def build_columns_menu(self, choice: vm.ColumnChoice) -> None:
        self.columns_menu.clear()
        for column in vm.COLUMNS:
            action = self.columns_menu.addAction(column.title)
            action.setCheckable(True)
            action.setChecked(column.key in choice.visible)
            action.setData(column.key)

    def apply_widths(self, choice: vm.ColumnChoice) -> None:
        header = self.table.horizontalHeader()
        for i, key in enumerate(choice.visible):
            header.resizeSection(i, WIDTHS.get(key, 110))

    def set_can_triage(self, allowed: bool, why: str = "") -> None:
        for button in self.triage_buttons.values():
            button.setEnabled(allowed)
            button.setToolTip("" if allowed else why)
