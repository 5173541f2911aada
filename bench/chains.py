"""Chain cover benchmark: what judging sub-agents and tool servers against the root of their chain costs.

Fills a SQLite store in-process through the collector's own ingest code (``ingest_store.apply_report``):
each device reports one agent with MCP servers in its config, a running tool server for each of them and
a sub-agent (1 + servers + 1 sightings). Then it times, in the collector's own functions:

- approving every root in one action (``triage.apply_actions``: its chains are re-assessed with it, so
  the tool servers and sub-agents become covered), with how many assessments and statements that took
  (each sighting is assessed once), and undoing it;
- ``chains.covered_by`` on a roster page of 500 covered sightings (what ``GET /agents`` adds per page),
  and on one sighting (what the detail adds);
- ``chains.descendants`` of 1,000 roots.

    .venv/bin/python bench/chains.py                   # 2,000 devices, 3 servers each
    .venv/bin/python bench/chains.py --devices 500 --servers 5

It prints the figures; nothing is asserted (the console's budget: a first page <= 300 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "console" / "server"))

import fleet  # noqa: E402
import orjson  # noqa: E402
import servers  # noqa: E402
from sqlalchemy import event, select  # noqa: E402

from console.server import auth, chains, ingest_store, triage  # noqa: E402
from console.server.db import Database  # noqa: E402
from console.server.models import Device, Sighting, TriageActionCreate  # noqa: E402

BATCH = 100  # reports per fill transaction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--servers", type=int, default=3, help="MCP servers (and running tool servers) per agent")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    per_device = args.servers + 2
    print(f"fleet: {args.devices} devices x {per_device} sightings = {args.devices * per_device} sightings "
          f"(a root, {args.servers} tool servers, a sub-agent); {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="agentroster-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'collector.sqlite3'}"
        servers.provision(url)
        started = time.perf_counter()
        roots, children = fill(url, args.devices, args.servers)
        print(f"filled through ingest in {time.perf_counter() - started:.1f} s")
        db = Database(url, pool_size=2)
        work = {"statements": 0, "assessments": 0}

        def statement(*_: Any) -> None:
            work["statements"] += 1

        event.listen(db.engine, "before_cursor_execute", statement)
        assess = triage.assess_stored

        def counted(*a: Any, **k: Any) -> Any:
            work["assessments"] += 1
            return assess(*a, **k)

        triage.assess_stored = counted  # type: ignore[assignment]  # counts the calls, changes nothing
        with db.writing() as conn:
            started = time.perf_counter()
            triage.apply_actions(conn, roots, TriageActionCreate(action="approve"), "bench")
            approve = time.perf_counter() - started
        print(f"the approve: {work['assessments']:,} assessments and {work['statements']:,} statements for "
              f"{len(roots) + len(children):,} sightings (the roots and their chains)")
        triage.assess_stored = assess  # type: ignore[assignment]
        with db.writing() as conn:
            started = time.perf_counter()
            triage.undo(conn, "bench")
            undo = time.perf_counter() - started
        with db.writing() as conn:
            triage.apply_actions(conn, roots, TriageActionCreate(action="approve"), "bench")
        print(f"approve {len(roots)} roots in one action, their chains covered with them: {approve * 1000:.0f} ms; "
              f"undo: {undo * 1000:.0f} ms")
        with db.engine.connect() as conn:
            page = [((d, s), p, orjson.loads(f)) for d, s, p, f in conn.execute(
                select(Sighting.device_id, Sighting.id, Sighting.parent, Sighting.flags)  # type: ignore[call-overload]
                .where(Sighting.id.in_([s for _, s in children[:500]])))]  # type: ignore[attr-defined]
            covered = chains.covered_by(conn, page)
            print(f"covered: {len(covered)} of a page of {len(page)} chain sightings")
            timed("covered_by, a roster page of 500", args.repeat, lambda: chains.covered_by(conn, page))
            timed("covered_by, one detail", args.repeat, lambda: chains.covered_by(conn, page[:1]))
            timed("descendants of 1,000 roots", args.repeat, lambda: chains.descendants(conn, roots[:1000]))
        db.dispose()
    return 0


def timed(label: str, repeat: int, run: object) -> None:
    assert callable(run)
    run()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(f"  {label:36s} p50 {statistics.median(times):7.1f} ms   max {times[-1]:7.1f} ms")


def fill(url: str, devices: int, per_agent: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Enroll the devices and apply one snapshot each; the roots' keys and their chains' keys."""
    db = Database(url, pool_size=2)
    keys: list[auth.Presented] = []
    now = time.time()
    with db.writing() as conn:
        rows = []
        for i in range(devices):
            made = auth.issue(auth.DEVICE_PREFIX)
            rows.append(Device(id=f"d{i:015d}", host_identifier=f"host:ws-{i:05d}", key_id=made.key_id,
                               key_salt=made.salt, key_hash=made.hash, enrolled_at=now, hostname=f"ws-{i:05d}",
                               os="linux").model_dump())
            keys.append(auth.parse(made.token))  # type: ignore[arg-type]
        conn.execute(Device.__table__.insert(), rows)  # type: ignore[attr-defined]
    roots: list[tuple[str, str]] = []
    children: list[tuple[str, str]] = []
    for start in range(0, devices, BATCH):
        with db.writing() as conn:
            for i in range(start, min(start + BATCH, devices)):
                device_id = f"d{i:015d}"
                mcp = [{"name": f"server-{n}", "transport": "stdio", "command": "npx", "args": ["-y", f"pkg-{n}"],
                        "url": None, "source": "/home/alice/.claude.json", "enabled": True, "project": None}
                       for n in range(per_agent)]
                root = fleet.sighting(id=f"root-{i}", providers=("anthropic",), mcp_servers=mcp)
                chain = [fleet.sighting(id=f"tool-{i}-{n}", name=m["name"], signature=None, type="tool_server",
                                        parent=root["id"], mcp_servers=[m]) for n, m in enumerate(mcp)]
                chain.append(fleet.sighting(id=f"sub-{i}", name="reviewer", parent=root["id"],
                                            providers=("anthropic",)))
                report = fleet.report(fleet.device_doc(f"host:ws-{i:05d}"), kind="snapshot", upserts=[root, *chain])
                outcome = ingest_store.apply_report(conn, keys[i], report)
                assert outcome.result == "applied", outcome
                roots.append((device_id, root["id"]))
                children += [(device_id, c["id"]) for c in chain]
    db.dispose()
    return roots, children


if __name__ == "__main__":
    raise SystemExit(main())
