"""Helpers for the console's tests: a real collector on 127.0.0.1 (``agentroster server`` over SQLite),
filled through its real enroll and report API by simulated devices (tests/console/server/fleet.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SERVER_TESTS = Path(__file__).resolve().parents[1] / "server"
if str(SERVER_TESTS) not in sys.path:
    sys.path.append(str(SERVER_TESTS))

import fleet  # noqa: E402
import servers  # noqa: E402


@dataclass
class RunningCollector:
    process: servers.CollectorProcess
    admin: str
    viewer: str
    enroll_secret: str
    http: httpx.Client = field(init=False)
    keys: dict[str, str] = field(default_factory=dict)  # host identifier -> its device key

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.process.base_url, timeout=30)

    @property
    def url(self) -> str:
        return self.process.base_url

    def get(self, path: str, token: str | None = None, **params: Any) -> Any:
        answer = self.http.get(path, headers={"authorization": f"Bearer {token or self.admin}"}, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def enroll(self, host: str, os: str = "linux", *, proof: bool = True) -> str:
        """Enroll ``host`` (again: with its key as proof, unless ``proof`` is False, as an intruder would)."""
        body = {"enroll_secret": self.enroll_secret, "host_identifier": host,
                "device": fleet.device_doc(host, os=os), "device_key": self.keys.get(host) if proof else None}
        answer = self.http.post("/api/v1/enroll", json=body)
        assert answer.status_code == 200, answer.text
        self.keys[host] = str(answer.json()["device_key"])
        return self.keys[host]

    def snapshot(self, host: str, sightings: list[dict[str, Any]], os: str = "linux", seq: int = 1) -> str:
        """Enroll ``host`` and send one snapshot of ``sightings``; the device id the collector gave it."""
        key = self.enroll(host, os)
        doc = fleet.report(fleet.device_doc(host, os=os), kind="snapshot", seq=seq, upserts=sightings)
        answer = self.http.post("/api/v1/reports", json=doc, headers={"authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and answer.json()["applied"], answer.text
        return self.device_id(host)

    def register(self, host: str, sighting_id: str, **declared: Any) -> dict[str, Any]:
        """An employee's registration of one of ``host``'s agents, sent with its device key."""
        body = {"sighting_id": sighting_id, "owner": "yann@example.org", "purpose": "weekly sales report",
                "business_process": "sales", "providers": ["openai"], "tools": [], "data_systems": ["crm"],
                "autonomy": "supervised", **declared}  # fmt: skip
        answer = self.http.post("/api/v1/registrations", json=body,
                                headers={"authorization": f"Bearer {self.keys[host]}"})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def device_id(self, host: str) -> str:
        skip = 0
        while True:
            page = self.get("/api/v1/devices", limit=500, skip=skip)
            for device in page["data"]:
                if device["host_identifier"] == host:
                    return str(device["id"])
            skip += 500
            if skip >= page["count"]:
                raise AssertionError(f"{host} is not enrolled")

    def fill(self, devices: int, seed: int = 3) -> int:
        """Simulated devices, each sending one snapshot of its ~25 sightings; the sightings sent."""
        total = 0
        for i in range(devices):
            sim = fleet.SimDevice.build(i, seed=seed)
            key = self.enroll(sim.device_id, sim.device["os"])
            doc = sim.snapshot()
            answer = self.http.post("/api/v1/reports", json=doc, headers={"authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
            total += len(doc["upserts"])
        return total

    def close(self) -> None:
        self.http.close()
        self.process.stop()


def start(database_url: str, log: Path, *extra: str) -> RunningCollector:
    tokens = servers.provision(database_url)
    process = servers.CollectorProcess(database_url, extra=extra, log=log).start()
    return RunningCollector(process, tokens["admin"], tokens["viewer"], tokens["enroll_secret"])


def sighting(**kw: Any) -> dict[str, Any]:
    return fleet.sighting(**kw)
