"""The live network sensor: which process calls which LLM provider or tool endpoint, from the wire.

A capture (``capture``: a packet socket with a kernel BPF filter on Linux, scapy elsewhere; the
filters in ``capture_filters``) lets only DNS, TLS ClientHellos and HTTP request heads reach Python
(candidates for the rest of a split ClientHello are parked in the kernel, read only while one waits);
``packets.PacketParser`` reads them as raw bytes. Each event is attributed to a pid by 5-tuple -- on
Linux by asking the kernel for that one socket and /proc for its owner (``_sockets_linux``), elsewhere
through psutil's socket table (``socket_table``) -- and DNS answers name the addresses of connections
seen only in that table. Without privileges or libpcap (or scapy, off Linux) the sensor says once what
it cannot see and why, and falls back to the socket table alone, naming addresses by forward-resolving
the catalog's hosts (``resolution``). Nothing here raises into the scan: problems land in ``errors``,
and a packet that breaks the code is counted in ``faults()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from endpoint.scan.evidence import NetworkRecord, ScanError
from endpoint.scan.faults import FailureTally
from endpoint.scan.sensors._capture_linux import PARK_S
from endpoint.scan.sensors._sockets_linux import SocketOwners
from endpoint.scan.sensors.capture import (
    Capture,
    CaptureUnavailable,
    LinuxCapture,
    open_capture,
    up_interfaces,
)
from endpoint.scan.sensors.capture_filters import TLS_PORTS, hello_filter, rest_filter
from endpoint.scan.sensors.endpoint_table import EndpointTable, ProviderFor
from endpoint.scan.sensors.packet_events import DnsMessage, Event
from endpoint.scan.sensors.packets import PacketParser
from endpoint.scan.sensors.resolution import Resolver, resolve_hosts
from endpoint.scan.sensors.socket_table import Connection, SocketTable, socket_table_records

log = logging.getLogger("agentroster.network")

BATCH_S = 0.02  # after reading, wait this long so that the next wakeup reads many packets at once
SOCKET_POLL_S = 30.0  # socket-table sweep with live capture (DNS-named connections without SNI)
FALLBACK_POLL_S = 10.0  # socket-table sweep without capture: shorter connections are missed
SNIFF_POLL_S = 0.5  # socket-table sweep during a bounded ``sniff``
REFRESH_MIN_S = 0.02  # at most one socket-table read per this, however many events miss
ATTRIBUTE_WAIT_S = 0.3  # an event whose socket is not in the table yet waits this long for it
DNS_LINK_S = 5.0  # a DNS query whose socket closed unseen goes to the process that calls the name within this
RESOLVE_EVERY_S = 600.0  # forward-resolved catalog addresses are refreshed this often (CDNs rotate)
_SAID: set[str] = set()  # fallback explanations already logged by this process

RecordSink = Callable[[NetworkRecord], None]


# --- the sensor ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Waiting:
    """An event whose socket was not in the table yet."""

    record: NetworkRecord
    key: tuple[int, str, int, str, int]
    until: float


class NetworkSensor:
    """Live network evidence: ``sniff(seconds)`` for a scan, or ``start()`` / ``stop()`` for the daemon
    (one or the other on one sensor).

    ``provider_for(host, port)`` names the provider of a host (the catalog's lookup). New endpoints
    -- the first record of each (pid, host, port, via) -- go to ``on_record`` if given, else onto
    the ``records`` queue; ``snapshot()`` returns all of them with counts and first / last times.
    ``watch_hosts`` are the catalog's (and MCP servers') hosts, forward-resolved without capture.
    ``resolve`` replaces the system resolver (tests, or a resolver that must not leave the host).
    """

    def __init__(
        self,
        provider_for: ProviderFor,
        *,
        interfaces: Sequence[str] | None = None,
        on_record: RecordSink | None = None,
        watch_hosts: Iterable[str] = (),
        resolve: Resolver | None = None,
        resolve_with_capture: bool = False,
        tls_ports: Iterable[int] = TLS_PORTS,
        capture: bool = True,
        poll_s: float | None = None,
    ) -> None:
        self.interfaces = list(interfaces) if interfaces else None
        self._on_record = on_record
        self.records: queue.Queue[NetworkRecord] = queue.Queue(maxsize=10000)
        self._watch_hosts = list(watch_hosts)
        self._resolve = resolve
        self._resolve_with_capture = resolve_with_capture
        self._tls_ports = sorted(set(tls_ports))
        self._filter = hello_filter()
        self._rest_filter = rest_filter(self._tls_ports)
        self._want_capture = capture
        self._poll_s = poll_s
        self._table = EndpointTable(provider_for)
        self._parser = PacketParser()
        self._sockets = SocketTable()
        self._owners = SocketOwners() if SocketOwners.available() else None
        self._attempted = 0.0  # time.monotonic() of the last attribution attempt
        self._capture: Capture | None = None
        self._reasons: list[str] | None = None  # why capture is off; None until probed
        self._resolved: dict[str, str] = {}
        self._resolved_at = -RESOLVE_EVERY_S
        self._waiting: list[_Waiting] = []
        self._orphans: list[_Waiting] = []  # DNS queries whose socket closed before it was seen
        self._callers: OrderedDict[str, tuple[int, float]] = OrderedDict()  # host or address -> (pid, ts)
        self._captured: OrderedDict[tuple[int, str, int, str, int], None] = OrderedDict()
        self._counted: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self._failed = FailureTally("network capture")
        self.packets = 0  # packets that passed the kernel filter
        self.events = 0

    # -- what it can see

    @property
    def live(self) -> bool:
        """True when packets can be captured; False means the socket-table fallback."""
        self._probe()
        return not self._reasons

    @property
    def capabilities(self) -> list[str]:
        """What the sensor sees, and what it cannot see and why, one sentence each."""
        self._probe()
        if not self._reasons:
            where = ", ".join(
                self.interfaces or ["every interface (now: " + ", ".join(up_interfaces()) + ")"]
            )
            lines = [
                f"live capture on {where} through a kernel filter: DNS queries and answers, the server "
                "name (SNI) of TLS ClientHellos, HTTP CONNECT targets and Host headers; bulk data never "
                "reaches the sensor",
                "attribution: each flow is matched to its process by 5-tuple ("
                + ("the kernel's socket lookup and /proc" if self._owners is not None else "psutil's socket table")
                + "); a DNS query whose socket closed unseen goes to the process that calls the name; DNS "
                "answers name the addresses of connections seen only in the socket table",
                "cannot see: names inside encrypted DNS (DoH, DoT) or an encrypted ClientHello (ECH), the "
                "server name of QUIC / HTTP/3 connections (seen as UDP sockets only), a ClientHello "
                "split across segments on ports other than "
                + ", ".join(map(str, self._tls_ports))
                + ", and the process behind a flow from another network namespace (a container)",
            ]
        else:
            lines = [f"no packet capture: {reason}" for reason in self._reasons or []]
            lines += self._fallback_lines()
        if self._sockets.error:
            lines.append(self._sockets.error)
        elif hasattr(os, "geteuid") and os.geteuid() != 0:
            lines.append("processes of other users are not attributed (not running as root)")
        return lines

    def _fallback_lines(self) -> list[str]:
        hosts = [h for h in self._watch_hosts if "*" not in h]
        return [
            "cannot see: TLS server names (SNI), DNS queries and answers, proxy CONNECT targets and HTTP "
            f"Host headers, or a connection that opens and closes between two polls (every {self._fallback_poll():g} s)",
            "sees: open TCP and connected UDP sockets in the socket table with their process; an address is "
            f"named only if it is one of the {len(hosts)} catalog hosts, forward-resolved, or a catalog port",
        ]

    def _fallback_poll(self) -> float:
        return self._poll_s if self._poll_s is not None else FALLBACK_POLL_S

    def _probe(self) -> None:
        """Find out once whether capture works (opening and closing it); if not, say why, once."""
        if self._reasons is None:
            self._open()
            if self._capture is not None and self._thread is None:
                self._close_capture()

    def _open(self) -> None:
        """Open the capture unless it is known not to work or is open already."""
        if self._capture is not None or self._reasons:
            return
        reasons: list[str] = []
        if not self._want_capture:
            reasons.append("turned off by configuration")
        else:
            try:
                self._capture = open_capture(self._filter, self.interfaces, self._rest_filter)
            except CaptureUnavailable as exc:
                reasons.append(str(exc))
        self._reasons = reasons
        if reasons:
            message = "network sensor: " + "; ".join(self.capabilities)
            if message not in _SAID:
                _SAID.add(message)
                log.warning("%s", message)
            self.errors.extend(f"no packet capture: {r}" for r in reasons)

    # -- running

    def sniff(self, seconds: float) -> list[NetworkRecord]:
        """Watch for ``seconds`` (capture, or socket-table polls without it); all records seen."""
        self._open()
        self._stop.clear()
        deadline = time.monotonic() + max(0.0, seconds)
        try:
            if self._capture is not None:
                self._loop(deadline, self._poll_s if self._poll_s is not None else SOCKET_POLL_S)
            else:
                self._loop(deadline, min(self._fallback_poll(), SNIFF_POLL_S))
            self._sweep()
        finally:
            self._flush_waiting()
            self._close_capture()
        return self.snapshot()

    def start(self) -> None:
        """Run in a daemon thread until ``stop()``."""
        if self._thread is not None:
            return
        self._open()
        self._stop.clear()
        self._wake_r, self._wake_w = os.pipe()
        poll = (
            self._poll_s
            if self._poll_s is not None
            else (SOCKET_POLL_S if self._capture else FALLBACK_POLL_S)
        )
        self._thread = threading.Thread(
            target=self._loop, args=(None, poll), name="agentroster-network", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and release the capture; records stay available in ``snapshot()``."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if thread is not None:
            thread.join(timeout=10)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._flush_waiting()
        self._close_capture()

    def snapshot(self) -> list[NetworkRecord]:
        """Every record so far, aggregated per (pid, host, port, via) -- or client address without pid."""
        with self._lock:
            return self._table.records()

    def socket_table_records(self) -> list[NetworkRecord]:
        """The socket table now, as ``via="socket"`` records named by DNS answers and resolved hosts."""
        self._refresh_resolved()
        table = SocketTable()
        table.refresh()
        with self._lock:
            names = {**self._resolved, **self._table.names}
            captured = set(self._captured)
        if threading.current_thread() is self._thread or self._thread is None:
            self._sockets = table  # the sensor's own thread: reuse this read for attribution too

        def seen_by_capture(c: Connection) -> bool:
            return (c.proto, c.laddr, c.lport, c.raddr, c.rport) in captured

        return socket_table_records(self._table.provider, names, table=table, skip=seen_by_capture)

    def _loop(self, deadline: float | None, poll_s: float) -> None:
        try:
            self._run(deadline, poll_s)
        except Exception as exc:  # the daemon thread must report, not die silently
            log.exception("network sensor stopped")
            self.errors.append(f"network sensor stopped: {exc!r}")

    def _run(self, deadline: float | None, poll_s: float) -> None:
        # Windows' select() takes sockets only, not the wake pipe: there a stop ends the wait through the stop
        # event (no capture socket) or within one wait (a capture's sockets)
        wake: list[Any] = [self._wake_r] if self._wake_r >= 0 and sys.platform != "win32" else []
        next_poll = time.monotonic() + (poll_s if self._capture is not None else 0.0)
        while not self._stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            wait = min(next_poll, deadline if deadline is not None else next_poll) - now
            if self._waiting:
                wait = min(wait, self._attempted + REFRESH_MIN_S - now)
            if self._orphans:
                wait = min(wait, min(o.until for o in self._orphans) - now)
            fds: list[Any] = list(wake)
            if self._capture is not None:
                fds += self._capture.sockets()
                if isinstance(self._capture, LinuxCapture) and self._capture.rest:
                    if self._parser.waiting(time.time()):
                        fds += self._capture.rest  # the rest of a split ClientHello is due
                    else:
                        wait = min(wait, self._capture.rest_opened + PARK_S - now)
            if fds:
                select.select(fds, [], [], max(0.0, wait))
            else:
                self._stop.wait(max(0.0, wait))
            if self._read_packets() and not self._waiting:
                self._stop.wait(BATCH_S)  # let packets gather: one wakeup per batch, not per packet
            if self._waiting:
                self._retry_waiting()
            if self._orphans:
                self._release_orphans()
            if time.monotonic() >= next_poll:
                self._sweep()
                next_poll = time.monotonic() + poll_s

    def _read_packets(self) -> int:
        capture = self._capture
        if capture is None:
            return 0
        count = self._feed(capture.read())
        if isinstance(capture, LinuxCapture) and capture.rest:
            if self._parser.waiting(time.time()):
                count += self._feed(capture.read_rest(), rest=True)
            elif time.monotonic() - capture.rest_opened >= PARK_S:
                old = capture.renew_rest()
                # A ClientHello start that came before the fresh rest sockets opened may have its rest
                # in the old ones: read the starts once more, and the old rest sockets if one waits.
                count += self._feed(capture.read())
                if self._parser.waiting(time.time()):
                    count += self._feed(capture.read_rest(old), rest=True)
                capture.close_sockets(old)
        return count

    def _feed(self, batch: list[tuple[bytes, int, float]], *, rest: bool = False) -> int:
        feed = self._parser.feed_rest if rest else self._parser.feed
        for data, linktype, ts in batch:
            self.packets += 1
            try:
                event = feed(data, linktype, ts)
                if event is not None:
                    self.events += 1
                    self._on_event(event)
            except Exception as exc:  # one packet that breaks the code is one count, never a dead thread
                self._failed.add(exc)
        return len(batch)

    def faults(self) -> list[ScanError]:
        """The packets whose processing raised so far, as one ``internal`` error for the capture (or none)."""
        return self._failed.errors()

    def _close_capture(self) -> None:
        if self._capture is not None:
            self._capture.close()
            self._capture = None

    # -- attribution

    def _on_event(self, event: Event) -> None:
        with self._lock:
            rec = self._table.record_for(event)
        if rec is None:
            return
        key = self._client_key(event)
        self._remember_captured(key)
        pid = self._owner(key)
        if pid is None:
            self._waiting.append(_Waiting(rec, key, time.monotonic() + ATTRIBUTE_WAIT_S))
            return
        self._emit(rec, pid)

    def _owner(self, key: tuple[int, str, int, str, int], *, refresh: bool = True) -> int | None:
        """The pid of the socket ``key``: one lookup in /proc on Linux; elsewhere the whole socket table,
        read at most once per REFRESH_MIN_S. A socket already closed may still be in the last table."""
        self._attempted = time.monotonic()
        if self._owners is not None:
            pid = self._owners.pid_for(*key)
            return pid if pid is not None else self._sockets.pid_for(*key)
        pid = self._sockets.pid_for(*key)
        if pid is None and refresh and time.monotonic() - self._sockets.refreshed >= REFRESH_MIN_S:
            self._sockets.refresh()
            pid = self._sockets.pid_for(*key)
        return pid

    @staticmethod
    def _client_key(event: Event) -> tuple[int, str, int, str, int]:
        """(proto, local address, local port, remote address, remote port) from the asking side."""
        f = event.flow
        if isinstance(event, DnsMessage) and event.response:
            return f.proto, f.dst, f.dport, f.src, f.sport
        return f.proto, f.src, f.sport, f.dst, f.dport

    def _flush_waiting(self) -> None:
        """On the way out: one last look at the socket table, then emit what is still waiting."""
        if self._waiting:
            self._attempted = self._sockets.refreshed = 0.0
            self._retry_waiting(final=True)
        self._release_orphans(final=True)

    def _orphan(self, item: _Waiting) -> None:
        """A DNS query nobody could be found for -- the resolver's socket closed within microseconds,
        as a local or caching resolver makes it: the process that calls that name (or an address it
        resolved to) within DNS_LINK_S, before or after, is the one that asked."""
        rec = item.record
        for name in (rec.host, rec.dst):
            caller = self._callers.get(name) if name else None
            if caller is not None and abs(caller[1] - rec.ts) <= DNS_LINK_S:
                self._emit(rec, caller[0])
                return
        self._orphans.append(_Waiting(rec, item.key, time.monotonic() + DNS_LINK_S))

    def _adopt(self, rec: NetworkRecord, pid: int) -> None:
        """Remember who called ``rec``'s host and address; hand that caller the orphaned queries for them."""
        for name in (rec.host, rec.dst):
            if name:
                self._callers.pop(name, None)
                self._callers[name] = (pid, rec.ts)
        while len(self._callers) > 4096:
            self._callers.popitem(last=False)
        if self._orphans:
            mine = [o for o in self._orphans if o.record.host == rec.host or (o.record.dst and o.record.dst == rec.dst)]
            self._orphans = [o for o in self._orphans if o not in mine]
            for item in mine:
                self._emit(item.record, pid)

    def _release_orphans(self, final: bool = False) -> None:
        """Orphaned DNS queries nobody called the name of in time are emitted without a process."""
        now = float("inf") if final else time.monotonic()
        due = [o for o in self._orphans if now >= o.until]
        if due:
            self._orphans = [o for o in self._orphans if now < o.until]
            for item in due:
                self._emit(item.record, None)

    def _retry_waiting(self, final: bool = False) -> None:
        if time.monotonic() - self._attempted < REFRESH_MIN_S:
            return
        if self._owners is None:
            self._sockets.refresh()
        self._attempted = time.monotonic()
        now = float("inf") if final else time.monotonic()
        still: list[_Waiting] = []
        for item in self._waiting:
            pid = self._owner(item.key, refresh=False)
            if pid is None and now >= item.until and item.record.via == "dns":
                self._orphan(item)
            elif pid is not None or now >= item.until:
                self._emit(item.record, pid)
            else:
                still.append(item)
        self._waiting = still

    def _emit(self, rec: NetworkRecord, pid: int | None) -> None:
        rec.pid, rec.process = pid, self._sockets.process_name(pid)
        if pid is not None and rec.via != "dns":
            self._adopt(rec, pid)
        with self._lock:
            new = self._table.merge(rec)
        if new is None:
            return
        if self._on_record is not None:
            try:
                self._on_record(new)
            except Exception as exc:  # a consumer's bug must not stop the sensor
                self.errors.append(f"on_record failed: {exc!r}")
        else:
            with contextlib.suppress(queue.Full):
                self.records.put_nowait(new)

    def _remember_captured(self, key: tuple[int, str, int, str, int]) -> None:
        with self._lock:
            self._captured[key] = None
            if len(self._captured) > 8192:
                self._captured.popitem(last=False)

    # -- the socket-table sweep

    def _refresh_resolved(self) -> None:
        if self._capture is not None and not self._resolve_with_capture:
            return
        if time.monotonic() - self._resolved_at < RESOLVE_EVERY_S:
            return
        self._resolved_at = time.monotonic()
        self._resolved = resolve_hosts(self._watch_hosts, self._resolve)

    def _sweep(self) -> None:
        """Merge the socket table's connections; each distinct connection counts once."""
        for rec in self.socket_table_records():
            key = (rec.pid, rec.src, rec.sport, rec.dst, rec.port)
            if key in self._counted:
                continue
            self._counted[key] = None
            if len(self._counted) > 16384:
                self._counted.popitem(last=False)
            self._emit(rec, rec.pid)
