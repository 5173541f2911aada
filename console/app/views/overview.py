"""The overview tab, risk first: headline counts (agents and tool servers apart, what is new since the
admin's last visit), the riskiest agents, the fleet's risks by flag, ungoverned agents over time, agents
by type, top providers and the devices with the most ungoverned agents; every number opens its list."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.app import api, theme
from console.app import viewmodels as vm
from console.app.models import RowsModel
from console.app.plain_text import plain_label
from console.app.views.charts import BarChart, TrendChart


class Card(QFrame):
    """A headline figure and its caption; ``clicked`` when it opens the list behind it (``activatable``)."""

    clicked = Signal()

    def __init__(self, label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        self.value = plain_label("–")
        font = self.value.font()
        font.setPointSize(font.pointSize() + 8)
        font.setBold(True)
        self.value.setFont(font)
        self.caption = plain_label(label)
        layout.addWidget(self.value)
        layout.addWidget(self.caption)

    def make_activatable(self, tip: str) -> None:
        """Clicked with the mouse, or with Enter or Space once it has the focus (tabbed to)."""
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(tip)
        self.setAccessibleName(self.caption.text())
        self.setAccessibleDescription(tip)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self.focusPolicy() != Qt.FocusPolicy.NoFocus and event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.focusPolicy() != Qt.FocusPolicy.NoFocus and event.key() in (
                Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.clicked.emit()
            return
        super().keyPressEvent(event)


#: the headline cards, in order; every one opens the list behind it
CARDS = ("Agents", "Tool servers", "Ungoverned", vm.ESCALATED, vm.NEW_SINCE, "Devices", "Stale devices",
         vm.INCOMPLETE_SCANS)
RISKIEST_HEADERS = ("Risk", "Agent", "Type", "Device", "User", "Flags")


def _table(model: RowsModel, name: str, tip: str) -> QTableView:
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setWordWrap(False)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
    table.setAccessibleName(name)
    table.setToolTip(tip)
    return table


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    heading = plain_label(title)
    heading.setFont(theme.bold(heading.font()))
    layout.addWidget(heading)
    layout.addWidget(widget, 1)
    return box


class OverviewView(QWidget):
    """Risk first: the riskiest agents and the fleet's risks by flag, then the trend, the kinds of agents, the
    providers and the devices with the most ungoverned agents. Cards, rows and bars open their lists."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        cards = QHBoxLayout()
        self.cards: dict[str, Card] = {}
        for label in CARDS:
            self.cards[label] = Card(label)
            cards.addWidget(self.cards[label])
        self.incomplete_scans = self.cards[vm.INCOMPLETE_SCANS]
        for label, tip in (("Agents", "The agents (tool servers apart), in the agents tab"),
                           ("Tool servers", "The MCP tool servers, in the agents tab"),
                           ("Ungoverned", "The ungoverned agents and servers, in the agents tab"),
                           (vm.ESCALATED, "The ungoverned agents the nudge ladder escalated to IT (their "
                                          "employees' deadline passed), longest overdue first"),
                           (vm.NEW_SINCE, "The newest first, in the agents tab"),
                           ("Devices", "Every device, in the devices tab"),
                           ("Stale devices", "The devices that stopped reporting, in the devices tab"),
                           (vm.INCOMPLETE_SCANS, "The devices whose last scan was incomplete, in the devices tab")):
            self.cards[label].make_activatable(tip)
        layout.addLayout(cards)

        grid = QGridLayout()
        self.riskiest = RowsModel(RISKIEST_HEADERS, self)
        self.riskiest_rows: list[api.RiskyAgent] = []
        self.riskiest_table = _table(self.riskiest, "Riskiest agents",
                                     "Enter or double-click: the agent's detail, on its device in the agents tab")
        header = self.riskiest_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for i, width in enumerate((48, 160, 90, 110, 70)):
            header.resizeSection(i, width)
        header.setStretchLastSection(True)
        self.by_flag = BarChart("Risks in the fleet (sightings per flag)")
        self.flag_keys: list[str] = []
        self.trend = TrendChart("Ungoverned agents over time")
        self.by_type = BarChart("Agents by type")  # tool servers have their own card
        self.providers = BarChart("Top providers")
        self.type_keys: list[str] = []  # the collector's key behind each bar, for the filter it opens
        self.provider_keys: list[str] = []
        for chart, what in ((self.by_flag, "the agents with that flag"), (self.by_type, "that type"),
                            (self.providers, "the agents calling that provider")):
            chart.make_activatable(f"Click a bar (or Enter on it) for {what} in the agents tab")
        self.top_devices = RowsModel(["Device", "Ungoverned"], self)
        self.devices_table = _table(self.top_devices, "Top ungoverned devices",
                                    "Enter or double-click: that device's ungoverned agents")
        self.devices_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.devices_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        grid.addWidget(_titled("Riskiest agents", self.riskiest_table), 0, 0, 1, 2)
        grid.addWidget(self.by_flag, 0, 2)
        grid.addWidget(self.trend, 1, 0)
        grid.addWidget(self.by_type, 1, 1)
        grid.addWidget(self.providers, 1, 2)
        grid.addWidget(_titled("Devices with the most ungoverned agents", self.devices_table), 0, 3, 2, 1)
        for column, stretch in enumerate((3, 3, 3, 2)):
            grid.setColumnStretch(column, stretch)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        layout.addLayout(grid, 1)
        self.note = plain_label()
        self.note.setAlignment(Qt.AlignmentFlag.AlignRight)
        theme.tone_label(self.note, "muted")
        layout.addWidget(self.note)

    def show_overview(self, overview: api.Overview, trend: list[tuple]) -> None:  # type: ignore[type-arg]
        for label, value in vm.overview_cards(overview):
            self.cards[label].value.setText(value)
        self.riskiest_rows = list(overview.riskiest)
        self.riskiest.set_rows([(r.risk, r.name, vm.TYPE_LABELS.get(r.type, r.type), r.hostname or r.device_id,
                                 r.user or "(machine)", ", ".join(vm.flag_label(f) for f in r.flags))
                                for r in overview.riskiest])
        self.flag_keys = [c.key for c in overview.by_flag]
        self.by_flag.set_bars([(vm.flag_label(c.key), c.count) for c in overview.by_flag])
        agent_types = [c for c in overview.by_type if c.key in vm.AGENT_TYPES]
        self.type_keys = [c.key for c in agent_types]
        self.by_type.set_bars([(vm.TYPE_LABELS.get(c.key, c.key), c.count) for c in agent_types])
        self.provider_keys = [c.key for c in overview.top_providers]
        self.providers.set_bars([(c.key, c.count) for c in overview.top_providers])
        self.top_devices.set_rows([(d.hostname or d.device_id, d.count) for d in overview.top_ungoverned_devices])
        self.trend.set_points(trend)
        self.note.setText("Trend from the collector (hourly)" if len(overview.trend) >= 2 else
                          "Trend sampled by this console at each refresh")
