"""Console benchmark: the Qt console (offscreen) over a collector holding 100,000 sightings.

The collector (``agentroster server``, SQLite, 127.0.0.1) is filled through its real enroll and report
API by ``--devices`` simulated devices (tests/console/server/fleet.py, the simulator bench/ingest.py
uses), each sending one snapshot of ``--per-device`` sightings, from several client processes. The
filled database is kept under .cache/console-bench/ and reused by later runs with the same sizes
(``--refill`` to build it again).

Then, in this process, the real console window (offscreen) signs in and this times, as the median of
``--runs`` tries, from the action to the rows on screen (API call off the GUI thread, answer queued
back, rows inserted): the first page, applying a filter (type, flag, free text), sorting by name, and
opening an agent's detail; then the console's RSS after paging through ``--scroll`` pages. Beside each figure, the same request
made straight with the API client (no Qt) shows how much of it is the collector's.

    .venv/bin/python bench/console.py
    .venv/bin/python bench/console.py --devices 1000 --per-device 10   # a quick look
    .venv/bin/python bench/console.py --backend postgresql --collector-only

``--backend postgresql`` starts a throwaway PostgreSQL cluster from the system's binaries (as the
collector tests do: tests/console/server/servers.py), fills it the same way (never cached: the cluster
is deleted at the end), runs VACUUM ANALYZE as autovacuum soon would after a bulk fill (without it,
PostgreSQL reads no index alone: every count reads the table), and times the same requests.

The budget (DESIGN.md): first page <= 300 ms, filter <= 200 ms, <= 300 MB RSS. Nothing is asserted;
the figures are printed.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "console" / "server"))

import fleet  # noqa: E402
import servers  # noqa: E402

CACHE = REPO / ".cache" / "console-bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--per-device", type=int, default=10, help="sightings per device")
    parser.add_argument("--clients", type=int, default=4, help="client processes filling the collector")
    parser.add_argument("--runs", type=int, default=5, help="tries per figure (the median is printed)")
    parser.add_argument("--scroll", type=int, default=20, help="pages to scroll through before measuring RSS")
    parser.add_argument("--refill", action="store_true", help="build the cached database again")
    parser.add_argument("--collector-only", action="store_true",
                        help="time the collector's answers alone (no Qt): every filter, the combinations, the fleet")
    parser.add_argument("--database", type=Path, help="use this SQLite store instead of the cached one")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: a throwaway cluster, filled for this run")
    parser.add_argument("--filter-action", action="store_true",
                        help="time an approve on every coding agent (POST /agents/actions/filter) and its undo, "
                             "a policy saved and undone, and how long a device's report sent meanwhile waits "
                             "(changes the store and undoes it: use --database with a copy)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.backend == "postgresql":
        return on_postgresql(args)

    directory = CACHE / f"d{args.devices}-s{args.per_device}"
    database = directory / "collector.sqlite3"
    if args.refill and directory.exists():
        shutil.rmtree(directory)
    if args.database is not None:
        database = args.database.resolve()
        directory = database.parent
    url = f"sqlite:///{database}"
    if not database.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fill(url, directory, args)
    tokens = servers.provision(url)  # a fresh admin token for this run (tokens are stored hashed)
    server = servers.CollectorProcess(url, log=directory / "server.log").start()
    try:
        measure_chosen(server.base_url, tokens, args)
    finally:
        server.stop()
    return 0


def measure_chosen(base_url: str, tokens: dict[str, str], args: argparse.Namespace) -> None:
    """The figures the flags ask for, on either backend."""
    if args.filter_action:
        measure_filter_action(base_url, tokens, args)
    elif args.collector_only:
        measure_collector(base_url, tokens["admin"], args)
    else:
        measure(base_url, tokens["admin"], args)


def on_postgresql(args: argparse.Namespace) -> int:
    """Fill a throwaway PostgreSQL cluster through the ingest API, then time it as the SQLite store is."""
    bindir = servers.postgres_bindir()
    if bindir is None:
        print("PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)", file=sys.stderr)
        return 2
    directory = CACHE / f"pg-d{args.devices}-s{args.per_device}"  # the logs; the cluster itself is temporary
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    cluster = servers.PostgresCluster(bindir).start()
    try:
        url = cluster.create_database("bench")
        fill(url, directory, args)
        analyze(url)
        tokens = servers.provision(url)
        server = servers.CollectorProcess(url, log=directory / "server.log").start()
        try:
            print(f"PostgreSQL ({bindir.parent.name}), a throwaway cluster, vacuumed and analyzed after the fill")
            measure_chosen(server.base_url, tokens, args)
        finally:
            server.stop()
    finally:
        cluster.stop()
    return 0


def analyze(url: str) -> None:
    """Statistics for the planner and the visibility map for index-only scans, as autovacuum makes them a
    little after a bulk fill (PostgreSQL 13 on also vacuums after inserts)."""
    from sqlalchemy import text

    from console.server.db import Database

    db = Database(url, pool_size=1)
    try:
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    finally:
        db.dispose()


# -- filling the collector through its ingest API ----------------------------------------------------


def fill(url: str, directory: Path, args: argparse.Namespace) -> None:
    secret = servers.provision(url)["enroll_secret"]
    server = servers.CollectorProcess(url, log=directory / "server.log").start()
    started = time.perf_counter()
    try:
        shares = [list(range(c, args.devices, args.clients)) for c in range(args.clients)]
        with multiprocessing.get_context("fork").Pool(args.clients) as pool:
            sent = pool.starmap(send_devices, [(server.port, secret, share, args.per_device) for share in shares])
    finally:
        server.stop()
    print(f"filled: {args.devices:,} devices, {sum(sent):,} sightings through the ingest API "
          f"in {time.perf_counter() - started:.0f} s (kept in {directory})")


def send_devices(port: int, secret: str, indexes: list[int], per_device: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = 0
    for i in indexes:
        sim = fleet.SimDevice.build(i, seed=11)
        body = orjson.dumps({"enroll_secret": secret, "host_identifier": sim.device_id, "device": sim.device})
        status, answer = post(conn, "/api/v1/enroll", body, None)
        if status != 200:
            raise RuntimeError(f"enroll answered {status}: {answer[:200]!r}")
        key = orjson.loads(answer)["device_key"]
        snapshot = sim.snapshot()
        snapshot["upserts"] = snapshot["upserts"][:per_device]
        status, answer = post(conn, "/api/v1/reports", orjson.dumps(snapshot), key)
        if status != 200:
            raise RuntimeError(f"report answered {status}: {answer[:200]!r}")
        sent += len(snapshot["upserts"])
    return sent


def post(conn: http.client.HTTPConnection, path: str, body: bytes, key: str | None) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    conn.request("POST", path, body, headers)
    response = conn.getresponse()
    return response.status, response.read()


# -- the console --------------------------------------------------------------------------------------


def measure(base_url: str, token: str, args: argparse.Namespace) -> None:
    import psutil
    from PySide6.QtCore import QEventLoop, QSettings
    from PySide6.QtWidgets import QApplication

    from console.app import api
    from console.app import viewmodels as vm
    from console.app.controllers import Console
    from console.app.views.main_window import MainWindow

    app = QApplication.instance() or QApplication([])  # noqa: F841 - kept alive while the window lives
    settings_path = CACHE / "bench-console.ini"
    settings_path.unlink(missing_ok=True)
    client = api.Client(base_url, token, timeout=60)
    window = MainWindow()
    console = Console(client, window, QSettings(str(settings_path), QSettings.Format.IniFormat), page_size=200)
    window.resize(1400, 850)
    window.show()

    loop = QEventLoop()  # its processEvents, not QApplication's static one (PySide6 6.12.0 leaks on that)

    def until(done: Callable[[], bool], timeout: float = 60.0) -> float:
        started = time.perf_counter()
        while not done():
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents)
            if time.perf_counter() - started > timeout:
                raise RuntimeError("the console did not answer in time")
            time.sleep(0.0005)
        return time.perf_counter() - started

    def page_in() -> bool:
        return console.agents.roster.count is not None and not console.agents.roster.loading and bool(console.agents.roster.rows
                                                                                         or console.agents.roster.count == 0)

    started = time.perf_counter()
    console.start()
    until(page_in)
    cold = time.perf_counter() - started
    until(lambda: console.runner.in_flight == 0)
    total = console.agents.roster.count or 0
    print(f"collector: {total:,} agents in the default roster (tool servers apart); console page size 200; "
          f"median of {args.runs}")
    print(f"{'first page (cold start: role, overview, devices, policy in flight)':66} {cold * 1000:8.1f} ms")

    def timed(action: Callable[[], None], before: Callable[[], None] | None = None) -> float:
        """Median time from ``action`` to its first page on screen; ``before`` runs outside the clock."""
        times = []
        for _ in range(args.runs):
            if before is not None:
                before()
                until(page_in)
            until(lambda: console.runner.in_flight == 0)
            started = time.perf_counter()
            action()
            until(page_in)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    def direct(params: dict[str, object], sort: str = "last_seen", order: str = "desc") -> float:
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            client.agents(params, sort=sort, order=order, limit=200)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    def fleet_tab() -> float:
        """Median time from the fleet tab's load to its table filled with the new answer."""
        times = []
        for _ in range(args.runs):
            until(lambda: console.runner.in_flight == 0)
            before = console.fleet.latest
            started = time.perf_counter()
            console.fleet.load()
            until(lambda before=before: console.fleet.latest is not before and console.runner.in_flight == 0)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    def fleet_direct() -> float:
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            client.fleet()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    device = _some_device(client)
    cases = [("first page (reload, agents first: the default)", vm.AGENTS_ONLY, True),
             ("filter: none (List tool servers too)", vm.AgentFilter(), False),
             ("filter: type = unknown", vm.AgentFilter(type="unknown"), False),
             ("filter: governed = false, flag = autonomous", vm.AgentFilter(governed=False, flag="autonomous"), False),
             ("filter: free text 'ws-0042'", vm.AgentFilter(q="ws-0042"), False),
             ("filter: device = one device", vm.AgentFilter(device=device), False),
             ("filter: coding + ungoverned + autonomous",
              vm.AgentFilter(type="coding", governed=False, flag="autonomous"), False),
             ("filter: tool_server + broad_tools", vm.AgentFilter(type="tool_server", flag="broad_tools"), False)]
    rows = []
    for label, new, reload in cases:
        shown = timed(console.agents.reload) if reload else \
            timed(lambda new=new: console.agents.model.set_filter(new), lambda: console.agents.model.set_filter(vm.AGENTS_ONLY))
        rows.append((label, shown, direct(new.params())))
    console.agents.model.set_filter(vm.AGENTS_ONLY)
    until(page_in)
    rows.append(("fleet tab (GET /agents/fleet, on screen)", fleet_tab(), fleet_direct()))
    name_column = console.agents.model.column_of("name")
    assert name_column is not None
    flip = iter(range(10**6))

    def sort() -> None:
        from PySide6.QtCore import Qt

        order = Qt.SortOrder.AscendingOrder if next(flip) % 2 == 0 else Qt.SortOrder.DescendingOrder
        console.agents.model.sort(name_column, order)

    rows.append(("sort by name", timed(sort), direct(vm.AGENTS_ONLY.params(), "name", "asc")))
    agents = list(console.agents.roster.rows[: args.runs])
    picks = iter(agents)

    def detail() -> float:
        agent = next(picks)
        started = time.perf_counter()
        console.agents.open_detail(agent.key, agent.name)
        until(lambda: window.detail.detail is not None and window.detail.detail.agent.key == agent.key)
        return time.perf_counter() - started

    detail_times = [detail() for _ in agents]
    rows.append(("open a detail (and its parent's)", statistics.median(detail_times) * 1000, None))
    print(f"{'':66} {'console':>11} {'collector alone':>17}")
    for label, ms, alone in rows:
        print(f"{label:66} {ms:8.1f} ms" + (f" {alone:14.1f} ms" if alone is not None else ""))

    for _ in range(args.scroll):
        console.agents.model.fetchMore()
        until(page_in)
    rss = psutil.Process().memory_info().rss / 2**20
    print(f"{f'console RSS after {len(console.agents.roster.rows):,} rows loaded':66} {rss:8.1f} MB")
    print("budget: first page <= 300 ms, filter <= 200 ms, the fleet tab <= 300 ms, RSS <= 300 MB")
    console.shutdown()
    client.close()
    window.close()


#: what an admin asks the collector, by name: (route, query parameters); the combinations of issue 12 among them
COLLECTOR_CASES: tuple[tuple[str, str, list[tuple[str, str]]], ...] = (
    ("first page", "/api/v1/agents", []),
    ("type = coding", "/api/v1/agents", [("type", "coding")]),
    ("type = tool_server", "/api/v1/agents", [("type", "tool_server")]),
    ("types = coding, enterprise, unknown", "/api/v1/agents",
     [("type", "coding"), ("type", "enterprise"), ("type", "unknown")]),
    ("governed = false", "/api/v1/agents", [("governed", "false")]),
    ("flag = unregistered", "/api/v1/agents", [("flag", "unregistered")]),
    ("flag = autonomous", "/api/v1/agents", [("flag", "autonomous")]),
    ("flags = autonomous, personal_credential", "/api/v1/agents",
     [("flag", "autonomous"), ("flag", "personal_credential")]),
    ("coding + ungoverned + autonomous", "/api/v1/agents",
     [("type", "coding"), ("governed", "false"), ("flag", "autonomous")]),
    ("tool_server + broad_tools", "/api/v1/agents", [("type", "tool_server"), ("flag", "broad_tools")]),
    ("provider = anthropic", "/api/v1/agents", [("provider", "anthropic")]),
    ("signature = claude-code", "/api/v1/agents", [("signature", "claude-code")]),
    ("user = alice", "/api/v1/agents", [("user", "alice")]),
    ("free text 'ws-0042'", "/api/v1/agents", [("q", "ws-0042")]),
    ("free text 'anthropic' (a provider)", "/api/v1/agents", [("q", "anthropic")]),
    ("free text 'server-postgres' (an MCP command)", "/api/v1/agents", [("q", "server-postgres")]),
    ("device = a hostname", "/api/v1/agents", [("device", "ws-04242")]),
    ("sort = -risk", "/api/v1/agents", [("sort", "-risk")]),
    ("min_risk = 40", "/api/v1/agents", [("min_risk", "40")]),
    ("min_risk = 40, sort = -risk", "/api/v1/agents", [("min_risk", "40"), ("sort", "-risk")]),
    ("sort = name", "/api/v1/agents", [("sort", "name"), ("order", "asc")]),
    ("fleet by kind", "/api/v1/agents/fleet", []),
    ("fleet by kind, ungoverned", "/api/v1/agents/fleet", [("governed", "false")]),
    ("overview", "/api/v1/overview", []),
    ("policy choices", "/api/v1/policy/choices", []),
    ("device completion 'ws-04'", "/api/v1/devices/complete", [("prefix", "ws-04")]),
)


def measure_collector(base_url: str, token: str, args: argparse.Namespace) -> None:
    """The collector alone, over HTTP with a keep-alive client: the median and the slowest of ``--runs``
    requests per case (a 200-row page, as the console asks), after one untimed request."""
    import httpx

    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=60) as http:
        total = http.get("/api/v1/agents", params={"limit": 1}).json()["count"]
        print(f"collector alone: {total:,} sightings shown; median and slowest of {args.runs} requests")
        for label, path, params in COLLECTOR_CASES:
            asked = [*params, ("limit", "200")] if path == "/api/v1/agents" else params
            answer = http.get(path, params=asked)
            if answer.status_code != 200:
                print(f"{label:50} answered {answer.status_code}: {answer.text[:120]}")
                continue
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                http.get(path, params=asked)
                times.append(time.perf_counter() - started)
            matches = answer.json().get("count") if path == "/api/v1/agents" else None
            shown = f"{matches:>9,} rows" if isinstance(matches, int) else " " * 14
            print(f"{label:50} {shown} {statistics.median(times) * 1000:8.1f} ms  (slowest {max(times) * 1000:6.1f})")
        print("budget: a filter <= 200 ms, the fleet by kind <= 300 ms")


def measure_filter_action(base_url: str, tokens: dict[str, str], args: argparse.Namespace) -> None:
    """An action on a whole filter holds the store's write lock for its whole transaction (one audited
    action, one undo): how long it takes, and how long a device's report sent while it runs waits for its
    answer, against the same report alone. Each approve is undone (its undo timed the same way)."""
    import threading

    import httpx

    admin = {"authorization": f"Bearer {tokens['admin']}"}
    with httpx.Client(base_url=base_url, timeout=600) as http:
        sim = fleet.SimDevice.build(10**6 + 7, seed=5)  # a device of its own, not one of the fleet's
        enrolled = http.post("/api/v1/enroll", json={"enroll_secret": tokens["enroll_secret"],
                                                     "host_identifier": sim.device_id, "device": sim.device})
        key = {"authorization": f"Bearer {enrolled.raise_for_status().json()['device_key']}"}
        http.post("/api/v1/reports", content=orjson.dumps(sim.snapshot()), headers=key).raise_for_status()

        def report() -> float:
            started = time.perf_counter()
            http.post("/api/v1/reports", content=orjson.dumps(sim.delta(20, 0.1)), headers=key).raise_for_status()
            return (time.perf_counter() - started) * 1000

        alone = [report() for _ in range(args.runs)]
        coding = {"type": ["coding"]}
        count = http.post("/api/v1/agents/actions/filter", headers=admin,
                          json={"action": "approve", "filter": coding, "dry_run": True}).json()["count"]
        group = {"group_approvals": [{"signature": "claude-code", "users": ["alice"]}]}
        steps = (("approve", "POST /agents/actions/filter (approve)", "POST", "/api/v1/agents/actions/filter",
                  {"action": "approve", "filter": coding}),
                 ("undo", "POST /agents/actions/undo", "POST", "/api/v1/agents/actions/undo", {}),
                 ("policy", "PUT /policy (claude-code approved for alice)", "PUT", "/api/v1/policy", group),
                 ("policy undo", "POST /policy/undo", "POST", "/api/v1/policy/undo", {}))
        timings: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for step, _label, verb, path, body in steps:
                taken: list[float] = []

                def act(verb: str = verb, path: str = path, body: dict[str, object] = body,
                        taken: list[float] = taken) -> None:
                    started = time.perf_counter()
                    with httpx.Client(base_url=base_url, timeout=600) as own:
                        own.request(verb, path, headers=admin, json=body).raise_for_status()
                    taken.append((time.perf_counter() - started) * 1000)

                worker = threading.Thread(target=act)
                worker.start()
                time.sleep(0.3)  # the action has its lock by now
                timings.setdefault(f"during {step}", []).append(report())
                worker.join()
                timings.setdefault(step, []).extend(taken)
    print(f"an approve on every coding agent ({count:,} sightings) and its undo, a policy saved and undone; "
          f"median and slowest of {args.runs}")
    print(f"{'a device report (20 upserts), alone':56} {statistics.median(alone):9.1f} ms  (slowest {max(alone):7.1f})")
    for step, label, *_ in steps:
        for key_, shown in ((step, label), (f"during {step}", "  a device report sent 0.3 s into it: its answer")):
            values = timings[key_]
            print(f"{shown:56} {statistics.median(values):9.1f} ms  (slowest {max(values):7.1f})")


def _some_device(client: object) -> str:
    from console.app import api

    assert isinstance(client, api.Client)
    page = client.devices(skip=4242 % max(1, client.devices(limit=1).count), limit=1)
    return page.data[0].id


if __name__ == "__main__":
    sys.exit(main())
