"""The overview tab: headline counts, agents by type and by governed state, top providers, the devices
with the most ungoverned agents, and ungoverned agents over time."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
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


class OverviewView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        cards = QHBoxLayout()
        self.cards: dict[str, Card] = {}
        for label in ("Agents", "Ungoverned", "Governed", "New in the last day", "Devices", "Stale devices",
                      vm.INCOMPLETE_SCANS):
            self.cards[label] = Card(label)
            cards.addWidget(self.cards[label])
        self.incomplete_scans = self.cards[vm.INCOMPLETE_SCANS]
        self.incomplete_scans.make_activatable("The devices whose last scan was incomplete, in the devices tab")
        for label, tip in (("Agents", "Every agent, in the agents tab"),
                           ("Ungoverned", "The ungoverned agents, in the agents tab"),
                           ("Governed", "The governed agents, in the agents tab"),
                           ("Devices", "Every device, in the devices tab"),
                           ("Stale devices", "The devices that stopped reporting, in the devices tab")):
            self.cards[label].make_activatable(tip)
        layout.addLayout(cards)
        grid = QGridLayout()
        self.trend = TrendChart("Ungoverned agents over time")
        self.by_type = BarChart("Agents by type")
        self.by_governed = BarChart("Governed and ungoverned")
        self.providers = BarChart("Top providers")
        self.type_keys: list[str] = []  # the collector's key behind each bar, for the filter it opens
        self.provider_keys: list[str] = []
        for chart, what in ((self.by_type, "that type"), (self.by_governed, "those agents"),
                            (self.providers, "the agents calling that provider")):
            chart.make_activatable(f"Click a bar (or Enter on it) for {what} in the agents tab")
        self.top_devices = RowsModel(["Device", "Ungoverned agents"], self)
        self.devices_table = QTableView()
        self.devices_table.setModel(self.top_devices)
        self.devices_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.devices_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.devices_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.devices_table.verticalHeader().hide()
        self.devices_table.setAccessibleName("Top ungoverned devices")
        self.devices_table.setToolTip("Enter or double-click: that device's ungoverned agents")
        devices_box = QVBoxLayout()
        title = QLabel("<b>Devices with the most ungoverned agents</b>")
        title.setTextFormat(Qt.TextFormat.RichText)
        devices_box.addWidget(title)
        devices_box.addWidget(self.devices_table)
        devices = QWidget()
        devices.setLayout(devices_box)
        grid.addWidget(self.trend, 0, 0, 1, 2)
        grid.addWidget(devices, 0, 2)
        grid.addWidget(self.by_type, 1, 0)
        grid.addWidget(self.by_governed, 1, 1)
        grid.addWidget(self.providers, 1, 2)
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
        self.type_keys = [c.key for c in overview.by_type]
        self.by_type.set_bars([(vm.TYPE_LABELS.get(c.key, c.key), c.count) for c in overview.by_type])
        self.by_governed.set_bars([("ungoverned", overview.ungoverned), ("governed", overview.governed)])
        self.provider_keys = [c.key for c in overview.top_providers]
        self.providers.set_bars([(c.key, c.count) for c in overview.top_providers])
        self.top_devices.set_rows([(d.hostname or d.device_id, d.count) for d in overview.top_ungoverned_devices])
        self.trend.set_points(trend)
        self.note.setText("Trend from the collector (hourly)" if len(overview.trend) >= 2 else
                          "Trend sampled by this console at each refresh")
