"""/healthz (no authentication), /metrics (Prometheus text, admin or viewer), /openapi.json."""

from __future__ import annotations

import fleet


def test_healthz_needs_no_token_and_checks_the_database(collector) -> None:
    answer = collector.http.get("/healthz")
    assert answer.status_code == 200 and answer.json()["status"] == answer.json()["database"] == "ok"


def test_metrics_need_a_token(collector) -> None:
    answer = collector.http.get("/metrics")
    assert (answer.status_code, fleet.reason(answer)) == (401, "missing_token")


def test_metrics_count_reports_devices_sightings_and_latency(device) -> None:
    device.snapshot(fleet.sighting())
    text = device.collector.get("/metrics", token=device.collector.viewer).text
    assert 'agentroster_reports_total{result="applied"' in text
    for name in ("agentroster_devices ", "agentroster_sightings ", "agentroster_http_request_duration_seconds_bucket"):
        assert name in text
    assert 'route="/api/v1/reports"' in text


def test_the_openapi_document_describes_the_report_body(collector) -> None:
    schema = collector.http.get("/openapi.json").json()
    body = schema["paths"]["/api/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Report"}
    assert "Sighting" in schema["components"]["schemas"]
    assert "/api/v1/agents" in schema["paths"] and "/api/v1/policy" in schema["paths"]


def test_an_unknown_route_answers_with_a_reason(collector) -> None:
    answer = collector.get("/api/v1/nothing-here")
    assert (answer.status_code, fleet.reason(answer)) == (404, "not_found")
