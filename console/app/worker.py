"""API calls off the GUI thread: a QThreadPool runs each call, and its result or error comes back to the
GUI thread as a queued signal, where the caller's callback runs.

A call never raises into Qt: a ``ConsoleError`` (an ``ApiError`` most often) goes to ``on_error`` as it
is; any other exception is logged and handed over as an ``UnexpectedError`` with a plain message, so the
console shows a line, not a traceback.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from console.app.errors import ConsoleError, UnexpectedError

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[ConsoleError], None]


class _Relay(QObject):
    """Lives in the GUI thread; its signals, emitted from a pool thread, are delivered queued."""

    finished = Signal(int, int, object)  # call id, 1 for a result or 0 for an error, the payload


class _Call(QRunnable):
    def __init__(self, call_id: int, fn: Callable[..., Any], args: tuple[Any, ...], relay: _Relay) -> None:
        super().__init__()
        self.call_id, self.fn, self.args, self.relay = call_id, fn, args, relay

    def run(self) -> None:
        try:
            result = self.fn(*self.args)
        except ConsoleError as exc:
            self.relay.finished.emit(self.call_id, 0, exc)
        except Exception as exc:  # a bug must not take the console down
            log.exception("console call %s failed", getattr(self.fn, "__name__", self.fn))
            self.relay.finished.emit(self.call_id, 0, UnexpectedError(f"Unexpected error: {exc}"))
        else:
            self.relay.finished.emit(self.call_id, 1, result)


class Runner(QObject):
    """Runs blocking calls on a thread pool; ``busy`` tells how many are in flight."""

    busy = Signal(int)

    def __init__(self, parent: QObject | None = None, *, threads: int = 4) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._finished)
        self._pending: dict[int, tuple[Done | None, Failed | None]] = {}
        self._ids = itertools.count(1)

    def call(self, fn: Callable[..., Any], *args: Any, on_done: Done | None = None,
             on_error: Failed | None = None) -> int:
        call_id = next(self._ids)
        self._pending[call_id] = (on_done, on_error)
        self.pool.start(_Call(call_id, fn, args, self._relay))
        self.busy.emit(len(self._pending))
        return call_id

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @Slot(int, int, object)
    def _finished(self, call_id: int, ok: int, payload: object) -> None:
        on_done, on_error = self._pending.pop(call_id, (None, None))
        self.busy.emit(len(self._pending))
        try:
            if ok and on_done is not None:
                on_done(payload)
            elif not ok and on_error is not None:
                assert isinstance(payload, ConsoleError)
                on_error(payload)
        except Exception:  # a callback's bug is logged, the console goes on
            log.exception("console callback failed")

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the pool is idle (shutdown and tests); queued results still need the event loop."""
        return bool(self.pool.waitForDone(msecs))
