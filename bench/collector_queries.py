"""Collector read-path benchmark: the console's queries over 100,000 sightings from 10,000 devices.

For each backend (SQLite in a fresh file; PostgreSQL in a throw-away cluster started as the tests start
theirs) this fills a store in-process through the collector's own ingest code (``ingest_store.apply_report``,
one snapshot of 10 sightings per device, built like ``agentroster scan --json`` output by the tests'
simulated fleet), triages a share of them through ``triage.apply_actions`` (owners, approvals, false
positives, registration requests), then starts ``agentroster server`` on 127.0.0.1 over that store and
times, over HTTP with a keep-alive client, the requests the console makes: the first page of the roster,
filters (a flag, a type, an owner, a triage state, free text), a sort, the next page of a sort, one
agent's detail, and the overview. It prints p50 and p99 per request, and with ``--plans`` the query plans
of the roster's queries on SQLite.

    .venv/bin/python bench/collector_queries.py                      # both backends
    .venv/bin/python bench/collector_queries.py --backend sqlite --devices 1000 --repeat 20

Budget (DESIGN.md, for the console over 100,000 sightings): first page <= 300 ms, a filter <= 200 ms,
the console's own time included; these figures are the collector's share. Nothing is asserted.
On PostgreSQL the store is vacuumed and analyzed after the fill, as autovacuum would soon do; SQLite
is left as the collector leaves it (no ANALYZE: the roster's queries name their indexes).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "console" / "server"))

import fleet  # noqa: E402
import servers  # noqa: E402

from console.server import auth, ingest_store, triage  # noqa: E402
from console.server.db import Database  # noqa: E402
from console.server.models import Device, TriageActionCreate  # noqa: E402

PER_DEVICE = 10
BATCH = 100  # reports per fill transaction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--devices", type=int, default=10_000, help=f"devices, {PER_DEVICE} sightings each")
    parser.add_argument("--repeat", type=int, default=40, help="timed requests per query")
    parser.add_argument("--plans", action="store_true", help="print SQLite's query plans of the roster's queries")
    parser.add_argument("--sqlite-store", type=Path, help="keep the filled SQLite store here, and reuse it if it exists "
                        "(it must have been filled with the same --devices)")
    args = parser.parse_args(argv)
    print(f"fleet: {args.devices} devices x {PER_DEVICE} sightings = {args.devices * PER_DEVICE} sightings; "
          f"{args.repeat} requests per query; {os.cpu_count()} cores; load average {_load()}")
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run_backend(backend, args)
    print(f"load average after: {_load()}")
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_backend(backend: str, args: argparse.Namespace) -> None:
    cluster = None
    with tempfile.TemporaryDirectory(prefix="agentroster-bench-") as tmp:
        reuse = False
        if backend == "sqlite":
            path = args.sqlite_store or Path(tmp) / "collector.sqlite3"
            reuse = path.exists()
            url = f"sqlite:///{path}"
        else:
            bindir = servers.postgres_bindir()
            if bindir is None:
                print("postgresql: skipped: no PostgreSQL server binaries (apt-get install postgresql)")
                return
            cluster = servers.PostgresCluster(bindir).start()
            url = cluster.create_database("bench")
        try:
            tokens = servers.provision(url)
            started = time.perf_counter()
            sample = fill(url, args.devices, only_sample=reuse)
            if reuse:
                print(f"{backend}: reusing the store {args.sqlite_store}")
            else:
                print(f"{backend}: filled {args.devices * PER_DEVICE} sightings through ingest in "
                      f"{time.perf_counter() - started:.1f} s")
            if backend == "postgresql":
                vacuum(url)  # what autovacuum does after a load: statistics, and the visibility map
            if args.plans and backend == "sqlite":
                plans(url, sample)
            server = servers.CollectorProcess(url, log=Path(tmp) / "server.log").start()
            try:
                measure(backend, server, tokens["viewer"], sample, args.repeat)
            finally:
                server.stop()
        finally:
            if cluster is not None:
                cluster.stop()


def fill(url: str, devices: int, *, only_sample: bool = False) -> dict[str, Any]:
    """Enroll ``devices`` devices (rows with real keys, as enrollment makes them), apply one snapshot each
    through ingest, triage some; returns a sample sighting and owner for the detail and owner queries."""
    if only_sample:  # the same sample a fill of this many devices returns
        sim = fleet.SimDevice.build(devices // 2, seed=7)
        return {"detail": (f"d{devices // 2:015d}", list(sim.sightings)[0]), "owner": "team-7@example.com"}
    db = Database(url, pool_size=2)
    rng = random.Random(11)
    keys: list[tuple[str, auth.Presented]] = []
    now = time.time()
    with db.writing() as conn:
        rows = []
        for i in range(devices):
            made = auth.issue(auth.DEVICE_PREFIX)
            sim_id = f"host:ws-{i:05d}"
            rows.append(Device(id=f"d{i:015d}", host_identifier=sim_id, key_id=made.key_id, key_salt=made.salt,
                               key_hash=made.hash, enrolled_at=now, hostname=f"ws-{i:05d}", os="linux").model_dump())
            keys.append((sim_id, auth.parse(made.token)))  # type: ignore[arg-type]
        conn.execute(Device.__table__.insert(), rows)  # type: ignore[attr-defined]
    all_keys: list[tuple[str, str]] = []
    for start in range(0, devices, BATCH):
        with db.writing() as conn:
            for i in range(start, min(start + BATCH, devices)):
                sim = fleet.SimDevice.build(i, seed=7)
                sightings = list(sim.sightings.values())[:PER_DEVICE]
                report = fleet.report(sim.device, kind="snapshot", upserts=sightings)
                outcome = ingest_store.apply_report(conn, keys[i][1], report)
                assert outcome.result == "applied", outcome
                all_keys += [(f"d{i:015d}", s["id"]) for s in sightings]
    owners = [f"team-{n}@example.com" for n in range(50)]
    with db.writing() as conn:
        for action, share in (("false_positive", 0.01), ("approve", 0.05), ("request_registration", 0.05)):
            picked = rng.sample(all_keys, int(len(all_keys) * share))
            for start in range(0, len(picked), 1000):
                triage.apply_actions(conn, picked[start:start + 1000], TriageActionCreate(action=action), "bench")
        for owner in owners:
            picked = rng.sample(all_keys, len(all_keys) // 500)
            triage.apply_actions(conn, picked, TriageActionCreate(action="assign_owner", owner=owner), "bench")
    db.dispose()
    return {"detail": all_keys[len(all_keys) // 2], "owner": owners[7]}


def vacuum(url: str) -> None:
    db = Database(url, pool_size=1)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    db.dispose()


def queries(sample: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    device_id, sighting_id = sample["detail"]
    return [
        ("first page", "/api/v1/agents", {"limit": 100}),
        ("filter flag=unregistered", "/api/v1/agents", {"limit": 100, "flag": "unregistered"}),
        ("filter type=unknown", "/api/v1/agents", {"limit": 100, "type": "unknown"}),
        ("filter governed=false", "/api/v1/agents", {"limit": 100, "governed": "false"}),
        ("filter owner=", "/api/v1/agents", {"limit": 100, "owner": sample["owner"]}),
        ("filter triage_state=approved", "/api/v1/agents", {"limit": 100, "triage_state": "approved"}),
        ("filter q=ws-0042", "/api/v1/agents", {"limit": 100, "q": "ws-0042"}),
        ("filter q=aider", "/api/v1/agents", {"limit": 100, "q": "aider"}),
        ("sort name asc", "/api/v1/agents", {"limit": 100, "sort": "name", "order": "asc"}),
        ("sort device, filter provider", "/api/v1/agents", {"limit": 100, "sort": "device", "provider": "openai"}),
        ("detail", f"/api/v1/agents/{device_id}/{sighting_id}", {}),
        ("overview", "/api/v1/overview", {}),
    ]


def measure(backend: str, server: servers.CollectorProcess, token: str, sample: dict[str, Any], repeat: int) -> None:
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
        for label, path, params in queries(sample):
            answer = client.get(path, params=params)  # warm: caches, the connection
            assert answer.status_code == 200, answer.text
            count = answer.json().get("count", "")
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                answer = client.get(path, params=params)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            shown = f" ({count} rows)" if count != "" else ""
            print(f"  {backend:10s} {label:30s} p50 {statistics.median(times):7.1f} ms   p99 {p99:7.1f} ms{shown}")
        for label, params in (("next page, sort name", {"sort": "name", "order": "asc"}),
                              ("next page, flag=unregistered", {"flag": "unregistered"})):
            cursor = client.get("/api/v1/agents", params={"limit": 100, **params}).json()
            times = []
            for _ in range(repeat):  # not counted again: the console keeps the first page's count
                started = time.perf_counter()
                client.get("/api/v1/agents", params={"limit": 100, **params, "cursor": cursor["next_cursor"]})
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            print(f"  {backend:10s} {label:30s} p50 {statistics.median(times):7.1f} ms   "
                  f"p99 {times[min(len(times) - 1, int(len(times) * 0.99))]:7.1f} ms")


def plans(url: str, sample: dict[str, Any]) -> None:
    """SQLite's plans for every statement the roster route runs, per filter, captured as the route runs."""
    from sqlalchemy import event
    from sqlmodel import Session

    from console.server.routes import agents

    db = Database(url, pool_size=1)
    seen: list[tuple[str, Any]] = []
    event.listen(db.engine, "before_cursor_execute", lambda _c, _cur, sql, params, *_: seen.append((sql, params)))
    from console.server.roster import RosterFilter

    base = {"sort": "last_seen", "order": "desc", "limit": 100, "cursor": None, "count": None}
    with Session(db.engine) as session:
        for params in ({}, {"flag": ["unregistered"]}, {"governed": False}, {"owner": sample["owner"]},
                       {"triage_state": "approved"}, {"q": "ws-0042"}, {"q": "aider"}, {"sort": "name", "order": "asc"}):
            seen.clear()
            paging = {k: params.get(k, v) for k, v in base.items()}
            f = RosterFilter(**{k: v for k, v in params.items() if k not in base})
            agents.list_agents(session, None, f, **paging)  # type: ignore[arg-type]
            for sql, bound in [(sql, bound) for sql, bound in seen if sql.startswith("SELECT")]:
                plan = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql, bound).all()
                print(f"  plan {params} {' '.join(sql.split())[:40]}...: " + " | ".join(str(r[-1]) for r in plan))
    db.dispose()


if __name__ == "__main__":
    sys.exit(main())
