"""The main window: a menu bar (File, Edit, View, Triage, Help), a connection banner, tabs (overview, fleet,
agents, devices, registrations, policy), the agent detail in a dock beside them, and a status bar with who is
signed in, the last message (cleared when the tab changes) and a busy indicator."""

from __future__ import annotations

from importlib import metadata

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from console.app import theme
from console.app.models import RowsModel
from console.app.plain_text import plain_label
from console.app.views.agents import AgentsView
from console.app.views.detail import DetailView
from console.app.views.devices import DevicesView
from console.app.views.fleet import FleetView
from console.app.views.overview import OverviewView
from console.app.views.policy import PolicyView
from console.app.views.registrations import RegistrationsView


class Banner(QFrame):
    """A strip across the top that says the collector is out of reach, and that the console retries."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.restyle()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.text = plain_label()  # carries the collector's error messages
        self.text.setWordWrap(True)
        self.text.setAccessibleName("Connection")
        self.retry = QPushButton("Retr&y now")
        layout.addWidget(self.text, 1)
        layout.addWidget(self.retry)
        self.hide()

    def restyle(self) -> None:
        self.setStyleSheet(theme.banner_style("banner"))

    def show_message(self, text: str) -> None:
        self.text.setText(text)
        self.show()


#: every key the console answers, as the Help menu's shortcut list shows them (docs/console.md too)
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Ctrl+1 … Ctrl+6", "Overview, Fleet, Agents, Devices, Registrations, Policy"),
    ("Ctrl+F", "the agents' search field"),
    ("Enter (in a field)", "apply the filters"),
    ("Arrows, Page Up/Down", "move through the roster; the detail follows the current row"),
    ("Enter (in the roster)", "open the detail and move focus to it"),
    ("Ctrl+A", "select every loaded row of the roster"),
    ("Ctrl+Z", "undo the last triage action (on one agent, a selection or a whole filter)"),
    ("Ctrl+C", "copy the selected rows, tab-separated, with a header line"),
    ("Menu key, Shift+F10", "the roster's context menu (triage, copy, open the device)"),
    ("Alt+F, Alt+E, Alt+V, Alt+T, Alt+H", "the File, Edit, View, Triage and Help menus"),
    ("Alt+A, Alt+O, Alt+R, Alt+P, Alt+N", "approve, assign owner, request registration, false positive, add note"),
    ("Alt+A, Alt+J, Alt+K, Alt+G", "(registrations) approve, reject, ask for more, show the agent"),
    ("Alt+L, Alt+R, Alt+S, Alt+P", "(fleet) list tool servers too, show in the roster, sanction, approve all"),
    ("Alt+Y", "retry now, when the collector is out of reach"),
    ("Ctrl+Tab", "the next tab of the detail when it has focus"),
    ("Enter (on a device in the overview)", "that device's ungoverned agents"),
    ("Enter or Space (on an overview card or bar)", "the list behind it"),
    ("F5", "reload every view"),
    ("Ctrl+Shift+D", "show or hide the agent detail"),
    ("F1", "this list"),
    ("Ctrl+Q", "quit"),
)
TAB_NAMES = ("&Overview", "&Fleet by kind", "&Agents", "&Devices", "&Registrations", "&Policy")
TRIAGE_MENU = (("approve", "&Approve (sanction)", "SP_DialogApplyButton"),
               ("assign_owner", "Assign &owner…", "SP_FileDialogContentsView"),
               ("request_registration", "Request &registration", "SP_MessageBoxQuestion"),
               ("false_positive", "False &positive", "SP_DialogDiscardButton"),
               ("note", "Add &note…", "SP_FileDialogDetailedView"))  # fmt: skip


def version() -> str:
    try:
        return metadata.version("agentroster")
    except metadata.PackageNotFoundError:
        return "development"


class ShortcutsDialog(QDialog):
    """Help → Keyboard shortcuts: every key the console answers, in a table."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        layout = QVBoxLayout(self)
        self.rows = RowsModel(["Keys", "What"], self)
        self.rows.set_rows(SHORTCUTS)
        table = QTableView()
        table.setModel(self.rows)
        table.setAccessibleName("Keyboard shortcuts")
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.verticalHeader().hide()
        table.setWordWrap(False)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(table.horizontalHeader().length() + 460, 520)


class MainWindow(QMainWindow):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("agentroster-console")
        self.setWindowTitle("agentroster console")
        self.setWindowIcon(theme.window_icon())
        self.resize(1360, 820)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        self.banner = Banner()
        layout.addWidget(self.banner)
        self.tabs = QTabWidget()
        self.overview = OverviewView()
        self.fleet = FleetView()
        self.agents = AgentsView()
        self.devices = DevicesView()
        self.registrations = RegistrationsView()
        self.policy = PolicyView()
        self.tabs.addTab(self.overview, "Overview")
        self.tabs.addTab(self.fleet, "Fleet")
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
        # hidden until an agent is opened: an empty dock would take a third of the window for one line
        self.detail_dock.hide()

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

        self._build_menus()
        # a message is about what was just done on one tab: it does not follow the user to another
        self.tabs.currentChanged.connect(lambda _index: self.show_message(""))

    def _action(self, text: str, icon: str | None = None,
                shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None) -> QAction:
        action = QAction(text, self)
        if icon:
            action.setIcon(theme.standard_icon(icon))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.export_csv_action = self._action("Export &CSV…", "SP_DialogSaveButton")
        self.export_json_action = self._action("Export &JSON…", "SP_DialogSaveButton")
        # Quit has no standard key on every platform (none on Windows)
        self.quit_action = self._action("&Quit", "SP_DialogCloseButton", "Ctrl+Q")
        self.quit_action.triggered.connect(self.close)
        for action in (self.export_csv_action, self.export_json_action):
            file.addAction(action)
        file.addSeparator()
        file.addAction(self.quit_action)

        edit = bar.addMenu("&Edit")
        self.copy_action = self._action("&Copy rows", "SP_FileIcon", QKeySequence.StandardKey.Copy)
        self.select_all_action = self._action("Select &all loaded rows", None, QKeySequence.StandardKey.SelectAll)
        self.select_matching_action = self._action("Select all &matching…")
        self.find_action = self._action("&Find", "SP_FileDialogContentsView", QKeySequence.StandardKey.Find)
        self.undo_action = self._action("&Undo the last action", "SP_ArrowBack", QKeySequence.StandardKey.Undo)
        self.undo_action.setEnabled(False)  # until this console has applied an action
        edit.addAction(self.undo_action)
        edit.addSeparator()
        for action in (self.copy_action, self.select_all_action, self.select_matching_action):
            edit.addAction(action)
        edit.addSeparator()
        edit.addAction(self.find_action)

        view = bar.addMenu("&View")
        self.tab_actions: list[QAction] = []
        for number, name in enumerate(TAB_NAMES):
            jump = self._action(name, None, f"Ctrl+{number + 1}")
            jump.triggered.connect(lambda _=False, n=number: self.tabs.setCurrentIndex(n))
            view.addAction(jump)
            self.tab_actions.append(jump)
        view.addSeparator()
        self.detail_action = self.detail_dock.toggleViewAction()
        self.detail_action.setText("Agent &detail")
        self.detail_action.setShortcut(QKeySequence("Ctrl+Shift+D"))
        view.addAction(self.detail_action)
        self.refresh_action = self._action("&Refresh", "SP_BrowserReload", "F5")
        view.addAction(self.refresh_action)
        view.addSeparator()
        themes = view.addMenu("&Theme")
        self.theme_group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for key, label in (("system", "&System"), ("light", "&Light"), ("dark", "&Dark")):
            choice = self._action(label)
            choice.setCheckable(True)
            choice.setData(key)
            self.theme_group.addAction(choice)
            themes.addAction(choice)
            self.theme_actions[key] = choice
        self.theme_actions["system"].setChecked(True)

        triage = bar.addMenu("&Triage")
        self.triage_actions: dict[str, QAction] = {}
        for key, label, icon in TRIAGE_MENU:
            action = self._action(label, icon)
            triage.addAction(action)
            self.triage_actions[key] = action

        help_menu = bar.addMenu("&Help")
        self.shortcuts_action = self._action("&Keyboard shortcuts", "SP_DialogHelpButton", QKeySequence("F1"))
        self.shortcuts_action.triggered.connect(self.show_shortcuts)
        self.about_action = self._action("&About agentroster console", "SP_MessageBoxInformation")
        self.about_action.triggered.connect(self.show_about)
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)
        self.shortcuts_dialog: ShortcutsDialog | None = None

    def show_shortcuts(self) -> None:
        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(self)
        self.shortcuts_dialog.show()
        self.shortcuts_dialog.raise_()

    def about_text(self) -> str:
        return (f"agentroster console {version()}\n\nFinds the AI agents people run on their work machines and "
                "tells IT what each one is, who runs it, what it can reach, and whether anyone approved it.\n\n"
                "Signed in to the collector shown in the status bar.")

    def show_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About agentroster console", self.about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setIconPixmap(theme.window_icon().pixmap(64, 64))
        box.open()

    def show_message(self, text: str, *, error: bool = False) -> None:
        theme.tone_label(self.message, "bad" if error else None)
        self.message.setText(text)
