"""The live network sensor: which process calls which LLM provider or tool endpoint, from the wire.

A packet socket with a kernel BPF filter (compiled by libpcap, ``bpf``) lets only DNS, TLS
ClientHellos and HTTP request heads reach Python (candidates for the rest of a split ClientHello are
parked in the kernel, read only while one waits); ``packets.PacketParser`` reads them as raw bytes.
Each event is attributed to a pid by 5-tuple -- on Linux by asking the kernel for that one socket and
/proc for its owner, elsewhere through psutil's socket table -- and DNS answers name the addresses of
connections seen only in that table (on macOS, Windows and the BSDs scapy captures). Without privileges
or libpcap (or scapy, off Linux) the sensor says once what it cannot see and why, and falls back to the
socket table alone, naming addresses by forward-resolving the catalog's hosts. Nothing here raises into the scan: problems land in ``errors``.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import queue
import select
import socket
import struct
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

from endpoint.errors import EndpointError
from endpoint.scan.evidence import NetworkRecord, ScanError
from endpoint.scan.faults import FailureTally
from endpoint.scan.sensors import bpf
from endpoint.scan.sensors.packets import (
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
PARK_S = 0.5  # the sockets parking candidates for such a rest are replaced this often when unread
REST_RCVBUF = 4 << 20  # bytes those sockets may queue: PARK_S of bulk data to a TLS port, and more
BATCH_S = 0.02  # after reading, wait this long so that the next wakeup reads many packets at once
SOCKET_POLL_S = 30.0  # socket-table sweep with live capture (DNS-named connections without SNI)
FALLBACK_POLL_S = 10.0  # socket-table sweep without capture: shorter connections are missed
SNIFF_POLL_S = 0.5  # socket-table sweep during a bounded ``sniff``
REFRESH_MIN_S = 0.02  # at most one socket-table read per this, however many events miss
ATTRIBUTE_WAIT_S = 0.3  # an event whose socket is not in the table yet waits this long for it
DNS_LINK_S = 5.0  # a DNS query whose socket closed unseen goes to the process that calls the name within this
RESOLVE_EVERY_S = 600.0  # forward-resolved catalog addresses are refreshed this often (CDNs rotate)
RESOLVE_TIMEOUT_S = 5.0  # all forward resolutions together
_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_ARPHRD_LOOPBACK = 772
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33
_SAID: set[str] = set()
_NO_SCAPY = "scapy is not installed, so no packet can be captured (install agentroster[network])"  # fallback explanations already logged by this process

Resolver = Callable[[str], Sequence[str]]
RecordSink = Callable[[NetworkRecord], None]


class CaptureUnavailable(EndpointError):
    """Live capture cannot run here; the message says why, in words an admin can act on."""

    code = "capture_unavailable"


# --- the kernel filter --------------------------------------------------------------------------

_METHOD_WORDS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"PATC", b"OPTI", b"CONN")
_V6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options: length in 8-byte units at +1


def _tcp_layouts() -> list[tuple[str, str, str]]:
    """(guard, offset of the TCP header, offset of its payload) for each header layout the filters
    read: IPv4; IPv6 with TCP right after the fixed header; IPv6 with one hop-by-hop, routing or
    destination-options header, or a first fragment, before TCP. Longer IPv6 header chains are not
    followed (classic BPF has no loops)."""
    ext_at = "(40 + ((ip6[41:1] + 1) << 3))"
    ext = " or ".join(f"ip6[6] = {n}" for n in _V6_EXTENSIONS)
    layouts = [
        ("tcp", "", "((tcp[12:1] & 0xf0) >> 2)"),
        ("ip6[6] = 6", "40", ""),
        (f"({ext}) and ip6[40] = 6", ext_at, ""),
        ("ip6[6] = 44 and ip6[40] = 6 and (ip6[42:2] & 0xfff8) = 0", "48", ""),
    ]
    return [
        (guard, tcp, payload or f"({tcp} + ((ip6[{tcp} + 12:1] & 0xf0) >> 2))")
        for guard, tcp, payload in layouts
    ]


def _byte(guard: str, payload: str, delta: int, size: int) -> str:
    """The filter expression for ``size`` bytes at ``delta`` into the TCP payload."""
    return f"{'tcp' if guard == 'tcp' else 'ip6'}[{payload}{f' + {delta}' if delta else ''}:{size}]"


def hello_filter() -> str:
    """The tcpdump-syntax filter for what the sensor reads: DNS on port 53, TCP segments whose payload
    starts a TLS handshake record holding a ClientHello (``16 03 xx xx xx 01``) on any port, and TCP
    segments whose payload starts with an HTTP method (a request head, CONNECT to a proxy)."""
    rules = ["udp port 53", "tcp port 53"]
    for guard, _, payload in _tcp_layouts():
        hello = f"{_byte(guard, payload, 0, 2)} = 0x1603 and {_byte(guard, payload, 5, 1)} = 0x01"
        words = " or ".join(f"{_byte(guard, payload, 0, 4)} = 0x{w.hex()}" for w in _METHOD_WORDS)
        rules.append(f"({guard} and (({hello}) or {words}))")
    return " or ".join(rules)


def rest_filter(tls_ports: Iterable[int] = TLS_PORTS) -> str:
    """The filter for candidates of the rest of a ClientHello split across segments: small segments (at
    most 1,300 bytes of IPv4 packet: a ClientHello's tail, not a full-size upload segment) carrying
    data to a TLS port that do not start a TLS record other than a handshake. The sensor parks these in
    their own socket and reads them only while a ClientHello start waits for its rest; "" without ports.
    """
    ports = sorted(set(tls_ports))
    if not ports:
        return ""
    rules = []
    for guard, tcp, payload in _tcp_layouts()[:2]:  # a rest behind IPv6 extension headers is not followed
        not_records = " and ".join(f"{_byte(guard, payload, 0, 1)} != 0x{b:02x}" for b in (0x14, 0x15, 0x17))
        if guard == "tcp":
            dports = " or ".join(f"tcp[2:2] = {p}" for p in ports)
            size = f"ip[2:2] <= {CONTINUATION_MAX}"
            has_data = f"ip[2:2] > ((ip[0:1] & 0x0f) << 2) + {payload}"
        else:
            dports = " or ".join(f"ip6[{tcp} + 2:2] = {p}" for p in ports)
            size = f"ip6[4:2] <= {CONTINUATION_MAX - 20}"
            has_data = f"ip6[4:2] + 40 > {payload}"
        rules.append(f"({guard} and ({dports}) and {size} and {has_data} and {not_records})")
    return " or ".join(rules)


def capture_filter(tls_ports: Iterable[int] = TLS_PORTS) -> str:
    """Both filters in one, for capture backends that take a single filter (macOS, Windows, BSD)."""
    rest = rest_filter(tls_ports)
    return f"({hello_filter()}) or ({rest})" if rest else hello_filter()


def _compile(expr: str, *, optimize: bool = True) -> list[bpf.Instruction]:
    """Compile ``expr`` for raw IP with libpcap (no root needed)."""
    try:
        return bpf.compile_filter(expr, optimize=optimize)
    except bpf.LibpcapMissing as exc:
        raise CaptureUnavailable(
            "libpcap is not installed, so the kernel packet filter cannot be compiled "
            f"(install libpcap: apt install libpcap0.8, dnf install libpcap; {exc})"
        ) from exc
    except bpf.FilterError as exc:
        raise CaptureUnavailable(f"the packet filter did not compile: {exc}") from exc


# --- capture backends ---------------------------------------------------------------------------


class _LinuxCapture:
    """AF_PACKET datagram sockets: every interface, link headers removed, filters in the kernel.

    ``SOCK_DGRAM`` hands over each packet from its IP header on whatever the interface (Ethernet,
    loopback, a VPN tunnel), so one filter compiled for raw IP fits all; loopback packets arrive
    twice (out and in) and the outgoing copy is dropped.

    The hello sockets carry what the sensor reads. The rest sockets (``rest_expr``) collect candidates
    for the rest of a split ClientHello -- which no stateless filter can tell from other data to a TLS
    port -- without waking anyone: they are read only while a ClientHello start waits for its rest,
    and otherwise replaced by fresh ones every ``PARK_S`` (closing a socket drops its queue in one
    call), so bulk data to a TLS port costs the sensor nothing per packet.
    """

    def __init__(self, expr: str, interfaces: Sequence[str] | None, rest_expr: str = "") -> None:
        self._names: list[str | None] = list(interfaces) if interfaces else [None]
        self._socks: list[socket.socket] = []
        self.rest: list[socket.socket] = []
        self.rest_opened = time.monotonic()
        self._rest_prog: bpf.Program | None = None
        try:
            hello = _kernel_program(expr)
            self._rest_prog = _kernel_program(rest_expr) if rest_expr else None
            self._socks = [self._open(hello, name) for name in self._names]
            self.rest = self._open_rest()
        except PermissionError as exc:
            self.close()
            raise CaptureUnavailable(_no_permission()) from exc
        except OSError as exc:
            self.close()
            raise CaptureUnavailable(f"cannot open a packet socket: {exc.strerror or exc}") from exc

    @staticmethod
    def _open(program: bpf.Program, interface: str | None, rcvbuf: int = 1 << 20) -> socket.socket:
        proto = 0 if interface else socket.htons(_ETH_P_ALL)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program.fprog)  # the kernel copies it
            if interface:
                sock.bind((interface, _ETH_P_ALL))
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, rcvbuf)  # past rmem_max (root)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:  # packets queued before the filter was attached
                    sock.recv(65535)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open_rest(self) -> list[socket.socket]:
        if self._rest_prog is None:
            return []
        self.rest_opened = time.monotonic()
        return [self._open(self._rest_prog, name, REST_RCVBUF) for name in self._names]

    def sockets(self) -> list[socket.socket]:
        return list(self._socks)

    def read(self) -> list[tuple[bytes, int, float]]:
        return self._read(self._socks)

    def read_rest(self, socks: Sequence[socket.socket] | None = None) -> list[tuple[bytes, int, float]]:
        return self._read(self.rest if socks is None else socks)

    def renew_rest(self) -> list[socket.socket]:
        """Open fresh rest sockets; returns the old ones, still open: a caller that finds a ClientHello
        start in the hello sockets after this reads the old ones before it closes them."""
        old = self.rest
        try:
            self.rest = self._open_rest()
        except OSError:
            return []  # keep the old ones; try again next time
        return old

    @staticmethod
    def close_sockets(socks: Sequence[socket.socket]) -> None:
        for sock in socks:
            sock.close()

    @staticmethod
    def _read(socks: Sequence[socket.socket]) -> list[tuple[bytes, int, float]]:
        out: list[tuple[bytes, int, float]] = []
        for sock in socks:
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
        self.close_sockets(self._socks + self.rest)
        self._socks, self.rest = [], []


def _kernel_program(expr: str) -> bpf.Program:
    """``expr`` as a program this kernel accepts: libpcap's optimizer can emit code that reads scratch
    memory on a path that never wrote it, which Linux refuses (EINVAL); then the plain compile is used."""
    program = bpf.Program(_compile(expr))
    probe = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)  # protocol 0: receives nothing
    try:
        probe.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program.fprog)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        program = bpf.Program(_compile(expr, optimize=False))
    finally:
        probe.close()
    return program


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
                listener = conf.L2listen(iface=name, filter=expr)
                self._socks.append(listener)
                ins = getattr(listener, "ins", None)
                if isinstance(ins, socket.socket):  # a packet socket: room for bursts, as on Linux
                    with contextlib.suppress(OSError):
                        ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
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
        for _ in range(1024):  # one packet per ready socket per round: drain what has queued up
            ready = self._conf.L2listen.select(self._socks, 0)
            if not ready:
                break
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


def open_capture(
    expr: str, interfaces: Sequence[str] | None, rest_expr: str = ""
) -> _LinuxCapture | _ScapyCapture:
    """A capture on ``interfaces`` (None: all, including ones that come up later on Linux) of what
    ``expr`` lets through, with ``rest_expr`` parked apart where the backend can (Linux) or in the
    same stream otherwise."""
    if sys.platform.startswith("linux"):
        return _LinuxCapture(expr, interfaces, rest_expr)
    return _ScapyCapture(f"({expr}) or ({rest_expr})" if rest_expr else expr, interfaces or up_interfaces())


# --- the socket table ---------------------------------------------------------------------------


def _plain(ip: str) -> str:
    """``::ffff:1.2.3.4`` -> ``1.2.3.4``; other addresses in inet_ntop's canonical form."""
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    if ":" in ip:
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv6Address(ip.split("%", 1)[0]))
    return ip


def _accepted(proto: int, laddr: str, lport: int, listening: set[tuple[str, int]]) -> bool:
    """True for the server side of a TCP connection (its local port is a listening one): the remote end
    is a client that called this machine, not an endpoint this machine called."""
    if proto != TCP:
        return False
    return any((ip, lport) in listening for ip in (laddr, "0.0.0.0", "::"))


@dataclass(frozen=True, slots=True)
class Connection:
    """One socket with a remote end that this machine called, from the socket table."""

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
        rows = list(rows)
        listening = {
            (_plain(row.laddr.ip), row.laddr.port)
            for row in rows
            if row.status == psutil.CONN_LISTEN and row.laddr
        }
        for row in rows:
            proto = TCP if row.type == socket.SOCK_STREAM else UDP
            if not row.laddr:
                continue
            lip, lport = _plain(row.laddr.ip), row.laddr.port
            if row.raddr:
                rip, rport = _plain(row.raddr.ip), row.raddr.port
                if row.status != psutil.CONN_LISTEN and not _accepted(proto, lip, lport, listening):
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


class SocketOwners:
    """Linux: the pid behind one socket, found without reading the whole socket table.

    psutil's table maps every socket of every process (tens of milliseconds on a busy machine); one
    event needs one socket. Its inode and uid come from ``/proc/net/{tcp,udp}{,6}`` (this network
    namespace), its owner from the ``/proc/<pid>/fd`` links: of the processes that owned sockets
    lately, then of those started since, and only then -- at most once per FULL_PASS_S -- of all
    processes. Socket inodes seen on the way are remembered, so most lookups read one process.
    """

    MAX_KNOWN = 65536  # remembered inode -> pid entries
    FULL_PASS_S = 0.5  # at most one pass over every process per this (tens of ms on a busy machine)

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc
        self._known: dict[int, int] = {}
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._passed: set[int] = set()  # the pids of the last full pass
        self._passed_at = -self.FULL_PASS_S
        self._diag: bool | None = None  # whether the kernel answers sock_diag lookups; None: not asked yet
        self._unowned: OrderedDict[int, None] = OrderedDict()  # inodes a full pass found no process for
        self.lookups = 0  # processes whose descriptors were read, for the benchmark

    @staticmethod
    def available(proc: str = "/proc") -> bool:
        return sys.platform.startswith("linux") and os.path.exists(f"{proc}/net/tcp")

    def pid_for(self, proto: int, laddr: str, lport: int, raddr: str, rport: int) -> int | None:
        found = self._inode(proto, laddr, lport, raddr, rport)
        if found is None or found[0] == 0:  # inode 0: closed, lingering in TIME_WAIT or orphaned
            return None
        inode, uid = found
        pid = self._known.get(inode)
        if pid is not None and os.path.exists(f"{self._proc}/{pid}"):  # inodes are unique while in use
            self._touch(pid)
            return pid
        if inode in self._unowned:
            return None
        return self._search(inode, uid, (proto, laddr, lport, raddr, rport))

    # -- the socket's inode

    def _inode(self, proto: int, laddr: str, lport: int, raddr: str, rport: int) -> tuple[int, int] | None:
        """(inode, uid) of the socket: asked of the kernel by 5-tuple (sock_diag), else from /proc/net."""
        if self._diag is not False:
            try:
                return _diag_lookup(proto, laddr, lport, raddr, rport)
            except OSError as exc:
                if self._diag is None and exc.errno not in (errno.ENOENT,):
                    self._diag = False  # no sock_diag here (an old or locked-down kernel): read /proc/net
                else:
                    self._diag = True
                    return None
            else:
                self._diag = True
        return self._proc_inode(proto, laddr, lport, raddr, rport)

    def _proc_inode(self, proto: int, laddr: str, lport: int, raddr: str, rport: int) -> tuple[int, int] | None:
        """(inode, uid) of the socket with this local end (and remote end when connected), from the text
        tables of every socket in /proc/net (slow with many sockets: the fallback)."""
        local = _proc_addresses(laddr)
        remote = _proc_addresses(raddr)
        if not local:
            return None
        port = f":{lport:04X}"
        ends = {f"{r}:{rport:04X}" for r in remote}
        loose: tuple[int, int] | None = None
        for name in ("tcp", "tcp6") if proto == TCP else ("udp", "udp6"):
            try:
                with open(f"{self._proc}/net/{name}", encoding="ascii") as fh:
                    text = fh.read()
            except OSError:
                continue
            for line in text.splitlines()[1:]:
                if port + " " not in line:
                    continue
                fields = line.split()
                if len(fields) < 10 or not fields[1].endswith(port):
                    continue
                ip, rend = fields[1][:-5], fields[2]
                inode, uid = int(fields[9]), int(fields[7])
                if inode == 0 or fields[3] == "0A":  # a TIME_WAIT remnant; a listener
                    continue
                if ip in local and rend in ends:
                    return inode, uid
                if loose is None and proto == UDP and (ip in local or set(ip) == {"0"}):
                    loose = (inode, uid)  # an unconnected UDP socket bound to this port
        return loose

    # -- the owner of an inode

    def _links(self, pid: int) -> dict[int, int]:
        """The socket inodes ``pid`` holds (remembered on the way)."""
        held: dict[int, int] = {}
        base = f"{self._proc}/{pid}/fd"
        self.lookups += 1
        try:
            names = os.listdir(base)
        except OSError:
            return held
        for name in names:
            try:
                link = os.readlink(f"{base}/{name}")
            except OSError:
                continue
            if link.startswith("socket:["):
                held[int(link[8:-1])] = pid
        if len(self._known) + len(held) > self.MAX_KNOWN:
            self._known.clear()
        self._known.update(held)
        return held

    def _search(self, inode: int, uid: int, flow: tuple[int, str, int, str, int]) -> int | None:
        """Recent owners first, then processes started since the last full pass, then -- at most once
        per FULL_PASS_S, however many sockets are asked for, and only if the socket is still open --
        every process, that uid's first."""
        tried: set[int] = set()
        for pid in reversed(list(self._recent)):
            tried.add(pid)
            if inode in self._links(pid):
                return self._found(pid)
        if not self._still_open(inode, flow):
            return None  # closed meanwhile (a short-lived connection): no owner to look for
        try:
            pids = [int(n) for n in os.listdir(self._proc) if n.isdigit()]
        except OSError:
            return None
        new = sorted((pid for pid in pids if pid not in self._passed and pid not in tried), reverse=True)
        for pid in new:
            tried.add(pid)
            self._passed.add(pid)
            if inode in self._links(pid):
                return self._found(pid)
        now = time.monotonic()
        if now - self._passed_at < self.FULL_PASS_S:
            return None
        if not self._still_open(inode, flow):
            return None
        self._passed_at, self._passed = now, set(pids)
        same_uid: list[int] = []
        others: list[int] = []
        for pid in sorted(set(pids) - tried, reverse=True):
            try:
                owner = os.stat(f"{self._proc}/{pid}").st_uid
            except OSError:
                continue
            (same_uid if owner == uid else others).append(pid)
        found: int | None = None
        for pid in same_uid + others:  # a process may have changed its uid since it opened the socket
            if inode in self._links(pid) and found is None:
                found = pid  # read on to the end: every socket inode is remembered for later lookups
        if found is None:  # a kernel socket, or one held in another PID namespace: never look again
            self._unowned[inode] = None
            if len(self._unowned) > 4096:
                self._unowned.popitem(last=False)
            return None
        return self._found(found)

    def _still_open(self, inode: int, flow: tuple[int, str, int, str, int]) -> bool:
        again = self._inode(*flow)
        return again is not None and again[0] == inode

    def _found(self, pid: int) -> int:
        self._touch(pid)
        return pid

    def _touch(self, pid: int) -> None:
        self._recent.pop(pid, None)
        self._recent[pid] = None
        if len(self._recent) > 64:
            self._recent.popitem(last=False)


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 1
_TCP_LISTEN = 10
_DIAG_REQUEST = struct.Struct("=IHHII BBBBI HH16s16sI II")  # nlmsghdr, inet_diag_req_v2 with its sockid
_DIAG_ANSWER = struct.Struct("=IHHII BBBB HH16s16sI II IIIII")  # nlmsghdr, inet_diag_msg


def _diag_lookup(proto: int, laddr: str, lport: int, raddr: str, rport: int) -> tuple[int, int] | None:
    """(inode, uid) of one socket by its 5-tuple, asked of the kernel through NETLINK_SOCK_DIAG -- an
    exact lookup, not a dump of every socket. An IPv4 flow is also looked up as the IPv4-mapped IPv6
    address of a dual-stack socket. None when no socket has the flow; OSError when the kernel has no
    sock_diag for it (the caller falls back to /proc/net)."""
    attempts: list[tuple[int, bytes, bytes]] = []
    if ":" in laddr:
        attempts.append((socket.AF_INET6, socket.inet_pton(socket.AF_INET6, laddr), _packed(raddr, 16)))
    else:
        local = socket.inet_pton(socket.AF_INET, laddr)
        attempts.append((socket.AF_INET, local.ljust(16, b"\0"), _packed(raddr, 4).ljust(16, b"\0")))
        mapped = b"\0" * 10 + b"\xff\xff"
        attempts.append((socket.AF_INET6, mapped + local, mapped + _packed(raddr, 4)))
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        for family, local, remote in attempts:
            # UDP's lookup takes the two ends the other way round (udp_diag.c: "swapped for historical
            # reasons"): ask both ways and keep the answer whose local port is ours.
            ends = [(lport, rport, local, remote)]
            if proto == UDP:
                ends.append((rport, lport, remote, local))
            for sport, dport, src, dst in ends:
                found = _diag_query(nl, family, proto, sport, dport, src, dst)
                if found is not None and found[0] == lport and found[1] != _TCP_LISTEN:
                    return found[2], found[3]
    return None


def _diag_query(
    nl: socket.socket, family: int, proto: int, sport: int, dport: int, src: bytes, dst: bytes
) -> tuple[int, int, int, int] | None:
    """One sock_diag lookup: (local port, state, inode, uid) of the socket found, or None."""
    nl.send(_DIAG_REQUEST.pack(
        _DIAG_REQUEST.size, _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0,
        family, proto, 0, 0, 0xFFFFFFFF,
        socket.htons(sport), socket.htons(dport), src, dst, 0, 0xFFFFFFFF, 0xFFFFFFFF,
    ))
    answer = nl.recv(65536)
    if len(answer) < 20:
        return None
    mtype = struct.unpack_from("=H", answer, 4)[0]
    if mtype == _NLMSG_ERROR:
        code = -struct.unpack_from("=i", answer, 16)[0]
        if code in (errno.ENOENT, errno.EINVAL, errno.EAFNOSUPPORT):
            return None  # no such socket (or no such family here)
        raise OSError(code, os.strerror(code))
    if mtype != _SOCK_DIAG_BY_FAMILY or len(answer) < _DIAG_ANSWER.size:
        return None
    fields = _DIAG_ANSWER.unpack_from(answer)
    return socket.ntohs(fields[9]), fields[6], fields[-1], fields[-2]  # idiag_sport, state, inode, uid


def _packed(ip: str, size: int) -> bytes:
    """An address in network byte order; the unspecified address of ``size`` bytes when unparseable."""
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except OSError:
        return b"\0" * size


def _proc_addresses(ip: str) -> set[str]:
    """How ``/proc/net/*`` spells an address: 32-bit words in host byte order, in hex; an IPv4 address
    also as the IPv4-mapped IPv6 address of a dual-stack socket."""
    try:
        raw = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except OSError:
        return set()

    def words(data: bytes) -> str:
        return "".join(f"{int.from_bytes(data[i : i + 4], sys.byteorder):08X}" for i in range(0, len(data), 4))

    out = {words(raw)}
    if len(raw) == 4:
        out.add(words(b"\0" * 10 + b"\xff\xff" + raw))
    return out


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
        self._filter = hello_filter()
        self._rest_filter = rest_filter(self._tls_ports)
        self._want_capture = capture
        self._poll_s = poll_s
        self._table = EndpointTable(provider_for)
        self._parser = PacketParser()
        self._sockets = SocketTable()
        self._owners = SocketOwners() if SocketOwners.available() else None
        self._attempted = 0.0  # time.monotonic() of the last attribution attempt
        self._capture: _LinuxCapture | _ScapyCapture | None = None
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
        wake: list[Any] = [self._wake_r] if self._wake_r >= 0 else []
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
                if isinstance(self._capture, _LinuxCapture) and self._capture.rest:
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
        if isinstance(capture, _LinuxCapture) and capture.rest:
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
