"""The devices tab: host, OS, users, agent version, last seen (stale ones marked), identity conflicts (a device
that enrolled with another device's identity but not its key, for an admin to accept), sightings per device,
and whether its last scan was complete (a filter lists the incomplete ones)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.app.plain_text import plain_label


class DevicesView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.stale = QComboBox()
        self.stale.setAccessibleName("Staleness")
        for label, value in (("All devices", None), ("Stale only", True), ("Reporting only", False),
                             ("Last scan incomplete", "incomplete")):
            self.stale.addItem(label, value)
        bar.addWidget(self.stale)
        self.show_agents = QPushButton("Show its agent&s")
        self.show_agents.setEnabled(False)
        bar.addWidget(self.show_agents)
        self.accept_identity = QPushButton("Accept its &identity")
        self.accept_identity.setToolTip("This device enrolled with another device's identity but without its key. "
                                        "Accepting it revokes the other device and lets this one take the identity.")
        self.accept_identity.setEnabled(False)
        bar.addWidget(self.accept_identity)
        bar.addStretch(1)
        self.users = plain_label()  # user names come from the endpoint
        self.users.setAccessibleName("Users of the selected device")
        bar.addWidget(self.users)
        self.count = plain_label()
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bar.addWidget(self.count)
        layout.addLayout(bar)
        self.table = QTableView()
        self.table.setAccessibleName("Devices")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)  # one line per device: long values are elided, never wrapped
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)

    def show_count(self, count: int | None, loaded: int) -> None:
        self.count.setText("counting…" if count is None else
                           f"{count:,} device{'s' if count != 1 else ''}" + (f" ({loaded:,} loaded)" if loaded < count else ""))
