"""The agent detail: identity, type with its reason, governed state and flags explained, then tabs for
the evidence, the chain it belongs to, its registration and its history."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableView,
    QTabWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from console.app import api
from console.app import viewmodels as vm
from console.app.models import ChainModel, RowsModel


class DetailView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.header = QLabel("Select an agent to see its detail.")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)  # every endpoint value in it is html.escape'd
        self.header.setAccessibleName("Agent summary")
        layout.addWidget(self.header)
        self.flags = QLabel("")
        self.flags.setWordWrap(True)
        self.flags.setTextFormat(Qt.TextFormat.RichText)  # escaped, as the header
        self.flags.setAccessibleName("Flags")
        layout.addWidget(self.flags)
        self.tabs = QTabWidget()
        self.evidence = RowsModel(["Kind", "What", "Where"], self)
        self.evidence_table = self._table(self.evidence, "Evidence")
        self.chain = ChainModel(self)
        self.chain_tree = QTreeView()
        self.chain_tree.setModel(self.chain)
        self.chain_tree.setAccessibleName("Chain")
        self.chain_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.chain_tree.header().resizeSection(0, 210)
        self.chain_tree.header().setStretchLastSection(True)
        self.registration = QLabel("")
        self.registration.setWordWrap(True)
        self.registration.setTextFormat(Qt.TextFormat.RichText)  # the employee's words escaped
        self.registration.setAccessibleName("Registration")
        self.timeline = RowsModel(["When (UTC)", "Kind", "Who", "What"], self)
        self.timeline_table = self._table(self.timeline, "History")
        self.tabs.addTab(self.evidence_table, "Evidence")
        self.tabs.addTab(self.chain_tree, "Chain")
        self.tabs.addTab(self.registration, "Registration")
        self.tabs.addTab(self.timeline_table, "History")
        layout.addWidget(self.tabs, 1)
        self.detail: api.AgentDetail | None = None

    @staticmethod
    def _table(model: RowsModel, name: str) -> QTableView:
        table = QTableView()
        table.setModel(model)
        table.setAccessibleName(name)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setWordWrap(False)
        table.verticalHeader().hide()
        table.horizontalHeader().setStretchLastSection(True)
        return table

    def show_loading(self, name: str) -> None:
        self.header.setText(f"<b>{html.escape(name)}</b> — loading…")

    def show_detail(self, detail: api.AgentDetail, parent: api.AgentDetail | None = None,
                    children: tuple[api.Agent, ...] = ()) -> None:
        self.detail = detail
        a = detail.agent
        explained = vm.explain(detail)
        color = "#1e7b34" if a.governed else "#b3261e"
        rows = [
            f"<h3 style='margin:0'>{html.escape(a.name)}</h3>",
            f"<b>Type:</b> {html.escape(explained.type_label)} — {html.escape(explained.type_reason)}",
            f"<b>State:</b> <span style='color:{color}'>{html.escape(explained.governed)}</span>"
            f" &nbsp; <b>Triage:</b> {html.escape(vm.TRIAGE_STATE_LABELS.get(a.triage_state, a.triage_state))}"
            + (f" &nbsp; <b>Owner:</b> {html.escape(a.owner)}" if a.owner else ""),
            f"<b>Device:</b> {html.escape(a.hostname or a.device_id)} &nbsp; <b>User:</b> "
            f"{html.escape(a.user or '(machine-wide)')} &nbsp; <b>Signature:</b> {html.escape(a.signature or 'none')}"
            f" &nbsp; <b>Vendor:</b> {html.escape(a.vendor or '–')}",
            f"<b>Running:</b> {'yes' if a.running else 'no'} &nbsp; <b>Confidence:</b> {a.confidence:.2f}"
            f" &nbsp; <b>First seen:</b> {vm.when(a.first_seen)} &nbsp; <b>Last seen:</b> {vm.when(a.last_seen)}"
            + (" &nbsp; <b>gone</b>" if a.gone else ""),
        ]
        self.header.setText("<br>".join(rows))
        if explained.flags:
            self.flags.setText("<b>Flags</b><ul style='margin:0'>" + "".join(
                f"<li><b>{html.escape(f)}</b>: {html.escape(text)}</li>" for f, text in explained.flags) + "</ul>")
        else:
            self.flags.setText("<b>Flags:</b> none")
        self.evidence.set_rows(vm.evidence_rows(detail))
        self.chain.set_chain(vm.chain(detail, parent, children))
        self.chain_tree.expandAll()
        self.registration.setText(_registration_text(detail.registration))
        self.timeline.set_rows([(vm.when(e.at), e.kind, e.who, e.what) for e in vm.timeline(detail)])

    def show_error(self, message: str) -> None:
        self.header.setText(f"<span style='color:#b3261e'>{html.escape(message)}</span>")


def _registration_text(registration: api.Registration | None) -> str:
    if registration is None:
        return "No registration. Ask the owner to register it (Request registration)."
    lines = []
    fields = registration.model_dump()
    for key in ("status", "owner", "purpose", "business_process", "providers", "tools", "data_systems", "autonomy"):
        value = fields.get(key)
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "–"
        lines.append(f"<b>{key.replace('_', ' ').capitalize()}:</b> {html.escape(str(value if value else '–'))}")
    return "<br>".join(lines)
