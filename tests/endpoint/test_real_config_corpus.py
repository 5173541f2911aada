"""The real-config corpus (tests/corpus/, 326 files from public repositories) through the whole pipeline.

Each file alone, in a home of its own under a ``--root`` tree: ``scan()`` returns a document valid
against ``contract/schema/scan-1.json``, the file is a config of a sighting or an ``errors[]`` entry
names it, and every server it plainly declares is a sighting's MCP server from that file (or an error
names the file). All files together: the real ``agentroster scan --json --root TREE --no-processes``
exits 0 with no traceback, with the same promises.
Then the daemon's path: the scan is spooled as a snapshot (``Inventory``), sent by the ``Reporter`` to
a real collector (``agentroster server`` on 127.0.0.1, SQLite), which accepts it, and the console's
client and view-model list the agents. A hypothesis property mutates real files (strings replaced by
random text, odd URLs and templates, unicode, huge numbers, deep nesting, wrong types) and sends each
scan down the same path: no exception, no 4xx or 5xx.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import corpus_support as cs
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import REPO, run_agentroster

import signatures
from endpoint.scan.run import ScanOptions, scan
from endpoint.service.inventory import Inventory
from endpoint.service.reporter import Reporter

FIXTURES = cs.load_corpus()
SCHEMA = json.loads((REPO / "contract" / "schema" / "scan-1.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
LIB = signatures.load()


def _servers_module() -> Any:
    """tests/console/server/servers.py (a real collector process), loaded under a name of its own."""
    name = "agentroster_corpus_servers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "console" / "server" / "servers.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def machine_path(placed: Path, root: Path) -> str:
    """The path a placed file has on the scanned machine (``/home/u001/.cursor/mcp.json``)."""
    return "/" + placed.relative_to(root).as_posix()


def schema_errors(document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in VALIDATOR.iter_errors(document)]


def missing_servers(document: dict[str, Any], placed: dict[Path, cs.Fixture], root: Path) -> list[str]:
    """Each server a fixture plainly declares that is neither an MCP server of a sighting from that file
    nor covered by an errors[] entry naming the file."""
    found: dict[str, set[str]] = {}
    for sighting in document["sightings"]:
        for server in sighting.get("mcp_servers", []):
            found.setdefault(server.get("source") or "", set()).add(server.get("name"))
    named = " ".join(f"{e.get('where')} {e.get('detail')}" for e in document["errors"])
    missing = []
    for path, fixture in placed.items():
        declared = cs.declared_servers(fixture)
        shown = machine_path(path, root)
        if not declared or shown in named:
            continue
        absent = sorted(declared - found.get(shown, set()))
        if absent:
            missing.append(f"{fixture.name} ({fixture.source}): {absent[:5]} not reported from {shown}")
    return missing


def unread_files(document: dict[str, Any], placed: dict[Path, cs.Fixture], root: Path) -> list[str]:
    """Each placed file that no sighting lists among its configs and no errors[] entry names: a file the
    scan passed over in silence."""
    configs = {c.get("path") for s in document["sightings"] for c in s.get("configs", [])}
    named = " ".join(f"{e.get('where')} {e.get('detail')}" for e in document["errors"])
    return [f"{f.name} ({f.source})" for path, f in placed.items()
            if machine_path(path, root) not in configs and machine_path(path, root) not in named]


# -- the corpus itself ----------------------------------------------------------------------------------


def test_the_corpus_has_300_real_files_each_with_its_source() -> None:
    assert len(FIXTURES) >= 300
    listed = {f.path for f in FIXTURES}
    on_disk = {p for p in (cs.CORPUS / "configs").rglob("*") if p.is_file()}
    assert on_disk == listed, "every file under tests/corpus/configs is listed in SOURCES.tsv, and only those"
    source = re.compile(r"^https://github\.com/[^/\s]+/[^/\s]+/blob/[0-9a-f]{40}/\S+$")
    for fixture in FIXTURES:
        assert source.match(fixture.source), f"{fixture.name}: no source URL ({fixture.source!r})"
        assert fixture.client in cs.CLIENT_PATHS, f"{fixture.name}: no placement for client {fixture.client!r}"
        assert 0 < fixture.path.stat().st_size < 64 * 1024, fixture.name
    assert len({f.source for f in FIXTURES}) == len(FIXTURES), "no file twice"
    assert len({f.client for f in FIXTURES}) >= 12, "every kind of client the signatures know"


def test_no_credential_shaped_value_left_in_the_corpus() -> None:
    """A key of a known shape in the corpus is a fake one (``FAKE`` in it), never a live one."""
    shapes = re.compile(r"(sk-(?:ant-|proj-|or-)?[A-Za-z0-9_\-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|AIza[0-9A-Za-z_\-]{30,}"
                        r"|xox[abposr]-[A-Za-z0-9\-]{10,}|glpat-[A-Za-z0-9_\-]{16,}|sbp_[0-9a-f]{30,}"
                        r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}|pplx-[A-Za-z0-9]{20,}"
                        r"|BSA[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----)")
    for fixture in FIXTURES:
        for hit in shapes.findall(fixture.text().decode("utf-8", "replace")):
            assert "FAKE" in hit.upper(), f"{fixture.name}: a credential-shaped value that is not fake"


# -- each file alone ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.slug for f in FIXTURES])
def test_each_real_file_alone_scans_cleanly(fixture: cs.Fixture, tmp_path: Path) -> None:
    placed = {cs.place(fixture, tmp_path, "alice"): fixture}
    document = scan(ScanOptions(str(tmp_path), processes=False), lib=LIB)
    assert not schema_errors(document), (fixture.source, schema_errors(document)[:5])
    assert not [e for e in document["errors"] if e["error"] == "internal"], (fixture.source, document["errors"])
    assert not missing_servers(document, placed, tmp_path)
    assert not unread_files(document, placed, tmp_path), "the file is a config of a sighting or an error names it"


# -- all files together, through the whole pipeline ----------------------------------------------------


class Pipeline:
    """The corpus in one tree, its CLI scan, and a real collector the scan was reported to."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.placed = cs.build_tree(FIXTURES, root)
        self.result = run_agentroster("scan", "--json", "--root", str(root), "--no-processes", timeout=600)
        servers = _servers_module()
        self.database_url = f"sqlite:///{work}/collector.sqlite3"
        self.tokens = servers.provision(self.database_url)
        # A burst as large as the property's reports: the collector's 429 asks a daemon to slow down (it
        # retries later); here every report must be taken at once.
        self.collector = servers.CollectorProcess(self.database_url, extra=("--report-burst", "1000000"),
                                                  log=work / "server.log").start()

    @property
    def base_url(self) -> str:
        return str(self.collector.base_url)

    def reporter(self, data_dir: Path, device: dict[str, Any]) -> tuple[Inventory, Reporter]:
        inventory = Inventory(data_dir)
        reporter = Reporter(inventory, collector_url=self.base_url, enroll_secret=lambda: self.tokens["enroll_secret"],
                            device=lambda: device, drain_reports_per_s=0)
        reporter.enroll()
        return inventory, reporter


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path_factory.mktemp("tree"), tmp_path_factory.mktemp("collector"))
    yield running
    running.collector.stop()


def drain(reporter: Reporter) -> int:
    """Send every spooled report (each must be accepted: a 4xx or 5xx raises); how many were sent."""
    sent = 0
    while reporter.send_next():
        sent += 1
    return sent


def test_all_real_files_together_scan_cleanly_from_the_cli(pipeline: Pipeline) -> None:
    result = pipeline.result
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert not schema_errors(document), schema_errors(document)[:5]
    assert not [e for e in document["errors"] if e["error"] == "internal"], document["errors"][:5]
    assert not missing_servers(document, pipeline.placed, pipeline.root)
    assert not unread_files(document, pipeline.placed, pipeline.root)
    users = {s.get("user") for s in document["sightings"]}
    assert len(users) >= 250, "nearly every file is a home of its own with an agent in it"


def test_all_real_files_go_through_report_collector_and_console(pipeline: Pipeline, tmp_path: Path) -> None:
    from console.app import api, viewmodels

    document = json.loads(pipeline.result.stdout)
    device = dict(document["device"], id=f"host:corpus-{tmp_path.name}")
    inventory, reporter = pipeline.reporter(tmp_path / "state", device)
    inventory.record(document["sightings"], device=device, errors=document["errors"], snapshot=True)
    assert drain(reporter) >= 1
    assert inventory.pending() is None, "every report was acknowledged"

    client = api.Client(pipeline.base_url, pipeline.tokens["viewer"])
    try:
        devices = [d for d in client.devices().data if d.hostname == device["hostname"]]
        assert devices, "the device is at the collector"
        roster = viewmodels.AgentList(page_size=500)
        roster.reset(filter=roster.filter.with_(device=devices[0].id, type=None))  # tool servers too
        while (request := roster.next_request()) is not None:
            page = client.agents(request.params, sort=request.sort, order=request.order, limit=request.limit,
                                 cursor=request.cursor)
            fresh = roster.receive(request.generation, page)
            assert fresh is not None
            roster.append(fresh)
    finally:
        client.close()
    assert roster.count == len(document["sightings"]) == len(roster.rows)
    listed = {(a.name, a.user) for a in roster.rows}
    assert {(s["name"], s["user"]) for s in document["sightings"]} == listed


# -- a property over the whole pipeline: mutated real files -----------------------------------------------

ODD_STRINGS = (
    "https://${input:x}/", "https://${input:host}:${input:port}/mcp", "http://[::1", "http://[::1]:99999999999/",
    "https://example.org:99999999999/sse", "http://:0", "https://user:FAKEpass@[fe80::1%25eth0]:-1/",
    "${env:HOME}/${workspaceFolder}", "${input:", "}{", "file:///etc/passwd", "http://\u0000/", "https://例え.テスト/ü",
    "\u202e\u200b\ufeff", "\ud7ff\ue000\U0010ffff", "sk-ant-api03-FAKE" + "A" * 80, "x" * 5000, "", " ", "\\",
    "npx -y @modelcontextprotocol/server-filesystem /", "javascript:alert(1)", "%00%ff%zz", "-" * 3 + ">",
)  # fmt: skip
HUGE_NUMBERS = ("99999999999999999999999999999999999999", "-1e999", "1e309", "9" * 400, "0.0000000000000001e-400")
_QUOTED = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_NUMBER = re.compile(r"(?<![\w.\-])-?\d+(?:\.\d+)?(?![\w.\-])")

text_values = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=60))
any_json: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), text_values,
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text_values, inner, max_size=4)),
    max_leaves=12,
)


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _deep(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = {"mcpServers": {"x": value}} if depth % 2 else [value]
    return value


def _mutate_json(document: Any, draw: Any) -> Any:
    """Some values of a parsed document replaced by wrong types, odd text, huge numbers or deep nesting."""
    paths: list[tuple[Any, Any]] = []
    stack = [document]
    while stack:
        node = stack.pop()
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        for key, value in items:
            paths.append((node, key))
            stack.append(value)
    if not paths:
        return draw(any_json)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        node, key = draw(st.sampled_from(paths))
        choice = draw(st.integers(min_value=0, max_value=3))
        if choice == 0:
            node[key] = draw(any_json)
        elif choice == 1:
            node[key] = draw(text_values)
        elif choice == 2:
            node[key] = _deep(node[key], draw(st.integers(min_value=50, max_value=400)))
        else:
            node[key] = draw(st.sampled_from([10**40, -(2**63), 2**64, 1e308, True, [], {}]))
    return document


@st.composite
def mutated_files(draw: Any) -> tuple[cs.Fixture, bytes]:
    """A real corpus file, mutated: as a parsed document when it is plain JSON, else as text (quoted
    strings and numbers replaced in place), so that YAML, TOML and JSONC files are mutated too."""
    fixture = draw(st.sampled_from(FIXTURES))
    text = fixture.text().decode("utf-8")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if document is not None and draw(st.booleans()):
        return fixture, json.dumps(_mutate_json(document, draw), ensure_ascii=False).encode("utf-8", "surrogatepass")
    strings = list(_QUOTED.finditer(text))
    numbers = list(_NUMBER.finditer(text))
    edits: dict[tuple[int, int], str] = {}
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        if strings and (not numbers or draw(st.booleans())):
            match = draw(st.sampled_from(strings))
            edits[match.span(1)] = _quoted(draw(text_values))
        elif numbers:
            match = draw(st.sampled_from(numbers))
            edits[match.span()] = draw(st.sampled_from(HUGE_NUMBERS))
    for (start, end), new in sorted(edits.items(), reverse=True):
        text = text[:start] + new + text[end:]
    return fixture, text.encode("utf-8", "surrogatepass")


class Reported:
    """One enrolled device of the test's own: its spool, its reporter, and what the collector lists for it
    (its repr names the device only: hypothesis prints it with a failing example)."""

    def __init__(self, pipeline: Pipeline, data_dir: Path, name: str) -> None:
        self.device = {"id": f"host:{name}", "hostname": name, "os": "linux", "os_version": "", "arch": "x86_64",
                       "agentroster_version": "0.1.0"}
        self.inventory, self.reporter = pipeline.reporter(data_dir, self.device)
        self._viewer = pipeline.tokens["viewer"]

    def __repr__(self) -> str:
        return f"Reported({self.device['id']})"

    def send(self, document: dict[str, Any], *, snapshot: bool = False) -> None:
        """Spool the scan as the daemon does and send it: a 4xx or 5xx from the collector raises."""
        self.inventory.record(document["sightings"], device=self.device, errors=document["errors"],
                              snapshot=snapshot)
        drain(self.reporter)
        assert self.inventory.pending() is None

    def listed(self) -> list[dict[str, Any]]:
        answer = self.reporter.http.get("/api/v1/agents", headers={"authorization": f"Bearer {self._viewer}"},
                                        params={"device": self.inventory.meta()["device_id"], "limit": 500})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])


@pytest.fixture(scope="module")
def mutation_device(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Reported:
    return Reported(pipeline, tmp_path_factory.mktemp("mutation-state"), "corpus-mutations")


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(case=mutated_files())
def test_mutated_real_files_never_break_the_pipeline(case: tuple[cs.Fixture, bytes], mutation_device: Reported,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    fixture, content = case
    root = tmp_path_factory.mktemp("mutated")
    placed = cs.place(fixture, root, "mallory", content)
    document = scan(ScanOptions(str(root), processes=False), lib=LIB)
    assert not schema_errors(document), (fixture.source, schema_errors(document)[:3])
    shown = machine_path(placed, root)
    internal = [e for e in document["errors"] if e["error"] == "internal"]
    assert all(shown in f"{e['where']} {e['detail']}" for e in internal), internal
    mutation_device.send(document)
    # The collector now holds exactly what this scan found: the report was applied, not just taken.
    assert sorted(a["id"] for a in mutation_device.listed()) == sorted(s["id"] for s in document["sightings"])


# Names the property found: a server named in a user's file with a NUL, or longer than the collector
# stores, is a sighting the scan reports as it is.
HOSTILE_NAMES = {"nul": "eslint\u0000", "long": "eslint-" + "n" * 2000, "lone-surrogate": "eslint-\ud800"}


@pytest.mark.parametrize("kind", sorted(HOSTILE_NAMES))
def test_a_hostile_server_name_in_a_real_file_never_blinds_the_device(kind: str, pipeline: Pipeline,
                                                                       tmp_path: Path) -> None:
    fixture = next(f for f in FIXTURES if "0xjacky-nginx-ui" in f.slug)
    text = fixture.text().decode("utf-8").replace('"eslint"', json.dumps(HOSTILE_NAMES[kind]), 1)
    root = tmp_path / "tree"
    cs.place(fixture, root, "mallory", text.encode("utf-8", "surrogatepass"))
    document = scan(ScanOptions(str(root), processes=False), lib=LIB)
    reported = Reported(pipeline, tmp_path / "state", f"corpus-{kind}")
    reported.send(document, snapshot=True)  # a 422 for one sighting would drop the whole snapshot, every time
    assert "context7" in {a["name"] for a in reported.listed()}, "the file's other server is at the collector"
