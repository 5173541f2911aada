"""What the fleet by kind and the policy choices call each kind of agent: the signature library's name
("LangChain / LangGraph"), never one sighting's ("app.worker in /srv/invoice-triage": enterprise agents
are named after their projects); an id the library does not know (a custom pack's) keeps the name its
sightings carry; the agents no signature matched keep their type's label. Real collectors on SQLite and
PostgreSQL, filled through the ingest API."""

from __future__ import annotations

from typing import Any

import fleet
import pytest
from conftest import Collector

pytestmark = pytest.mark.timeout(120)


def fill(collector: Collector, enroll_on: Any) -> None:
    device = enroll_on(collector)
    device.snapshot(
        # two projects of one framework: neither project's name is the kind's
        fleet.sighting(signature="langchain", name="app.worker in /srv/invoice-triage", type="enterprise",
                       vendor="LangChain", user="svc-invoices"),
        fleet.sighting(signature="langchain", name="tasks.py in /srv/support-bot", type="enterprise",
                       vendor="LangChain", user="svc-support"),
        fleet.sighting(signature="claude-code", name="claude (alice's shell)", user="alice"),
        fleet.sighting(signature="acme-ledger-agent", name="Acme Ledger Agent", type="enterprise", vendor="Acme"),
        fleet.sighting(signature=None, name="python3 report.py", type="unknown", vendor=""))


def test_a_fleet_row_is_named_after_its_signature_not_one_of_its_sightings(own_collector, enroll_on) -> None:
    fill(own_collector, enroll_on)
    answer = own_collector.get("/api/v1/agents/fleet")
    assert answer.status_code == 200, answer.text
    names = {row["key"]: row["name"] for row in answer.json()["agents"]}
    assert names == {"langchain": "LangChain / LangGraph", "claude-code": "Claude Code",
                     "acme-ledger-agent": "Acme Ledger Agent",  # a custom pack's id: its sightings' name
                     "unknown:unknown": "Unknown agents"}


def test_the_policy_choices_name_signatures_as_the_fleet_does(own_collector, enroll_on) -> None:
    fill(own_collector, enroll_on)
    answer = own_collector.get("/api/v1/policy/choices")
    assert answer.status_code == 200, answer.text
    names = {choice["id"]: choice["name"] for choice in answer.json()["signatures"]}
    assert names == {"langchain": "LangChain / LangGraph", "claude-code": "Claude Code",
                     "acme-ledger-agent": "Acme Ledger Agent"}
