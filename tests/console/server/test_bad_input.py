"""Bad input to every route: no token, a wrong token, the wrong kind of token, the wrong role, an
oversized body, invalid JSON, a schema violation. Each gets a clear 4xx with a reason, and nothing
in the store changes."""

from __future__ import annotations

import fleet
import pytest

READ = [
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/agents/some-device/some-sighting"),
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/overview"),
    ("GET", "/api/v1/policy"),
    ("GET", "/metrics"),
]
WRITE = [
    ("POST", "/api/v1/devices/some-device/revoke"),
    ("PUT", "/api/v1/policy"),
    ("POST", "/api/v1/admin/tokens"),
    ("GET", "/api/v1/admin/tokens"),
    ("DELETE", "/api/v1/admin/tokens/0000000000000000"),
    ("POST", "/api/v1/admin/enroll-secret"),
]
REPORTS = ("POST", "/api/v1/reports")
AUTHENTICATED = [*READ, *WRITE, REPORTS]
WITH_BODY = [("PUT", "/api/v1/policy"), ("POST", "/api/v1/admin/tokens"), ("POST", "/api/v1/enroll"), REPORTS]
WRONG_BODIES = {  # a body of the right JSON type that breaks each route's schema
    "/api/v1/policy": {"sanctioned_signatures": "not a list"},
    "/api/v1/admin/tokens": {"role": "superuser"},
    "/api/v1/enroll": {"enroll_secret": "x", "host_identifier": "", "device": {}},
    "/api/v1/reports": {"schema": "agentroster.report/1", "epoch": "e1", "seq": 0, "kind": "delta"},
}


def store_state(collector) -> tuple:
    """What a refused request must not change."""
    tokens = collector.get("/api/v1/admin/tokens").json()
    return (tokens["count"], [t["revoked"] for t in tokens["data"]], collector.get("/api/v1/policy").json(),
            collector.get("/api/v1/devices", limit=500).json(), collector.agents(limit=500, state="all")["count"])


def call(collector, method: str, path: str, token: str | None = None, **kw):
    headers = dict(kw.pop("headers", {}))
    if token:
        headers["authorization"] = f"Bearer {token}"
    return collector.http.request(method, path, headers=headers, **kw)


@pytest.fixture
def unchanged(collector):
    """Asserts, after the test, that the store is as it was before (after the test's other fixtures)."""
    before = store_state(collector)
    yield
    assert store_state(collector) == before


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
def test_no_token_is_refused(collector, unchanged, method, path) -> None:
    answer = call(collector, method, path, json={})
    assert (answer.status_code, fleet.reason(answer)) == (401, "missing_token")


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
@pytest.mark.parametrize("token", ["ara_0123456789abcdef.wrong", "ard_0123456789abcdef.wrong", "garbage",
                                   "ara_' OR 1=1 --.x"])
def test_a_wrong_token_is_refused(collector, unchanged, method, path, token) -> None:
    answer = call(collector, method, path, token, json={})
    assert answer.status_code in (401, 403)
    assert fleet.reason(answer) in ("invalid_token", "invalid_device_key", "device_token_not_allowed",
                                    "not_a_device_key")


@pytest.mark.parametrize(("method", "path"), [*READ, *WRITE])
def test_a_device_key_reads_and_changes_nothing(device, unchanged, method, path) -> None:
    answer = call(device.collector, method, path, device.key, json={})
    assert (answer.status_code, fleet.reason(answer)) == (403, "device_token_not_allowed")


@pytest.mark.parametrize(("method", "path"), WRITE)
def test_a_viewer_changes_nothing(collector, unchanged, method, path) -> None:
    answer = call(collector, method, path, collector.viewer, json={"role": "admin"})
    assert (answer.status_code, fleet.reason(answer)) == (403, "admin_role_required")


@pytest.mark.parametrize(("method", "path"), WITH_BODY)
def test_an_oversized_body_is_refused(device, unchanged, method, path) -> None:
    token = device.key if path == REPORTS[1] else device.collector.admin
    body = b"[" + b"0," * (5 * 1024 * 1024) + b"0]"
    answer = call(device.collector, method, path, token, content=body, headers={"content-type": "application/json"})
    assert (answer.status_code, fleet.reason(answer)) == (413, "body_too_large")


@pytest.mark.parametrize(("method", "path"), WITH_BODY)
@pytest.mark.parametrize("body", [b"{", b"not json", b"\xff\xfe", b""])
def test_invalid_json_is_refused(device, unchanged, method, path, body) -> None:
    token = device.key if path == REPORTS[1] else device.collector.admin
    answer = call(device.collector, method, path, token, content=body, headers={"content-type": "application/json"})
    assert answer.status_code in (400, 422)
    assert fleet.reason(answer) in ("invalid_json", "invalid_request", "invalid_report")


@pytest.mark.parametrize(("method", "path"), WITH_BODY)
def test_a_schema_violation_is_refused(device, unchanged, method, path) -> None:
    token = device.key if path == REPORTS[1] else device.collector.admin
    answer = call(device.collector, method, path, token, json=WRONG_BODIES[path])
    assert answer.status_code == 422
    assert fleet.reason(answer) in ("invalid_request", "invalid_report")


@pytest.mark.parametrize("param", ["device", "user", "signature", "provider", "q"])
@pytest.mark.parametrize("text", ["' OR 1=1 --", "%", "_", "\" OR \"\"=\"", "1; DELETE FROM sighting"])
def test_sql_looking_filter_strings_match_nothing(device, param, text) -> None:
    device.snapshot(fleet.sighting(name="Claude Code"), fleet.sighting(name="Aider", user=None))
    scope = {} if param == "device" else {"device": device.device_id}
    answer = device.collector.get("/api/v1/agents", **scope, **{param: text})
    assert answer.status_code == 200
    assert answer.json()["data"] == [] and answer.json()["count"] == 0


@pytest.mark.parametrize("path", ["/api/v1/agents/' OR 1=1 --/x", "/api/v1/agents/%25/%5F"])
def test_sql_looking_ids_are_not_found(collector, unchanged, path) -> None:
    answer = collector.get(path)
    assert (answer.status_code, fleet.reason(answer)) == (404, "sighting_not_found")
