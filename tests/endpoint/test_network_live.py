"""The live network sensor: its kernel filter (run here by a small classic-BPF interpreter), live
capture on loopback with real TLS, DNS, proxy and runtime traffic from another process (root), and
the fallback without capture. All traffic stays on 127.0.0.0/8 and ::1."""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from network_factories import client_hello, dns_query, python_client_hello
from scapy.layers.dns import DNS, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Raw

from endpoint.scan.evidence import NetworkRecord
from endpoint.scan.sensors import network, resolution
from endpoint.scan.sensors._capture_linux import PARK_S, kernel_program
from endpoint.scan.sensors._sockets_linux import SocketOwners
from endpoint.scan.sensors.capture import CaptureUnavailable, ScapyCapture
from endpoint.scan.sensors.capture_filters import capture_filter, hello_filter, rest_filter
from endpoint.scan.sensors.network import NetworkSensor
from endpoint.scan.sensors.packet_events import DnsAnswer, DnsMessage, Flow, TlsClientHello
from endpoint.scan.sensors.packets import PacketParser
from endpoint.scan.sensors.resolution import resolve_hosts
from endpoint.scan.sensors.socket_table import socket_table_records

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT and not os.environ.get("CI"),
    reason="live capture needs root (CAP_NET_RAW); CI runs as root and never skips this",
)


# --- the kernel filter, run by a classic-BPF interpreter ----------------------------------------


def bpf_program(expr: str) -> list[tuple[int, int, int, int]]:
    try:
        from scapy.arch.common import compile_filter
        from scapy.data import DLT_RAW

        program = compile_filter(expr, linktype=DLT_RAW)
    except ImportError as exc:
        pytest.skip(f"libpcap is needed to compile the filter: {exc}")
    return [(i.code, i.jt, i.jf, i.k) for i in program.bf_insns[: program.bf_len]]


def _alu(op: int, a: int, operand: int) -> int:
    if op == 0x80:
        return -a
    return {
        0x00: a.__add__,
        0x10: a.__sub__,
        0x20: a.__mul__,
        0x30: a.__floordiv__,
        0x40: a.__or__,
        0x50: a.__and__,
        0x60: a.__lshift__,
        0x70: a.__rshift__,
        0x90: a.__mod__,
        0xA0: a.__xor__,
    }[op](operand)


def run_bpf(program: list[tuple[int, int, int, int]], pkt: bytes) -> bool:
    """Classic BPF (as the Linux kernel runs a socket filter): True if the packet is accepted."""
    a = x = pc = 0
    mem = [0] * 16
    mask = 0xFFFFFFFF

    def load(at: int, size: int) -> int | None:
        return int.from_bytes(pkt[at : at + size], "big") if at >= 0 and at + size <= len(pkt) else None

    while pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        cls, size = code & 0x07, {0x00: 4, 0x08: 2, 0x10: 1}.get(code & 0x18, 4)
        mode = code & 0xE0
        if cls in (0x00, 0x01):  # LD, LDX
            if mode == 0x00:
                value = k
            elif mode == 0x20:
                value = load(k, size)
            elif mode == 0x40:
                value = load(x + k, size)
            elif mode == 0x60:
                value = mem[k]
            elif mode == 0x80:
                value = len(pkt)
            elif mode == 0xA0:  # 4 * ([k] & 0xf)
                byte = load(k, 1)
                value = None if byte is None else (byte & 0x0F) * 4
            if value is None:
                return False  # an out-of-bounds load ends the program: the packet is dropped
            if cls == 0x00:
                a = value
            else:
                x = value
        elif cls == 0x02:
            mem[k] = a
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            operand = x if code & 0x08 else k
            op = code & 0xF0
            if op in (0x30, 0x90) and operand == 0:
                return False
            a = _alu(code & 0xF0, a, operand) & mask
        elif cls == 0x05:  # JMP
            operand = x if code & 0x08 else k
            op = code & 0xF0
            if op == 0x00:
                pc += k
                continue
            taken = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand, 0x40: bool(a & operand)}[op]
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return bool(a if code & 0x18 == 0x10 else k)
        elif cls == 0x07:  # MISC
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
    return False


@pytest.fixture(scope="module")
def kernel_filter():
    program = bpf_program(hello_filter())
    return lambda pkt: run_bpf(program, bytes(pkt))


@pytest.fixture(scope="module")
def rest_kernel_filter():
    program = bpf_program(rest_filter((443, 8443)))
    return lambda pkt: run_bpf(program, bytes(pkt))


def v4(payload: bytes, *, dport: int = 443, sport: int = 50000, flags: str = "PA"):
    return IP(src="127.0.0.1", dst="127.0.0.2") / TCP(sport=sport, dport=dport, flags=flags) / Raw(payload)


def v6(payload: bytes, *, dport: int = 443, sport: int = 50000, flags: str = "PA"):
    return IPv6(src="::1", dst="::1") / TCP(sport=sport, dport=dport, flags=flags) / Raw(payload)


def v6_hop_by_hop(payload: bytes, *, dport: int = 443, sport: int = 50000, flags: str = "PA"):
    return IPv6(src="::1", dst="::1") / IPv6ExtHdrHopByHop() / TCP(sport=sport, dport=dport, flags=flags) / Raw(payload)


def v6_dest_options(payload: bytes, *, dport: int = 443, sport: int = 50000, flags: str = "PA"):
    opts = IPv6ExtHdrDestOpt(options=[])
    return IPv6(src="::1", dst="::1") / opts / TCP(sport=sport, dport=dport, flags=flags) / Raw(payload)


def v6_routing(payload: bytes, *, dport: int = 443, sport: int = 50000, flags: str = "PA"):
    route = IPv6ExtHdrRouting(addresses=["2001:db8::1"])  # 24 bytes: a length field that matters
    return IPv6(src="::1", dst="::1") / route / TCP(sport=sport, dport=dport, flags=flags) / Raw(payload)


def v6_first_fragment(payload: bytes, *, dport: int = 443, sport: int = 50000, flags: str = "PA"):
    frag = IPv6ExtHdrFragment(offset=0, m=1, id=7)
    return IPv6(src="::1", dst="::1") / frag / TCP(sport=sport, dport=dport, flags=flags) / Raw(payload)


LAYOUTS = [v4, v6, v6_hop_by_hop, v6_dest_options, v6_routing, v6_first_fragment]
HELLO = client_hello("api.openai.com")
CONTINUATION = bytes(range(40, 240))  # the middle of a ClientHello's extensions


@pytest.mark.parametrize("ip", LAYOUTS)
@pytest.mark.parametrize(
    ("what", "payload", "dport"),
    [
        ("client hello on 443", HELLO, 443),
        ("client hello on any port", HELLO, 9443),
        *[
            (f"HTTP {m.decode()}", m + b" /x HTTP/1.1\r\nHost: h\r\n\r\n", 11434)
            for m in (b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"PATCH", b"OPTIONS")
        ],
        ("HTTP CONNECT", b"CONNECT api.openai.com:443 HTTP/1.1\r\n\r\n", 3128),
    ],
)
def test_filter_lets_through(kernel_filter, ip, what, payload, dport):
    assert kernel_filter(ip(payload, dport=dport)), what


@pytest.mark.parametrize("ip", [v4, v6])
def test_filter_lets_dns_over_tcp_through(kernel_filter, ip):
    assert kernel_filter(ip(b"\x00\x20" + dns_query("a.b"), dport=53))


def test_filter_does_not_follow_two_ipv6_extension_headers(kernel_filter):
    """Classic BPF has no loops: a ClientHello behind two extension headers is not seen (documented)."""
    pkt = IPv6(src="::1", dst="::1") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(dport=443) / Raw(HELLO)
    assert not kernel_filter(pkt)


def test_filter_keeps_out_non_first_ipv6_fragments(kernel_filter):
    frag = IPv6ExtHdrFragment(offset=10, m=0, id=7, nh=6)
    assert not kernel_filter(IPv6(src="::1", dst="::1") / frag / Raw(HELLO))


@pytest.mark.parametrize("ip", [v4, v6])
def test_filter_lets_dns_over_udp_through(kernel_filter, ip):
    layer = IP(src="127.0.0.1", dst="127.0.0.53") if ip is v4 else IPv6(src="::1", dst="::1")
    assert kernel_filter(layer / UDP(sport=40000, dport=53) / Raw(dns_query("api.openai.com")))
    assert kernel_filter(layer / UDP(sport=53, dport=40000) / Raw(dns_query("api.openai.com")))


KEPT_OUT = [
    ("pure ACK", b"", 443, 50000, "A"),
    ("SYN", b"", 443, 50000, "S"),
    ("bulk download from 443", b"\x00" * 1400, 50000, 443, "A"),
    ("TLS application data to 443", b"\x17\x03\x03\x05\x00" + b"\x00" * 1395, 443, 50000, "PA"),
    ("alert to 443", b"\x15\x03\x03\x00\x02\x01\x00", 443, 50000, "PA"),
    ("large bulk segment to 443", b"\x42" * 9000, 443, 50000, "A"),
    ("full-size mid-record upload segment to 443", b"\x42" * 1448, 443, 50000, "PA"),
    ("ServerHello", b"\x16\x03\x03\x00\x50\x02" + b"\x00" * 80, 50000, 443, "PA"),
    ("bulk on a plain port", b"\x42" * 1400, 9000, 50000, "PA"),
    ("HTTP response", b"HTTP/1.1 200 OK\r\n\r\n", 50000, 11434, "PA"),
]


@pytest.mark.parametrize("ip", LAYOUTS)
@pytest.mark.parametrize(
    ("what", "payload", "dport", "sport", "flags"),
    [
        *KEPT_OUT,
        ("1,000-byte non-record segment to 443", b"\x42" * 1000, 443, 50000, "PA"),
        ("rest of a split ClientHello (parked apart)", CONTINUATION, 443, 50000, "PA"),
    ],
)
def test_filter_keeps_out(kernel_filter, ip, what, payload, dport, sport, flags):
    assert not kernel_filter(ip(payload, dport=dport, sport=sport, flags=flags)), what


@pytest.mark.parametrize("ip", [v4, v6])
@pytest.mark.parametrize("dport", [443, 8443])
def test_rest_filter_lets_the_rest_of_a_split_client_hello_through(rest_kernel_filter, ip, dport):
    assert rest_kernel_filter(ip(CONTINUATION, dport=dport))


def test_rest_filter_does_not_follow_ipv6_extension_headers(rest_kernel_filter):
    """Documented: a split ClientHello behind an IPv6 extension header yields its start only."""
    assert not rest_kernel_filter(v6_hop_by_hop(CONTINUATION))


@pytest.mark.parametrize("ip", [v4, v6])
@pytest.mark.parametrize(
    ("what", "payload", "dport", "sport", "flags"),
    [
        *[case for case in KEPT_OUT if case[0] != "HTTP response"],
        ("rest-like segment to a port that is not a TLS port", CONTINUATION, 9443, 50000, "PA"),
        ("empty FIN to 443", b"", 443, 50000, "FA"),
    ],
)
def test_rest_filter_keeps_out(rest_kernel_filter, ip, what, payload, dport, sport, flags):
    assert not rest_kernel_filter(ip(payload, dport=dport, sport=sport, flags=flags)), what


def _inject_and_see(sockets: dict[str, socket.socket], pkt: bytes, marker: bytes) -> set[str]:
    """Send ``pkt`` and then ``marker`` (which every filter lets through) out of ``lo``; the names of
    the filtered sockets that received ``pkt`` before the marker -- no waiting for what does not come
    (the marker is sent again should the socket have dropped it under other loopback traffic)."""

    def send(data: bytes) -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0) as tx:
            tx.sendto(data, ("lo", 0x0800 if data[0] >> 4 == 4 else 0x86DD, 0, 0, b"\0" * 6))

    send(pkt)
    send(marker)
    seen: set[str] = set()
    for name, rx in sockets.items():
        while True:
            try:
                got, addr = rx.recvfrom(65535)
            except TimeoutError:
                send(marker)
                continue
            if addr[2] == 4:  # PACKET_OUTGOING: loopback shows each packet twice, as the sensor knows
                continue
            if got == marker:
                break
            if got == pkt:
                seen.add(name)
    return seen


@needs_root
@pytest.mark.timeout(120)
def test_the_kernel_accepts_both_filters_and_runs_them_as_the_interpreter_does():
    """The interpreter above is checked against the kernel itself: each packet is sent out of ``lo``
    and the two filters, attached to packet sockets as the sensor attaches them, decide."""
    programs = {"hello": kernel_program(hello_filter()), "rest": kernel_program(rest_filter())}
    interpreted = {"hello": bpf_program(hello_filter()), "rest": bpf_program(rest_filter())}
    sockets = {}
    for name, program in programs.items():
        rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        rx.setsockopt(socket.SOL_SOCKET, 26, program.fprog)  # SO_ATTACH_FILTER
        rx.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: room beside other loopback traffic
        rx.bind(("lo", 0x0003))
        rx.settimeout(0.5)
        sockets[name] = rx
    cases = [ip(HELLO, dport=443, sport=40001) for ip in LAYOUTS]
    cases += [ip(CONTINUATION, dport=443, sport=40002) for ip in LAYOUTS]
    cases += [ip(payload, dport=dport, sport=sport, flags=flags) for ip in (v4, v6)
              for _, payload, dport, sport, flags in KEPT_OUT if payload]
    cases += [v4(b"\x42" * 1000, dport=443, sport=40003), v4(b"POST / HTTP/1.1\r\n\r\n", dport=11434)]
    marker = bytes(v4(client_hello("marker.test"), dport=443, sport=40009))
    try:
        for pkt in cases:
            raw = bytes(pkt)
            expected = {name for name, prog in interpreted.items() if run_bpf(prog, raw)}
            assert _inject_and_see(sockets, raw, marker) == expected, (pkt.summary(), raw.hex())
    finally:
        for rx in sockets.values():
            rx.close()


def test_filter_keeps_out_quic(kernel_filter):
    assert not kernel_filter(
        IP(src="127.0.0.1", dst="127.0.0.2") / UDP(sport=5000, dport=443) / Raw(b"\xc3" + b"\x00" * 1200)
    )


# --- live capture on loopback (root) ------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=agentroster-test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(cert), str(key)


class Servers:
    """Loopback servers: TLS (IPv4 and IPv6), a silent TCP holder, a DNS responder, a CONNECT proxy,
    a plain-HTTP runtime and a plain TCP listener. Connections are held open until close()."""

    def __init__(self, certificate: tuple[str, str]) -> None:
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*certificate)
        self.tls = self._tcp("127.0.0.1", 0, lambda c: self._hold(ctx.wrap_socket(c, server_side=True)))
        self.tls6 = self._tcp(
            "::1", 0, lambda c: self._hold(ctx.wrap_socket(c, server_side=True)), socket.AF_INET6
        )
        self.hold = self._tcp("127.0.0.1", 0, self._hold)
        self.proxy = self._tcp("127.0.0.1", 0, self._proxy)
        self.http = self._tcp("127.0.0.1", 11434, self._http, fallback=True)
        self.dns_addr, self.dns_answer = self._dns()
        self.plain = self._tcp(self.dns_answer, 0, self._hold)

    def _serve(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _tcp(
        self, host: str, port: int, handler, family: int = socket.AF_INET, fallback: bool = False
    ) -> int:
        srv = socket.socket(family, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            srv.bind((host, port))
        except OSError:
            if not fallback:
                raise
            srv.bind((host, 0))
        srv.listen(16)
        srv.settimeout(0.2)
        self._held.append(srv)
        self._serve(self._accept, srv, handler)
        return srv.getsockname()[1]

    def _accept(self, srv: socket.socket, handler) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(5)
            self._serve(self._guard, handler, conn)

    @staticmethod
    def _guard(handler, conn) -> None:
        try:
            handler(conn)
        except (OSError, ssl.SSLError):
            conn.close()

    def _hold(self, conn: socket.socket) -> None:
        self._held.append(conn)

    def _proxy(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096) or b"\r\n\r\n"
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._held.append(conn)

    def _http(self, conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        self._held.append(conn)

    def _dns(self) -> tuple[str, str]:
        for last in range(2, 40):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((f"127.0.0.{last}", 53))
            except OSError:
                sock.close()
                continue
            sock.settimeout(0.2)
            self._held.append(sock)
            answer = f"127.0.0.{last + 50}"
            self._serve(self._answer, sock, answer)
            return f"127.0.0.{last}", answer
        raise RuntimeError("no loopback address free for a DNS responder on port 53")

    def _answer(self, sock: socket.socket, address: str) -> None:
        while not self._stop.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            time.sleep(0.2)  # an upstream resolver's latency: the asking socket is still open then
            ask = DNS(query)
            name = ask.qd[0].qname
            reply = DNS(
                id=ask.id,
                qr=1,
                rd=1,
                ra=1,
                qd=ask.qd,
                an=[
                    DNSRR(rrname=name, type="CNAME", rdata="edge.groq.test", ttl=30),
                    DNSRR(rrname="edge.groq.test", type="A", rdata=address, ttl=30),
                ],
            )
            sock.sendto(bytes(reply), peer)

    def close(self) -> None:
        self._stop.set()
        for sock in self._held:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2)


CLIENT_SCRIPT = r"""
import json, os, socket, ssl, struct, sys, time
cfg = json.loads(sys.argv[1])
keep = []
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def hello(sni):
    bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    try:
        ctx.wrap_bio(bio_in, bio_out, server_hostname=sni).do_handshake()
    except ssl.SSLWantReadError:
        pass
    return bio_out.read()

def tcp(host, port):
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    keep.append(s)
    return s

keep.append(ctx.wrap_socket(tcp("127.0.0.1", cfg["tls"]), server_hostname="api.openai.com"))
keep.append(ctx.wrap_socket(tcp("::1", cfg["tls6"]), server_hostname="api.anthropic.com"))

split = tcp("127.0.0.1", cfg["hold"])
data = hello("generativelanguage.googleapis.com")
split.sendall(data[:100])
time.sleep(0.05)
split.sendall(data[100:])

q = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q.settimeout(5)
q.connect((cfg["dns"], 53))
name = b"".join(bytes([len(p)]) + p for p in b"api.groq.com".split(b".")) + b"\0"
q.send(struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + name + b"\0\1\0\1")
answer = q.recv(4096)
q.close()
tcp(socket.inet_ntoa(answer[-4:]), cfg["plain"])

p = tcp("127.0.0.1", cfg["proxy"])
p.sendall(b"CONNECT api.mistral.ai:443 HTTP/1.1\r\nHost: api.mistral.ai:443\r\n\r\n")
p.recv(4096)
p.sendall(hello("api.mistral.ai"))

h = tcp("127.0.0.1", cfg["http"])
h.sendall(b"POST /api/chat HTTP/1.1\r\nHost: localhost:%d\r\nContent-Length: 2\r\n\r\n{}" % cfg["http"])
h.recv(4096)

print(json.dumps({"pid": os.getpid()}), flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def servers(certificate) -> Iterator[Servers]:
    running = Servers(certificate)
    yield running
    running.close()


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def catalog(runtime_port: int):
    hosts = {
        "api.openai.com": "openai",
        "api.anthropic.com": "anthropic",
        "api.groq.com": "groq",
        "api.mistral.ai": "mistral",
        "generativelanguage.googleapis.com": "google",
    }
    return lambda host, port: hosts.get(host) or ("ollama" if port == runtime_port else None)


@needs_root
def test_live_capture_attributes_each_call_to_the_calling_process(servers):
    seen: list[NetworkRecord] = []
    sensor = NetworkSensor(
        catalog(servers.http),
        interfaces=["lo"],
        on_record=seen.append,
        tls_ports=(443, 8443, servers.hold),
        poll_s=0.5,
    )
    assert sensor.live, sensor.capabilities
    sensor.start()
    cfg = {
        "tls": servers.tls,
        "tls6": servers.tls6,
        "hold": servers.hold,
        "dns": servers.dns_addr,
        "plain": servers.plain,
        "proxy": servers.proxy,
        "http": servers.http,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    expected = {
        ("api.openai.com", servers.tls, "sni", "openai"),
        ("api.anthropic.com", servers.tls6, "sni", "anthropic"),
        ("generativelanguage.googleapis.com", servers.hold, "sni", "google"),
        ("api.groq.com", 0, "dns", "groq"),
        ("api.groq.com", servers.plain, "socket", "groq"),
        ("api.mistral.ai", 443, "connect", "mistral"),
        ("api.mistral.ai", 443, "sni", "mistral"),
        ("localhost", servers.http, "http", "ollama"),
    }
    try:
        pid = json.loads(child.stdout.readline())["pid"]

        def found() -> dict[tuple, NetworkRecord]:
            return {(r.host, r.port, r.via, r.provider): r for r in list(seen) if r.pid == pid}

        wait_for(lambda: expected <= found().keys())
        mine = found()
    finally:
        child.stdin.write("\n")
        child.stdin.close()
        child.wait(timeout=10)
        sensor.stop()
    assert expected <= mine.keys(), (sorted(expected - mine.keys()), seen)
    assert all(mine[key].process.startswith("python") for key in expected)
    assert sensor.errors == []


@needs_root
@pytest.mark.parametrize(
    "payload", [b"\x42" * 1400, b"\x17\x03\x03\x05\x73" + b"\x42" * 1395], ids=["plain", "tls-records"]
)
@pytest.mark.parametrize("tls_port", [False, True], ids=["other-port", "tls-port"])
def test_bulk_data_does_not_reach_python(payload, tls_port):
    """2,000 bulk segments reach Python neither on another port nor on a TLS port: there, candidates for
    the rest of a split ClientHello are parked in the kernel and read only while a ClientHello waits."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    sink_port = sink.getsockname()[1]
    sensor = NetworkSensor(
        lambda h, p: None, interfaces=["lo"], tls_ports=(443, sink_port) if tls_port else (443,)
    )
    reached: list[tuple[int, int]] = []  # TCP ports of every packet that passed the kernel filter
    feed = sensor._parser.feed

    def spy(data, linktype, ts, start=0, end=-1):
        ihl = (data[0] & 0x0F) * 4 if data[0] >> 4 == 4 else 40
        reached.append(
            (int.from_bytes(data[ihl : ihl + 2], "big"), int.from_bytes(data[ihl + 2 : ihl + 4], "big"))
        )
        return feed(data, linktype, ts, start, end)

    sensor._parser.feed = spy
    sensor.start()
    try:
        out = socket.create_connection(sink.getsockname())
        out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out_port = out.getsockname()[1]
        conn, _ = sink.accept()
        reader = threading.Thread(
            target=lambda: [None for _ in iter(lambda: conn.recv(1 << 16), b"")], daemon=True
        )
        reader.start()
        for _ in range(2000):
            out.sendall(payload)
        out.close()
        reader.join(timeout=10)
        conn.close()
        time.sleep(0.2)
    finally:
        sensor.stop()
        sink.close()
    ours = {out_port, sink_port}
    mine = [ports for ports in reached if set(ports) <= ours]  # other loopback traffic may pass too
    assert mine == []


@needs_root
@pytest.mark.timeout(60)
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_a_client_hello_split_back_to_back_is_read_while_bulk_data_floods_the_tls_port(family):
    """The start of a split ClientHello comes through the hello filter, its rest (sent right after, no
    pause) through the parked rest sockets -- also after they were renewed under a flood of 1,000-byte
    non-TLS segments to the same port (which reach Python only while the ClientHello waits)."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    sink = socket.socket(family)
    sink.bind((host, 0))
    sink.listen(4)
    port = sink.getsockname()[1]
    seen: list[NetworkRecord] = []
    sensor = NetworkSensor(lambda h, p: "google" if h.endswith("googleapis.com") else None,
                           interfaces=["lo"], on_record=seen.append, tls_ports=(port,))
    drains: list[threading.Thread] = []

    def accept_and_drain() -> None:
        while True:
            try:
                conn, _ = sink.accept()
            except OSError:
                return
            thread = threading.Thread(target=lambda c=conn: [None for _ in iter(lambda: c.recv(1 << 16), b"")],
                                      daemon=True)
            thread.start()
            drains.append(thread)

    threading.Thread(target=accept_and_drain, daemon=True).start()
    sensor.start()
    hello = client_hello("generativelanguage.googleapis.com", key_share=1248, sni_last=True)
    try:
        flood = socket.create_connection((host, port))
        flood.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + 3 * PARK_S  # the rest sockets are renewed meanwhile
        while time.monotonic() < deadline:
            flood.sendall(b"\x42" * 1000)
            time.sleep(0.0005)
        caller = socket.create_connection((host, port))
        caller.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        caller_port = caller.getsockname()[1]
        caller.sendall(hello[:700])
        caller.sendall(hello[700:])
        for _ in range(200):
            flood.sendall(b"\x42" * 1000)

        def mine() -> list[tuple[str, int | None]]:  # other loopback traffic may carry ClientHellos too
            return [(r.host, r.pid) for r in list(seen) if r.via == "sni" and r.sport == caller_port]

        wait_for(mine, 10)
        flood.close()
        caller.close()
    finally:
        sensor.stop()
        sink.close()
    assert mine() == [("generativelanguage.googleapis.com", os.getpid())]


@needs_root
def test_sniff_returns_what_it_saw_in_the_window(servers):
    sensor = NetworkSensor(catalog(servers.http), interfaces=["lo"])

    def call() -> None:
        time.sleep(0.3)
        conn = socket.create_connection(("127.0.0.1", servers.hold))
        conn.sendall(python_client_hello("api.openai.com"))
        time.sleep(1.0)
        conn.close()

    thread = threading.Thread(target=call)
    thread.start()
    records = sensor.sniff(1.0)
    thread.join()
    assert [r.host for r in records if r.via == "sni" and r.pid == os.getpid()] == ["api.openai.com"]


@needs_root
def test_the_scapy_backend_of_other_systems_reads_the_same_events():
    capture = ScapyCapture(capture_filter(), ["lo"])
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        with socket.create_connection(srv.getsockname()) as conn:
            conn.sendall(python_client_hello("api.openai.com"))
            mine = conn.getsockname()[1]
            parser, events = PacketParser(), []
            deadline = time.monotonic() + 5
            while not events and time.monotonic() < deadline:
                read = [parser.feed(d, lt, ts) for d, lt, ts in capture.read()]
                events = [
                    e for e in read if e is not None and e.flow.sport == mine
                ]  # lo has other traffic too
                time.sleep(0.02)
    finally:
        capture.close()
        srv.close()
    assert [e.sni for e in events] == ["api.openai.com"]


@needs_root
def test_a_process_without_cap_net_raw_falls_back_and_says_why():
    script = (
        "import json; from endpoint.scan.sensors.network import NetworkSensor;"
        "s = NetworkSensor(lambda h, p: None, watch_hosts=['api.openai.com'], resolve=lambda h: []);"
        "print(json.dumps({'live': s.live, 'capabilities': s.capabilities, 'records': len(s.sniff(0.3))}))"
    )
    drop = ["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-all", "--"]
    done = subprocess.run(
        [*drop, sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["live"] is False
    assert any("without CAP_NET_RAW" in line for line in result["capabilities"]), result["capabilities"]
    assert any(
        line.startswith("cannot see: TLS server names (SNI), DNS queries") for line in result["capabilities"]
    )
    assert (
        done.stderr.count("network sensor: no packet capture: running as root but without CAP_NET_RAW") == 1
    )


# --- the fallback: socket table and forward resolution (no root needed) -------------------------


@pytest.fixture
def no_capture(monkeypatch):
    def refuse(expr, interfaces, rest_expr=""):
        raise CaptureUnavailable("libpcap is not installed, so the kernel packet filter cannot be compiled")

    monkeypatch.setattr(network, "open_capture", refuse)
    monkeypatch.setattr(network, "_SAID", set())


@pytest.fixture
def provider_listener() -> Iterator[tuple[str, int]]:
    """A listener on a second loopback address, standing in for a provider's server."""
    srv = socket.socket()
    srv.bind(("127.0.0.77", 0))
    srv.listen(4)
    yield srv.getsockname()
    srv.close()


def fake_resolver(table: dict[str, list[str]]):
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return table[host]

    return resolve


def test_without_capture_the_sensor_says_once_what_it_cannot_see(no_capture, caplog):
    caplog.set_level(logging.WARNING, logger="agentroster.network")

    def make() -> NetworkSensor:
        return NetworkSensor(
            lambda h, p: None, watch_hosts=["api.openai.com", "*.openai.azure.com"], resolve=fake_resolver({})
        )

    first, second = make(), make()
    assert not first.live and not second.live
    lines = first.capabilities
    assert (
        lines[0]
        == "no packet capture: libpcap is not installed, so the kernel packet filter cannot be compiled"
    )
    assert any(
        "cannot see: TLS server names (SNI), DNS queries and answers, proxy CONNECT targets" in ln
        for ln in lines
    )
    assert any("named only if it is one of the 1 catalog hosts" in ln for ln in lines)
    assert len([r for r in caplog.records if "no packet capture" in r.getMessage()]) == 1
    assert first.errors == [
        "no packet capture: libpcap is not installed, so the kernel packet filter cannot be compiled"
    ]


def test_fallback_names_connections_by_forward_resolving_catalog_hosts(no_capture, provider_listener):
    address, port = provider_listener
    sensor = NetworkSensor(
        lambda h, p: {"api.openai.com": "openai"}.get(h),
        watch_hosts=["api.openai.com", "api.example.test"],
        resolve=fake_resolver({"api.openai.com": [address]}),
    )
    with socket.create_connection((address, port)) as conn:
        records = sensor.socket_table_records()
        local_port = conn.getsockname()[1]
    (record,) = [r for r in records if r.sport == local_port]
    assert (record.host, record.port, record.via, record.provider, record.pid) == (
        "api.openai.com",
        port,
        "socket",
        "openai",
        os.getpid(),
    )


def test_fallback_sniff_sees_a_connection_opened_during_the_window(no_capture, provider_listener):
    address, port = provider_listener
    sensor = NetworkSensor(
        lambda h, p: "openai",
        watch_hosts=["api.openai.com"],
        resolve=fake_resolver({"api.openai.com": [address]}),
    )

    def call() -> None:
        time.sleep(0.2)
        with socket.create_connection((address, port)):
            time.sleep(1.2)

    thread = threading.Thread(target=call)
    thread.start()
    records = sensor.sniff(1.0)
    thread.join()
    # other tests in this process may hold loopback sockets of their own: look only at this address
    assert [(r.host, r.via, r.count) for r in records
            if r.pid == os.getpid() and r.host == "api.openai.com"] == [("api.openai.com", "socket", 1)]


def test_socket_table_records_knows_local_runtimes_by_port(provider_listener):
    address, port = provider_listener
    with socket.create_connection((address, port)):
        records = socket_table_records(lambda h, p: "ollama" if p == port else None)
    assert ("ollama", address, "socket") in {
        (r.provider, r.host, r.via) for r in records if r.pid == os.getpid()
    }


def test_resolve_hosts_skips_wildcards_keeps_ip_literals_and_survives_failures(monkeypatch):
    monkeypatch.setattr(resolution, "RESOLVE_TIMEOUT_S", 0.5)
    hang = threading.Event()

    def resolve(host: str) -> list[str]:
        if host == "slow.test":
            hang.wait(5)
        if host == "broken.test":
            raise OSError("no network")
        return ["192.0.2.1", "::ffff:192.0.2.2"]

    names = resolve_hosts(
        ["API.OpenAI.com.", "*.openai.azure.com", "10.0.0.9", "slow.test", "broken.test"], resolve
    )
    hang.set()
    assert names == {"192.0.2.1": "api.openai.com", "192.0.2.2": "api.openai.com", "10.0.0.9": "10.0.0.9"}


def test_socket_table_records_leave_out_the_server_side_of_accepted_connections(provider_listener):
    """A connection this machine accepted names a client, not an endpoint it called."""
    address, _ = provider_listener
    srv = socket.socket()
    srv.bind((address, 0))
    srv.listen(1)
    server_port = srv.getsockname()[1]
    names = {address: "api.openai.com", "127.0.0.78": "client.example.test"}
    with srv, socket.socket() as out:
        out.bind(("127.0.0.78", 0))
        out.connect((address, server_port))
        client_port = out.getsockname()[1]
        accepted, _ = srv.accept()
        with accepted:
            records = socket_table_records(lambda h, p: None, names)
    mine = {(r.host, r.sport, r.port) for r in records if r.pid == os.getpid()}
    assert mine == {("api.openai.com", client_port, server_port)}


# --- attribution of one socket (Linux; no root needed for this process's own sockets) -----------

linux_only = pytest.mark.skipif(not SocketOwners.available(), reason="/proc socket tables are Linux's")


def _owners(lookup: str) -> SocketOwners:
    owners = SocketOwners()
    if lookup == "proc":
        owners._diag = False  # as on a kernel without sock_diag: the /proc/net tables
    return owners


@linux_only
@pytest.mark.parametrize("lookup", ["sock_diag", "proc"])
@pytest.mark.parametrize(("family", "host", "seen_as"), [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
    (socket.AF_INET6, "::1", "::1"),
    (socket.AF_INET6, "::ffff:127.0.0.1", "127.0.0.1"),  # an IPv4 flow on a dual-stack socket
])
def test_socket_owners_find_the_process_behind_a_tcp_flow(lookup, family, host, seen_as):
    srv = socket.socket(family)
    srv.bind((host, 0))
    srv.listen(1)
    code = "import socket, sys, time; c = socket.create_connection((sys.argv[1], int(sys.argv[2]))); " \
           "print(c.getsockname()[1], flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code, host, str(srv.getsockname()[1])],
                             stdout=subprocess.PIPE, text=True)
    try:
        client_port = int(child.stdout.readline())
        conn, _ = srv.accept()
        owners = _owners(lookup)
        assert owners.pid_for(TCP_PROTO, seen_as, client_port, seen_as, srv.getsockname()[1]) == child.pid
        # the server side of the same flow is this process
        assert owners.pid_for(TCP_PROTO, seen_as, srv.getsockname()[1], seen_as, client_port) == os.getpid()
        conn.close()
    finally:
        child.kill()
        child.wait()
        srv.close()


@linux_only
@pytest.mark.parametrize("lookup", ["sock_diag", "proc"])
def test_socket_owners_find_connected_and_unconnected_udp_sockets(lookup):
    owners = _owners(lookup)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asked, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unbound:
        asked.connect(("127.0.0.53", 53))
        unbound.bind(("0.0.0.0", 0))
        port = asked.getsockname()[1]
        assert owners.pid_for(UDP_PROTO, "127.0.0.1", port, "127.0.0.53", 53) == os.getpid()
        port = unbound.getsockname()[1]
        assert owners.pid_for(UDP_PROTO, "127.0.0.1", port, "127.0.0.53", 53) == os.getpid()


@linux_only
@pytest.mark.parametrize("lookup", ["sock_diag", "proc"])
def test_socket_owners_know_no_owner_for_a_flow_without_a_socket(lookup):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]  # bound, never connected: no flow from it
    assert _owners(lookup).pid_for(TCP_PROTO, "127.0.0.1", free_port, "127.0.0.1", 9) is None


TCP_PROTO, UDP_PROTO = 6, 17


# --- DNS queries whose socket closed before it could be seen -------------------------------------


def _dns_pair(name: str, address: str, client_port: int):
    ask = Flow(UDP_PROTO, "127.0.0.1", client_port, "127.0.0.53", 53)
    tell = Flow(UDP_PROTO, "127.0.0.53", 53, "127.0.0.1", client_port)
    return (DnsMessage(time.time(), ask, 0x4242, False, name, 1),
            DnsMessage(time.time(), tell, 0x4242, True, name, 1, (DnsAnswer(name, 1, address),)))


def _hello_from(conn: socket.socket, name: str):
    (src, sport), (dst, dport) = conn.getsockname()[:2], conn.getpeername()[:2]
    return TlsClientHello(time.time(), Flow(TCP_PROTO, src, sport, dst, dport), name)


@pytest.fixture
def quick_orphans(monkeypatch):
    monkeypatch.setattr(network, "ATTRIBUTE_WAIT_S", 0.0)
    monkeypatch.setattr(network, "REFRESH_MIN_S", 0.0)


@pytest.mark.parametrize("order", ["call after the query gives up", "call before the query gives up"])
def test_a_dns_query_whose_socket_closed_unseen_goes_to_the_process_that_calls_the_name(
    quick_orphans, provider_listener, order
):
    address, port = provider_listener
    seen: list[NetworkRecord] = []
    sensor = NetworkSensor(lambda h, p: "openai", on_record=seen.append, capture=False)
    query, answer = _dns_pair("api.openai.com", address, 1)  # no socket has local port 1: it closed
    with socket.create_connection((address, port)) as conn:
        if order == "call before the query gives up":
            sensor._on_event(query)
            sensor._on_event(answer)
            sensor._on_event(_hello_from(conn, "api.openai.com"))
            sensor._retry_waiting()
        else:
            sensor._on_event(query)
            sensor._on_event(answer)
            sensor._retry_waiting()
            assert [r.via for r in seen] == []  # parked, not emitted without a process
            sensor._on_event(_hello_from(conn, "api.openai.com"))
    assert {(r.host, r.via, r.pid) for r in seen} == {
        ("api.openai.com", "dns", os.getpid()), ("api.openai.com", "sni", os.getpid())
    }


def test_a_dns_query_nobody_calls_the_name_of_is_reported_without_a_process(quick_orphans, monkeypatch):
    monkeypatch.setattr(network, "DNS_LINK_S", 0.0)
    seen: list[NetworkRecord] = []
    sensor = NetworkSensor(lambda h, p: "openai", on_record=seen.append, capture=False)
    for event in _dns_pair("api.openai.com", "192.0.2.7", 1):
        sensor._on_event(event)
    sensor._retry_waiting()
    sensor._release_orphans()
    assert [(r.host, r.via, r.pid) for r in seen] == [("api.openai.com", "dns", None)]
