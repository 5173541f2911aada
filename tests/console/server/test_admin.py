"""Admin routes: tokens (shown once, stored hashed, revocable) and the enroll secret."""

from __future__ import annotations

import fleet
import pytest


def test_an_admin_creates_a_viewer_token_that_reads(collector) -> None:
    made = collector.http.post("/api/v1/admin/tokens", json={"role": "viewer", "name": "soc"},
                               headers=collector.as_admin())
    assert made.status_code == 201 and made.json()["token"].startswith("ara_")
    assert collector.get("/api/v1/overview", token=made.json()["token"]).status_code == 200


def test_the_token_list_shows_no_values(collector) -> None:
    listed = collector.get("/api/v1/admin/tokens").json()
    assert listed["count"] >= 2
    assert all("token" not in t and "hash" not in t and "salt" not in t for t in listed["data"])


def test_a_revoked_token_stops_working(collector) -> None:
    made = collector.http.post("/api/v1/admin/tokens", json={"role": "viewer"}, headers=collector.as_admin()).json()
    collector.http.delete(f"/api/v1/admin/tokens/{made['id']}", headers=collector.as_admin())
    answer = collector.get("/api/v1/overview", token=made["token"])
    assert (answer.status_code, fleet.reason(answer)) == (401, "invalid_token")


def test_revoking_an_unknown_token_is_not_found(collector) -> None:
    answer = collector.http.delete("/api/v1/admin/tokens/0000000000000000", headers=collector.as_admin())
    assert (answer.status_code, fleet.reason(answer)) == (404, "token_not_found")


@pytest.mark.parametrize("role", ["root", "", None])
def test_a_token_role_must_be_admin_or_viewer(collector, role) -> None:
    answer = collector.http.post("/api/v1/admin/tokens", json={"role": role}, headers=collector.as_admin())
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request")


def test_a_viewer_cannot_list_tokens(collector) -> None:
    answer = collector.get("/api/v1/admin/tokens", token=collector.viewer)
    assert (answer.status_code, fleet.reason(answer)) == (403, "admin_role_required")
