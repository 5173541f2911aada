"""The policy tab: load the org policy with what the fleet reports (the choices) and its versions, preview
an admin's edit, save it after a confirmation that states its effect (every agent is re-assessed), and
undo the last change."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QMessageBox

from console.app import api
from console.app.controllers.session import Session
from console.app.errors import ConsoleError

VIEWER_POLICY = "Your token is a viewer token: viewers can read the policy but not change it."
Loaded = tuple[api.Policy, api.PolicyChoices | None, api.PolicyVersions | None]


class PolicyController(QObject):
    """Loads, previews, saves and undoes the policy; ``on_saved`` runs once the collector has re-assessed
    every agent."""

    def __init__(self, session: Session, parent: QObject, *, on_error: Callable[[ConsoleError], None],
                 on_saved: Callable[[], None]) -> None:
        super().__init__(parent)
        self.session = session
        self.on_error = on_error
        self.on_saved = on_saved
        self.confirm_box: QMessageBox | None = None
        view = session.window.policy
        view.save.clicked.connect(self.save)
        view.reload.clicked.connect(self.load)
        view.preview.clicked.connect(self.preview)
        view.undo.clicked.connect(self.undo)

    def load(self) -> None:
        client = self.session.client

        def fetch() -> Loaded:
            policy = client.policy()
            try:  # a collector older than the choices and versions still shows its policy
                return policy, client.policy_choices(), client.policy_versions()
            except api.NotFound:
                return policy, None, None

        self.session.runner.call(fetch, on_done=lambda got: self.session.window.policy.show_policy(*got),
                                 on_error=self.on_error)

    def preview(self) -> None:
        """What the edit would do, said under the lists; nothing is saved."""
        view = self.session.window.policy
        change = view.edited()
        view.effect.setText("Previewing… (the agents the change concerns are assessed under it)")

        def failed(error: ConsoleError) -> None:
            view.effect.setText(error.message)
            self.on_error(error)

        self.session.runner.call(self.session.client.preview_policy, change,
                                 on_done=lambda effect: view.effect.setText(_effect_text(effect)), on_error=failed)

    def save(self) -> None:
        """Preview the edit, ask with its effect, then save it (the collector re-assesses every agent)."""
        window = self.session.window
        if not self.session.can_triage:
            window.show_message(VIEWER_POLICY, error=True)
            return
        view = window.policy
        change = view.edited()

        def previewed(effect: api.PolicyPreview) -> None:
            view.effect.setText(_effect_text(effect))
            box = QMessageBox(QMessageBox.Icon.Question, "Save the policy?",
                              f"Save the policy? {_effect_text(effect)} Every agent is re-assessed; Undo the last "
                              "change takes it back.",
                              QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel, window)
            box.setTextFormat(Qt.TextFormat.PlainText)  # ids come from endpoints
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.accepted.connect(lambda: put())
            self.confirm_box = box
            box.open()

        def put() -> None:
            view.status.setText("Saving… (every agent is re-assessed)")
            self.session.runner.call(self.session.client.put_policy, change, on_done=saved, on_error=self._failed)

        def saved(new: api.Policy) -> None:
            window.show_message(f"Policy saved (version {new.version}).")
            self.load()
            self.on_saved()

        view.effect.setText("Previewing…")
        self.session.runner.call(self.session.client.preview_policy, change, on_done=previewed,
                                 on_error=self._failed)

    def undo(self) -> None:
        window = self.session.window
        if not self.session.can_triage:
            window.show_message(VIEWER_POLICY, error=True)
            return

        def undone(new: api.Policy) -> None:
            window.show_message(f"The last change was undone: the policy is as before (saved as version "
                                f"{new.version}).")
            self.load()
            self.on_saved()

        self.session.runner.call(self.session.client.undo_policy, on_done=undone, on_error=self._failed)

    def _failed(self, error: ConsoleError) -> None:
        view = self.session.window.policy
        view.effect.setText(error.message)  # e.g. an id nobody knows: where the admin is looking
        if view.policy is not None:
            view.status.setText(f"Policy version {view.policy.version}")
        self.on_error(error)


def _effect_text(effect: api.PolicyPreview) -> str:
    text = effect.message
    if effect.covered_servers:
        text += " With it, the MCP servers its agents declare: " + ", ".join(effect.covered_servers) + "."
    return text
