"""Collector ingest benchmark: a simulated fleet sends delta reports to a real ``agentroster server``.

For each backend (SQLite in a fresh data dir; PostgreSQL in a throw-away cluster started the same way
as the tests start theirs, ``synchronous_commit=off``, fsync on) this starts the collector as a
subprocess on 127.0.0.1 with 2 uvicorn workers (``--sqlite-workers``, ``--pg-workers``), enrolls ``--devices``
devices, sends each one snapshot (not timed), then times ``--reports`` delta reports sent by
``--clients`` client processes over keep-alive HTTP, and prints reports/s and p50/p99 latency.

Each device holds 24+ sightings built like ``agentroster scan --json`` output: coding agents with 2-5
MCP server children, a local runtime, sometimes an unknown script. Each delta report carries 20
sightings (``--size``); 10 % of them (``--change``) are material changes (an agent appears or goes,
a process starts or stops, a new endpoint), the rest refresh last_seen and endpoint counters. Bodies
are built before the clock starts, so the clients spend their time on HTTP only.

    .venv/bin/python bench/ingest.py                    # both backends
    .venv/bin/python bench/ingest.py --backend sqlite --devices 400 --reports 20000

The budget (docs/collector.md): >= 1,000 reports/s on a 2-core machine for at least one backend.
Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "console" / "server"))

import fleet  # noqa: E402
import servers  # noqa: E402

Job = tuple[str, bytes]  # (device key, report body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--reports", type=int, default=12000, help="delta reports to time (in total)")
    parser.add_argument("--clients", type=int, default=6, help="client processes, one connection each")
    parser.add_argument("--size", type=int, default=20, help="sightings per delta report")
    parser.add_argument("--change", type=float, default=0.1, help="share of material changes per report")
    parser.add_argument("--pg-workers", type=int, default=2, help="uvicorn workers on PostgreSQL")
    parser.add_argument("--sqlite-workers", type=int, default=2, help="uvicorn workers on SQLite (one writes at a time)")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(f"fleet: {args.devices} devices, {args.reports} delta reports of {args.size} sightings "
          f"({args.change:.0%} material changes), {args.clients} client processes")
    for backend in backends:
        run_backend(backend, args)
    return 0


def run_backend(backend: str, args: argparse.Namespace) -> None:
    cluster = None
    with tempfile.TemporaryDirectory(prefix="agentroster-bench-") as tmp:
        if backend == "sqlite":
            url, workers = f"sqlite:///{tmp}/collector.sqlite3", args.sqlite_workers
        else:
            bindir = servers.postgres_bindir()
            if bindir is None:
                print("postgresql: skipped: no PostgreSQL server binaries (apt-get install postgresql)")
                return
            cluster = servers.PostgresCluster(bindir, durable=True).start()
            url, workers = cluster.create_database("bench"), args.pg_workers
        try:
            secrets = servers.provision(url)
            server = servers.CollectorProcess(url, workers=workers, log=Path(tmp) / "server.log").start()
            try:
                measure(backend, workers, server, secrets["enroll_secret"], args)
            finally:
                server.stop()
        finally:
            if cluster is not None:
                cluster.stop()


def measure(backend: str, workers: int, server: servers.CollectorProcess, enroll_secret: str,
            args: argparse.Namespace) -> None:
    sims = [fleet.SimDevice.build(i, seed=7) for i in range(args.devices)]
    keys = [enroll(server.port, enroll_secret, sim) for sim in sims]
    warm = [(key, orjson.dumps(sim.snapshot())) for key, sim in zip(keys, sims, strict=True)]
    send_all(server.port, warm)
    per_device = -(-args.reports // args.devices)
    rounds = [[(key, orjson.dumps(sim.delta(args.size, args.change))) for key, sim in zip(keys, sims, strict=True)]
              for _ in range(per_device)]
    # Client c owns the devices i with i % clients == c, so each device's reports stay in order.
    shares: list[list[Job]] = [[] for _ in range(args.clients)]
    for jobs in rounds:
        for i, job in enumerate(jobs):
            shares[i % args.clients].append(job)
    with multiprocessing.get_context("fork").Pool(args.clients) as pool:
        started = time.perf_counter()
        results = pool.starmap(send_share, [(server.port, share) for share in shares])
        wall = time.perf_counter() - started
    latencies = sorted(t for r in results for t in r[0])
    not_applied = sum(r[1] for r in results)
    total = len(latencies)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(total - 1, int(total * 0.99))] * 1000
    label = f"{backend} ({workers} worker{'s' if workers > 1 else ''})"
    print(f"{label:26} {total / wall:8.0f} reports/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
          f"{total} reports in {wall:.1f} s, {not_applied} not applied")


def enroll(port: int, enroll_secret: str, sim: fleet.SimDevice) -> str:
    body = orjson.dumps({"enroll_secret": enroll_secret, "host_identifier": sim.device_id, "device": sim.device})
    status, answer = post(http.client.HTTPConnection("127.0.0.1", port), "/api/v1/enroll", body, None)
    if status != 200:
        raise RuntimeError(f"enroll answered {status}: {answer!r}")
    return str(orjson.loads(answer)["device_key"])


def post(conn: http.client.HTTPConnection, path: str, body: bytes, key: str | None) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    conn.request("POST", path, body, headers)
    response = conn.getresponse()
    return response.status, response.read()


def send_all(port: int, jobs: list[Job]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for key, body in jobs:
        status, answer = post(conn, "/api/v1/reports", body, key)
        if status != 200:
            raise RuntimeError(f"report answered {status}: {answer!r}")


def send_share(port: int, jobs: list[Job]) -> tuple[list[float], int]:
    """Send one client's reports in order; their latencies, and how many were not applied."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    latencies: list[float] = []
    not_applied = 0
    for key, body in jobs:
        t0 = time.perf_counter()
        status, answer = post(conn, "/api/v1/reports", body, key)
        latencies.append(time.perf_counter() - t0)
        if status != 200 or not orjson.loads(answer).get("applied"):
            not_applied += 1
    return latencies, not_applied


if __name__ == "__main__":
    sys.exit(main())
