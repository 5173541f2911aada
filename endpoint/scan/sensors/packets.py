"""Packet parsing for the network sensor: raw frames in, DNS / TLS ClientHello / HTTP request events out.

Pure: no I/O, no third-party imports. ``PacketParser.feed`` reads the fewest bytes it can -- link,
IP and TCP/UDP headers, then the first payload byte -- and only parses further when the payload
starts a TLS handshake record, an HTTP request, or the packet is DNS. ``EndpointTable`` folds the
events into aggregated ``NetworkRecord``s and keeps the address -> hostname map that DNS answers
build. Every length in a packet is distrusted: hostile input yields no event, never an exception.
"""

from __future__ import annotations

import mmap
import re
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from endpoint.scan.evidence import NetworkRecord, Via

# Link-layer header types, as numbered by the pcap and pcapng formats (LINKTYPE_*).
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the capturing host's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # bare IPv4 or IPv6; DLT_RAW is 12 (14 on OpenBSD) in some files
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_ALIASES = frozenset({LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6})
SUPPORTED_LINKTYPES = frozenset(
    {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2} | _RAW_ALIASES
)

TCP = 6
UDP = 17
DNS_PORT = 53

# Bounds that keep one hostile packet cheap (well under 1 ms each).
MAX_HELLO_BYTES = 32 * 1024  # a ClientHello larger than this is not buffered across segments
MAX_TLS_RECORD = 16384 + 2048  # RFC 8446 5.1/5.2: plaintext <= 2^14, ciphertext <= 2^14 + 256
MAX_EXTENSIONS = 128  # real ClientHellos carry fewer than 30
MAX_DNS_RECORDS = 64  # answers parsed per DNS message
MAX_DNS_STEPS = 1024  # labels and compression pointers read per DNS message, all names together
MAX_HTTP_HEAD = 4096  # bytes of an HTTP request searched for the request line and Host header
MAX_PENDING_FLOWS = 256  # split ClientHellos buffered at once
PENDING_TTL_S = 10.0  # a split ClientHello whose rest does not come within this is dropped
_RECENT = 4096  # remembered (flow, seq) / (client, txid) keys, to drop retransmissions and duplicates

DNS_QTYPES = frozenset({1, 5, 28, 64, 65, 255})  # A, CNAME, AAAA, SVCB, HTTPS, ANY: a host about to be called
RR_A = 1
RR_CNAME = 5
RR_AAAA = 28

_HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ", b"CONNECT ")
_HOSTNAME = re.compile(rb"[a-z0-9_*](?:[a-z0-9_.*-]{0,252})")
_PORT_DIGITS = re.compile(rb"[0-9]{1,5}")

Buffer: TypeAlias = bytes | bytearray | memoryview | mmap.mmap


class Flow(NamedTuple):
    """The 5-tuple of the packet that carried an event, as seen on the wire."""

    proto: int  # 6 (TCP) or 17 (UDP)
    src: str
    sport: int
    dst: str
    dport: int


@dataclass(frozen=True, slots=True)
class TlsClientHello:
    """A TLS ClientHello; ``sni`` is None when it names no server (or the name is not a hostname)."""

    ts: float
    flow: Flow
    sni: str | None


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str  # owner name
    rtype: int  # 1 (A), 28 (AAAA) or 5 (CNAME)
    value: str  # an address, or the CNAME target


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """A DNS query or response: the first question and the A / AAAA / CNAME answers."""

    ts: float
    flow: Flow
    txid: int
    response: bool
    qname: str
    qtype: int
    answers: tuple[DnsAnswer, ...] = ()

    @property
    def client(self) -> tuple[str, int]:
        """The address and port of the host that asked."""
        f = self.flow
        return (f.dst, f.dport) if self.response else (f.src, f.sport)

    def chain(self) -> list[str]:
        """The question name, then each CNAME it leads to, in order."""
        names = [self.qname]
        targets = {a.name: a.value for a in self.answers if a.rtype == RR_CNAME}
        while names[-1] in targets and len(names) <= len(targets):
            names.append(targets[names[-1]])
        return names

    def addresses(self) -> list[str]:
        """The addresses the question name resolves to, following the CNAME chain."""
        names = set(self.chain())
        return [a.value for a in self.answers if a.rtype in (RR_A, RR_AAAA) and a.name in names]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A plain HTTP request line with its target host: ``CONNECT host:port``, ``GET http://host/``, or Host:."""

    ts: float
    flow: Flow
    method: str
    host: str
    port: int
    proxied: bool  # CONNECT or an absolute-form URL: the request went to a proxy


Event: TypeAlias = TlsClientHello | DnsMessage | HttpRequest


def hostname(raw: bytes) -> str | None:
    """``raw`` as a lower-case hostname, or None when it is not one (control bytes, spaces, too long)."""
    name = raw.lower().rstrip(b".")
    if len(name) > 253 or not _HOSTNAME.fullmatch(name):
        return None
    return name.decode("ascii")


def split_host_port(raw: bytes, default_port: int) -> tuple[str, int] | None:
    """Parse ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; None when malformed."""
    raw = raw.strip()
    port = default_port
    if raw.startswith(b"["):
        close = raw.find(b"]")
        if close < 0:
            return None
        host_b, rest = raw[1:close], raw[close + 1 :]
        if rest:
            if not rest.startswith(b":") or not _PORT_DIGITS.fullmatch(rest[1:]):
                return None
            port = int(rest[1:])
        try:
            v6 = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host_b.decode("ascii")))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return (v6, port) if 0 < port < 65536 else None
    host_b, colon, port_b = raw.rpartition(b":")
    if not colon:
        host_b = raw
    elif not _PORT_DIGITS.fullmatch(port_b):
        return None
    else:
        port = int(port_b)
    host = hostname(host_b)
    if host is None or not 0 < port < 65536:
        return None
    return host, port


# --- TLS ----------------------------------------------------------------------------------------

HELLO_DONE = 0  # parsed to the end, or far enough to find the SNI
HELLO_MORE = 1  # valid so far; the rest is in later segments
HELLO_BAD = 2  # not a ClientHello


def _handshake_bytes(data: bytes) -> tuple[bytes, bool] | None:
    """Concatenate the payloads of the leading TLS handshake records; (bytes, complete records?)."""
    out = bytearray()
    pos = 0
    n = len(data)
    while pos + 5 <= n and data[pos] == 0x16:
        if data[pos + 1] != 3:
            return None
        rlen = (data[pos + 3] << 8) | data[pos + 4]
        if rlen == 0 or rlen > MAX_TLS_RECORD:
            return None
        out += data[pos + 5 : pos + 5 + rlen]
        pos += 5 + rlen
        if pos > n:
            return bytes(out), False
        if len(out) >= 4 and len(out) >= 4 + ((out[1] << 16) | (out[2] << 8) | out[3]):
            break
    if pos == 0:
        return None
    return bytes(out), True


def _sni_from_extensions(hs: bytes, pos: int, end: int) -> tuple[int, str | None]:
    """Walk the extensions in hs[pos:end]; (status, sni). Stops at the server_name extension."""
    avail = min(end, len(hs))
    for _ in range(MAX_EXTENSIONS):
        if pos >= end:
            return HELLO_DONE, None
        if pos + 4 > avail:
            return HELLO_MORE, None
        etype = (hs[pos] << 8) | hs[pos + 1]
        elen = (hs[pos + 2] << 8) | hs[pos + 3]
        pos += 4
        if pos + elen > end:
            return HELLO_BAD, None
        if etype == 0:
            if pos + elen > avail:
                return HELLO_MORE, None
            return HELLO_DONE, _sni_from_server_name(hs[pos : pos + elen])
        pos += elen
    return HELLO_BAD, None


def _sni_from_server_name(ext: bytes) -> str | None:
    """The first host_name entry of a server_name extension (RFC 6066 section 3)."""
    if len(ext) < 2:
        return None
    end = min(len(ext), 2 + ((ext[0] << 8) | ext[1]))
    pos = 2
    while pos + 3 <= end:
        ntype = ext[pos]
        nlen = (ext[pos + 1] << 8) | ext[pos + 2]
        pos += 3
        if pos + nlen > end:
            return None
        if ntype == 0:
            return hostname(ext[pos : pos + nlen])
        pos += nlen
    return None


def parse_client_hello(data: bytes) -> tuple[int, str | None]:
    """Parse the TLS records at the start of ``data``; (HELLO_DONE | HELLO_MORE | HELLO_BAD, sni).

    HELLO_MORE means the bytes so far are a valid beginning; the SNI may be in the rest.
    """
    got = _handshake_bytes(data)
    if got is None:
        return HELLO_BAD, None
    hs, _ = got
    if len(hs) < 4:
        return HELLO_MORE, None
    if hs[0] != 1:
        return HELLO_BAD, None
    end = 4 + ((hs[1] << 16) | (hs[2] << 8) | hs[3])
    if end > MAX_HELLO_BYTES:
        return HELLO_BAD, None
    pos = 4 + 2 + 32  # legacy_version, random
    for width in (1, 2, 1):  # session id, cipher suites, compression methods
        if pos + width > min(end, len(hs)):
            return (HELLO_MORE if len(hs) < end else HELLO_BAD), None
        vlen = hs[pos] if width == 1 else (hs[pos] << 8) | hs[pos + 1]
        pos += width + vlen
    if pos == end:
        return HELLO_DONE, None  # no extensions at all
    if pos + 2 > min(end, len(hs)):
        return (HELLO_MORE if len(hs) < end else HELLO_BAD), None
    ext_end = pos + 2 + ((hs[pos] << 8) | hs[pos + 1])
    if ext_end > end:
        return HELLO_BAD, None
    status, sni = _sni_from_extensions(hs, pos + 2, ext_end)
    if status == HELLO_MORE and len(hs) >= end:
        return HELLO_BAD, None
    return status, sni


# --- DNS ----------------------------------------------------------------------------------------


class _DnsReader:
    """Reads the names of one DNS message, with a budget of label steps and a cache of suffixes.

    Every compression pointer must point before the start of the run that led to it, so a chain of
    pointers strictly descends and cannot loop (RFC 1035 4.1.4 pointers only ever point backwards).
    A suffix read once (the question name, typically) is not read again; and the whole message gets
    MAX_DNS_STEPS labels and pointers, so no message costs more than a fraction of a millisecond.
    """

    __slots__ = ("msg", "steps", "_suffix", "_names")

    def __init__(self, msg: bytes) -> None:
        self.msg = msg
        self.steps = MAX_DNS_STEPS
        self._suffix: dict[int, bytes | None] = {}  # offset -> the name from there (None: not a hostname)
        self._names: dict[bytes, str | None] = {}  # raw name -> hostname(raw)

    def name(self, off: int, limit: int = -1) -> tuple[str | None, int] | None:
        """The name at ``off``: (name, or None if it is not a hostname; offset after it), or None if
        malformed. Labels must end before ``limit`` (the end of the record data it sits in)."""
        got = self._raw(off, len(self.msg) if limit < 0 else min(limit, len(self.msg)))
        if got is None:
            return None
        raw, after = got
        if not raw:
            return (None if raw is None else ""), after
        if raw not in self._names:
            self._names[raw] = hostname(raw)
        return self._names[raw], after

    def _raw(self, off: int, n: int) -> tuple[bytes | None, int] | None:
        msg = self.msg
        labels: list[bytes] = []
        jumps: list[tuple[int, int]] = [(off, 0)]  # (run start, index of its first label)
        after = -1
        run_start = off
        size = 0
        clean = True
        while True:
            self.steps -= 1
            if off >= n or self.steps < 0:
                return None
            ln = msg[off]
            if ln == 0:
                break
            if ln >= 0xC0:
                if off + 1 >= n:
                    return None
                ptr = ((ln & 0x3F) << 8) | msg[off + 1]
                if after < 0:
                    after = off + 2
                if ptr >= run_start:
                    return None
                off = run_start = ptr
                if ptr in self._suffix:
                    cached = self._suffix[ptr]
                    if cached is None:
                        clean = False
                    else:
                        labels.append(cached)
                        size += len(cached) + 1
                    break
                jumps.append((ptr, len(labels)))
                continue
            if ln > 63 or off + 1 + ln > n:
                return None
            label = msg[off + 1 : off + 1 + ln]
            clean = clean and b"." not in label
            labels.append(label)
            size += ln + 1
            if size > 255:
                return None
            off += 1 + ln
        if after < 0:
            after = off + 1
        for start, first in jumps:
            self._suffix[start] = b".".join(labels[first:]) if clean else None
        return (b".".join(labels) if clean else None), after


def _dns_answer(reader: _DnsReader, pos: int) -> tuple[DnsAnswer | None, int] | None:
    """One resource record at ``pos``: (the answer if A/AAAA/CNAME, offset of the next record)."""
    msg = reader.msg
    got = reader.name(pos)
    if got is None:
        return None
    name, pos = got
    if pos + 10 > len(msg):
        return None
    rtype = (msg[pos] << 8) | msg[pos + 1]
    rdlen = (msg[pos + 8] << 8) | msg[pos + 9]
    rdata = pos + 10
    nxt = rdata + rdlen
    if nxt > len(msg):
        return None
    if not name:
        return None, nxt
    if rtype == RR_A and rdlen == 4:
        return DnsAnswer(name, rtype, socket.inet_ntop(socket.AF_INET, msg[rdata:nxt])), nxt
    if rtype == RR_AAAA and rdlen == 16:
        return DnsAnswer(name, rtype, socket.inet_ntop(socket.AF_INET6, msg[rdata:nxt])), nxt
    if rtype == RR_CNAME:
        target = reader.name(rdata, nxt)
        if target is not None and target[0]:
            return DnsAnswer(name, rtype, target[0]), nxt
    return None, nxt


def parse_dns(msg: bytes, ts: float, flow: Flow) -> DnsMessage | None:
    """A DNS message (RFC 1035 4.1): the first question and up to MAX_DNS_RECORDS answers."""
    if len(msg) < 12:
        return None
    flags = (msg[2] << 8) | msg[3]
    qdcount = (msg[4] << 8) | msg[5]
    ancount = (msg[6] << 8) | msg[7]
    if (flags >> 11) & 0xF != 0 or qdcount == 0:
        return None  # not a standard query; or no question to name
    reader = _DnsReader(msg)
    got = reader.name(12)
    if got is None or not got[0] or got[1] + 4 > len(msg):
        return None
    qname, pos = got
    assert qname is not None
    qtype = (msg[pos] << 8) | msg[pos + 1]
    pos += 4
    response = bool(flags >> 15)
    answers: list[DnsAnswer] = []
    if response:
        for _ in range(1, min(qdcount, 8)):  # skip further questions, rare but legal
            more = reader.name(pos)
            if more is None:
                break
            pos = more[1] + 4
        for _ in range(min(ancount, MAX_DNS_RECORDS)):
            rr = _dns_answer(reader, pos)
            if rr is None:
                break
            if rr[0] is not None:
                answers.append(rr[0])
            pos = rr[1]
    return DnsMessage(ts, flow, (msg[0] << 8) | msg[1], response, qname, qtype, tuple(answers))


# --- HTTP ---------------------------------------------------------------------------------------


def parse_http_request(head: bytes, ts: float, flow: Flow) -> HttpRequest | None:
    """The target host of an HTTP/1.x request head (request line plus headers)."""
    line_end = head.find(b"\r\n")
    line = head[: line_end if line_end >= 0 else len(head)]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None
    method, target = parts[0], parts[1]
    if method == b"CONNECT":
        got = split_host_port(target, 443)
        return HttpRequest(ts, flow, "CONNECT", got[0], got[1], True) if got else None
    lowered = target[:8].lower()
    if lowered.startswith((b"http://", b"https://")):
        scheme_end = target.find(b"//") + 2
        authority = target[scheme_end:]
        for stop in (b"/", b"?", b"#"):
            authority = authority.split(stop, 1)[0]
        authority = authority.rsplit(b"@", 1)[-1]
        got = split_host_port(authority, 443 if lowered.startswith(b"https") else 80)
        return HttpRequest(ts, flow, method.decode("ascii"), got[0], got[1], True) if got else None
    host = _host_header(head)
    if host is None:
        return None
    got = split_host_port(host, flow.dport)
    return HttpRequest(ts, flow, method.decode("ascii"), got[0], got[1], False) if got else None


def _host_header(head: bytes) -> bytes | None:
    at = head.find(b"\r\nHost:")
    if at < 0:
        at = head.lower().find(b"\r\nhost:")
        if at < 0:
            return None
    start = at + 7
    stop = head.find(b"\r\n", start)
    return head[start : stop if stop >= 0 else len(head)]


# --- the frame walker ---------------------------------------------------------------------------


class _Pending:
    """The start of a ClientHello whose rest is in later TCP segments."""

    __slots__ = ("data", "next_seq", "ts", "flow")

    def __init__(self, data: bytes, next_seq: int, ts: float, flow: Flow) -> None:
        self.data = data
        self.next_seq = next_seq
        self.ts = ts
        self.flow = flow


class PacketParser:
    """Turns link-layer frames into events; keeps only bounded state (split ClientHellos, duplicates).

    ``feed(buf, linktype, ts, start, end)`` reads the frame in ``buf[start:end]`` without copying it,
    so a reader can pass one big buffer (a memory-mapped capture) and offsets.
    """

    def __init__(self) -> None:
        self._pending: OrderedDict[tuple[bytes, int, int], _Pending] = OrderedDict()
        self._seen: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._rest_only = False
        self.malformed = 0  # packets that looked like DNS / TLS / HTTP but did not parse

    def waiting(self, now: float) -> bool:
        """True while a ClientHello start waits for its rest; starts older than PENDING_TTL_S are dropped."""
        while self._pending:
            key, oldest = next(iter(self._pending.items()))
            if now - oldest.ts <= PENDING_TTL_S:
                return True
            del self._pending[key]
        return False

    def feed_rest(self, buf: Buffer, linktype: int, ts: float, start: int = 0, end: int = -1) -> Event | None:
        """Like ``feed``, for a frame that can only matter as the rest of a split ClientHello: any other
        frame is ignored (a capture that parks such candidates apart feeds them here)."""
        if not self._pending:
            return None
        self._rest_only = True
        try:
            return self.feed(buf, linktype, ts, start, end)
        finally:
            self._rest_only = False

    def feed(self, buf: Buffer, linktype: int, ts: float, start: int = 0, end: int = -1) -> Event | None:
        """The event in one frame, or None (most frames)."""
        if end < 0:
            end = len(buf)
        if linktype == LINKTYPE_ETHERNET:
            i = start + 14
            if i > end:
                return None
            etype = (buf[i - 2] << 8) | buf[i - 1]
            while etype == 0x8100 or etype == 0x88A8:  # 802.1Q / 802.1ad VLAN tags
                i += 4
                if i > end:
                    return None
                etype = (buf[i - 2] << 8) | buf[i - 1]
        elif linktype in _RAW_ALIASES:
            if start >= end:
                return None
            i = start
            etype = 0x0800 if buf[i] >> 4 == 4 else 0x86DD
        else:
            i, etype = self._link_header(buf, linktype, start, end)
        if etype == 0x0800:
            return self._ipv4(buf, i, end, ts)
        if etype == 0x86DD:
            return self._ipv6(buf, i, end, ts)
        return None

    @staticmethod
    def _link_header(buf: Buffer, linktype: int, start: int, end: int) -> tuple[int, int]:
        """(offset of the network header, ethertype) for the less common link types."""
        if linktype == LINKTYPE_LINUX_SLL and start + 16 <= end:
            return start + 16, (buf[start + 14] << 8) | buf[start + 15]
        if linktype == LINKTYPE_LINUX_SLL2 and start + 20 <= end:
            return start + 20, (buf[start] << 8) | buf[start + 1]
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP) and start + 4 <= end:
            family = int.from_bytes(bytes(buf[start : start + 4]), "big")
            if linktype == LINKTYPE_NULL and family > 0xFFFF:  # written by a little-endian host
                family = int.from_bytes(bytes(buf[start : start + 4]), "little")
            if family == 2:
                return start + 4, 0x0800
            if family in (10, 23, 24, 26, 28, 30):  # AF_INET6 on Linux, Windows, BSDs, macOS
                return start + 4, 0x86DD
        return 0, 0

    def _ipv4(self, buf: Buffer, i: int, end: int, ts: float) -> Event | None:
        if i + 20 > end:
            return None
        vihl = buf[i]
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or ihl < 20:
            return None
        total = (buf[i + 2] << 8) | buf[i + 3]
        if total < ihl:
            return None
        if i + total < end:
            end = i + total  # link padding or an Ethernet FCS after the datagram
        if (buf[i + 6] & 0x1F) | buf[i + 7]:
            return None  # a non-first fragment: no transport header
        proto = buf[i + 9]
        if proto == TCP:
            return self._tcp(buf, i + ihl, end, ts, i, 4)
        if proto == UDP:
            return self._udp(buf, i + ihl, end, ts, i, 4)
        return None

    def _ipv6(self, buf: Buffer, i: int, end: int, ts: float) -> Event | None:
        if i + 40 > end or buf[i] >> 4 != 6:
            return None
        plen = (buf[i + 4] << 8) | buf[i + 5]
        if plen > 0 and i + 40 + plen < end:
            end = i + 40 + plen
        nxt = buf[i + 6]
        j = i + 40
        for _ in range(8):  # extension headers: hop-by-hop, routing, fragment, destination, AH
            if nxt == TCP:
                return self._tcp(buf, j, end, ts, i, 6)
            if nxt == UDP:
                return self._udp(buf, j, end, ts, i, 6)
            if j + 8 > end:
                return None
            if nxt in (0, 43, 60):
                nxt, j = buf[j], j + ((buf[j + 1] + 1) << 3)
            elif nxt == 44:
                if ((buf[j + 2] << 8) | buf[j + 3]) & 0xFFF8:
                    return None  # non-first fragment
                nxt, j = buf[j], j + 8
            elif nxt == 51:
                nxt, j = buf[j], j + ((buf[j + 1] + 2) << 2)
            else:
                return None
        return None

    @staticmethod
    def _addresses(buf: Buffer, ip: int, version: int) -> tuple[str, str, bytes]:
        """(source, destination, both raw) of the IP header at ``ip``."""
        if version == 4:
            raw = bytes(buf[ip + 12 : ip + 20])
            return socket.inet_ntop(socket.AF_INET, raw[:4]), socket.inet_ntop(socket.AF_INET, raw[4:]), raw
        raw = bytes(buf[ip + 8 : ip + 40])
        return socket.inet_ntop(socket.AF_INET6, raw[:16]), socket.inet_ntop(socket.AF_INET6, raw[16:]), raw

    def _flow(self, buf: Buffer, ip: int, version: int, proto: int, sport: int, dport: int) -> Flow:
        src, dst, _ = self._addresses(buf, ip, version)
        return Flow(proto, src, sport, dst, dport)

    def _tcp(self, buf: Buffer, j: int, end: int, ts: float, ip: int, version: int) -> Event | None:
        if j + 20 > end:
            return None
        p = j + ((buf[j + 12] >> 4) << 2)
        if p >= end or p < j + 20:
            return None
        b0 = buf[p]
        if self._pending:
            key = (
                self._addresses(buf, ip, version)[2],
                (buf[j] << 8) | buf[j + 1],
                (buf[j + 2] << 8) | buf[j + 3],
            )
            if key in self._pending:
                return self._continue_hello(buf, j, p, end, ts, key)
        if self._rest_only:
            return None
        if b0 == 0x16:
            return self._tls_start(buf, j, p, end, ts, ip, version)
        sport = (buf[j] << 8) | buf[j + 1]
        dport = (buf[j + 2] << 8) | buf[j + 3]
        if 0x41 <= b0 <= 0x5A and bytes(buf[p : min(end, p + 8)]).startswith(_HTTP_METHODS):  # an HTTP method
            head = bytes(buf[p : min(end, p + MAX_HTTP_HEAD)])
            return self._http(head, ts, self._flow(buf, ip, version, TCP, sport, dport))
        if sport == DNS_PORT or dport == DNS_PORT:
            return self._dns_over_tcp(buf, p, end, ts, self._flow(buf, ip, version, TCP, sport, dport))
        return None

    def _udp(self, buf: Buffer, j: int, end: int, ts: float, ip: int, version: int) -> Event | None:
        if j + 8 > end or self._rest_only:
            return None
        sport = (buf[j] << 8) | buf[j + 1]
        dport = (buf[j + 2] << 8) | buf[j + 3]
        if sport != DNS_PORT and dport != DNS_PORT:
            return None
        ulen = (buf[j + 4] << 8) | buf[j + 5]
        if ulen >= 8 and j + ulen < end:
            end = j + ulen
        flow = self._flow(buf, ip, version, UDP, sport, dport)
        return self._dns(bytes(buf[j + 8 : end]), ts, flow)

    def _dns_over_tcp(self, buf: Buffer, p: int, end: int, ts: float, flow: Flow) -> Event | None:
        if p + 2 > end:
            return None
        mlen = (buf[p] << 8) | buf[p + 1]
        if p + 2 + mlen > end:
            return None  # a DNS message split across segments: not reassembled
        return self._dns(bytes(buf[p + 2 : p + 2 + mlen]), ts, flow)

    def _dns(self, msg: bytes, ts: float, flow: Flow) -> Event | None:
        try:
            event = parse_dns(msg, ts, flow)
        except (IndexError, ValueError, OSError):
            event = None
        if event is None:
            self.malformed += 1
            return None
        if self._duplicate((flow, event.txid, event.response)):
            return None
        return event

    def _http(self, head: bytes, ts: float, flow: Flow) -> Event | None:
        try:
            event = parse_http_request(head, ts, flow)
        except (IndexError, ValueError, UnicodeDecodeError):
            event = None
        if event is None:
            self.malformed += 1
        return event

    def _tls_start(
        self, buf: Buffer, j: int, p: int, end: int, ts: float, ip: int, version: int
    ) -> Event | None:
        if p + 6 > end or buf[p + 1] != 3 or buf[p + 5] != 1:
            return None  # not a ClientHello (ServerHello, Finished, ...) or a 0x16 in bulk data
        data = bytes(buf[p:end])
        status, sni = self._parse_hello(data)
        if status == HELLO_BAD:
            return None
        sport = (buf[j] << 8) | buf[j + 1]
        dport = (buf[j + 2] << 8) | buf[j + 3]
        seq = int.from_bytes(bytes(buf[j + 4 : j + 8]), "big")
        src, dst, raw = self._addresses(buf, ip, version)
        if self._duplicate((raw, sport, dport, seq)):
            return None
        flow = Flow(TCP, src, sport, dst, dport)
        if status == HELLO_MORE and sni is None:
            self._hold((raw, sport, dport), _Pending(data, (seq + len(data)) & 0xFFFFFFFF, ts, flow))
            return None
        return TlsClientHello(ts, flow, sni)

    def _parse_hello(self, data: bytes) -> tuple[int, str | None]:
        try:
            result = parse_client_hello(data)
        except (IndexError, ValueError):
            result = (HELLO_BAD, None)
        if result[0] == HELLO_BAD:
            self.malformed += 1
        return result

    def _continue_hello(
        self, buf: Buffer, j: int, p: int, end: int, ts: float, key: tuple[bytes, int, int]
    ) -> Event | None:
        held = self._pending[key]
        seq = int.from_bytes(bytes(buf[j + 4 : j + 8]), "big")
        if seq != held.next_seq:
            return None  # a retransmission or a gap: keep waiting for the expected segment
        data = held.data + bytes(buf[p:end])
        if len(data) > MAX_HELLO_BYTES:
            del self._pending[key]
            return None
        status, sni = self._parse_hello(data)
        if status == HELLO_MORE and sni is None:
            held.data, held.next_seq = data, (seq + end - p) & 0xFFFFFFFF
            return None
        del self._pending[key]
        return TlsClientHello(held.ts, held.flow, sni) if status == HELLO_DONE else None

    def _hold(self, key: tuple[bytes, int, int], pending: _Pending) -> None:
        for old_key, old in list(self._pending.items()):
            if pending.ts - old.ts <= PENDING_TTL_S and len(self._pending) < MAX_PENDING_FLOWS:
                break
            del self._pending[old_key]
        self._pending[key] = pending

    def _duplicate(self, key: tuple[object, ...]) -> bool:
        """True when ``key`` was seen recently (a retransmission, or a frame captured twice)."""
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > _RECENT:
            self._seen.popitem(last=False)
        return False


# --- events -> records --------------------------------------------------------------------------

ProviderFor = Callable[[str, int], str | None]


class EndpointTable:
    """Folds events into ``NetworkRecord``s, one per (pid, or client address when there is no pid,
    host, port, via), with the first ``ts``, the ``last_ts`` and a ``count``.

    DNS answers fill ``names`` (address -> the name that was asked for), so that a connection known
    only by its address -- a ClientHello without SNI, a socket-table entry -- still gets a hostname.
    A DNS query makes a record (port 0: the port is not known yet); its answer only adds addresses.
    """

    def __init__(self, provider_for: ProviderFor | None = None, *, max_names: int = 16384) -> None:
        self._provider_for = provider_for
        self._providers: dict[tuple[str, int], str | None] = {}
        self._records: dict[tuple[object, ...], NetworkRecord] = {}
        self._queries: OrderedDict[tuple[str, int, int], NetworkRecord] = OrderedDict()
        self._tunnels: OrderedDict[tuple[str, int, str, int], tuple[str, int]] = OrderedDict()
        self._max_names = max_names
        self.names: OrderedDict[str, str] = OrderedDict()

    def provider(self, host: str, port: int) -> str | None:
        """The provider ``host:port`` belongs to, by the catalog function given (cached)."""
        if self._provider_for is None:
            return None
        key = (host, port)
        if key not in self._providers:
            if len(self._providers) > 8192:
                self._providers.clear()
            self._providers[key] = self._provider_for(host, port)
        return self._providers[key]

    def learn(self, address: str, name: str) -> None:
        """Remember that ``address`` was resolved from ``name`` (the most recent name wins)."""
        self.names.pop(address, None)
        self.names[address] = name
        if len(self.names) > self._max_names:
            self.names.popitem(last=False)

    def record_for(self, event: Event) -> NetworkRecord | None:
        """The un-aggregated record an event stands for (None when it names no host); learns from it."""
        if isinstance(event, DnsMessage):
            return self._dns_record(event)
        flow = event.flow
        if isinstance(event, HttpRequest):
            via: Via = "connect" if event.method == "CONNECT" else "http"
            if event.method == "CONNECT":
                self._remember_tunnel(flow, event.host, event.port)
            return self._make(event.host, event.port, via, event.ts, flow.src, flow.sport, flow.dst)
        port = self._tunnels.get((flow.src, flow.sport, flow.dst, flow.dport), (None, flow.dport))[1]
        if event.sni is not None:
            return self._make(event.sni, port, "sni", event.ts, flow.src, flow.sport, flow.dst)
        name = self.names.get(flow.dst)
        if name is not None:
            return self._make(name, port, "dns", event.ts, flow.src, flow.sport, flow.dst)
        return None

    def _remember_tunnel(self, flow: Flow, host: str, port: int) -> None:
        self._tunnels[(flow.src, flow.sport, flow.dst, flow.dport)] = (host, port)
        if len(self._tunnels) > 4096:
            self._tunnels.popitem(last=False)

    def _dns_record(self, msg: DnsMessage) -> NetworkRecord | None:
        client, cport = msg.client
        addresses = msg.addresses()
        for address in addresses:
            self.learn(address, msg.qname)
        key = (client, cport, msg.txid)
        if msg.response:
            asked = self._queries.pop(key, None)
            if asked is not None:
                if addresses and not asked.dst:
                    asked.dst = addresses[0]
                return None
        if msg.qtype not in DNS_QTYPES:
            return None
        rec = self._make(msg.qname, 0, "dns", msg.ts, client, cport, addresses[0] if addresses else "")
        if not msg.response:
            self._queries[key] = rec
            if len(self._queries) > _RECENT:
                self._queries.popitem(last=False)
        return rec

    def _make(
        self, host: str, port: int, via: Via, ts: float, src: str, sport: int, dst: str
    ) -> NetworkRecord:
        provider = self.provider(host, port)
        return NetworkRecord(host, port, via, ts, provider=provider, src=src, sport=sport, dst=dst)

    def merge(self, rec: NetworkRecord) -> NetworkRecord | None:
        """Add one observation; returns the aggregated record when it is the first of its key."""
        key: tuple[object, ...] = (rec.pid, rec.host, rec.port, rec.via)
        if rec.pid is None:
            key += (rec.src,)
        agg = self._records.get(key)
        if agg is None:
            rec.last_ts = max(rec.last_ts, rec.ts)
            self._records[key] = rec
            return rec
        agg.count += rec.count
        agg.ts = min(agg.ts, rec.ts)
        agg.last_ts = max(agg.last_ts, rec.last_ts, rec.ts)
        if not agg.dst:
            agg.dst = rec.dst
        return None

    def add(self, event: Event, *, pid: int | None = None, process: str = "") -> NetworkRecord | None:
        """``record_for`` then ``merge``, with the pid the caller attributed the event to."""
        rec = self.record_for(event)
        if rec is None:
            return None
        rec.pid, rec.process = pid, process
        return self.merge(rec)

    def records(self) -> list[NetworkRecord]:
        """All aggregated records, oldest first."""
        return sorted(self._records.values(), key=lambda r: (r.ts, r.host, r.port))
