"""The daemon's network tracker: the network sensor's own thread, and what it has seen.

The sensor runs until the daemon stops or the resource guard sheds it; what a stopped sensor had seen
is kept, so a shed sensor's calls stay in the sightings. The sensor never stops the daemon: whatever it
cannot do is said in its state, which ``agentroster status`` shows.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from endpoint.scan.evidence import NetworkRecord
from endpoint.service.trackers.events import EventQueue

if TYPE_CHECKING:
    from signatures import Library

log = logging.getLogger("agentroster.daemon")

MAX_PAST_RECORDS = 10_000  # what stopped sensors had seen, kept for the sightings


class NetworkTracker:
    """Starts and stops the network sensor; ``state`` is "ok", "limited: …" or "off: why"."""

    def __init__(self, lib: Library, events: EventQueue, *, enabled: bool) -> None:
        self.lib = lib
        self.events = events
        self.enabled = enabled  # the sensors setting names it
        self.sensor: Any = None
        self.state = ""  # not started yet
        self._past: list[NetworkRecord] = []  # what a sensor stopped by the guard had seen

    @property
    def running(self) -> bool:
        return self.sensor is not None

    @property
    def errors(self) -> list[Any]:
        return list(self.sensor.errors) if self.sensor is not None else []

    def faults(self) -> list[Any]:
        """The packets that broke the sensor's code, as one internal error for the capture (or none)."""
        return list(self.sensor.faults()) if self.sensor is not None else []

    def start(self) -> None:
        if not self.enabled:
            self.state = "off: not in the sensors setting"
            return
        try:
            from endpoint.scan.sensors.network import NetworkSensor
        except ImportError as exc:  # scapy (the network extra) is not installed
            self.state = f"off: {exc}"
            return
        lib = self.lib

        def provider_for(host: str, port: int) -> str | None:
            found = lib.provider_for_host(host) if host else None
            found = found or lib.provider_for_port(port)
            return found.id if found else None

        hosts = sorted({h for p in lib.providers for h in p.hosts if "*" not in h})
        try:
            sensor = NetworkSensor(provider_for, watch_hosts=hosts,
                                   on_record=lambda _record: self.events.put(("network",)))
            sensor.start()
        except Exception as exc:  # the sensor says what it cannot do; it must never stop the daemon
            log.warning("network sensor: %s", exc)
            self.state = f"off: {type(exc).__name__}: {exc}"[:300]
            return
        self.sensor = sensor
        self.state = "ok" if sensor.live else "limited: " + "; ".join(sensor.capabilities[:1])

    def stop(self, why: str) -> None:
        sensor, self.sensor = self.sensor, None
        if sensor is not None:
            self._past = (self._past + list(sensor.snapshot()))[-MAX_PAST_RECORDS:]
            threading.Thread(target=sensor.stop, daemon=True).start()  # may block on a capture read
        self.state = f"off: {why}"

    def shed(self) -> bool:
        """Whether the sensor is off because the resource guard shed it (and may come back)."""
        return self.enabled and self.sensor is None and self.state.startswith("off: shed")

    def records(self) -> list[NetworkRecord]:
        live = list(self.sensor.snapshot()) if self.sensor is not None else []
        return self._past + live

    def health(self) -> str | None:
        """The sensor's state for the status, None before it was started (or said off)."""
        errors = self.errors
        if errors and self.state == "ok":
            return "limited: " + str(errors[0])[:200]
        return self.state or None
