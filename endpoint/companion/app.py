"""The companion's Qt part: the tray icon and its menu, the desktop notifications, the registration window
and the status window (your agents and registrations, messages from IT, what is collected about you).

Every call to the daemon runs off the GUI thread (a registration waits for the collector); every text
from the daemon, a config file or an admin is shown as plain text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSystemTrayIcon,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from endpoint.companion.model import Client, CompanionError, Notification, SeenStore, Snapshot, notifications
from endpoint.service.registration.errors import RegisterError
from endpoint.service.registration.mine import message_line, render
from endpoint.service.registration.policy import prefill, shown, validate

log = logging.getLogger("agentroster.companion")

POLL_INTERVAL_MS = 30_000  # the inbox: a local socket call, cheap for the daemon
RELIST_EVERY_POLLS = 10  # the agents and their registrations' statuses (the daemon asks the collector)
NOTIFICATION_MS = 15_000


class _Bridge(QObject):
    """Carries a result from a worker thread back to the GUI thread (a queued signal)."""

    done = Signal(object, object)


def run_async(bridge: _Bridge, work: Callable[[], Any], then: Callable[[Any], None],
              failed: Callable[[str], None]) -> threading.Thread:
    """Run ``work`` in a thread; ``then(result)`` or ``failed(message)`` on the GUI thread."""

    def target() -> None:
        try:
            result: Any = work()
        except (CompanionError, RegisterError) as exc:
            bridge.done.emit(failed, str(exc))
            return
        except Exception as exc:  # the companion must outlive a bug in one call
            log.exception("companion: a call to the daemon failed")
            bridge.done.emit(failed, f"unexpected error ({type(exc).__name__})")
            return
        bridge.done.emit(then, result)

    thread = threading.Thread(target=target, name="agentroster-companion-call", daemon=True)
    thread.start()
    return thread


def tray_icon() -> QIcon:
    """A drawn icon (no file to ship): a rounded square with a dot, readable on light and dark panels."""
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor("#2f6fb2"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(4, 4, 56, 56, 12, 12)
    painter.setBrush(QColor("#ffffff"))
    painter.drawEllipse(22, 22, 20, 20)
    painter.end()
    return QIcon(pixmap)


def _plain(text: str) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


class RegisterWindow(QDialog):
    """Register one agent: prefilled from what the daemon saw; sent through the daemon's ``register``."""

    registered = Signal(dict)

    def __init__(self, client: Client, agent: dict[str, Any], user: str | None, provider_ids: list[str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client, self.agent = client, agent
        self._bridge = _Bridge()
        self._bridge.done.connect(lambda callback, value: callback(value))
        name = shown(agent.get("name") or "agent")
        self.setWindowTitle(f"Register {name}")
        pre = prefill(agent, provider_ids)
        self.owner = QLineEdit(user or "")
        self.purpose = QPlainTextEdit()
        self.purpose.setPlaceholderText("What is it for? (e.g. refactoring the billing service)")
        self.business_process = QLineEdit()
        self.business_process.setPlaceholderText("e.g. software delivery")
        self.providers = QLineEdit(", ".join(pre["providers"]))
        self.tools = QLineEdit(", ".join(pre["tools"]))
        self.data_systems = QLineEdit()
        self.data_systems.setPlaceholderText("the systems its tools reach, e.g. billing database, Jira")
        self.autonomy = QComboBox()
        self.autonomy.addItems(["supervised", "autonomous"])
        self.autonomy.setCurrentText(pre["autonomy"])
        self.error = _plain("")
        self.error.setStyleSheet("color: #b00020")
        form = QFormLayout()
        form.addRow(_plain(f"{name} ({shown(agent.get('type'))}), seen on this machine for "
                           f"{shown(agent.get('user') or user or 'you')}."))
        for label, widget in (("Owner (your email)", self.owner), ("Purpose", self.purpose),
                              ("Business process", self.business_process), ("LLM providers", self.providers),
                              ("MCP tools", self.tools), ("Data systems", self.data_systems),
                              ("Autonomy", self.autonomy)):
            form.addRow(label, widget)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.send_button = self.buttons.addButton("Register", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.send)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def fields(self) -> dict[str, Any]:
        def items(edit: QLineEdit) -> list[str]:
            return [p.strip() for p in edit.text().split(",") if p.strip()]

        return {"sighting_id": str(self.agent["id"]), "owner": self.owner.text().strip(),
                "purpose": self.purpose.toPlainText().strip(), "business_process": self.business_process.text().strip(),
                "providers": items(self.providers), "tools": items(self.tools),
                "data_systems": items(self.data_systems), "autonomy": self.autonomy.currentText()}

    def send(self) -> None:
        try:
            request = validate(self.fields())
        except RegisterError as exc:
            self.error.setText(str(exc).replace("--", ""))  # the command's flag names mean nothing here
            return
        self.send_button.setEnabled(False)
        self.error.setText("Sending…")
        run_async(self._bridge, lambda: self.client.register(request), self._sent, self._failed)

    def _sent(self, registration: dict[str, Any]) -> None:
        self.error.setText("")
        self.registered.emit(registration)
        self.accept()

    def _failed(self, message: str) -> None:
        self.send_button.setEnabled(True)
        self.error.setText(message)


class StatusWindow(QWidget):
    """Your agents and their registrations, the messages from IT, and what agentroster collects about you."""

    register_asked = Signal(str)

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self._bridge = _Bridge()
        self._bridge.done.connect(lambda callback, value: callback(value))
        self.setWindowTitle("agentroster")
        self.resize(760, 480)
        self.tabs = QTabWidget()
        self.agents = QTableWidget(0, 3)
        self.agents.setHorizontalHeaderLabels(["Agent", "Type", "Registration"])
        self.agents.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.agents.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.agents.horizontalHeader().setStretchLastSection(True)
        register = QPushButton("Register the selected agent…")
        register.clicked.connect(self._register_selected)
        agents_tab = QWidget()
        agents_layout = QVBoxLayout(agents_tab)
        agents_layout.addWidget(self.agents)
        agents_layout.addWidget(register)
        self.messages = QListWidget()
        self.messages.setWordWrap(True)
        self.about = QPlainTextEdit()
        self.about.setReadOnly(True)
        self.tabs.addTab(agents_tab, "Your agents")
        self.tabs.addTab(self.messages, "Messages from IT")
        self.tabs.addTab(self.about, "What agentroster collects about you")
        self.tabs.currentChanged.connect(self._tab_shown)
        self.problem = _plain("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.problem)
        self.snapshot: Snapshot | None = None

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.agents.setRowCount(0)
        for agent in snapshot.agents:
            row = self.agents.rowCount()
            self.agents.insertRow(row)
            indent = "   └ " if agent.get("parent") else ""
            cells = (indent + shown(agent.get("name")), shown(agent.get("type")),
                     snapshot.registration(str(agent["id"])) or "not registered")
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setData(Qt.ItemDataRole.UserRole, agent["id"])
                self.agents.setItem(row, column, cell)
        self.messages.clear()
        for item in reversed(snapshot.items):  # newest first
            self.messages.addItem(message_line(item))
        if self.tabs.currentIndex() == 1:
            self._mark_read()

    def show_tab(self, index: int) -> None:
        self.tabs.setCurrentIndex(index)
        self._tab_shown(index)
        self.show()
        self.raise_()

    def _tab_shown(self, index: int) -> None:
        if index == 1:
            self._mark_read()
        elif index == 2:
            run_async(self._bridge, self.client.mine, lambda doc: self.about.setPlainText(render(doc)),
                      self.problem.setText)

    def _mark_read(self) -> None:
        if self.snapshot is None:
            return
        unread = [int(i["id"]) for i in self.snapshot.items if not i.get("read_at")]
        if unread:
            run_async(self._bridge, lambda: self.client.mark_read(unread), lambda _: None, self.problem.setText)

    def _register_selected(self) -> None:
        rows = self.agents.selectionModel().selectedRows()
        cell = self.agents.item(rows[0].row(), 0) if rows else None
        if cell is not None:
            self.register_asked.emit(str(cell.data(Qt.ItemDataRole.UserRole)))


class Companion(QObject):
    """The tray icon, the poll of the daemon, and the windows it opens."""

    polled = Signal()

    def __init__(self, client: Client, *, seen: SeenStore | None = None, quiet: bool = False,
                 poll_interval_ms: int = POLL_INTERVAL_MS, provider_ids: list[str] | None = None) -> None:
        super().__init__()
        self.client = client
        self.seen_store = seen or SeenStore()
        self.seen = self.seen_store.load()
        self.quiet = quiet
        self.provider_ids = provider_ids if provider_ids is not None else _provider_ids()
        self.snapshot: Snapshot | None = None
        self.last_target: tuple[str, str] | None = None
        self.problem = ""
        self._bridge = _Bridge()
        self._bridge.done.connect(lambda callback, value: callback(value))
        self.window = StatusWindow(client)
        self.window.register_asked.connect(self.open_register)
        self.register_window: RegisterWindow | None = None
        self.tray = QSystemTrayIcon(tray_icon())
        self.tray.setToolTip("agentroster")
        self.menu = QMenu()
        for text, tab in (("Your agents and registrations…", 0), ("Messages from IT…", 1),
                          ("What agentroster collects about you…", 2)):
            action = QAction(text, self.menu)
            action.triggered.connect(lambda _checked=False, t=tab: self.window.show_tab(t))
            self.menu.addAction(action)
        self.tray.setContextMenu(self.menu)
        self.tray.messageClicked.connect(self.open_last)
        self.timer = QTimer(self)
        self.timer.setInterval(poll_interval_ms)
        self.timer.timeout.connect(self.poll)
        self._polls = 0

    def start(self) -> None:
        self.tray.show()
        self.timer.start()
        self.poll()

    def poll(self, *, relist: bool = False) -> None:
        relist = relist or self._polls % RELIST_EVERY_POLLS == 0
        self._polls += 1
        previous = self.snapshot
        run_async(self._bridge, lambda: self.client.snapshot(previous, relist=relist), self._polled, self._failed)

    def _failed(self, message: str) -> None:
        self.problem = message
        self.tray.setToolTip(f"agentroster: {message}")
        self.polled.emit()

    def _polled(self, snapshot: Snapshot) -> None:
        self.problem = ""
        self.snapshot = snapshot
        # while the org's policy does not nudge, nothing is notified, nor noted as notified: once it does, the
        # agents and messages still new are (--quiet instead notes them, so that they never are)
        for note in notifications(snapshot, self.seen) if snapshot.notify else ():
            self.notify(note)
            self.seen.append(note.key)
        try:
            self.seen_store.save(self.seen)
        except OSError as exc:  # notified again after a restart, nothing worse
            log.warning("companion: %s: %s", self.seen_store.path, exc.strerror)
        unread = sum(1 for i in snapshot.items if not i.get("read_at"))
        self.tray.setToolTip(f"agentroster: {len(snapshot.unregistered())} agents not registered, "
                             f"{unread} unread messages from IT")
        self.window.show_snapshot(snapshot)
        self.polled.emit()

    def notify(self, note: Notification) -> None:
        """One desktop notification (none when quiet); a click on it opens ``note.target``."""
        self.last_target = note.target
        if not self.quiet:
            self.tray.showMessage(note.title, note.text, QSystemTrayIcon.MessageIcon.Information, NOTIFICATION_MS)

    def open_last(self) -> None:
        if self.last_target is None:
            return
        kind, ref = self.last_target
        if kind == "register":
            self.open_register(ref)
        else:
            self.window.show_tab(1)

    def open_register(self, sighting_id: str) -> RegisterWindow | None:
        agent = self.snapshot.agent(sighting_id) if self.snapshot else None
        if agent is None:  # gone since, or another user's: the list shows what there is
            self.window.show_tab(0)
            return None
        self.register_window = RegisterWindow(self.client, agent, self.snapshot.user if self.snapshot else None,
                                              self.provider_ids)
        self.register_window.registered.connect(lambda _r: self.poll(relist=True))
        self.register_window.show()
        self.register_window.raise_()
        return self.register_window


def _provider_ids() -> list[str]:
    from endpoint.service.registration.cli import provider_ids

    return provider_ids()
