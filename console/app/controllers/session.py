"""What every controller of one console window shares: the collector's client, the window, the settings,
the worker that runs calls off the GUI thread, and the signed-in token's role."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSettings

from console.app import api
from console.app.views.main_window import MainWindow
from console.app.worker import Runner

VIEWER_TRIAGE = "Your token is a viewer token: viewers can look but not triage."


@dataclass
class Session:
    """One signed-in console window over one collector."""

    client: api.Client
    window: MainWindow
    settings: QSettings
    runner: Runner
    role: str | None = None  # None until the collector has said
    closed: bool = False  # set at exit: no new calls start

    @property
    def can_triage(self) -> bool:
        return self.role == "admin"
