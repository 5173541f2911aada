"""Fixtures for the collector's tests: real ``agentroster server`` processes on 127.0.0.1, each test
run twice, on SQLite (a file in a temporary directory) and on PostgreSQL (a cluster these fixtures
start themselves; skipped, with the reason, only when PostgreSQL's binaries are missing).

Factories: ``enroll()`` makes a device with its own key; ``Device.send()`` posts a report;
``fleet.sighting()`` builds a sighting in the contract's shape; ``fleet.reason()`` reads an error's reason.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).parent
# The repository first: tests/ is on sys.path too (tests/conftest.py), where tests/console/ would
# otherwise shadow the console package as an empty namespace package.
sys.path.insert(0, str(HERE.parents[2]))
for _name in [m for m in sys.modules if m == "console" or m.startswith("console.")]:
    if getattr(sys.modules[_name], "__file__", None) is None:
        del sys.modules[_name]

import fleet  # noqa: E402
import servers  # noqa: E402

BACKENDS = ("sqlite", "postgresql")


_counter = itertools.count(1)


# -- databases --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[servers.PostgresCluster]:
    bindir = servers.postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql); "
                    "the PostgreSQL half of the collector tests is skipped")
    cluster = servers.PostgresCluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def new_database(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A factory of empty databases (URLs) on the session's backend."""

    def make() -> str:
        name = f"t{next(_counter)}_{uuid.uuid4().hex[:6]}"
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('collector')}/{name}.sqlite3"
        cluster: servers.PostgresCluster = request.getfixturevalue("pg_cluster")
        return cluster.create_database(name)

    return make


# -- collectors -------------------------------------------------------------------------------------


@dataclass
class Collector:
    """A running collector with an admin token, a viewer token and the enroll secret."""

    process: servers.CollectorProcess
    database_url: str
    admin: str
    viewer: str
    enroll_secret: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.process.base_url, timeout=30)

    def as_admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.admin}"}

    def as_viewer(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.viewer}"}

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token or self.admin}"}
        return self.http.get(path, headers=headers, params=params)

    def agents(self, **params: Any) -> dict[str, Any]:
        answer = self.get("/api/v1/agents", **params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def restart(self) -> None:
        self.process.stop()
        self.http.close()
        self.process.start()
        self.http = httpx.Client(base_url=self.process.base_url, timeout=30)


def start_collector(database_url: str, tmp: Path, *extra: str) -> Collector:
    tokens = servers.provision(database_url)
    process = servers.CollectorProcess(database_url, extra=extra, log=tmp / "server.log").start()
    return Collector(process, database_url, tokens["admin"], tokens["viewer"], tokens["enroll_secret"])


@pytest.fixture(scope="session")
def collector(new_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """The collector most tests share; each test enrolls its own devices and filters on them."""
    running = start_collector(new_database(), tmp_path_factory.mktemp("shared"))
    yield running
    running.process.stop()


@pytest.fixture
def own_collector(new_database: Any, tmp_path: Path) -> Iterator[Collector]:
    """A collector of this test's own, for tests that change the policy, count the fleet or restart it."""
    running = start_collector(new_database(), tmp_path)
    yield running
    running.process.stop()


# -- devices ----------------------------------------------------------------------------------------


@dataclass
class Device:
    """An enrolled device of a test: its key, and its own epoch and seq for the reports it sends."""

    collector: Collector
    host_identifier: str
    device_id: str
    key: str
    epoch: str = "e1"
    seq: int = 0

    @property
    def doc(self) -> dict[str, Any]:
        return fleet.device_doc(self.host_identifier)

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    def report(self, kind: str = "delta", upserts: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
        """The next report in this device's sequence (advances seq unless ``seq=`` is given)."""
        if "seq" not in kw:
            self.seq += 1
            kw["seq"] = self.seq
        kw.setdefault("epoch", self.epoch)
        return fleet.report(self.doc, kind=kind, upserts=upserts, **kw)

    def send(self, document: dict[str, Any], key: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key or self.key}"}
        return self.collector.http.post("/api/v1/reports", json=document, headers=headers)

    def snapshot(self, *sightings: dict[str, Any]) -> dict[str, Any]:
        answer = self.send(self.report("snapshot", list(sightings)))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def agents(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.collector.agents(device=self.device_id, limit=500, **params)["data"])


def enroll_device(collector: Collector, host_identifier: str | None = None, proof: str | None = None) -> Device:
    """Enroll ``host_identifier`` (a new one by default); ``proof`` is the key it holds, for enrolling again."""
    host = host_identifier or f"host:test-{uuid.uuid4().hex[:10]}"
    body = {"enroll_secret": collector.enroll_secret, "host_identifier": host, "device": fleet.device_doc(host),
            "device_key": proof}
    answer = collector.http.post("/api/v1/enroll", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    return Device(collector, host, data["device_id"], data["device_key"])


@pytest.fixture
def enroll(collector: Collector) -> Any:
    """``enroll()`` → a new Device on the shared collector (``enroll(host, proof=key)`` enrolls it again)."""
    return lambda host_identifier=None, proof=None: enroll_device(collector, host_identifier, proof)


@pytest.fixture
def enroll_on() -> Any:
    """``enroll_on(collector)`` → a new Device on any collector (e.g. a test's own)."""
    return enroll_device


@pytest.fixture
def device(enroll: Any) -> Device:
    return enroll()  # type: ignore[no-any-return]
