"""The registrations tab: what employees declared about their agents (owner, purpose, the providers,
tools and data systems it may use, its autonomy), for an admin to approve or reject (a rejection says
why). Below the queue, the selected registration's declaration side by side with what its endpoint was
seen doing (the collector's behaviour timeline), and the decision's comment once there is one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console import governance
from console.app import api, theme
from console.app import viewmodels as vm
from console.app.models import RowsModel
from console.app.plain_text import plain_label

COMPARISON_COLUMNS = ("", "Declared", "Observed", "Observed, not declared")
# (row title, the declaration's field, the timeline's fact kind): the collector judges drift on these pairs
COMPARED = (("Providers", "providers", "provider"), ("Tools (MCP servers)", "tools", "mcp_server"),
            ("Data systems", "data_systems", "system"), ("Autonomy", "autonomy", "autonomy"),
            ("MCP servers used", "tools", "mcp_server_used"), ("Tools (named)", "tools", "mcp_tool,tool"))
# the queue: what waits for an admin first (pending, then asked, then due for review), then the rest
STATUS_ORDER = {"pending": 0, "more_information": 1}
DECIDABLE = ("pending", "more_information")  # an admin may still approve or reject an asked one


def queue_order(registrations: Sequence[api.Registration]) -> list[api.Registration]:
    """Pending registrations first, then those asked for more information, then approved ones due for
    review, then the rest; each group newest first."""
    def rank(r: api.Registration) -> int:
        return STATUS_ORDER.get(r.status, 2 if r.status == "approved" and r.review_due else 3)
    return sorted(registrations, key=lambda r: (rank(r), -r.id))


def declared_vs_observed(registration: api.Registration,
                         timeline: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """One row per compared field: what the registration declares, what the endpoint was seen doing (a
    value no longer seen says since when it is gone), and what it was seen doing that the declaration
    does not name."""
    facts: Sequence[Mapping[str, Any]] = [f for f in timeline.get("facts") or [] if isinstance(f, Mapping)]
    rows = []
    for title, field, kind in COMPARED:
        declared_value = getattr(registration, field)
        declared = [declared_value] if isinstance(declared_value, str) else list(declared_value)
        seen = [f for f in facts if f.get("kind") in kind.split(",")]
        values = list(dict.fromkeys(str(f.get("value")) for f in seen))
        gone = {str(f.get("value")) for f in seen if f.get("gone_at")} - {str(f.get("value")) for f in seen
                                                                          if not f.get("gone_at")}
        observed = [f"{v} (no longer seen)" if v in gone else v for v in values]
        beyond = [v for v in values if v not in declared]
        if kind == "autonomy":  # as the collector judges drift: only acting alone when declared supervised
            beyond = [v for v in beyond if v == "autonomous"]
        elif kind == "mcp_tool,tool":  # only where the declaration names tools, as the collector judges drift
            beyond = governance.tools_beyond(declared, [str(f.get("value")) for f in seen if f.get("kind") == "mcp_tool"],
                                             [str(f.get("value")) for f in seen if f.get("kind") == "tool"])
        rows.append((title, ", ".join(declared) or "–", ", ".join(observed) or "–", ", ".join(beyond) or "–"))
    return rows


def decision_text(registration: api.Registration) -> str:
    """Who decided the registration, when, and the comment they left for its owner."""
    asked = (f"Asked by {registration.asked_by or 'an admin'} on {vm.when(registration.asked_at)} UTC: "
             f"{registration.question}" if registration.question else "")
    if registration.decided_at is None:
        text = ("Superseded by a newer registration of the same agent, never decided."
                if registration.status == "superseded" else "Not decided yet.")
        return f"{asked} {text}" if asked else text
    text = (f"{registration.status.capitalize()} by {registration.decided_by or 'an admin'} on "
            f"{vm.when(registration.decided_at)} UTC")
    text += f". Comment: {registration.decision_note}" if registration.decision_note else ", with no comment."
    if registration.review_due_at is not None:
        if not text.endswith((".", "!", "?")):  # the comment is the admin's own text: end its sentence
            text += "."
        text += (f" Review {'was due' if registration.review_due else 'due'} on {vm.when(registration.review_due_at)}"
                 " UTC: the owner registers it again to re-attest.")
    return f"{asked} {text}" if asked else text


class RegistrationRows(RowsModel):
    """The queue's rows; a superseded registration is greyed (a newer one of the same agent replaced it)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(vm.REGISTRATION_HEADERS, parent)
        self.greyed: set[int] = set()

    def set_registrations(self, registrations: Sequence[api.Registration]) -> None:
        self.greyed = {i for i, r in enumerate(registrations) if r.status == "superseded"}
        self.set_rows([vm.registration_row(r) for r in registrations])

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.ForegroundRole and index.isValid():
            return theme.colour("muted") if index.row() in self.greyed else None
        return super().data(index, role)


class RegistrationsView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.status = QComboBox()
        self.status.setAccessibleName("Registration status")
        for label, value in (("Pending", "pending"), ("More information asked", "more_information"),
                             ("Review due", "review_due"), ("Approved", "approved"), ("Rejected", "rejected"),
                             ("Superseded", "superseded"), ("All", None)):
            self.status.addItem(label, value)
        bar.addWidget(self.status)
        self.note = QLineEdit()
        self.note.setPlaceholderText("Comment or question for the owner")
        self.note.setToolTip("Optional to approve, required to reject (the owner reads why); Ask for more sends it "
                             "as a question")
        self.note.setAccessibleName("Decision comment")
        self.note.setMaxLength(4000)
        bar.addWidget(self.note, 1)
        self.approve = QPushButton("&Approve registration")  # Alt+V is the View menu, Alt+T Triage
        self.reject = QPushButton("Re&ject")
        self.ask = QPushButton("As&k for more")
        self.ask.setToolTip("Sends the comment to the owner as a question; their next registration answers it")
        self.open_agent = QPushButton("Show the a&gent")
        for button in (self.approve, self.reject, self.ask, self.open_agent):
            button.setEnabled(False)
            bar.addWidget(button)
        self.count = plain_label()
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bar.addWidget(self.count)
        layout.addLayout(bar)
        self.rows = RegistrationRows(self)
        self.table = QTableView()
        self.table.setModel(self.rows)
        self.table.setAccessibleName("Registrations")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.compared = plain_label("Select a registration to compare what was declared with what its endpoint does.")
        layout.addWidget(self.compared)
        self.comparison = QTableWidget(0, len(COMPARISON_COLUMNS))
        self.comparison.setAccessibleName("Declared and observed")
        self.comparison.setHorizontalHeaderLabels(list(COMPARISON_COLUMNS))
        self.comparison.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.comparison.verticalHeader().hide()
        self.comparison.horizontalHeader().setSectionResizeMode(len(COMPARISON_COLUMNS) - 1,
                                                                QHeaderView.ResizeMode.Stretch)
        self.comparison.setMaximumHeight(150)
        layout.addWidget(self.comparison)
        self.decision = plain_label()
        self.decision.setWordWrap(True)
        layout.addWidget(self.decision)
        self.can_decide = False
        self._shown: tuple[api.Registration | None, Mapping[str, Any] | None, str] = (None, None, "")
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

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt names the override)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "_shown"):  # the tone follows the palette
            self.show_comparison(*self._shown[:2], problem=self._shown[2])

    def show_comparison(self, registration: api.Registration | None, timeline: Mapping[str, Any] | None,
                        *, problem: str = "") -> None:
        """Declared vs observed for ``registration`` (its timeline None: still loading, or ``problem``)."""
        self._shown = (registration, timeline, problem)
        self.decision.setText(decision_text(registration) if registration else "")
        rows = declared_vs_observed(registration, timeline) if registration and timeline is not None else []
        if registration is None:
            self.compared.setText("Select a registration to compare what was declared with what its endpoint does.")
        elif problem:
            self.compared.setText(f"What the endpoint observes could not be read: {problem}")
        elif timeline is None:
            self.compared.setText(f"Reading what {registration.owner}'s endpoint observes…")
        else:
            beyond = sum(1 for r in rows if r[3] != "–")
            self.compared.setText(f"Declared by {registration.owner} and observed on the endpoint: "
                                  + (f"{beyond} field{'s show' if beyond != 1 else ' shows'} more than was declared."
                                     if beyond else "nothing observed beyond the declaration."))
        self.comparison.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)  # plain text: declared and observed values are never markup
                if c == 3 and text != "–":
                    item.setForeground(theme.colour("bad"))
                self.comparison.setItem(r, c, item)
        for column in range(len(COMPARISON_COLUMNS) - 1):  # the last one stretches over the rest
            self.comparison.resizeColumnToContents(column)

    def current_row(self) -> int:
        index = self.table.currentIndex()
        return index.row() if index.isValid() else -1

    def enable_for(self, status: str | None) -> None:
        """Decisions only on a pending registration (or one asked for more), and only for an admin."""
        self.open_agent.setEnabled(status is not None)
        for button in (self.approve, self.reject, self.ask):
            button.setEnabled(self.can_decide and status in DECIDABLE)
            button.setToolTip("" if self.can_decide else "Viewers can read registrations; an admin decides them.")
