"""What the packet parser reports: the events (a TLS ClientHello, a DNS message, an HTTP request head),
the flow that carried each, and the hostname checks every parser applies to what a packet claims."""

from __future__ import annotations

import mmap
import re
import socket
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

TCP = 6
UDP = 17
DNS_PORT = 53
RECENT_KEYS = 4096  # remembered (flow, seq) / (client, txid) keys, to drop retransmissions and duplicates

DNS_QTYPES = frozenset({1, 5, 28, 64, 65, 255})  # A, CNAME, AAAA, SVCB, HTTPS, ANY: a host about to be called
RR_A = 1
RR_CNAME = 5
RR_AAAA = 28

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
