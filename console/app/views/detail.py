"""The agent detail: identity, type with its reason, governed state, each flag by name with what it means
and what to do next, the triage buttons for this agent, then tabs for the evidence, the chain it belongs
to (each MCP server's risk and the systems it reaches), its registration and its history. An enterprise
agent whose report carries its project has a "Why" tab first (``console.app.views.project``)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QTabWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from console.app import api, theme
from console.app import viewmodels as vm
from console.app.models import ChainModel, RowsModel
from console.app.views.project import ProjectPane
from console.app.views.registrations import COMPARISON_COLUMNS, declared_vs_observed

EMPTY = "Select an agent in the roster to see what it is, why it is flagged and what to do."


class DetailView(QWidget):
    """``triageRequested(action)`` when one of its triage buttons is pressed, for the agent shown."""

    triageRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.header = QLabel(EMPTY)
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)  # every endpoint value in it is html.escape'd
        self.header.setAccessibleName("Agent summary")
        layout.addWidget(self.header)
        self.flags = QLabel("")
        self.flags.setWordWrap(True)
        self.flags.setTextFormat(Qt.TextFormat.RichText)  # escaped, as the header
        self.flags.setAccessibleName("Flags")
        layout.addWidget(self.flags)
        actions = QGridLayout()  # three to a row: the dock stays narrow enough for 1280 pixels
        self.triage_buttons: dict[str, QPushButton] = {}
        for action, label, tip in (("approve", "Approve", "Sanction this agent: governed unless it drifts"),
                                   ("assign_owner", "Owner…", "Assign its owner"),
                                   ("request_registration", "Ask to register", "Ask its owner to register it"),
                                   ("false_positive", "False positive", "Not an agent: hide it from the roster"),
                                   ("note", "Note…", "Add a note to its history")):  # fmt: skip
            button = QPushButton(label)
            button.setToolTip(tip)
            button.setAccessibleName(f"{label} (this agent)")
            button.clicked.connect(lambda _=False, a=action: self.triageRequested.emit(a))
            actions.addWidget(button, len(self.triage_buttons) // 3, len(self.triage_buttons) % 3)
            self.triage_buttons[action] = button
        self.action_bar = QWidget()
        self.action_bar.setLayout(actions)
        actions.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.action_bar)
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
        self.project = ProjectPane()  # in the tabs only while an agent with a project is shown
        self.tabs.addTab(self.evidence_table, "Evidence")
        self.tabs.addTab(self.chain_tree, "Chain")
        self.tabs.addTab(self.registration, "Registration")
        self.tabs.addTab(self.timeline_table, "History")
        layout.addWidget(self.tabs, 1)
        self.detail: api.AgentDetail | None = None
        self._shown: tuple[api.AgentDetail, api.AgentDetail | None, tuple[api.Agent, ...],
                           Mapping[str, Any] | None] | None = None
        self._can_triage = False
        self._show_parts(False)

    def _show_parts(self, shown: bool) -> None:
        """Without an agent, only the one-line hint: no empty tabs, buttons or flag list."""
        self.tabs.setVisible(shown)
        self.action_bar.setVisible(shown)
        self.flags.setVisible(shown)

    def set_can_triage(self, allowed: bool, why: str = "") -> None:
        self._can_triage = allowed
        for button in self.triage_buttons.values():
            button.setEnabled(allowed)
            if not allowed:
                button.setToolTip(why)

    def restyle(self) -> None:
        """Colours in the rich text follow the palette: render again with the new one."""
        if self._shown is not None:
            self.show_detail(*self._shown)

    def clear(self) -> None:
        self.detail = None
        self._shown = None
        self.header.setText(EMPTY)
        self._show_parts(False)

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
        self.header.setText(f"<b>{html.escape(name or 'The agent')}</b> — loading its detail…")

    def show_detail(self, detail: api.AgentDetail, parent: api.AgentDetail | None = None,
                    children: tuple[api.Agent, ...] = (), timeline: Mapping[str, Any] | None = None) -> None:
        """Show an agent; ``timeline`` (its behaviour facts, ``GET …/timeline``) compares its registration's
        declaration with what it was seen doing."""
        self.detail = detail
        self._shown = (detail, parent, children, timeline)
        self._show_parts(True)
        a = detail.agent
        explained = vm.explain(detail)
        color = theme.css("good" if a.governed else "bad")
        rows = [
            f"<h3 style='margin:0'>{html.escape(a.name)}</h3>",
            f"<b>Type:</b> {html.escape(explained.type_label)} — {html.escape(explained.type_reason)}",
            f"<b>Risk:</b> {a.risk}/100 &nbsp; "
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
        weights = {r.flag: r.weight for r in detail.risk_reasons}
        if explained.flags:
            self.flags.setText("<b>Flags</b><ul style='margin:0'>" + "".join(
                f"<li><b>{html.escape(vm.flag_label(f))}</b>"
                + (f" (risk +{weights[f]})" if weights.get(f) else "") + f": {html.escape(text)}"
                f"<br><i>Next:</i> {html.escape(step)}</li>"
                for (f, text), step in zip(explained.flags, explained.next_steps, strict=True)) + "</ul>")
        else:
            self.flags.setText("<b>Flags:</b> none")
        self.evidence.set_rows(vm.evidence_rows(detail))
        self.chain.set_chain(vm.chain(detail, parent, children))
        self.chain_tree.expandAll()
        self.registration.setText(_registration_text(detail.registration, detail.covered_by, timeline))
        self.timeline.set_rows([(vm.when(e.at), e.kind, e.who, e.what) for e in vm.timeline(detail)])
        self._show_project(detail)

    def _show_project(self, detail: api.AgentDetail) -> None:
        """The "Why" tab, first and opened, for an agent with a project; gone for any other."""
        index = self.tabs.indexOf(self.project)
        if self.project.show_project(detail):
            if index < 0:
                self.tabs.insertTab(0, self.project, "Why")
                self.tabs.setCurrentIndex(0)
        elif index >= 0:
            self.tabs.removeTab(index)

    def show_error(self, message: str) -> None:
        self._show_parts(False)
        self._shown = None
        self.header.setText(f"<span style='color:{theme.css('bad')}'>{html.escape(message)}</span>")


def _registration_text(registration: api.Registration | None, cover: api.ChainCover | None = None,
                       timeline: Mapping[str, Any] | None = None) -> str:
    if registration is None and cover is not None:
        return (f"Covered by <b>{html.escape(cover.name)}</b>'s {cover.by}: it has no registration of its own, and "
                f"what it does stays inside what {html.escape(cover.name)}'s {cover.by} declares (the root of its "
                "chain). Should it do more, it is unregistered again and the difference is drift on "
                f"{html.escape(cover.name)}.")
    if registration is None:
        return "No registration. Ask the owner to register it (Request registration)."
    lines = []
    fields = registration.model_dump()
    for key in ("status", "owner", "purpose", "business_process", "providers", "tools", "data_systems", "autonomy"):
        value = fields.get(key)
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "–"
        lines.append(f"<b>{key.replace('_', ' ').capitalize()}:</b> {html.escape(str(value if value else '–'))}")
    text = "<br>".join(lines)
    if timeline is not None:  # side by side, as the registrations queue shows it; beyond the declaration in red
        cells = "<tr>" + "".join(f"<th align='left'>{html.escape(c)}</th>" for c in COMPARISON_COLUMNS) + "</tr>"
        for row in declared_vs_observed(registration, timeline):
            beyond = row[3] != "–"
            cells_of = [f"<b>{html.escape(row[0])}</b>", *(html.escape(c) for c in row[1:3]),
                        (f"<span style='color:{theme.css('bad')}'>{html.escape(row[3])}</span>" if beyond
                         else html.escape(row[3]))]
            cells += "<tr>" + "".join(f"<td>{c}</td>" for c in cells_of) + "</tr>"
        text += f"<br><br><b>Declared and observed</b><table cellspacing='4'>{cells}</table>"
    return text
