"""The fleet tab: the fleet by kind from the collector (``GET /agents/fleet``), and what an admin does with
a kind: open the roster filtered to it, sanction its signature for the organisation (the MCP servers its
agents declare with it) after a preview of the effect, or approve every ungoverned sighting of it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QObject, Qt
from PySide6.QtWidgets import QMessageBox

from console.app import api
from console.app import viewmodels as vm
from console.app.controllers.session import Session
from console.app.errors import ConsoleError

Preview = tuple[api.PolicyChange, api.PolicyPreview]


class FleetController(QObject):
    """``open_roster(filter)`` shows the agents tab filtered; ``approve_filter(action, filter)`` acts on a whole
    filter (the agents controller's, with its confirmation and undo); ``on_saved`` after a policy change."""

    def __init__(self, session: Session, parent: QObject, *, on_error: Callable[[ConsoleError], None],
                 open_roster: Callable[[vm.AgentFilter], None],
                 approve_filter: Callable[[str, vm.AgentFilter], None], on_saved: Callable[[], None]) -> None:
        super().__init__(parent)
        self.session = session
        self.on_error = on_error
        self.open_roster = open_roster
        self.approve_filter = approve_filter
        self.on_saved = on_saved
        self.latest: api.Fleet | None = None
        self.confirm_box: QMessageBox | None = None
        view = session.window.fleet
        view.with_servers.toggled.connect(lambda _on: self._show())
        view.table.selectionModel().currentRowChanged.connect(lambda current, _prev: view.enable_for(
            view.model.row_at(current.row()) if current.isValid() else None))
        view.table.activated.connect(self._activated)
        view.show_roster.clicked.connect(self.show_in_roster)
        view.sanction.clicked.connect(self.ask_sanction)
        view.approve_all.clicked.connect(self.approve_all)

    def load(self) -> None:
        if self.session.closed:
            return
        self.session.runner.call(self.session.client.fleet, on_done=self._got, on_error=self._failed)

    def set_role(self, admin: bool) -> None:
        view = self.session.window.fleet
        view.enable_for(view.current(), can_act=admin)

    def _got(self, fleet: api.Fleet) -> None:
        self.latest = fleet
        self._show()

    def _failed(self, error: ConsoleError) -> None:
        self.session.window.fleet.count.setText("The fleet could not be loaded: " + error.message)
        self.on_error(error)

    def _show(self) -> None:
        if self.latest is not None:
            view = self.session.window.fleet
            view.show_fleet(self.latest, view.with_servers.isChecked())

    def _activated(self, index: QModelIndex) -> None:
        row = self.session.window.fleet.model.row_at(index.row())
        if row is not None:
            self.open_roster(vm.AgentFilter.from_params(row.filter))

    def show_in_roster(self) -> None:
        row = self.session.window.fleet.current()
        if row is not None:
            self.open_roster(vm.AgentFilter.from_params(row.filter))

    def approve_all(self) -> None:
        row = self.session.window.fleet.current()
        if row is not None:
            self.approve_filter("approve", vm.AgentFilter.from_params(row.filter).with_(governed=False))

    def ask_sanction(self) -> None:
        """Preview what sanctioning the current row's signature would do, then ask, then save the policy."""
        window, client = self.session.window, self.session.client
        row = window.fleet.current()
        if row is None or row.signature is None:
            window.show_message("Agents no signature matched cannot be sanctioned as a kind: approve them, or "
                                "ask their owners to register them.", error=True)
            return
        signature, name = row.signature, row.name or row.signature

        def preview() -> Preview:
            policy = client.policy()
            change = api.PolicyChange(
                sanctioned_signatures=list(dict.fromkeys([*policy.sanctioned_signatures, signature])),
                sanctioned_providers=policy.sanctioned_providers, corporate_fingerprints=policy.corporate_fingerprints,
                risky_tools=policy.risky_tools, cover_servers=True)
            return change, client.preview_policy(change)

        def previewed(result: Preview) -> None:
            change, effect = result
            text = f"Sanction {name} ({signature}) for the whole organisation? {effect.message}"
            if effect.covered_servers:
                text += (" The MCP servers its agents declare are sanctioned with it: "
                         + ", ".join(effect.covered_servers) + ".")
            window.fleet.effect.setText(effect.message)
            box = QMessageBox(QMessageBox.Icon.Question, f"Sanction {name}?", text,
                              QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel, window)
            box.setTextFormat(Qt.TextFormat.PlainText)  # names come from endpoints
            box.button(QMessageBox.StandardButton.Ok).setText("Sanction")
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.accepted.connect(lambda: save(change, effect))
            self.confirm_box = box
            box.open()

        def save(change: api.PolicyChange, effect: api.PolicyPreview) -> None:
            window.show_message(f"Sanctioning {name}… (every agent is re-assessed)")

            def saved(policy: api.Policy) -> None:
                window.show_message(f"Policy saved (version {policy.version}): {name} is sanctioned. {effect.message}"
                                    " Policy → Undo the last change takes it back.")
                window.fleet.effect.setText(f"Sanctioned {name}: {effect.message}")
                self.on_saved()

            self.session.runner.call(client.put_policy, change, on_done=saved, on_error=self.on_error)

        window.fleet.effect.setText(f"Previewing what sanctioning {name} would do…")
        self.session.runner.call(preview, on_done=previewed, on_error=self.on_error)
