"""The policy tab: load the org policy, and save an admin's edit (every agent is re-assessed)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject

from console.app import api
from console.app.controllers.session import Session
from console.app.errors import ConsoleError


class PolicyController(QObject):
    """Loads and saves the policy; ``on_saved`` runs once the collector has re-assessed every agent."""

    def __init__(self, session: Session, parent: QObject, *, on_error: Callable[[ConsoleError], None],
                 on_saved: Callable[[], None]) -> None:
        super().__init__(parent)
        self.session = session
        self.on_error = on_error
        self.on_saved = on_saved
        view = session.window.policy
        view.save.clicked.connect(self.save)
        view.reload.clicked.connect(self.load)

    def load(self) -> None:
        self.session.runner.call(self.session.client.policy, on_done=self.session.window.policy.show_policy,
                                 on_error=self.on_error)

    def save(self) -> None:
        window = self.session.window
        if not self.session.can_triage:
            window.show_message("Your token is a viewer token: viewers can read the policy but not change it.",
                                error=True)
            return
        policy = window.policy.edited()
        window.policy.status.setText("Saving… (every agent is re-assessed)")

        def saved(new: api.Policy) -> None:
            window.policy.show_policy(new)
            window.show_message(f"Policy saved (version {new.version}).")
            self.on_saved()

        self.session.runner.call(self.session.client.put_policy, policy, on_done=saved, on_error=self.on_error)
