"""Packet parsing for the network sensor: raw frames in, DNS / TLS ClientHello / HTTP request events out.

Pure: no I/O, no third-party imports. ``PacketParser.feed`` walks a frame's link, IP and TCP/UDP
headers, reading the fewest bytes it can, then the first payload byte, and only hands the payload on
when it starts a TLS handshake record (``tls_hello``), an HTTP request (``http_requests``) or the
packet is DNS (``dns_messages``); a ClientHello split across segments is held until its rest comes.
The events are in ``packet_events``; ``endpoint_table`` folds them into records. Every length in a
packet is distrusted: hostile input yields no event, never an exception.
"""

from __future__ import annotations

import socket
from collections import OrderedDict

from endpoint.scan.sensors.dns_messages import parse_dns
from endpoint.scan.sensors.http_requests import HTTP_METHODS, MAX_HTTP_HEAD, parse_http_request
from endpoint.scan.sensors.packet_events import (
    DNS_PORT,
    RECENT_KEYS,
    TCP,
    UDP,
    Buffer,
    Event,
    Flow,
    TlsClientHello,
)
from endpoint.scan.sensors.tls_hello import (
    HELLO_BAD,
    HELLO_DONE,
    HELLO_MORE,
    MAX_HELLO_BYTES,
    parse_client_hello,
)

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

MAX_PENDING_FLOWS = 256  # split ClientHellos buffered at once
PENDING_TTL_S = 10.0  # a split ClientHello whose rest does not come within this is dropped


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
        if 0x41 <= b0 <= 0x5A and bytes(buf[p : min(end, p + 8)]).startswith(HTTP_METHODS):  # an HTTP method
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
        if len(self._seen) > RECENT_KEYS:
            self._seen.popitem(last=False)
        return False
