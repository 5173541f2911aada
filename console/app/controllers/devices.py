"""The devices tab: the fleet's devices paged from the collector (filtered by last report or scan health),
a device's users, its agents in the agents tab, and an admin's acceptance of an identity conflict."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QObject

from console.app import api
from console.app import viewmodels as vm
from console.app.controllers.session import Session
from console.app.errors import ConsoleError
from console.app.models import DeviceTableModel


class DevicesController(QObject):
    """The devices' model and the devices tab's actions."""

    def __init__(self, session: Session, parent: QObject, *, page_size: int,
                 on_error: Callable[[ConsoleError], None]) -> None:
        super().__init__(parent)
        self.session = session
        self.on_error = on_error
        self.device_list = vm.DeviceList(page_size)
        self.model = DeviceTableModel(self.device_list, self._load, self)
        view = session.window.devices
        view.table.setModel(self.model)
        self.model.countChanged.connect(lambda n: view.show_count(n, len(self.device_list.rows)))
        self.model.loadFailed.connect(self.on_error)
        view.stale.currentIndexChanged.connect(lambda _: self.reload())
        view.table.selectionModel().currentRowChanged.connect(self._device_changed)
        view.show_agents.clicked.connect(self.show_device_agents)
        view.accept_identity.clicked.connect(self.accept_device_identity)
        view.table.activated.connect(lambda _index: self.show_device_agents())

    def reload(self) -> None:
        """The first page again, under the filter the tab shows."""
        self.model.reload(self.session.window.devices.stale.currentData())

    def _load(self, request: tuple[int, int, vm.DeviceFilter], ok: Callable[[api.DevicePage], None],
              failed: Callable[[ConsoleError], None]) -> None:
        _generation, skip, chosen = request
        if self.session.closed:
            return
        query = vm.device_query(chosen)
        client, limit = self.session.client, self.device_list.page_size
        self.session.runner.call(lambda: client.devices(**query, skip=skip, limit=limit), on_done=ok, on_error=failed)

    def _device_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        view, client = self.session.window.devices, self.session.client
        device = self.model.device_at(current.row()) if current.isValid() else None
        view.show_agents.setEnabled(device is not None)
        view.accept_identity.setEnabled(self.session.can_triage and device is not None
                                        and device.identity_conflict is not None and not device.revoked)
        view.users.setText("")
        if device is None:
            return

        def users() -> list[str]:
            page = client.agents({"device": device.id}, sort="user", order="asc", limit=api.PAGE_MAX)
            return sorted({a.user for a in page.data if a.user})

        def show(names: list[str]) -> None:
            selected = view.table.currentIndex()
            if self.model.device_at(selected.row()) is device:
                health = f"; last scan {vm.scan_health(device)}" if device.incomplete else ""
                view.users.setText("Users: " + (", ".join(names) or "(machine-wide only)") + health)

        self.session.runner.call(users, on_done=show, on_error=self.on_error)

    def accept_device_identity(self) -> None:
        """An admin accepts the selected device's claim to another device's identity (that one is revoked)."""
        window = self.session.window
        device = self.model.device_at(window.devices.table.currentIndex().row())
        if device is None or device.identity_conflict is None:
            return
        if not self.session.can_triage:
            window.show_message("Your token is a viewer token: viewers can look at devices, not accept them.",
                                error=True)
            return
        window.devices.accept_identity.setEnabled(False)
        client = self.session.client

        def done(accepted: api.Device) -> None:
            window.show_message(f"Device {accepted.id} now holds the identity; device "
                                f"{device.identity_conflict} is revoked.")
            self.reload()

        self.session.runner.call(lambda: client.accept_identity(device.id), on_done=done, on_error=self.on_error)

    def show_device_agents(self) -> None:
        window = self.session.window
        device = self.model.device_at(window.devices.table.currentIndex().row())
        if device is None:
            return
        window.tabs.setCurrentWidget(window.agents)
        window.agents.set_filter(vm.AgentFilter(device=device.id))
