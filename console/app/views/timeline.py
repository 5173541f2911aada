"""The "Behaviour over time" dialog of one agent: what it was seen doing since when (the collector's
behaviour facts), and its drift events with exactly what each added; an admin accepts the new behaviour
of an open event from here. It only shows what it is given and says which event to accept: the agents
controller fetches and acts (console/app/controllers/agents.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.app.plain_text import plain_label

FACT_COLUMNS = ("What", "Value", "First seen", "Last seen", "Gone")
EVENT_COLUMNS = ("Began", "Status", "Added")
#: each kind of fact in words: an MCP server its config declares is present; one its tool server runs or is
#: called at is used
KIND_NAMES = {"provider": "provider called", "mcp_server": "MCP server present (in its config)",
              "mcp_server_used": "MCP server used (run or called)", "mcp_tool": "MCP tool its config allows",
              "tool": "tool its code declares", "system": "system reached", "autonomy": "autonomy"}


class TimelineDialog(QDialog):
    """Facts and drift events of one agent; ``accept_requested`` carries the open event an admin accepts."""

    accept_requested = Signal(int)

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Behaviour over time: {name}")
        self.resize(760, 520)
        self.events: list[Mapping[str, Any]] = []
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label("What it was seen doing"))
        self.facts = _table(FACT_COLUMNS)
        layout.addWidget(self.facts)
        layout.addWidget(plain_label("Drift: what it does beyond what was declared"))
        self.drift = _table(EVENT_COLUMNS)
        self.drift.itemSelectionChanged.connect(self._selected)
        layout.addWidget(self.drift)
        self.status = plain_label()
        layout.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.accept_button = QPushButton("Accept the new behaviour")
        self.accept_button.setEnabled(False)
        self.accept_button.setToolTip("Widens the agent's declaration to cover what the selected event added")
        self.accept_button.clicked.connect(self._accept_selected)
        buttons.addButton(self.accept_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def show_timeline(self, data: Mapping[str, Any], *, can_accept: bool) -> None:
        """Fill both tables from the collector's answer (``GET …/timeline``)."""
        facts: Sequence[Mapping[str, Any]] = data.get("facts") or []
        self.events = list(data.get("events") or [])
        self.can_accept = can_accept
        _fill(self.facts, [(KIND_NAMES.get(str(f["kind"]), str(f["kind"])), str(f["value"]), _when(f["first_seen"]),
                            _when(f["last_seen"]), _when(f.get("gone_at"))) for f in facts])
        _fill(self.drift, [(_when(e["began_at"]), str(e["status"]), str(e["summary"])) for e in self.events])
        opened = sum(1 for e in self.events if e["status"] == "open")
        self.status.setText(f"{len(facts)} facts; {len(self.events)} drift events, {opened} open."
                            + ("" if can_accept or not opened else " Only admins accept drift."))
        self._selected()

    def selected_event(self) -> Mapping[str, Any] | None:
        rows = self.drift.selectionModel().selectedRows()
        return self.events[rows[0].row()] if rows and rows[0].row() < len(self.events) else None

    def _selected(self) -> None:
        event = self.selected_event()
        self.accept_button.setEnabled(bool(getattr(self, "can_accept", False)) and event is not None
                                      and event["status"] == "open")

    def _accept_selected(self) -> None:
        event = self.selected_event()
        if event is not None and event["status"] == "open":
            self.accept_button.setEnabled(False)  # once: the controller refreshes the dialog when done
            self.accept_requested.emit(int(event["id"]))


def _table(columns: Sequence[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    return table


def _fill(table: QTableWidget, rows: Sequence[Sequence[str]]) -> None:
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.setItem(r, c, QTableWidgetItem(text))  # plain text: an agent's values are never markup
    table.resizeColumnsToContents()


def _when(value: object) -> str:
    """A collector time (ISO 8601) as the local date and minute; "" for none."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value
