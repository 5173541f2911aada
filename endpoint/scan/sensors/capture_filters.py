"""The capture filters, in tcpdump syntax: what of the wire reaches the network sensor at all.

``hello_filter`` lets through DNS, TLS ClientHellos and HTTP request heads; ``rest_filter`` the small
segments that may carry the rest of a ClientHello split across segments (parked by the Linux backend,
read only while a start waits); ``capture_filter`` both, for the backends that take one filter.
"""

from __future__ import annotations

from collections.abc import Iterable

TLS_PORTS = (443, 8443)  # where the rest of a ClientHello split across segments is let through
CONTINUATION_MAX = 1300  # bytes of IPv4 packet (IPv6: of payload + 20) for such a rest

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
