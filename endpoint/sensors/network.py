"""The live network sensor: which process calls which LLM provider or tool endpoint, from the wire.

A packet socket with a kernel BPF filter (compiled by scapy through libpcap) lets only DNS, TLS
ClientHellos and HTTP request heads reach Python; ``packets.PacketParser`` reads them as raw bytes.
Each event is attributed to a pid through psutil's socket table by 5-tuple, and DNS answers name the
addresses of connections seen only in that table. Without privileges, scapy or libpcap the sensor
says once what it cannot see and why, and falls back to the socket table alone, naming addresses by
forward-resolving the catalog's hosts. Nothing here raises into the scan: problems land in ``errors``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import queue
import select
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import psutil

from endpoint.evidence import NetworkRecord
from endpoint.sensors.packets import (
    LINKTYPE_RAW,
    TCP,
    UDP,
    DnsMessage,
    EndpointTable,
    Event,
    PacketParser,
    ProviderFor,
)

log = logging.getLogger("agentroster.network")

TLS_PORTS = (443, 8443)  # where the rest of a ClientHello split across segments is let through
CONTINUATION_MAX = 1300  # bytes of IPv4 packet (IPv6: of payload + 20) for such a rest
BATCH_S = 0.02  # after reading, wait this long so that the next wakeup reads many packets at once
SOCKET_POLL_S = 30.0  # socket-table sweep with live capture (DNS-named connections without SNI)
FALLBACK_POLL_S = 10.0  # socket-table sweep without capture: shorter connections are missed
SNIFF_POLL_S = 0.5  # socket-table sweep during a bounded ``sniff``
REFRESH_MIN_S = 0.02  # at most one socket-table read per this, however many events miss
ATTRIBUTE_WAIT_S = 0.3  # an event whose socket is not in the table yet waits this long for it
RESOLVE_EVERY_S = 600.0  # forward-resolved catalog addresses are refreshed this often (CDNs rotate)
RESOLVE_TIMEOUT_S = 5.0  # all forward resolutions together
_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_ARPHRD_LOOPBACK = 772
_SO_ATTACH_FILTER = 26
_SAID: set[str] = set()
_NO_SCAPY = "scapy is not installed, so no packet can be captured (install agentroster[network])"  # fallback explanations already logged by this process

Resolver = Callable[[str], Sequence[str]]
RecordSink = Callable[[NetworkRecord], None]


class CaptureUnavailable(Exception):
    """Live capture cannot run here; the message says why, in words an admin can act on."""


# --- the kernel filter --------------------------------------------------------------------------

_METHOD_WORDS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"PATC", b"OPTI", b"CONN")


def capture_filter(tls_ports: Iterable[int] = TLS_PORTS) -> str:
    """The tcpdump-syntax filter that decides, in the kernel, which packets reach the sensor.

    DNS on port 53; TCP segments whose payload starts a TLS handshake record holding a ClientHello
    (``16 03 xx xx xx 01``) or an HTTP method; and, to the TLS ports only, small segments (at most
    1,300 bytes: a ClientHello's tail after a full segment, not a full-size upload segment) that do
    not start a TLS application-data, alert or change-cipher-spec record -- the rest of a ClientHello
    split across segments. IPv6 is matched when TCP follows the fixed header (no extension headers).
    """
    v4 = "((tcp[12:1] & 0xf0) >> 2)"
    v6 = "(40 + ((ip6[52:1] & 0xf0) >> 2))"
    ports = sorted(set(tls_ports))
    rules = ["udp port 53", "tcp port 53"]
    for fam, payload in (("tcp", v4), ("ip6", v6)):
        at = f"{fam}[{payload}" if fam == "tcp" else f"ip6[{payload}"
        guard = "" if fam == "tcp" else "ip6[6] = 6 and "
        rules.append(f"({guard}{at}:2] = 0x1603 and {at} + 5:1] = 0x01)")
        words = " or ".join(f"{at}:4] = 0x{w.hex()}" for w in _METHOD_WORDS)
        rules.append(f"({guard}({words}))")
        if ports:
            not_records = " and ".join(f"{at}:1] != 0x{b:02x}" for b in (0x14, 0x15, 0x17))
            if fam == "tcp":
                dports = " or ".join(f"tcp[2:2] = {p}" for p in ports)
                size = f"ip[2:2] <= {CONTINUATION_MAX}"
            else:
                dports = " or ".join(f"ip6[42:2] = {p}" for p in ports)
                size = f"ip6[4:2] <= {CONTINUATION_MAX - 20}"
            rules.append(f"({guard}({dports}) and {size} and {not_records})")
    return " or ".join(rules)


def _compile(expr: str, linktype: int) -> object:
    """Compile ``expr`` for ``linktype`` with libpcap through scapy (no root needed)."""
    try:
        from scapy.arch.common import compile_filter
    except ImportError as exc:
        raise CaptureUnavailable(_NO_SCAPY) from exc
    try:
        return compile_filter(expr, linktype=linktype)
    except (ImportError, OSError) as exc:
        raise CaptureUnavailable(
            "libpcap is not installed, so the kernel packet filter cannot be compiled "
            f"(install libpcap: apt install libpcap0.8, dnf install libpcap; {exc})"
        ) from exc
    except Exception as exc:  # scapy raises its own Scapy_Exception for a filter libpcap rejects
        raise CaptureUnavailable(f"the packet filter did not compile: {exc}") from exc


# --- capture backends ---------------------------------------------------------------------------


class _LinuxCapture:
    """One AF_PACKET datagram socket: every interface, link headers removed, filter in the kernel.

    ``SOCK_DGRAM`` hands over each packet from its IP header on whatever the interface (Ethernet,
    loopback, a VPN tunnel), so one filter compiled for raw IP fits all; loopback packets arrive
    twice (out and in) and the outgoing copy is dropped.
    """

    def __init__(self, expr: str, interfaces: Sequence[str] | None) -> None:
        try:
            from scapy.arch.common import free_filter
            from scapy.data import DLT_RAW
            from scapy.libs.structures import sock_fprog
        except ImportError as exc:
            raise CaptureUnavailable(_NO_SCAPY) from exc
        program: Any = _compile(expr, DLT_RAW)
        fprog = bytes(sock_fprog(program.bf_len, program.bf_insns))  # the kernel copies the program
        self._socks: list[socket.socket] = []
        try:
            names: list[str | None] = list(interfaces) if interfaces else [None]
            for name in names:
                self._socks.append(self._open(fprog, name))
        except PermissionError as exc:
            self.close()
            raise CaptureUnavailable(_no_permission()) from exc
        except OSError as exc:
            self.close()
            raise CaptureUnavailable(f"cannot open a packet socket: {exc.strerror or exc}") from exc
        finally:
            free_filter(program)

    @staticmethod
    def _open(fprog: bytes, interface: str | None) -> socket.socket:
        proto = 0 if interface else socket.htons(_ETH_P_ALL)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
            if interface:
                sock.bind((interface, _ETH_P_ALL))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:  # packets queued before the filter was attached
                    sock.recv(65535)
        except BaseException:
            sock.close()
            raise
        return sock

    def sockets(self) -> list[socket.socket]:
        return list(self._socks)

    def read(self) -> list[tuple[bytes, int, float]]:
        out: list[tuple[bytes, int, float]] = []
        for sock in self._socks:
            for _ in range(1024):
                try:
                    data, addr = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if addr[2] == _PACKET_OUTGOING and addr[3] == _ARPHRD_LOOPBACK:
                    continue
                out.append((data, LINKTYPE_RAW, time.time()))
        return out

    def close(self) -> None:
        for sock in self._socks:
            sock.close()
        self._socks = []


class _ScapyCapture:
    """scapy's listening sockets, one per interface (macOS, Windows, BSD): libpcap filters there."""

    def __init__(self, expr: str, interfaces: Sequence[str]) -> None:
        try:
            from scapy.config import conf
        except ImportError as exc:
            raise CaptureUnavailable(_NO_SCAPY) from exc
        self._conf = conf
        self._socks: list[Any] = []
        try:
            for name in interfaces:
                self._socks.append(conf.L2listen(iface=name, filter=expr))
        except PermissionError as exc:
            self.close()
            raise CaptureUnavailable("not running as root / Administrator: packet capture is denied") from exc
        except Exception as exc:  # scapy's Scapy_Exception, a missing Npcap / BPF device
            self.close()
            raise CaptureUnavailable(f"packet capture is not available: {exc}") from exc

    def sockets(self) -> list[Any]:
        return list(self._socks)

    def read(self) -> list[tuple[bytes, int, float]]:
        out: list[tuple[bytes, int, float]] = []
        ready = self._conf.L2listen.select(self._socks, 0)
        for sock in ready:
            cls, data, ts = sock.recv_raw()
            if data is not None and cls is not None:
                out.append((data, self._conf.l2types.layer2num.get(cls, -1), float(ts or time.time())))
        return out

    def close(self) -> None:
        for sock in self._socks:
            with contextlib.suppress(Exception):
                sock.close()
        self._socks = []


def _no_permission() -> str:
    if os.geteuid() != 0:
        return "not running as root: opening a packet socket needs CAP_NET_RAW (run the daemon as root)"
    return (
        "running as root but without CAP_NET_RAW (dropped by a container or a service unit): opening a "
        "packet socket needs it (grant cap_net_raw to the agentroster daemon)"
    )


def up_interfaces() -> list[str]:
    """Names of the interfaces that are up, loopback included."""
    try:
        return sorted(name for name, st in psutil.net_if_stats().items() if st.isup)
    except OSError:
        return []


def open_capture(expr: str, interfaces: Sequence[str] | None) -> _LinuxCapture | _ScapyCapture:
    """A capture on ``interfaces`` (None: all, including ones that come up later on Linux)."""
    if sys.platform.startswith("linux"):
        return _LinuxCapture(expr, interfaces)
    return _ScapyCapture(expr, interfaces or up_interfaces())


# --- the socket table ---------------------------------------------------------------------------


def _plain(ip: str) -> str:
    """``::ffff:1.2.3.4`` -> ``1.2.3.4``; other addresses in inet_ntop's canonical form."""
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    if ":" in ip:
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv6Address(ip.split("%", 1)[0]))
    return ip


@dataclass(frozen=True, slots=True)
class Connection:
    """One socket with a remote end, from the socket table."""

    proto: int  # 6 or 17
    laddr: str
    lport: int
    raddr: str
    rport: int
    pid: int | None


class SocketTable:
    """psutil's view of open sockets, indexed by 5-tuple for attribution; refreshed on demand."""

    def __init__(self) -> None:
        self._exact: dict[tuple[int, str, int, str, int], int] = {}
        self._local: dict[tuple[int, str, int], int] = {}
        self._port: dict[tuple[int, int], int] = {}
        self.connections: list[Connection] = []
        self.refreshed = 0.0  # time.monotonic() of the last read
        self.error = ""
        self._names: OrderedDict[int, str] = OrderedDict()

    def refresh(self) -> None:
        self.refreshed = time.monotonic()
        try:
            rows = psutil.net_connections(kind="inet")
        except (psutil.AccessDenied, PermissionError) as exc:
            self.error = f"the socket table cannot be read without root here ({exc})"
            rows = []
        except OSError as exc:
            self.error = f"the socket table cannot be read: {exc}"
            rows = []
        self._index(rows)

    def _index(self, rows: Iterable[Any]) -> None:
        exact: dict[tuple[int, str, int, str, int], int] = {}
        local: dict[tuple[int, str, int], int] = {}
        port: dict[tuple[int, int], int] = {}
        conns: list[Connection] = []
        for row in rows:
            proto = TCP if row.type == socket.SOCK_STREAM else UDP
            if not row.laddr:
                continue
            lip, lport = _plain(row.laddr.ip), row.laddr.port
            if row.raddr:
                rip, rport = _plain(row.raddr.ip), row.raddr.port
                if row.status != psutil.CONN_LISTEN:
                    conns.append(Connection(proto, lip, lport, rip, rport, row.pid))
                if row.pid is not None:
                    exact[(proto, lip, lport, rip, rport)] = row.pid
            if row.pid is not None and row.status != psutil.CONN_LISTEN:
                local.setdefault((proto, lip, lport), row.pid)
                port.setdefault((proto, lport), row.pid)
        self._exact, self._local, self._port, self.connections = exact, local, port, conns

    def pid_for(self, proto: int, laddr: str, lport: int, raddr: str, rport: int) -> int | None:
        """The pid whose socket has this local end (and remote end, if it is connected)."""
        pid = self._exact.get((proto, laddr, lport, raddr, rport))
        if pid is None:
            pid = self._local.get((proto, laddr, lport))
        if pid is None and proto == UDP:  # unconnected UDP sockets bound to 0.0.0.0 / ::
            pid = self._port.get((proto, lport))
        return pid

    def process_name(self, pid: int | None) -> str:
        if pid is None:
            return ""
        if pid not in self._names:
            try:
                self._names[pid] = psutil.Process(pid).name()
            except (psutil.Error, OSError):
                return ""
            if len(self._names) > 2048:
                self._names.popitem(last=False)
        return self._names[pid]


def resolve_hosts(hosts: Iterable[str], resolve: Resolver | None = None) -> dict[str, str]:
    """Forward-resolve catalog hosts; address -> host. Wildcard hosts are skipped; IP literals map to
    themselves. Resolution is bounded in time as a whole; hosts that do not answer are left out.
    """
    resolve = resolve or _getaddrinfo
    names: dict[str, str] = {}
    todo: list[str] = []
    for host in dict.fromkeys(h.strip().lower().rstrip(".") for h in hosts):
        if not host or "*" in host:
            continue
        try:
            names[_plain(str(ipaddress.ip_address(host)))] = host
        except ValueError:
            todo.append(host)
    if not todo:
        return names
    pool = ThreadPoolExecutor(max_workers=min(8, len(todo)), thread_name_prefix="agentroster-resolve")
    futures = {host: pool.submit(resolve, host) for host in todo}
    deadline = time.monotonic() + RESOLVE_TIMEOUT_S
    for host, future in futures.items():
        try:
            for address in future.result(timeout=max(0.0, deadline - time.monotonic())):
                names.setdefault(_plain(address), host)
        except (OSError, FutureTimeout, UnicodeError, ValueError):
            continue
    pool.shutdown(wait=False, cancel_futures=True)
    return names


def _getaddrinfo(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})


def socket_table_records(
    provider_for: ProviderFor,
    names: Mapping[str, str] | None = None,
    *,
    table: SocketTable | None = None,
    skip: Callable[[Connection], bool] | None = None,
) -> list[NetworkRecord]:
    """One ``via="socket"`` record per open connection whose remote address has a name (``names``:
    address -> host, from DNS answers or forward resolution) or whose address and port the catalog
    knows (a local runtime on 127.0.0.1:11434). Reads the socket table now.
    """
    names = names or {}
    if table is None:
        table = SocketTable()
        table.refresh()
    now = time.time()
    out: list[NetworkRecord] = []
    for conn in table.connections:
        if skip is not None and skip(conn):
            continue
        name = names.get(conn.raddr)
        host = name or conn.raddr
        provider = provider_for(host, conn.rport)
        if name is None and provider is None:
            continue
        out.append(
            NetworkRecord(
                host,
                conn.rport,
                "socket",
                now,
                pid=conn.pid,
                provider=provider,
                src=conn.laddr,
                sport=conn.lport,
                dst=conn.raddr,
                last_ts=now,
                process=table.process_name(conn.pid),
            )
        )
    return out


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
        self._filter = capture_filter(self._tls_ports)
        self._want_capture = capture
        self._poll_s = poll_s
        self._table = EndpointTable(provider_for)
        self._parser = PacketParser()
        self._sockets = SocketTable()
        self._capture: _LinuxCapture | _ScapyCapture | None = None
        self._reasons: list[str] | None = None  # why capture is off; None until probed
        self._resolved: dict[str, str] = {}
        self._resolved_at = -RESOLVE_EVERY_S
        self._waiting: list[_Waiting] = []
        self._captured: OrderedDict[tuple[int, str, int, str, int], None] = OrderedDict()
        self._counted: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
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
                "attribution: each flow is matched to its process through the socket table (psutil) by "
                "5-tuple; DNS answers name the addresses of connections seen only in that table",
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
                self._capture = open_capture(self._filter, self.interfaces)
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
        sockets = self._capture.sockets() if self._capture is not None else []
        fds: list[Any] = [*sockets] + ([self._wake_r] if self._wake_r >= 0 else [])
        next_poll = time.monotonic() + (poll_s if self._capture is not None else 0.0)
        while not self._stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            wait = min(next_poll, deadline if deadline is not None else next_poll) - now
            if self._waiting:
                wait = min(wait, self._sockets.refreshed + REFRESH_MIN_S - now)
            if fds:
                select.select(fds, [], [], max(0.0, wait))
            else:
                self._stop.wait(max(0.0, wait))
            if self._read_packets() and not self._waiting:
                self._stop.wait(BATCH_S)  # let packets gather: one wakeup per batch, not per packet
            if self._waiting:
                self._retry_waiting()
            if time.monotonic() >= next_poll:
                self._sweep()
                next_poll = time.monotonic() + poll_s

    def _read_packets(self) -> int:
        if self._capture is None:
            return 0
        batch = self._capture.read()
        for data, linktype, ts in batch:
            self.packets += 1
            event = self._parser.feed(data, linktype, ts)
            if event is not None:
                self.events += 1
                self._on_event(event)
        return len(batch)

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
        pid = self._sockets.pid_for(*key)
        if pid is None and time.monotonic() - self._sockets.refreshed >= REFRESH_MIN_S:
            self._sockets.refresh()
            pid = self._sockets.pid_for(*key)
        if pid is None:
            self._waiting.append(_Waiting(rec, key, time.monotonic() + ATTRIBUTE_WAIT_S))
            return
        self._emit(rec, pid)

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
            self._sockets.refreshed = 0.0
            self._retry_waiting(final=True)

    def _retry_waiting(self, final: bool = False) -> None:
        if time.monotonic() - self._sockets.refreshed < REFRESH_MIN_S:
            return
        self._sockets.refresh()
        now = float("inf") if final else time.monotonic()
        still: list[_Waiting] = []
        for item in self._waiting:
            pid = self._sockets.pid_for(*item.key)
            if pid is not None or now >= item.until:
                self._emit(item.record, pid)
            else:
                still.append(item)
        self._waiting = still

    def _emit(self, rec: NetworkRecord, pid: int | None) -> None:
        rec.pid, rec.process = pid, self._sockets.process_name(pid)
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
