"""The connection to the collector: any call that finds it out of reach shows the banner and starts
retrying (1 s, 2 s, 5 s, then every 10 s); when ``/healthz`` answers again the banner goes and
``reconnected`` is emitted, for every view to reload. Errors are shown as a line in the status bar, never
as a traceback."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from console.app import api
from console.app.controllers.session import Session
from console.app.errors import ConsoleError

RETRY_MS = (1000, 2000, 5000, 10_000)


class ConnectionController(QObject):
    """Shows errors, and retries while the collector is out of reach."""

    connectionChanged = Signal(bool)  # True when the collector answers again
    reconnected = Signal()  # the collector answers again after it was lost

    def __init__(self, session: Session, parent: QObject, *, retry_ms: tuple[int, ...] = RETRY_MS) -> None:
        super().__init__(parent)
        self.session = session
        self.retry_ms = retry_ms
        self.connected = True
        self._retries = 0
        self.retry_timer = QTimer(self)
        self.retry_timer.setSingleShot(True)
        self.retry_timer.timeout.connect(self.retry)
        session.window.banner.retry.clicked.connect(self.retry)

    @Slot(object)
    def show_error(self, error: ConsoleError) -> None:
        window, url = self.session.window, self.session.client.base_url
        if isinstance(error, api.ServerUnreachable) or (isinstance(error, api.ServerError) and error.status == 503):
            self.connection_lost(error)
            return
        if isinstance(error, api.Unauthorized):
            window.banner.show_message(f"{error.message} (agentroster console --server {url} asks for a token again).")
        window.show_message(error.message, error=True)

    def connection_lost(self, error: ConsoleError) -> None:
        if self.connected:
            self.connected = False
            self._retries = 0
            self.connectionChanged.emit(False)
        self._schedule_retry(error.message)

    def _schedule_retry(self, why: str) -> None:
        if self.retry_timer.isActive():
            return
        delay = self.retry_ms[min(self._retries, len(self.retry_ms) - 1)]
        self.session.window.banner.show_message(
            f"Lost the connection to the collector at {self.session.client.base_url}. {why} "
            f"Retrying in {delay / 1000:.0f} s…")
        self.retry_timer.start(delay)

    @Slot()
    def retry(self) -> None:
        self.retry_timer.stop()
        self._retries += 1
        self.session.runner.call(self.session.client.health, on_done=self._health,
                                 on_error=lambda e: self._schedule_retry(e.message))

    def stop(self) -> None:
        self.retry_timer.stop()

    def _health(self, ok: bool) -> None:
        if not ok:
            self._schedule_retry("Its database does not answer.")
            return
        was_lost = not self.connected
        self.connected = True
        self.session.window.banner.hide()
        self.session.window.show_message("Connected again." if was_lost else "")
        if was_lost:
            self.connectionChanged.emit(True)
            self.reconnected.emit()
