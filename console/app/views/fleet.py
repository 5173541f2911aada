"""The fleet tab: the fleet by kind, one row per signature (and one per type for the agents no signature
matched) with its sightings, devices, users, ungoverned, MCP servers, highest risk and a count per flag;
agents first, tool servers on request. From a row: the roster filtered to it, "Sanction for the
organisation" (its effect previewed first) and "Approve all"."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.app import api, theme
from console.app import viewmodels as vm
from console.app.plain_text import plain_label, tooltip

Index = QModelIndex | QPersistentModelIndex
#: the figures of a row, after its name and type: (title, value of the row)
FIGURES: tuple[tuple[str, str], ...] = (("Sightings", "sightings"), ("Devices", "devices"), ("Users", "users"),
                                        ("Ungoverned", "ungoverned"), ("MCP servers", "mcp_servers"),
                                        ("Top risk", "max_risk"))  # fmt: skip


class FleetModel(QAbstractTableModel):
    """The fleet's rows; a column per flag after the figures. Sorting is local: the rows are all here."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[api.FleetRow] = []
        self.headers = ["Kind", "Type", *(t for t, _ in FIGURES), *(vm.flag_label(f) for f in vm.FLAGS)]

    def set_rows(self, rows: list[api.FleetRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def row_at(self, row: int) -> api.FleetRow | None:
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.headers):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        if role == Qt.ItemDataRole.ToolTipRole and section >= 2 + len(FIGURES):
            flag = vm.FLAGS[section - 2 - len(FIGURES)]
            return tooltip(f"{vm.flag_label(flag)}: sightings of this kind with the flag")
        return None

    def value(self, row: api.FleetRow, column: int) -> str | int:
        if column == 0:
            return row.name or row.key
        if column == 1:
            return vm.TYPE_LABELS.get(row.type, row.type)
        if column < 2 + len(FIGURES):
            return int(getattr(row, FIGURES[column - 2][1]))
        return int(row.flags.get(vm.FLAGS[column - 2 - len(FIGURES)], 0))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.row_at(index.row()) if index.isValid() else None
        if row is None or not 0 <= index.column() < len(self.headers):
            return None
        value = self.value(row, index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{value:,}" if isinstance(value, int) else value
        if role == Qt.ItemDataRole.TextAlignmentRole and isinstance(value, int):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 0:  # names come from endpoints
            return tooltip(f"{row.name} ({row.signature or 'no signature'})")
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 5 and row.ungoverned:
            return QBrush(theme.colour("bad"))
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.headers):
            return
        self.layoutAboutToBeChanged.emit()
        self.rows.sort(key=lambda r: (self.value(r, column), r.key),
                       reverse=order == Qt.SortOrder.DescendingOrder)
        self.layoutChanged.emit()


class FleetView(QWidget):
    """Widgets only; the fleet controller fills the model and acts on the current row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.with_servers = QCheckBox("&List tool servers too")
        self.with_servers.setToolTip("Agents come first; the MCP tool servers they plug into are listed on request")
        bar.addWidget(self.with_servers)
        self.show_roster = QPushButton("Show in the &roster")
        self.sanction = QPushButton("&Sanction for the organisation…")
        self.sanction.setIcon(theme.standard_icon("SP_DialogApplyButton"))
        self.approve_all = QPushButton("A&pprove all…")
        for button in (self.show_roster, self.sanction, self.approve_all):
            button.setEnabled(False)
            bar.addWidget(button)
        bar.addStretch(1)
        self.count = plain_label("Loading the fleet…")
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bar.addWidget(self.count)
        layout.addLayout(bar)
        self.model = FleetModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Fleet by kind")
        self.table.setToolTip("Double-click or Enter: the roster filtered to this kind")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 200)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.effect = plain_label()  # the previewed effect of the last sanction, and what the collector said
        self.effect.setWordWrap(True)
        layout.addWidget(self.effect)
        self.model.modelReset.connect(self.fit_columns)

    def fit_columns(self) -> None:
        """Each figure column as wide as its header (the figures are shorter); the name column wider."""
        header = self.table.horizontalHeader()
        metrics = header.fontMetrics()
        for i, title in enumerate(self.model.headers):
            header.resizeSection(i, max(200 if i == 0 else 70, metrics.horizontalAdvance(title) + 24))

    def current(self) -> api.FleetRow | None:
        index = self.table.currentIndex()
        return self.model.row_at(index.row()) if index.isValid() else None

    def show_fleet(self, fleet: api.Fleet, with_servers: bool) -> None:
        rows = list(fleet.agents) + (list(fleet.tool_servers) if with_servers else [])
        self.model.set_rows(rows)
        kinds = len(fleet.agents)
        text = f"{fleet.agent_sightings:,} agents of {kinds:,} kind{'s' if kinds != 1 else ''}"
        text += f"; {fleet.tool_server_sightings:,} tool servers" + ("" if with_servers else " (not listed)")
        self.count.setText(text if rows or fleet.sightings else "No agent reported yet")
        self.enable_for(self.current())

    def enable_for(self, row: api.FleetRow | None, *, can_act: bool | None = None) -> None:
        if can_act is not None:
            self.setProperty("canAct", can_act)
        allowed = bool(self.property("canAct"))
        self.show_roster.setEnabled(row is not None)
        self.sanction.setEnabled(row is not None and allowed and row.signature is not None)
        self.approve_all.setEnabled(row is not None and allowed and row.ungoverned > 0)
        why = "" if allowed else "Viewers can look at the fleet; an admin token can sanction and approve."
        for button in (self.sanction, self.approve_all):
            button.setToolTip(why)
