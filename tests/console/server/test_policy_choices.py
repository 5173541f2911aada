"""The policy choices count what present sightings report: the providers a gone sighting called are taken
off again, whichever way the collector counts them (the tag index less the gone sightings' tags, or, when
most of the store is gone, the tags joined to the present sightings). Real collectors on SQLite and
PostgreSQL, filled through the ingest API."""

from __future__ import annotations

import fleet
import pytest
from conftest import Collector

pytestmark = pytest.mark.timeout(120)


def providers_chosen(collector: Collector) -> dict[str, int]:
    answer = collector.get("/api/v1/policy/choices")
    assert answer.status_code == 200, answer.text
    return {choice["id"]: choice["sightings"] for choice in answer.json()["providers"]}


def test_a_gone_sightings_providers_are_not_counted(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    kept = fleet.sighting(providers=("openai", "anthropic"))
    dropped = [fleet.sighting(providers=("openai",)), fleet.sighting(providers=("openrouter",))]
    device.snapshot(kept, *dropped)
    assert providers_chosen(own_collector) == {"openai": 2, "anthropic": 1, "openrouter": 1}

    device.snapshot(kept)  # fewer gone sightings (2) than provider tags (4): the tag index, less theirs
    assert providers_chosen(own_collector) == {"openai": 1, "anthropic": 1}

    silent = [fleet.sighting(signature=None, name=f"python3 job{i}.py", type="unknown") for i in range(4)]
    device.snapshot(kept, *silent)
    device.snapshot(kept)  # now more gone sightings (6) than provider tags (4): the tags of the present ones
    assert providers_chosen(own_collector) == {"openai": 1, "anthropic": 1}


def test_the_choices_count_each_fingerprint_of_present_sightings_once_per_sighting(own_collector, enroll_on) -> None:
    fingerprint = "hmac-sha256:" + "0123456789abcdef" * 2
    other = "hmac-sha256:" + "fedcba9876543210" * 2
    device, second = enroll_on(own_collector), enroll_on(own_collector)
    device.snapshot(fleet.sighting(fingerprints=(fingerprint,)), fleet.sighting(fingerprints=(fingerprint, other)))
    second.snapshot(fleet.sighting(fingerprints=(fingerprint,)))
    second.snapshot()  # its sighting is gone
    answer = own_collector.get("/api/v1/policy/choices").json()["fingerprints"]
    assert {c["id"]: (c["sightings"], c["devices"]) for c in answer} == {fingerprint: (2, 1), other: (1, 1)}
