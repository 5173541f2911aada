"""Small dialogs: signing in to a collector, and the owner or note a triage action needs."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from console.app import theme
from console.app.plain_text import plain_label

NOTE_MAX = 4000


class SignInDialog(QDialog):
    """Server address and an admin or viewer token (``ara_…``); the token field never shows its text."""

    def __init__(self, server: str = "", message: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sign in to the collector")
        layout = QVBoxLayout(self)
        self.message = plain_label(message)  # the collector's answer
        self.message.setWordWrap(True)
        theme.tone_label(self.message, "bad")
        self.message.setVisible(bool(message))
        layout.addWidget(self.message)
        form = QFormLayout()
        self.server = QLineEdit(server)
        self.server.setPlaceholderText("https://collector.example.org:8443")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("ara_… (agentroster server token create --role admin)")
        self.remember = QCheckBox("Remember this token on this computer")
        self.remember.setChecked(True)
        form.addRow("Server", self.server)
        form.addRow("Token", self.token)
        form.addRow("", self.remember)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        (self.token if server else self.server).setFocus()


class TriageDialog(QDialog):
    """Asks for the owner (assign owner) or the note (add note) of a triage action."""

    def __init__(self, action: str, targets: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.action = action
        self.setWindowTitle("Assign owner" if action == "assign_owner" else "Add note")
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label(f"For {targets}:"))
        self.owner = QLineEdit()
        self.owner.setPlaceholderText("owner, e.g. alice@example.org")
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("note (up to 4,000 characters)")
        self.note.setTabChangesFocus(True)
        if action == "assign_owner":
            layout.addWidget(self.owner)
        layout.addWidget(self.note)
        self.problem = plain_label()
        theme.tone_label(self.problem, "bad")
        layout.addWidget(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        (self.owner if action == "assign_owner" else self.note).setFocus()

    def values(self) -> tuple[str | None, str | None]:
        owner = self.owner.text().strip() or None
        note = self.note.toPlainText().strip() or None
        return owner, note

    def _check(self) -> None:
        owner, note = self.values()
        if self.action == "assign_owner" and not owner:
            self.problem.setText("An owner is needed.")
        elif self.action == "note" and not note:
            self.problem.setText("A note is needed.")
        elif note and len(note) > NOTE_MAX:
            self.problem.setText(f"A note is at most {NOTE_MAX:,} characters ({len(note):,} now).")
        else:
            self.accept()
