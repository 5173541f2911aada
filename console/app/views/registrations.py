"""The registrations tab: what employees declared about their agents (owner, purpose, the providers,
tools and data systems it may use, its autonomy), for an admin to approve or reject."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.app import viewmodels as vm
from console.app.models import RowsModel
from console.app.plain_text import plain_label


class RegistrationsView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.status = QComboBox()
        self.status.setAccessibleName("Registration status")
        for label, value in (("Pending", "pending"), ("Approved", "approved"), ("Rejected", "rejected"),
                             ("Superseded", "superseded"), ("All", None)):
            self.status.addItem(label, value)
        bar.addWidget(self.status)
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note for the owner (optional)")
        self.note.setAccessibleName("Decision note")
        self.note.setMaxLength(4000)
        bar.addWidget(self.note, 1)
        self.approve = QPushButton("&Approve registration")  # Alt+V is the View menu, Alt+T Triage
        self.reject = QPushButton("Re&ject")
        self.open_agent = QPushButton("Show the a&gent")
        for button in (self.approve, self.reject, self.open_agent):
            button.setEnabled(False)
            bar.addWidget(button)
        self.count = plain_label()
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bar.addWidget(self.count)
        layout.addLayout(bar)
        self.rows = RowsModel(vm.REGISTRATION_HEADERS, self)
        self.table = QTableView()
        self.table.setModel(self.rows)
        self.table.setAccessibleName("Registrations")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.can_decide = False
        self.rows.modelReset.connect(self.fit_columns)
        self.fit_columns()

    def fit_columns(self) -> None:
        """Each column as wide as its header and its widest value, up to a third of the table: no header clipped."""
        header = self.table.horizontalHeader()
        metrics = header.fontMetrics()
        widest = max(220, self.table.viewport().width() // 3)
        for i, title in enumerate(vm.REGISTRATION_HEADERS):
            needed = metrics.horizontalAdvance(title) + 28  # room for the sort arrow and padding
            contents = self.table.sizeHintForColumn(i) if self.rows.rowCount() else 0
            header.resizeSection(i, max(needed, min(contents + 12, widest)))
    def current_row(self) -> int:
        index = self.table.currentIndex()
        return index.row() if index.isValid() else -1

    def enable_for(self, status: str | None) -> None:
        """Decisions only on a pending registration, and only for an admin."""
        self.open_agent.setEnabled(status is not None)
        for button in (self.approve, self.reject):
            button.setEnabled(self.can_decide and status == "pending")
            button.setToolTip("" if self.can_decide else "Viewers can read registrations; an admin decides them.")
