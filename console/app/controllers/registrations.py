"""The registrations tab: employees' registrations of their agents, by status, and an admin's decision."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject

from console.app import api
from console.app import viewmodels as vm
from console.app.controllers.session import Session
from console.app.errors import ConsoleError


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
        view.table.selectionModel().currentRowChanged.connect(lambda *_: view.enable_for(self.current_status()))
        view.rows.modelReset.connect(lambda: view.enable_for(self.current_status()))
        view.approve.clicked.connect(lambda: self.decide(True))
        view.reject.clicked.connect(lambda: self.decide(False))
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
            self.listed = list(page.data)
            self.count = page.count
            view.rows.set_rows([vm.registration_row(r) for r in page.data])
            shown = len(page.data)
            view.count.setText(f"{page.count:,} registration{'s' if page.count != 1 else ''}"
                               + (f" (newest {shown:,} shown)" if shown < page.count else ""))

        self.session.runner.call(lambda: client.registrations(status, limit=500), on_done=done, on_error=self.on_error)

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

        def done(decided: api.Registration) -> None:
            window.show_message(f"Registration by {decided.owner} {decided.status}.")
            window.registrations.note.clear()
            self.load()
            self.on_decided()

        self.session.runner.call(self.session.client.decide_registration, registration.id, approve, note,
                                 on_done=done, on_error=self.on_error)

    def open_registration_agent(self) -> None:
        registration = self.current()
        if registration is not None:
            self.open_agent((registration.device_id, registration.sighting_id), "")
            self.session.window.detail_dock.show()
