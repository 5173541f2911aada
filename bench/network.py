"""Benchmark of the network sensor: the capture-file path against tshark, and the live sensor's CPU.

    .venv/bin/python bench/network.py                 # 200,000-packet pcap, 10 s per live run
    .venv/bin/python bench/network.py --no-live       # the pcap figures only (no root needed)

1. A 200,000-packet pcap of mixed traffic (DNS, TLS handshakes with some ClientHellos split across
   segments, plain HTTP, bulk downloads, ACKs; IPv4 and IPv6) is written by a fast writer here and
   cached under .cache/bench/. ``read_pcap`` -> records runs in a fresh process, end to end, against
   ``tshark -r FILE -Y 'dns || tls.handshake.type == 1' -T fields -e dns.qry.name -e
   tls.handshake.extensions_server_name``; the ratio of packets/s is printed (budget >= 1.0; DESIGN.md
   asks >= 3). Both must find the same names. The real CLI, ``agentroster scan --pcap FILE --json``, is
   timed the same way, end to end with its start-up: once as a whole scan of this machine plus the
   capture, once with ``--no-processes --no-files`` (the capture alone); its ratios are printed too.
2. The live sensor runs in its own process in a fresh network namespace (only ``lo``, so nothing else
   on this machine reaches it) while bulk TCP flows past it at >= 2,000 packets/s; its CPU is printed
   as a percentage of one core (budget <= 1 %). A last run opens 10 TLS connections a second, each
   attributed to its process: the cost of attribution.

Figures are printed, never asserted. All live traffic is on 127.0.0.1 inside the namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
PYTHON = sys.executable
WRITER_VERSION = 2  # bump when the generated traffic changes, to regenerate the cached file

PROVIDER_HOSTS = [
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "api.mistral.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.deepseek.com",
    "api.cohere.com",
    "openrouter.ai",
    "api.fireworks.ai",
    "bedrock-runtime.us-east-1.amazonaws.com",
    "copilot-proxy.githubusercontent.com",
]
WEB_HOSTS = [
    f"{w}.{d}"
    for w in ("www", "cdn", "static", "img", "api", "assets", "fonts", "login")
    for d in ("example.com", "example.net", "example.org", "news.test", "shop.test", "video.test")
]
MSS = 1460


# --- a fast pcap writer -------------------------------------------------------------------------


class CaptureWriter:
    """Ethernet frames with IPv4/IPv6 and TCP/UDP headers packed by hand, into a pcap file."""

    def __init__(self, path: Path) -> None:
        self._out = path.open("wb")
        self._out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self._chunks: list[bytes] = []
        self.packets = 0
        self.ts = 1_700_000_000.0

    def frame(self, src: bytes, dst: bytes, proto: int, l4: bytes) -> None:
        if len(src) == 4:
            ip = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self.packets & 0xFFFF, 0x4000, 64, proto, 0, src, dst
            )
            eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
        else:
            ip = struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, src, dst)
            eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd"
        data = eth + ip + l4
        self.ts += 0.0001
        sec = int(self.ts)
        self._chunks.append(
            struct.pack("<IIII", sec, int((self.ts - sec) * 1e6), len(data), len(data)) + data
        )
        self.packets += 1
        if len(self._chunks) >= 4096:
            self._out.write(b"".join(self._chunks))
            self._chunks.clear()

    def tcp(
        self,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
    ) -> None:
        header = struct.pack(
            "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0
        )
        self.frame(src, dst, 6, header + payload)

    def udp(self, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> None:
        self.frame(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)

    def close(self) -> None:
        self._out.write(b"".join(self._chunks))
        self._out.close()


SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def client_hello(rng: random.Random, sni: str, big: bool) -> bytes:
    """A TLS 1.3 ClientHello; ``big`` adds a post-quantum-sized key share so it spans two segments,
    with the server name after it half of the time (as browsers that shuffle extensions do)."""
    name = sni.encode()
    server_name = _ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    share = 1216 + 32 if big else 32
    exts = [
        _ext(43, b"\x04\x03\x04\x03\x03"),
        _ext(10, b"\x00\x04\x00\x1d\x00\x17"),
        _ext(13, b"\x00\x06\x04\x03\x08\x04\x04\x01"),
        _ext(16, b"\x00\x03\x02h2"),
        _ext(51, struct.pack("!HHH", share + 4, 0x11EC, share) + rng.randbytes(share)),
    ]
    exts.insert(len(exts) if big and rng.random() < 0.5 else 0, server_name)
    body = (
        b"\x03\x03"
        + rng.randbytes(32)
        + b"\x20"
        + rng.randbytes(32)
        + b"\x00\x06\x13\x01\x13\x02\x13\x03\x01\x00"
    )
    ext_bytes = b"".join(exts)
    body += struct.pack("!H", len(ext_bytes)) + ext_bytes
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def dns_message(txid: int, name: str, answers: list[bytes] | None) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    flags, count = (0x8180, len(answers)) if answers is not None else (0x0100, 0)
    out = struct.pack("!HHHHHH", txid, flags, 1, count, 0, 0) + qname + b"\x00\x01\x00\x01"
    for address in answers or []:
        out += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + address
    return out


class Traffic:
    """Generates flows until the writer holds the wanted number of packets; remembers the names."""

    def __init__(self, writer: CaptureWriter, seed: int = 7) -> None:
        self.w = writer
        self.rng = random.Random(seed)
        self.bulk = b"\x17\x03\x03\x40\x11" + self.rng.randbytes(MSS - 5)
        self.body = self.rng.randbytes(MSS)
        self.names: set[str] = set()

    def client(self) -> tuple[bytes, bytes]:
        if self.rng.random() < 0.1:
            return socket.inet_pton(
                socket.AF_INET6, f"2001:db8::{self.rng.randrange(1, 200):x}"
            ), socket.inet_pton(socket.AF_INET6, f"2001:db8:ffff::{self.rng.randrange(1, 60):x}")
        return bytes([10, 0, self.rng.randrange(1, 4), self.rng.randrange(2, 250)]), bytes(
            [104, 18, self.rng.randrange(256), self.rng.randrange(1, 255)]
        )

    def flow(self) -> None:
        rng, w = self.rng, self.w
        host = rng.choice(PROVIDER_HOSTS if rng.random() < 0.3 else WEB_HOSTS)
        client, server = self.client()
        sport = rng.randrange(32768, 61000)
        if rng.random() < 0.4 and len(client) == 4:
            resolver, txid = bytes([10, 0, 0, 53]), rng.randrange(65536)
            w.udp(client, resolver, sport, 53, dns_message(txid, host, None))
            w.udp(resolver, client, 53, sport, dns_message(txid, host, [server]))
            self.names.add(host)
        tls = rng.random() < 0.85
        dport = 443 if tls else 80
        cseq, sseq = rng.randrange(1 << 32), rng.randrange(1 << 32)
        w.tcp(client, server, sport, dport, cseq, 0, SYN)
        w.tcp(server, client, dport, sport, sseq, cseq + 1, SYN | ACK)
        cseq, sseq = cseq + 1, sseq + 1
        w.tcp(client, server, sport, dport, cseq, sseq, ACK)
        if tls:
            cseq = self.send(
                client, server, sport, dport, cseq, sseq, client_hello(rng, host, rng.random() < 0.25)
            )
            self.names.add(host)
            server_flight = b"\x16\x03\x03\x00\x7a\x02" + self.body[: MSS * 2]
            sseq = self.send(server, client, dport, sport, sseq, cseq, server_flight)
            cseq = self.send(
                client,
                server,
                sport,
                dport,
                cseq,
                sseq,
                b"\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x35" + self.body[:53],
            )
        else:
            cseq = self.send(
                client,
                server,
                sport,
                dport,
                cseq,
                sseq,
                f"GET /page/{rng.randrange(999)} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode(),
            )
        for i in range(min(int(rng.expovariate(1 / 40)), 400)):  # bulk download, an ACK every 2 segments
            w.tcp(
                server,
                client,
                dport,
                sport,
                sseq,
                cseq,
                ACK | (PSH if i % 8 == 7 else 0),
                self.bulk if tls and i % 11 == 0 else self.body,
            )
            sseq += MSS
            if i % 2:
                w.tcp(client, server, sport, dport, cseq, sseq, ACK)
        w.tcp(client, server, sport, dport, cseq, sseq, FIN | ACK)
        w.tcp(server, client, dport, sport, sseq, cseq + 1, FIN | ACK)
        w.tcp(client, server, sport, dport, cseq + 1, sseq + 1, ACK)

    def send(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, data: bytes) -> int:
        for at in range(0, len(data), MSS):
            chunk = data[at : at + MSS]
            self.w.tcp(src, dst, sport, dport, seq, ack, ACK | (PSH if at + MSS >= len(data) else 0), chunk)
            seq += len(chunk)
        return seq


def capture_file(packets: int) -> tuple[Path, set[str]]:
    """The cached benchmark pcap (written if missing) and the names it holds."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"network-{packets}-v{WRITER_VERSION}.pcap"
    names_path = path.with_suffix(".names.json")
    if path.exists() and names_path.exists():
        return path, set(json.loads(names_path.read_text()))
    started = time.perf_counter()
    writer = CaptureWriter(path.with_suffix(".tmp"))
    traffic = Traffic(writer)
    while writer.packets < packets:
        traffic.flow()
    writer.close()
    path.with_suffix(".tmp").rename(path)
    names_path.write_text(json.dumps(sorted(traffic.names)))
    print(
        f"wrote {path} ({writer.packets:,} packets, {path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s"
    )
    return path, traffic.names


# --- the pcap path against tshark ---------------------------------------------------------------

READ_SCRIPT = """
import json, sys, time
started = time.perf_counter()
from endpoint.scan.sensors.pcap import read_pcap
reader = read_pcap(sys.argv[1])
records = list(reader)
print(json.dumps({"seconds": time.perf_counter() - started, "packets": reader.packets,
                  "records": len(records), "names": sorted({r.host for r in records}), "errors": reader.errors}))
"""


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        raise RuntimeError(f"{Path(argv[0]).name} exited {done.returncode}: {last[:200]}")
    return took, done.stdout


def median_run(argv: list[str], runs: int) -> tuple[float, str]:
    results = [timed(argv) for _ in range(runs)]
    walls = [r[0] for r in results]
    return statistics.median(walls), results[walls.index(statistics.median(walls)) if runs % 2 else 0][1]


def bench_pcap(path: Path, names: set[str], packets: int, runs: int) -> dict[str, object]:
    ours_wall, out = median_run([PYTHON, "-c", READ_SCRIPT, str(path)], runs)
    ours = json.loads(out)
    found = set(ours["names"])
    result: dict[str, object] = {
        "packets": ours["packets"],
        "ours_wall_s": round(ours_wall, 3),
        "ours_in_process_s": round(ours["seconds"], 3),
        "ours_pps": round(packets / ours_wall),
        "ours_names": len(found),
        "expected_names": len(names),
        "ours_missed": sorted(names - found)[:5],
        "ours_errors": ours["errors"],
    }
    tshark = shutil.which("tshark")
    if tshark:
        argv = [
            tshark,
            "-r",
            str(path),
            "-Y",
            "dns || tls.handshake.type == 1",
            "-T",
            "fields",
            "-e",
            "dns.qry.name",
            "-e",
            "tls.handshake.extensions_server_name",
        ]
        their_wall, their_out = median_run(argv, runs)
        theirs = {part for line in their_out.splitlines() for part in line.split("\t") if part}
        result.update(
            {
                "tshark_wall_s": round(their_wall, 3),
                "tshark_pps": round(packets / their_wall),
                "ratio": round(their_wall / ours_wall, 2),
                "tshark_names": len(theirs),
                "tshark_found_we_missed": sorted(theirs - found)[:5],
            }
        )
    else:
        result["tshark"] = "not installed (apt install tshark)"
    cli = Path(PYTHON).with_name("agentroster")
    if cli.exists():
        for key, extra in (("cli", []), ("cli_pcap_only", ["--no-processes", "--no-files"])):
            try:
                wall, out = median_run([str(cli), "scan", "--pcap", str(path), "--json", *extra], runs)
            except RuntimeError as exc:
                result[key] = f"not measured: {exc}"
                continue
            # a capture has no processes: only provider calls make (unattributed) sightings
            hosts = {e["host"] for s in json.loads(out)["sightings"] for e in s["endpoints"]}
            providers = names & set(PROVIDER_HOSTS)
            result.update({f"{key}_wall_s": round(wall, 3), f"{key}_pps": round(packets / wall),
                           f"{key}_missed": sorted(providers - hosts)[:5]})
            if "tshark_wall_s" in result:
                result[f"{key}_ratio"] = round(float(result["tshark_wall_s"]) / wall, 2)  # type: ignore[arg-type]
    else:
        result["cli"] = "not measured: no agentroster on PATH in .venv/bin"
    return result


# --- the live sensor's CPU ----------------------------------------------------------------------

SENSOR_SCRIPT = """
import json, sys
from endpoint.scan.sensors.network import NetworkSensor
sensor = NetworkSensor(lambda h, p: None, interfaces=["lo"], tls_ports=(443, 8443))
sensor.start()
print("ready", flush=True)
sys.stdin.readline()
sensor.stop()
print(json.dumps({"packets": sensor.packets, "events": sensor.events, "errors": sensor.errors}), flush=True)
"""

TRAFFIC_SCRIPT = r"""
import socket, ssl, sys, threading, time
kind, port, payload, rate, seconds = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
sink = socket.socket()
sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sink.bind(("127.0.0.1", port))
sink.listen(128)

def drain(conn):
    for _ in iter(lambda: conn.recv(1 << 16), b""):
        pass
    conn.close()

def accept():
    while True:
        try:
            conn, _ = sink.accept()
        except OSError:
            return
        threading.Thread(target=drain, args=(conn,), daemon=True).start()

threading.Thread(target=accept, daemon=True).start()
ctx = ssl.create_default_context()
started, sent = time.monotonic(), 0
if kind == "bulk":  # one connection carrying `rate` segments/s of `payload`
    out = socket.create_connection(("127.0.0.1", port))
    out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (now := time.monotonic()) - started < seconds:
        for _ in range(min(max(1, rate // 100), int((now - started) * rate) - sent)):
            out.send(payload)
            sent += 1
        time.sleep(0.005)
    out.close()
else:  # `rate` new connections/s, each opening with a ClientHello naming a provider
    while (now := time.monotonic()) - started < seconds:
        for _ in range(int((now - started) * rate) - sent):
            bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(bio_in, bio_out, server_hostname="api.openai.com")
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(bio_out.read())
            time.sleep(0.002)
            conn.close()
            sent += 1
        time.sleep(0.005)
print(sent)
"""


def lo_packets(pid: int) -> int:
    """Packets through ``lo`` in the network namespace of ``pid``."""
    for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            return int(rest.split()[1])
    return 0


def _netns(name: str, *, delete: bool = False) -> None:
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    if not delete:
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)


def bench_live(seconds: float, rate: int) -> list[dict[str, object]]:
    """Each run in a fresh network namespace whose only interface is ``lo``: the sensor sees the
    generated traffic and nothing else that runs on this machine."""
    import psutil

    variants = [
        ("bulk TCP, plain port", "bulk", 19000, bytes(range(256)) * 5 + b"\x00" * 120, rate),
        ("HTTPS-like bulk (TLS records) to :443", "bulk", 443, b"\x17\x03\x03\x05\x73" + bytes(1395), rate),
        ("full-size upload segments to :443", "bulk", 443, b"\x42" * 1400, rate),
        ("worst case: 1,000-byte non-record to :443", "bulk", 443, b"\x42" * 1000, rate),
        ("10 new TLS connections/s, each attributed", "hello", 443, b"", 10),
    ]
    ns = f"ar-bench-{os.getpid()}"
    inside = ["ip", "netns", "exec", ns]
    results = []
    try:
        for label, kind, port, payload, pace in variants:
            _netns(ns)
            sensor = subprocess.Popen(
                [*inside, PYTHON, "-c", SENSOR_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                cwd=REPO,
            )
            try:
                assert sensor.stdout is not None and sensor.stdin is not None
                if sensor.stdout.readline().strip() != "ready":
                    raise RuntimeError("the sensor did not start (live capture needs root)")
                time.sleep(1.0)
                proc = psutil.Process(sensor.pid)
                cpu0, lo0, t0 = sum(proc.cpu_times()[:2]), lo_packets(sensor.pid), time.monotonic()
                subprocess.run(
                    [*inside, PYTHON, "-c", TRAFFIC_SCRIPT, kind, str(port), payload.hex(), str(pace), str(seconds)],
                    check=True, capture_output=True, cwd=REPO,
                )
                cpu1, lo1, t1 = sum(proc.cpu_times()[:2]), lo_packets(sensor.pid), time.monotonic()
                sensor.stdin.write("\n")
                sensor.stdin.flush()
                stats = json.loads(sensor.stdout.readline())
            finally:
                sensor.kill() if sensor.poll() is None else None
                sensor.wait(timeout=10)
            results.append(
                {
                    "traffic": label,
                    "lo_pps": round((lo1 - lo0) / (t1 - t0)),
                    "sensor_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
                    "cpu_resolution_pct": round(100 * 0.01 / (t1 - t0), 3),  # one 10 ms clock tick
                    "reached_python": stats["packets"],
                    "events": stats["events"],
                }
            )
    finally:
        _netns(ns, delete=True)
    return results


def _cpu(row: dict[str, object]) -> str:
    pct, tick = float(row["sensor_cpu_pct"]), float(row["cpu_resolution_pct"])  # type: ignore[arg-type]
    return f"< {tick:g}" if pct < tick else f"{pct:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per tool; the median is reported")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each live run")
    parser.add_argument("--rate", type=int, default=2000, help="bulk data segments per second")
    parser.add_argument("--no-live", action="store_true", help="skip the live CPU measurement")
    args = parser.parse_args()
    path, names = capture_file(args.packets)
    pcap = bench_pcap(path, names, args.packets, args.runs)
    print(f"\npcap reader, {pcap['packets']:,} packets ({path.name}), median of {args.runs} fresh processes:")
    print(
        f"  read_pcap -> records : {pcap['ours_wall_s']:>7} s  {pcap['ours_pps']:>10,} packets/s  "
        f"(in-process {pcap['ours_in_process_s']} s); names {pcap['ours_names']}/{pcap['expected_names']}"
    )
    if "tshark_wall_s" in pcap:
        print(
            f"  tshark -Y ... -T fields: {pcap['tshark_wall_s']:>7} s  {pcap['tshark_pps']:>10,} packets/s; "
            f"names {pcap['tshark_names']}"
        )
        print(f"  ratio, parser only (read_pcap / tshark packets/s): {pcap['ratio']}x   [budget >= 1.0; DESIGN.md >= 3]")
    for key, label in (("cli", "agentroster scan --pcap (whole scan)"), ("cli_pcap_only", "... --no-processes --no-files")):
        if f"{key}_wall_s" in pcap:
            print(
                f"  {label:<37}: {pcap[f'{key}_wall_s']:>7} s  {pcap[f'{key}_pps']:>10,} packets/s  "
                f"ratio {pcap.get(f'{key}_ratio')}x (end to end, start-up included); provider hosts missed: "
                f"{pcap[f'{key}_missed'] or 'none'}"
            )
        else:
            print(f"  {label}: {pcap.get(key)}")
    live: list[dict[str, object]] = []
    if not args.no_live:
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            print("\nlive sensor: skipped (needs root for packet capture)")
        else:
            live = bench_live(args.seconds, args.rate)
            print(f"\nlive sensor on lo, {args.seconds:g} s per run, {args.rate:,} data segments/s (+ ACKs):")
            for row in live:
                print(
                    f"  {row['traffic']:<42} lo {row['lo_pps']:>6,} packets/s  sensor CPU {_cpu(row):>6} % "
                    f"of one core  (packets reaching Python: {row['reached_python']})   [budget <= 1 %]"
                )
    print("\n" + json.dumps({"pcap": pcap, "live": live}))


if __name__ == "__main__":
    main()
