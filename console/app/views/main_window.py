"""The main window: a connection banner, tabs (overview, agents, devices, registrations, policy), the agent detail in
a dock beside them, and a status bar with who is signed in and a busy indicator."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from console.app.plain_text import plain_label
from console.app.views.agents import AgentsView
from console.app.views.detail import DetailView
from console.app.views.devices import DevicesView
from console.app.views.overview import OverviewView
from console.app.views.policy import PolicyView
from console.app.views.registrations import RegistrationsView


class Banner(QFrame):
    """A strip across the top that says the collector is out of reach, and that the console retries."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setStyleSheet("#banner { background: #fff4ce; border: 1px solid #e0c060; }")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.text = plain_label()  # carries the collector's error messages
        self.text.setWordWrap(True)
        self.text.setAccessibleName("Connection")
        self.retry = QPushButton("Retr&y now")
        layout.addWidget(self.text, 1)
        layout.addWidget(self.retry)
        self.hide()

    def show_message(self, text: str) -> None:
        self.text.setText(text)
        self.show()


class MainWindow(QMainWindow):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("agentroster-console")
        self.setWindowTitle("agentroster console")
        self.resize(1360, 820)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        self.banner = Banner()
        layout.addWidget(self.banner)
        self.tabs = QTabWidget()
        self.overview = OverviewView()
        self.agents = AgentsView()
        self.devices = DevicesView()
        self.registrations = RegistrationsView()
        self.policy = PolicyView()
        self.tabs.addTab(self.overview, "Overview")
        self.tabs.addTab(self.agents, "Agents")
        self.tabs.addTab(self.devices, "Devices")
        self.tabs.addTab(self.registrations, "Registrations")
        self.tabs.addTab(self.policy, "Policy")
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.detail = DetailView()
        self.detail_dock = QDockWidget("Agent detail", self)
        self.detail_dock.setObjectName("detail-dock")
        self.detail_dock.setWidget(self.detail)
        self.detail_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.detail_dock)
        self.resizeDocks([self.detail_dock], [520], Qt.Orientation.Horizontal)

        self.who = plain_label()
        self.message = plain_label()  # names owners, agents and the collector's messages
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate while calls are in flight
        self.busy.setMaximumWidth(140)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.statusBar().addWidget(self.who)
        self.statusBar().addWidget(self.message, 1)
        self.statusBar().addPermanentWidget(self.busy)

        refresh = QAction("Refresh", self)
        refresh.setShortcut(QKeySequence.StandardKey.Refresh)
        self.refresh_action = refresh
        self.addAction(refresh)
        for number in range(5):
            jump = QAction(self)
            jump.setShortcut(QKeySequence(f"Ctrl+{number + 1}"))
            jump.triggered.connect(lambda _=False, n=number: self.tabs.setCurrentIndex(n))
            self.addAction(jump)

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setStyleSheet("color: #b3261e" if error else "")
        self.message.setText(text)
