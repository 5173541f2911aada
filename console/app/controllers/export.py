"""Exporting the agents tab's current view (its filter, sort and columns) as CSV or JSON, paged from the
collector and written to a temporary file beside the target, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QFileDialog

from console.app import viewmodels as vm
from console.app.controllers.session import Session
from console.app.errors import ConsoleError, ExportFailed


class ExportController(QObject):
    """Writes every agent of a roster view to a file, off the GUI thread, with progress in the status bar."""

    progress = Signal(int, int)  # rows written, rows in the view
    exported = Signal(str, int)  # path, rows

    def __init__(self, session: Session, parent: QObject, *, roster: vm.AgentList, choice: vm.ColumnChoice,
                 on_error: Callable[[ConsoleError], None]) -> None:
        super().__init__(parent)
        self.session = session
        self.roster = roster
        self.choice = choice
        self.on_error = on_error
        view = session.window.agents
        view.export_csv.triggered.connect(lambda: self.ask("csv"))
        view.export_json.triggered.connect(lambda: self.ask("json"))
        self.progress.connect(self._show_progress)

    def ask(self, kind: str) -> None:
        suffix = "csv" if kind == "csv" else "json"
        path, _ = QFileDialog.getSaveFileName(self.session.window, f"Export the agents as {suffix.upper()}",
                                              f"agents.{suffix}", f"{suffix.upper()} (*.{suffix})")
        if path:
            self.write(kind, Path(path))

    def write(self, kind: str, path: Path) -> None:
        """Write every agent of the current filtered view (paged from the collector, never all in memory)."""
        roster_filter, sort, order = self.roster.filter, self.roster.sort, self.roster.order
        columns = list(self.choice.columns)
        window, client = self.session.window, self.session.client
        window.show_message(f"Exporting {roster_filter.describe()} to {path}…")

        def job() -> int:
            pages = client.iter_agents(roster_filter.params(), sort=sort, order=order)
            try:
                fd, tmp = tempfile.mkstemp(prefix=".agents-", suffix=".part", dir=str(path.parent))
            except OSError as exc:
                raise ExportFailed(f"Could not write in {path.parent}: {exc.strerror or exc}") from None
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                    if kind == "csv":
                        n = vm.export_csv(pages, columns, out, self.progress.emit)
                    else:
                        meta = {"filter": roster_filter.params(), "sort": sort, "order": order,
                                "collector": client.base_url,
                                "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
                        n = vm.export_json(pages, out, meta, self.progress.emit)
                os.replace(tmp, path)
            except OSError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise ExportFailed(f"Could not write {path}: {exc.strerror or exc}") from None
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return n

        def done(rows: int) -> None:
            window.show_message(f"Exported {rows:,} agents to {path}.")
            self.exported.emit(str(path), rows)

        def failed(error: ConsoleError) -> None:
            self.on_error(error)
            window.show_message(f"Export failed: {error.message}", error=True)

        self.session.runner.call(job, on_done=done, on_error=failed)

    @Slot(int, int)
    def _show_progress(self, written: int, total: int) -> None:
        self.session.window.show_message(f"Exporting… {written:,} of {total:,} agents")
