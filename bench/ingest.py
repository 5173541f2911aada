"""Collector ingest benchmark: a simulated fleet sends delta reports to a real ``agentroster server``.

For each backend (SQLite in a fresh data dir; PostgreSQL in a throw-away cluster started the same way
as the tests start theirs, ``synchronous_commit=off``, fsync on) this starts the collector as a
subprocess on 127.0.0.1 with 2 uvicorn workers (``--sqlite-workers``, ``--pg-workers``), enrolls
``--devices`` devices, sends each one snapshot (not timed), then times ``--reports`` delta reports
and prints reports/s, p50/p99 latency, and where the machine's CPU went while the clock ran: the
collector's processes, PostgreSQL's, the load generator's, and everything else on the machine.

Each device holds 24+ sightings built like ``agentroster scan --json`` output: coding agents with 2-5
MCP server children, a local runtime, sometimes an unknown script. By default each delta report is
shaped as the daemon sends one: 10 % (``--change``) of the device's sightings change materially (an
agent appears or goes with its MCP servers, a process starts or stops, a new endpoint), and the delta
carries those sightings (about 3.5, 4 KB) and the ids of the gone ones; the daemon never sends a
sighting again for its last_seen or counters alone. ``--size 20`` is a heavier shape: 20 sightings per
delta (20 KB), 10 % of them material changes, the rest refreshing last_seen and endpoint counters.

The load generator is kept lean, since it shares the machine's cores with the collector: whole HTTP
requests (headers and body) are serialised before the clock starts and inherited by ``--clients``
forked processes, each driving ``--connections`` keep-alive connections from one ``selectors`` loop
over plain sockets. Device i's reports go, in order, over connection i mod (clients x connections).

    .venv/bin/python bench/ingest.py                    # both backends
    .venv/bin/python bench/ingest.py --backend sqlite --runs 3
    .venv/bin/python bench/ingest.py --backend sqlite --size 20          # 20 sightings per delta
    .venv/bin/python bench/ingest.py --backend sqlite --size 1 --change 0   # the per-report floor
    .venv/bin/python bench/ingest.py --in-process       # where the write lock's time goes (SQLite)
    .venv/bin/python bench/ingest.py --in-process --backend postgresql   # and each statement's round trip

``--in-process`` is the profiler's view: the fleet is enrolled and snapshotted through a real collector
as above, which is then stopped; the timed deltas are applied in this process through
``ingest_store.apply_report``, prepared outside the write lock and applied in batches of ``--batch`` per
transaction as the collector's writer does. It prints this thread's CPU per report: preparing, each SQL
statement, the commit (on SQLite, writing the dirty pages to the WAL), and the rest of the apply
(Python, and what other modules write at ingest). No HTTP, so reports/s there is the write path alone.
With ``--backend postgresql`` it does the same on a throw-away cluster and prints each statement's wall
time beside its CPU: there a statement costs mostly its round trip and PostgreSQL's work.

The budget (DESIGN.md): >= 1,000 reports/s on a 2-core machine for at least one backend.
Nothing is asserted; the figures are printed (with the machine's load average, since it is shared).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import selectors
import socket
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "console" / "server"))

import fleet  # noqa: E402
import servers  # noqa: E402

REPORTS = "/api/v1/reports"
# What each forked client sends: per connection, the raw requests in order. Set before the fork, so
# the children inherit it instead of receiving it through a pipe while the clock runs.
_WORK: list[list[list[bytes]]] = []


@dataclass
class Figures:
    rate: float
    p50_ms: float
    p99_ms: float
    wall: float
    total: int
    not_applied: int
    server_cores: float  # CPU seconds per wall second
    database_cores: float
    client_cores: float
    machine_cores: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--reports", type=int, default=12000, help="delta reports to time (in total, per run)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per backend (the median is printed last)")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections per client process")
    parser.add_argument("--size", type=int, default=0,
                        help="sightings per delta report (0: only those that changed, as the daemon sends them)")
    parser.add_argument("--change", type=float, default=0.1,
                        help="share of the device's sightings (or of --size) changing per report")
    parser.add_argument("--pg-workers", type=int, default=2, help="uvicorn workers on PostgreSQL")
    parser.add_argument("--sqlite-workers", type=int, default=2, help="uvicorn workers on SQLite (one writes at a time)")
    parser.add_argument("--in-process", action="store_true",
                        help="apply the timed deltas in this process and print where the time goes "
                             "(SQLite, or --backend postgresql)")
    parser.add_argument("--batch", type=int, default=8, help="--in-process: reports per transaction")
    args = parser.parse_args(argv)
    if args.in_process:
        print(f"fleet: {args.devices} devices, {args.reports} delta reports per run, in this process; "
              f"load average before: {_load()}")
        for run in range(1, args.runs + 1):
            in_process(args, run)
        print(f"load average after: {_load()}")
        return 0
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    shape = (f"{args.size} sightings" if args.size else "the changed sightings") + f" ({args.change:.0%} changing)"
    print(f"fleet: {args.devices} devices, {args.reports} delta reports per run, each of {shape}, "
          f"{args.clients} client processes x {args.connections} "
          f"connections; {os.cpu_count()} cores")
    print(f"load average before: {_load()}")
    for backend in backends:
        run_backend(backend, args)
    print(f"load average after: {_load()}")
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


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
                label = f"{backend} ({workers} worker{'s' if workers > 1 else ''})"
                measure(label, server, cluster, secrets["enroll_secret"], args)
            finally:
                server.stop()
        finally:
            if cluster is not None:
                cluster.stop()


def measure(label: str, server: servers.CollectorProcess, cluster: servers.PostgresCluster | None,
            enroll_secret: str, args: argparse.Namespace) -> None:
    sims = [fleet.SimDevice.build(i, seed=7) for i in range(args.devices)]
    keys = [enroll(server.port, enroll_secret, sim) for sim in sims]
    send_all(server.port, [request(key, orjson.dumps(sim.snapshot())) for key, sim in zip(keys, sims, strict=True)])
    per_device = -(-args.reports // args.devices)
    lanes = args.clients * args.connections
    runs: list[Figures] = []
    for run in range(1, args.runs + 1):
        _WORK.clear()
        _WORK.extend([[] for _ in range(args.connections)] for _ in range(args.clients))
        for _ in range(per_device):
            for i, (key, sim) in enumerate(zip(keys, sims, strict=True)):
                lane = i % lanes
                _WORK[lane % args.clients][lane // args.clients].append(
                    request(key, orjson.dumps(sim.delta(args.size, args.change))))
        figures = timed(server, cluster, args.clients)
        runs.append(figures)
        print(f"  run {run}: " + _line(figures) + f"   (load {_load()})")
    _WORK.clear()
    best = sorted(runs, key=lambda f: f.rate)[len(runs) // 2]
    print(f"{label:26} median of {len(runs)}: " + _line(best))


def _line(f: Figures) -> str:
    """The figures of a run; CPU in cores busy while the clock ran, and per report for the collector."""
    database = f" + database {f.database_cores:.2f}" if f.database_cores else ""
    per_report = (f.server_cores + f.database_cores) / f.rate * 1000
    return (f"{f.rate:6.0f} reports/s   p50 {f.p50_ms:5.1f} ms   p99 {f.p99_ms:6.1f} ms   "
            f"{f.total} in {f.wall:.1f} s, {f.not_applied} not applied; CPU cores: collector {f.server_cores:.2f}"
            f"{database} ({per_report:.2f} ms per report), clients {f.client_cores:.2f}, anything else "
            f"{max(0.0, f.machine_cores - f.server_cores - f.database_cores - f.client_cores):.2f}; "
            f"machine {f.machine_cores:.2f} of {os.cpu_count()}")


def timed(server: servers.CollectorProcess, cluster: servers.PostgresCluster | None, clients: int) -> Figures:
    context = multiprocessing.get_context("fork")
    ready, go, out = context.Barrier(clients + 1), context.Event(), context.SimpleQueue()
    procs = [context.Process(target=send_lanes, args=(server.port, c, ready, go, out), daemon=True)
             for c in range(clients)]
    for proc in procs:
        proc.start()
    try:
        ready.wait(timeout=120)  # every client is connected and waits for the start
        server_before, database_before = _cpu(server_processes(server)), _cpu(database_processes(cluster))
        machine_before = _busy()
        started = time.perf_counter()
        go.set()
        results = [out.get() for _ in procs]
        wall = time.perf_counter() - started
        server_cpu = _cpu(server_processes(server)) - server_before
        database_cpu = _cpu(database_processes(cluster)) - database_before
        machine_cpu = _busy() - machine_before
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        raise RuntimeError(f"a client failed: {failed[0]}")
    latencies = sorted(t for r in results for t in r[0])
    total = len(latencies)
    return Figures(rate=total / wall, p50_ms=statistics.median(latencies) * 1000,
                   p99_ms=latencies[min(total - 1, int(total * 0.99))] * 1000, wall=wall, total=total,
                   not_applied=sum(r[1] for r in results), server_cores=server_cpu / wall,
                   database_cores=database_cpu / wall, client_cores=sum(r[2] for r in results) / wall,
                   machine_cores=machine_cpu / wall)


def server_processes(server: servers.CollectorProcess) -> list[psutil.Process]:
    assert server.proc is not None
    root = psutil.Process(server.proc.pid)
    return [root, *root.children(recursive=True)]


def database_processes(cluster: servers.PostgresCluster | None) -> list[psutil.Process]:
    if cluster is None:
        return []
    postmaster = psutil.Process(int((cluster.data / "postmaster.pid").read_text().split()[0]))
    return [postmaster, *postmaster.children(recursive=True)]


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _busy() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


# -- in process ----------------------------------------------------------------------------------------


class StatementClock:
    """This thread's CPU time per statement of ``ingest_store``'s cursor, by the statement's name (on
    PostgreSQL the wall time too: a statement is mostly a round trip there). The cursor's methods are
    wrapped for this process only (a bench, not the collector)."""

    METHODS = ("one", "all", "run", "many", "send")  # send: a read fetched later (its wait is the fetch's)

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.rows: dict[str, int] = {}  # rows for an executemany, calls for the others
        self.installed = False

    def install(self) -> None:
        from console.server import ingest_store

        if self.installed:
            return
        self.installed = True
        for method in self.METHODS:
            setattr(ingest_store._Cursor, method, self._timed(getattr(ingest_store._Cursor, method)))

    def _timed(self, method: Any) -> Any:
        def timed(cursor: Any, name: str, params: Any) -> Any:
            started, clock = time.thread_time(), time.perf_counter()
            try:
                return method(cursor, name, params)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.thread_time() - started
                self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - clock
                self.rows[name] = self.rows.get(name, 0) + (len(params) if isinstance(params, list) else 1)
        return timed

    def clear(self) -> None:
        self.seconds.clear()
        self.wall.clear()
        self.rows.clear()


_CLOCK = StatementClock()
_MANY = ("upsert", "refresh", "history", "tag")  # the statements run once per row (executemany); "refresh+..."
# names an in-place update that also writes the indexed columns that moved


def in_process(args: argparse.Namespace, run: int) -> None:
    """One run of ``--in-process``: a fresh store (SQLite, or a throw-away PostgreSQL cluster with
    ``--backend postgresql``), its fleet snapshotted through a real collector, then ``--reports`` deltas
    applied here."""
    cluster = None
    if args.backend == "postgresql":
        bindir = servers.postgres_bindir()
        if bindir is None:
            print("postgresql: skipped: no PostgreSQL server binaries (apt-get install postgresql)")
            return
        cluster = servers.PostgresCluster(bindir, durable=True).start()
    try:
        _in_process(args, run, cluster)
    finally:
        if cluster is not None:
            cluster.stop()


def _in_process(args: argparse.Namespace, run: int, cluster: servers.PostgresCluster | None) -> None:
    from console.server import auth, ingest, ingest_store
    from console.server.db import Database

    _CLOCK.install()
    with tempfile.TemporaryDirectory(prefix="agentroster-bench-") as tmp:
        url = f"sqlite:///{tmp}/collector.sqlite3" if cluster is None else cluster.create_database("bench")
        secrets = servers.provision(url)
        server = servers.CollectorProcess(url, workers=1, log=Path(tmp) / "server.log").start()
        try:
            sims = [fleet.SimDevice.build(i, seed=7) for i in range(args.devices)]
            keys = [enroll(server.port, secrets["enroll_secret"], sim) for sim in sims]
            send_all(server.port, [request(key, orjson.dumps(sim.snapshot())) for key, sim in zip(keys, sims, strict=True)])
        finally:
            server.stop()
        presented = [auth.parse(key) for key in keys]
        work = [(key, orjson.loads(orjson.dumps(sim.delta(args.size, args.change))))
                for _ in range(-(-args.reports // args.devices)) for key, sim in zip(presented, sims, strict=True)]
        db = Database(url)
        db.start_checkpoints(0.2)  # as the collector does: the WAL is checkpointed off the write path
        try:
            _CLOCK.clear()
            prepare = apply = commit = apply_wall = 0.0
            started = time.perf_counter()
            for start in range(0, len(work), args.batch):
                batch = work[start:start + args.batch]
                cpu = time.thread_time()
                now, policy = time.time(), ingest.cached_policy()
                prepared = [ingest.prepare_report(report, policy, now) if policy else None for _, report in batch]
                prepare += time.thread_time() - cpu
                cpu, clock = time.thread_time(), time.perf_counter()
                with db.write_lock():
                    with db.transaction() as conn:
                        current = ingest_store.current_policy(conn)
                        for (key, report), ready in zip(batch, prepared, strict=True):
                            outcome = ingest_store.apply_report(conn, key, report, now, ready, current)  # type: ignore[arg-type]
                            if outcome.result != "applied":
                                raise RuntimeError(f"a delta was not applied: {outcome.reason}")
                        committing = time.thread_time()
                    commit += time.thread_time() - committing
                apply += time.thread_time() - cpu
                apply_wall += time.perf_counter() - clock
            wall = time.perf_counter() - started
        finally:
            db.engine.dispose()
    n = len(work)
    statements = sum(_CLOCK.seconds.values())
    print(f"  run {run}: {n / wall:6.0f} reports/s in one thread (batches of {args.batch}); CPU per report: "
          f"prepare {prepare / n * 1e6:.0f} us, apply {apply / n * 1e6:.0f} us = statements "
          f"{statements / n * 1e6:.0f} + commit {commit / n * 1e6:.0f} + the rest "
          f"{(apply - statements - commit) / n * 1e6:.0f}   (load {_load()})")
    if cluster is not None:
        print(f"      wall time of the apply {apply_wall / n * 1e6:.0f} us per report (statements "
              f"{sum(_CLOCK.wall.values()) / n * 1e6:.0f}): PostgreSQL's share is a round trip per statement")
    for name, seconds in sorted(_CLOCK.seconds.items(), key=lambda kv: -kv[1]):
        wall = f"   wall {_CLOCK.wall[name] / n * 1e6:6.1f} us" if cluster is not None else ""
        print(f"      {name:16} {seconds / n * 1e6:6.1f} us per report{wall}   {_CLOCK.rows[name] / n:5.2f} "
              f"{'rows' if name.partition('+')[0] in _MANY else 'calls'} per report")


# -- the client ---------------------------------------------------------------------------------------


def request(key: str, body: bytes) -> bytes:
    """One whole POST /api/v1/reports request, ready to send."""
    head = (f"POST {REPORTS} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode() + body


def enroll(port: int, enroll_secret: str, sim: fleet.SimDevice) -> str:
    body = orjson.dumps({"enroll_secret": enroll_secret, "host_identifier": sim.device_id, "device": sim.device})
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST", "/api/v1/enroll", body, {"content-type": "application/json"})
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    if answer.status != 200:
        raise RuntimeError(f"enroll answered {answer.status}: {data!r}")
    return str(orjson.loads(data)["device_key"])


def send_all(port: int, requests: list[bytes]) -> None:
    """Send requests one after another on one connection (the snapshots, untimed)."""
    lane = _Lane(socket.create_connection(("127.0.0.1", port)), deque(requests))
    while lane.pending:
        lane.send_next()
        while not lane.receive():
            pass
        status, body = lane.answers.pop()
        if status != 200:
            raise RuntimeError(f"report answered {status}: {body[:300]!r}")
    lane.sock.close()


class _Lane:
    """One keep-alive connection: sends its requests one at a time and reads each answer."""

    def __init__(self, sock: socket.socket, pending: deque[bytes]) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.pending = pending
        self.buffer = b""
        self.sent_at = 0.0
        self.latencies: list[float] = []
        self.answers: list[tuple[int, bytes]] = []

    def send_next(self) -> None:
        self.sent_at = time.perf_counter()
        self.sock.sendall(self.pending.popleft())

    def receive(self) -> bool:
        """Read what arrived; True once the whole answer is in."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("the collector closed the connection")
        self.buffer += chunk
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        length = 0
        for line in self.buffer[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return False
        self.latencies.append(time.perf_counter() - self.sent_at)
        self.answers.append((int(self.buffer[9:12]), self.buffer[end + 4:end + 4 + length]))
        self.buffer = self.buffer[end + 4 + length:]
        return True


def send_lanes(port: int, client: int, ready: Any, go: Any, out: Any) -> None:
    """One client process: its connections' requests, in order per connection. Puts the latencies, how
    many reports were not applied, and the CPU seconds this process used while the clock ran (or what
    went wrong) on ``out``."""
    try:
        lanes = [_Lane(socket.create_connection(("127.0.0.1", port)), deque(requests))
                 for requests in _WORK[client]]
        ready.wait(timeout=120)
        go.wait()
        out.put(_drive(lanes))
    except Exception as exc:  # reported to the parent, which stops the run
        out.put(f"{type(exc).__name__}: {exc}")


def _drive(lanes: list[_Lane]) -> tuple[list[float], int, float]:
    selector = selectors.DefaultSelector()
    cpu_before = _own_cpu()
    for lane in lanes:
        if lane.pending:
            lane.send_next()
            selector.register(lane.sock, selectors.EVENT_READ, lane)
    open_lanes = len(selector.get_map())
    while open_lanes:
        for key, _ in selector.select():
            lane = key.data
            if not lane.receive():
                continue
            if lane.pending:
                lane.send_next()
            else:
                selector.unregister(lane.sock)
                open_lanes -= 1
    cpu = _own_cpu() - cpu_before
    not_applied = sum(1 for lane in lanes for status, body in lane.answers
                      if status != 200 or b'"applied":true' not in body)
    for lane in lanes:
        lane.sock.close()
    return [t for lane in lanes for t in lane.latencies], not_applied, cpu


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


if __name__ == "__main__":
    sys.exit(main())
