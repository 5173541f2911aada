"""The worker over a long session: results and errors come back on the GUI thread, and many thousands
of calls (a console left open for days) do not wear the process down. PySide6 6.12.0 loses a
reference to True on every signal emission and to None on every static void call, which kills the
process after a few thousand calls: the child process here would die of it."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest

from console.app import api
from console.app.worker import Runner

pytestmark = pytest.mark.timeout(300)


def test_results_and_errors_arrive_on_the_gui_thread(qtbot: Any) -> None:
    runner = Runner()
    gui = threading.get_ident()
    seen: list[tuple[str, object, int]] = []

    def boom() -> None:
        raise api.NotFound("gone", status=404, reason="sighting_not_found")

    def bug() -> None:
        raise KeyError("a bug")

    runner.call(lambda: threading.get_ident(), on_done=lambda v: seen.append(("done", v != gui, threading.get_ident())))
    runner.call(boom, on_error=lambda e: seen.append(("error", type(e).__name__, threading.get_ident())))
    runner.call(bug, on_error=lambda e: seen.append(("bug", e.message, threading.get_ident())))
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=10_000)
    assert sorted(seen) == [("bug", "Unexpected error: 'a bug'", gui), ("done", True, gui), ("error", "NotFound", gui)]
    assert runner.in_flight == 0


LONG_SESSION = """
import sys
from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication
from console.app.worker import Runner

app = QApplication([])
runner = Runner()
loop = QEventLoop()
done = []
for i in range(CALLS):
    runner.call(lambda i=i: i, on_done=done.append)
    if i % 200 == 199:
        runner.wait()
        while len(done) <= i - 1 and loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents):
            pass
runner.wait()
while len(done) < CALLS:
    loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents)
print(len(done), sum(done) == CALLS * (CALLS - 1) // 2)
"""


def test_a_long_session_of_calls_does_not_wear_the_process_down() -> None:
    calls = 30_000
    out = subprocess.run([sys.executable, "-c", LONG_SESSION.replace("CALLS", str(calls))], capture_output=True,
                         text=True, timeout=240, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(calls), "True"]
