"""The policy tab: what the org sanctions (signatures, providers), its corporate credential
fingerprints and its risky-tool patterns, one per line; admins save it to the collector, viewers read it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.app import api
from console.app.plain_text import plain_label


def _lines(edit: QPlainTextEdit) -> tuple[str, ...]:
    return tuple(dict.fromkeys(line.strip() for line in edit.toPlainText().splitlines() if line.strip()))


class PolicyView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        intro = QLabel("An agent whose signature is sanctioned is governed. Providers not listed flag "
                       "<i>unsanctioned_provider</i>; keys whose fingerprint is not listed flag "
                       "<i>personal_credential</i>; MCP servers whose name or command matches a risky-tool "
                       "pattern (a glob such as <tt>*shell*</tt>) flag <i>broad_tools</i>. One entry per line.")
        intro.setTextFormat(Qt.TextFormat.RichText)  # our own words only
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.signatures = QPlainTextEdit()
        self.providers = QPlainTextEdit()
        self.fingerprints = QPlainTextEdit()
        self.risky_tools = QPlainTextEdit()
        for label, edit in (("Sanctioned signatures", self.signatures), ("Sanctioned providers", self.providers),
                            ("Corporate credential fingerprints", self.fingerprints),
                            ("Risky-tool patterns", self.risky_tools)):
            edit.setAccessibleName(label)
            edit.setTabChangesFocus(True)
            form.addRow(label, edit)
        layout.addLayout(form, 1)
        buttons = QHBoxLayout()
        self.status = plain_label()
        buttons.addWidget(self.status, 1)
        self.reload = QPushButton("Re&load")
        self.save = QPushButton("&Save policy")
        buttons.addWidget(self.reload)
        buttons.addWidget(self.save)
        layout.addLayout(buttons)

    def show_policy(self, policy: api.Policy) -> None:
        self.signatures.setPlainText("\n".join(policy.sanctioned_signatures))
        self.providers.setPlainText("\n".join(policy.sanctioned_providers))
        self.fingerprints.setPlainText("\n".join(policy.corporate_fingerprints))
        self.risky_tools.setPlainText("\n".join(policy.risky_tools))
        self.status.setText(f"Policy version {policy.version}")

    def edited(self) -> api.PolicyEdit:
        return api.PolicyEdit(sanctioned_signatures=list(_lines(self.signatures)),
                              sanctioned_providers=list(_lines(self.providers)),
                              corporate_fingerprints=list(_lines(self.fingerprints)),
                              risky_tools=list(_lines(self.risky_tools)))

    def set_can_edit(self, allowed: bool) -> None:
        self.save.setEnabled(allowed)
        for edit in (self.signatures, self.providers, self.fingerprints, self.risky_tools):
            edit.setReadOnly(not allowed)
        if not allowed:
            self.save.setToolTip("Viewers can read the policy; an admin token can change it.")
