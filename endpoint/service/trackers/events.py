"""The queue where producer threads (file watchers, the network sensor, signals, the reporter) tell the
daemon's one loop that something changed."""

from __future__ import annotations

import threading
from collections import OrderedDict

STOP = ("stop",)


class EventQueue:
    """Events (tuples) from producer threads to the main loop; an event already waiting is not queued
    twice, so a storm of file events for one home is one rescan."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._cond = threading.Condition()

    def put(self, event: tuple[str, ...]) -> None:
        with self._cond:
            if event not in self._items:
                self._items[event] = None
                self._cond.notify()

    def get_all(self, timeout: float) -> list[tuple[str, ...]]:
        """Every waiting event, after waiting up to ``timeout`` seconds for the first."""
        with self._cond:
            if not self._items and timeout > 0:
                self._cond.wait(timeout)
            items = list(self._items)
            self._items.clear()
            return items
