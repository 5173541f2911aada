"""The registrations tab: employees' registrations of their agents, by status (pending first), what the
selected one declares against what its endpoint observes, and an admin's decision (a rejection needs a
comment for the owner)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from console.app import api
from console.app.controllers.session import Session
from console.app.errors import ConsoleError
from console.app.views.registrations import queue_order


class RegistrationsController(QObject):
    """Loads the registrations of the chosen status; ``on_decided`` runs after an admin's decision,
    ``open_agent`` shows a registration's agent in the detail dock."""

    def __init__(self, session: Session, parent: QObject, *, on_error: Callable[[ConsoleError], None],
                 on_decided: Callable[[], None], open_agent: Callable[[tuple[str, str], str], None]) -> None:
        super().__init__(parent)
        self.session = session
        self.on_error = on_error
        self.on_decided = on_decided
        self.open_agent = open_agent
        self.listed: list[api.Registration] = []
        self.count: int | None = None
        view = session.window.registrations
        view.status.currentIndexChanged.connect(lambda _: self.load())
        view.table.selectionModel().currentRowChanged.connect(lambda *_: self.selected())
        view.rows.modelReset.connect(self.selected)
        view.approve.clicked.connect(lambda: self.decide(True))
        view.reject.clicked.connect(lambda: self.decide(False))
        view.ask.clicked.connect(self.ask)
        view.open_agent.clicked.connect(self.open_registration_agent)

    def set_role(self, admin: bool) -> None:
        view = self.session.window.registrations
        view.can_decide = admin
        view.enable_for(self.current_status())

    def load(self) -> None:
        view, client = self.session.window.registrations, self.session.client
        status = view.status.currentData()

        def done(page: api.RegistrationPage) -> None:
            if view.status.currentData() != status:
                return  # the admin chose another status meanwhile
            kept = self.current()
            self.listed = queue_order(page.data)
            self.count = page.count
            view.rows.set_registrations(self.listed)
            # a refresh keeps the admin's place in the queue: the same registration stays selected
            row = next((i for i, r in enumerate(self.listed) if kept is not None and r.id == kept.id), -1)
            if row >= 0:
                view.table.setCurrentIndex(view.rows.index(row, 0))
            shown = len(page.data)
            view.count.setText(f"{page.count:,} registration{'s' if page.count != 1 else ''}"
                               + (f" (newest {shown:,} shown)" if shown < page.count else ""))

        self.session.runner.call(lambda: client.registrations(status, limit=500), on_done=done, on_error=self.on_error)

    def selected(self) -> None:
        """Enable the decisions the selection allows, and compare its declaration with its timeline."""
        view = self.session.window.registrations
        registration = self.current()
        view.enable_for(registration.status if registration else None)
        view.show_comparison(registration, None)
        if registration is None:
            return

        def still_selected() -> bool:
            shown = self.current()
            return shown is not None and shown.id == registration.id

        def done(timeline: dict[str, Any]) -> None:
            if still_selected():
                view.show_comparison(registration, timeline)

        def failed(error: ConsoleError) -> None:
            if still_selected():  # the queue stays usable: the problem shows where the comparison would be
                view.show_comparison(registration, None, problem=error.message)

        self.session.runner.call(self.session.client.timeline, registration.device_id, registration.sighting_id,
                                 on_done=done, on_error=failed)

    def current(self) -> api.Registration | None:
        row = self.session.window.registrations.current_row()
        return self.listed[row] if 0 <= row < len(self.listed) else None

    def current_status(self) -> str | None:
        current = self.current()
        return current.status if current else None

    def decide(self, approve: bool) -> None:
        registration = self.current()
        if registration is None:
            return
        window = self.session.window
        if not self.session.can_triage:
            window.show_message("Your token is a viewer token: viewers can read registrations, not decide them.",
                                error=True)
            return
        note = window.registrations.note.text().strip() or None
        if not approve and note is None:
            window.show_message("Write in the comment why you reject this registration: its owner reads it.",
                                error=True)
            window.registrations.note.setFocus()
            return

        def done(decided: api.Registration) -> None:
            window.show_message(f"Registration by {decided.owner} {decided.status}.")
            window.registrations.note.clear()
            self.load()
            self.on_decided()

        self.session.runner.call(self.session.client.decide_registration, registration.id, approve, note,
                                 on_done=done, on_error=self.on_error)

    def ask(self) -> None:
        """Ask the owner the question typed in the comment field; the queue is read again once sent."""
        registration = self.current()
        if registration is None:
            return
        window = self.session.window
        if not self.session.can_triage:
            window.show_message("Your token is a viewer token: viewers can read registrations, not ask about them.",
                                error=True)
            return
        question = window.registrations.note.text().strip()
        if not question:
            window.show_message("Write the question for the owner in the comment field, then ask.", error=True)
            window.registrations.note.setFocus()
            return

        def done(asked: api.Registration) -> None:
            window.show_message(f"Question sent to {asked.owner}.")
            window.registrations.note.clear()
            self.load()

        self.session.runner.call(self.session.client.ask_registration, registration.id, question,
                                 on_done=done, on_error=self.on_error)

    def open_registration_agent(self) -> None:
        registration = self.current()
        if registration is not None:
            self.open_agent((registration.device_id, registration.sighting_id), "")
            self.session.window.detail_dock.show()
