"""Thin Qt item models over the view-models: the roster (paged lazily with the collector's keyset
cursors through ``canFetchMore``/``fetchMore``), devices, the detail's evidence, timeline and chain,
and small (label, count) tables for the overview.

They hold no state of their own beyond the view-model they adapt; every fetch goes through a
``loader`` the controller gives them, which runs off the GUI thread and calls back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QStandardItem, QStandardItemModel

from console.app import api, classification, theme
from console.app import viewmodels as vm
from console.app.errors import ConsoleError
from console.app.plain_text import tooltip

Index = QModelIndex | QPersistentModelIndex
AgentRole = Qt.ItemDataRole.UserRole + 1  # the api.Agent (or api.Device) behind a row
KeyRole = Qt.ItemDataRole.UserRole + 2  # (device id, sighting id)


PageLoader = Callable[[vm.PageRequest, Callable[[api.AgentPage], None], Callable[[ConsoleError], None]], None]
DeviceLoader = Callable[[tuple[int, int, vm.DeviceFilter], Callable[[api.DevicePage], None],
                         Callable[[ConsoleError], None]], None]  # fmt: skip


class AgentTableModel(QAbstractTableModel):
    """The roster: rows arrive a page at a time; sorting and filtering are done by the collector."""

    countChanged = Signal(object)  # the number of matching agents (int), or None while unknown
    loadFailed = Signal(object)  # ConsoleError
    sortRefused = Signal(str)  # the title of a column the collector does not sort on, when it was clicked

    def __init__(self, roster: vm.AgentList, columns: vm.ColumnChoice, loader: PageLoader,
                 parent: Any = None) -> None:
        super().__init__(parent)
        self.roster = roster
        self.choice = columns
        self._loader = loader

    # -- shape

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.roster.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.choice.visible)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.choice.visible):
            return None
        column = self.choice.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"{column.title}: click to sort" if column.sort
                    else f"{column.title}: the collector does not sort on this column")
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.roster.rows) or index.column() >= len(self.choice.visible):
            return None
        agent = self.roster.rows[index.row()]
        column = self.choice.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.value(agent)
        if role == Qt.ItemDataRole.ToolTipRole:  # tooltips are rich text: the endpoint's text escaped
            if column.key == "flags" and agent.flags:
                return tooltip("\n".join(f"{f}: {classification.explain(f)}" for f in agent.flags))
            return tooltip(column.value(agent))
        if role == Qt.ItemDataRole.ForegroundRole and column.key == "governed":
            return QBrush(theme.colour("good" if agent.governed else "bad"))
        if role == AgentRole:
            return agent
        if role == KeyRole:
            return agent.key
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # -- paging

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self.roster.can_fetch_more()

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid():
            return
        request = self.roster.next_request()
        if request is None:
            return
        self._loader(request, lambda page: self._arrived(request.generation, page),
                     lambda error: self._failed(request.generation, error))

    def _arrived(self, generation: int, page: api.AgentPage) -> None:
        fresh = self.roster.receive(generation, page)
        if fresh is None:
            return
        if fresh:
            first = len(self.roster.rows)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self.roster.append(fresh)
            self.endInsertRows()
        self.countChanged.emit(self.roster.count)

    def _failed(self, generation: int, error: ConsoleError) -> None:
        self.roster.failed(generation)
        self.loadFailed.emit(error)

    # -- sort, filter, columns

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.choice.visible):
            return
        key = self.choice.columns[column].sort
        if key is None:  # the collector does not sort on this column: say so, keep the sort as it was
            self.sortRefused.emit(self.choice.columns[column].title)
            return
        self.reload(sort=key, order="asc" if order == Qt.SortOrder.AscendingOrder else "desc")

    def set_filter(self, new_filter: vm.AgentFilter) -> None:
        self.reload(filter=new_filter)

    def reload(self, **changes: Any) -> None:
        """Drop the rows and fetch the first page again (with a new filter or sort, if given)."""
        self.beginResetModel()
        self.roster.reset(**changes)
        self.endResetModel()
        self.countChanged.emit(None)
        self.fetchMore()

    def set_columns(self, choice: vm.ColumnChoice) -> None:
        self.beginResetModel()
        self.choice = choice
        self.endResetModel()

    def column_of(self, key: str) -> int | None:
        return self.choice.visible.index(key) if key in self.choice.visible else None

    def update_agent(self, agent: api.Agent) -> None:
        row = self.roster.update(agent)
        if row is not None:
            self.dataChanged.emit(self.index(row, 0), self.index(row, max(0, self.columnCount() - 1)))

    def agent_at(self, row: int) -> api.Agent | None:
        return self.roster.rows[row] if 0 <= row < len(self.roster.rows) else None


class DeviceTableModel(QAbstractTableModel):
    """Devices by hostname, paged by the collector; stale ones marked."""

    countChanged = Signal(object)
    loadFailed = Signal(object)

    def __init__(self, devices: vm.DeviceList, loader: DeviceLoader, parent: Any = None) -> None:
        super().__init__(parent)
        self.devices = devices
        self._loader = loader

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.devices.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(vm.DEVICE_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(vm.DEVICE_COLUMNS):
            return vm.DEVICE_COLUMNS[section][0]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.devices.rows) or index.column() >= len(vm.DEVICE_COLUMNS):
            return None
        device = self.devices.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return vm.DEVICE_COLUMNS[index.column()][1](device)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(vm.DEVICE_COLUMNS[index.column()][1](device))
        if role == Qt.ItemDataRole.ForegroundRole and (device.stale or device.revoked):
            return QBrush(theme.colour("warn" if not device.revoked else "revoked"))
        if role == Qt.ItemDataRole.ForegroundRole and device.incomplete:
            return QBrush(theme.colour("bad"))  # its last scan left something out
        if role == AgentRole:
            return device
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self.devices.can_fetch_more()

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid():
            return
        request = self.devices.next_request()
        if request is None:
            return
        generation, skip, _stale = request
        self._loader(request, lambda page: self._arrived(generation, skip, page),
                     lambda error: self._failed(generation, error))

    def _arrived(self, generation: int, skip: int, page: api.DevicePage) -> None:
        fresh = self.devices.receive(generation, skip, page)
        if fresh is None:
            return
        if fresh:
            first = len(self.devices.rows)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self.devices.rows.extend(fresh)
            self.endInsertRows()
        self.countChanged.emit(self.devices.count)

    def _failed(self, generation: int, error: ConsoleError) -> None:
        self.devices.failed(generation)
        self.loadFailed.emit(error)

    def reload(self, stale: vm.DeviceFilter = None) -> None:
        self.beginResetModel()
        self.devices.reset(stale)
        self.endResetModel()
        self.countChanged.emit(None)
        self.fetchMore()

    def device_at(self, row: int) -> api.Device | None:
        return self.devices.rows[row] if 0 <= row < len(self.devices.rows) else None


class RowsModel(QAbstractTableModel):
    """A small read-only table of strings (overview counts, evidence, timeline); replaced whole."""

    def __init__(self, headers: Sequence[str], parent: Any = None) -> None:
        super().__init__(parent)
        self.headers = list(headers)
        self.rows: list[tuple[str, ...]] = []

    def set_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        self.beginResetModel()
        self.rows = [tuple(str(c) for c in r) for r in rows]
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self.headers):
            return self.headers[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows) or index.column() >= len(self.headers):
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            row = self.rows[index.row()]
            text = row[index.column()] if index.column() < len(row) else ""
            return text if role == Qt.ItemDataRole.DisplayRole else tooltip(text)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


class ChainModel(QStandardItemModel):
    """The chain an agent belongs to, as a tree: human → agent → sub-agent → MCP server → system."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setHorizontalHeaderLabels(["Link", "What"])

    def set_chain(self, root: vm.ChainNode | None) -> None:
        self.removeRows(0, self.rowCount())
        if root is not None:
            self._add(self.invisibleRootItem(), root)

    def _add(self, parent: QStandardItem, node: vm.ChainNode) -> None:
        label = QStandardItem(f"{node.label}")
        label.setEditable(False)
        if node.current:
            font = label.font()
            font.setBold(True)
            label.setFont(font)
        what = QStandardItem(f"{node.kind.replace('_', ' ')} — {node.detail}" if node.detail else node.kind)
        what.setEditable(False)
        what.setToolTip(tooltip(what.text()))
        if node.risk:  # a risky server stands out (the colour is set again when the palette changes)
            for item in (label, what):
                item.setForeground(QBrush(theme.colour("bad")))
        label.setToolTip(tooltip(f"{node.label} ({node.kind.replace('_', ' ')})"))
        parent.appendRow([label, what])
        for child in node.children:
            self._add(label, child)
