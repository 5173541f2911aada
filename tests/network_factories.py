"""Builds the packets the network-sensor tests feed in: TLS ClientHellos, DNS messages, HTTP request
heads, wrapped in scapy frames; and a small provider catalog function standing in for signatures/.

Import it as a plain module (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import os
import ssl
import struct

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

CLIENT = "10.1.2.3"
CLIENT6 = "2001:db8::3"
SERVER = "162.159.140.245"
SERVER6 = "2001:db8::443"
RESOLVER = "10.1.0.53"

HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
    "api.mistral.ai": "mistral",
    "api.groq.com": "groq",
}
PORTS = {11434: "ollama", 1234: "lmstudio", 8000: "vllm"}


def provider_for(host: str, port: int) -> str | None:
    """A catalog in miniature: by host first, then by a local runtime's port."""
    return HOSTS.get(host) or PORTS.get(port)


# --- TLS ----------------------------------------------------------------------------------------


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def sni_extension(name: bytes) -> bytes:
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    return _ext(0, struct.pack("!H", len(entry)) + entry)


def client_hello(
    sni: str | bytes | None,
    *,
    key_share: int = 32,
    sni_last: bool = False,
    records: int = 1,
    padding: int = 0,
) -> bytes:
    """A TLS 1.3-style ClientHello. ``key_share`` bytes of key material (1,216+ for a post-quantum
    hybrid, which pushes the hello past one segment); ``sni_last`` puts server_name after it;
    ``padding`` adds a padding extension before a last SNI; ``records`` splits the handshake message
    over that many TLS records.
    """
    exts = [
        _ext(43, b"\x02\x03\x04"),
        _ext(51, struct.pack("!HHH", key_share + 4, 0x11EC, key_share) + os.urandom(key_share)),
    ]
    if padding:
        exts.append(_ext(21, b"\x00" * padding))
    if sni is not None:
        name = sni.encode() if isinstance(sni, str) else sni
        exts.insert(len(exts) if sni_last else 0, sni_extension(name))
    ext_bytes = b"".join(exts)
    body = b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
    body += struct.pack("!H", len(ext_bytes)) + ext_bytes
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    step = -(-len(handshake) // records)
    return b"".join(
        b"\x16\x03\x01" + struct.pack("!H", len(chunk)) + chunk
        for chunk in (handshake[i : i + step] for i in range(0, len(handshake), step))
    )


def python_client_hello(sni: str) -> bytes:
    """The ClientHello this Python's ssl module sends for ``server_hostname=sni``."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        conn.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


# --- DNS ----------------------------------------------------------------------------------------


def dns_query(name: str, *, txid: int = 0x1234, qtype: str = "A") -> bytes:
    return bytes(DNS(id=txid, rd=1, qd=DNSQR(qname=name, qtype=qtype)))


def dns_response(
    name: str, addresses: list[str], *, cnames: tuple[str, ...] = (), txid: int = 0x1234
) -> bytes:
    """An answer for ``name``: a CNAME chain through ``cnames``, then the addresses."""
    answers: list[Packet] = []
    owner = name
    for target in cnames:
        answers.append(DNSRR(rrname=owner, type="CNAME", rdata=target, ttl=60))
        owner = target
    for address in addresses:
        answers.append(DNSRR(rrname=owner, type="AAAA" if ":" in address else "A", rdata=address, ttl=60))
    qtype = "AAAA" if addresses and ":" in addresses[0] else "A"
    return bytes(DNS(id=txid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype=qtype), an=answers or None))


# --- frames -------------------------------------------------------------------------------------


def ether() -> Packet:
    """An Ethernet header with fixed addresses: scapy would otherwise ARP for the destination's MAC."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def ip_layer(src: str, dst: str) -> Packet:
    return IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)


def tcp_frame(
    payload: bytes,
    *,
    src: str = CLIENT,
    dst: str = SERVER,
    sport: int = 50000,
    dport: int = 443,
    seq: int = 1000,
    flags: str = "PA",
) -> Packet:
    return ether() / ip_layer(src, dst) / TCP(sport=sport, dport=dport, seq=seq, flags=flags) / Raw(payload)


def udp_frame(
    payload: bytes, *, src: str = CLIENT, dst: str = RESOLVER, sport: int = 40000, dport: int = 53
) -> Packet:
    return ether() / ip_layer(src, dst) / UDP(sport=sport, dport=dport) / Raw(payload)


def dns_exchange(
    name: str, addresses: list[str], *, cnames: tuple[str, ...] = (), txid: int = 0x1234, sport: int = 40000
) -> list[Packet]:
    """A query from CLIENT to RESOLVER and its answer."""
    return [
        udp_frame(dns_query(name, txid=txid), sport=sport),
        udp_frame(
            dns_response(name, addresses, cnames=cnames, txid=txid),
            src=RESOLVER,
            dst=CLIENT,
            sport=53,
            dport=sport,
        ),
    ]


def split_segments(payload: bytes, sizes: list[int], **kw: object) -> list[Packet]:
    """``payload`` as consecutive TCP segments of the given sizes (the last takes the rest)."""
    seq = int(kw.pop("seq", 1000))  # type: ignore[call-overload]
    frames, pos = [], 0
    for i, size in enumerate([*sizes, len(payload)]):
        chunk = payload[pos : pos + size] if i < len(sizes) else payload[pos:]
        if not chunk:
            break
        frames.append(
            tcp_frame(chunk, seq=seq + pos, flags="PA" if pos + len(chunk) == len(payload) else "A", **kw)
        )  # type: ignore[arg-type]
        pos += len(chunk)
    return frames
