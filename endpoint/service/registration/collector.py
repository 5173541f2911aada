"""The collector's registrations API as the device uses it, with the device key: send one registration,
and read back the status of this device's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.registration import RegistrationRequest
from endpoint.service.registration.errors import RegistrationRefused
from endpoint.service.registration.policy import FIELD_FLAGS

if TYPE_CHECKING:
    import httpx

REGISTRATIONS_PATH = "/api/v1/registrations"



def refusal(status: int, body: Any) -> str:
    """One line for a 4xx answer: the collector's reason, and what it means here."""
    detail = body.get("detail") if isinstance(body, dict) else None
    reason = str(detail.get("reason")) if isinstance(detail, dict) and detail.get("reason") else f"http {status}"
    reason = reason[:100]
    if reason == "sighting_not_found":
        return ("the collector does not know this agent yet (the daemon has not reported it); "
                "try again after its next report (see `agentroster status`)")
    if reason in ("invalid_device_key", "missing_token", "invalid_token", "not_a_device_key"):
        return (f"the collector refused this device's key ({reason}): the daemon enrolls again by itself "
                "unless an admin revoked this device; try again later (see `agentroster status`)")
    if reason == "invalid_request" and isinstance(detail, dict):
        errors = detail.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            loc = [x for x in errors[0].get("loc", []) if x != "body"]
            where = FIELD_FLAGS.get(str(loc[0]), str(loc[0])) if loc else "request"
            said = detail.get("message") or errors[0].get("msg", "")  # the collector's sentence (msg: older ones)
            return f"refused ({status} invalid_request): {where}: {str(said)[:200]}"
    return f"refused ({status} {reason})"



def send(request: RegistrationRequest, *, collector_url: str, key: str, ca_bundle: str | Path | None,
         timeout_s: float = 15.0, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """POST the registration with the device key; the collector's RegistrationPublic, or an error."""
    import httpx

    from endpoint.service.reporter import CollectorUnreachable, verify_for

    url = collector_url.rstrip("/")
    try:
        verify = verify_for(ca_bundle)
    except OSError as exc:  # missing, unreadable, or not certificates (ssl.SSLError is an OSError)
        raise CollectorUnreachable(f"the CA bundle {ca_bundle} cannot be used: "
                                   f"{exc.strerror or type(exc).__name__}") from None
    try:
        with httpx.Client(base_url=url, verify=verify, transport=transport,
                          timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)), follow_redirects=False,
                          headers={"user-agent": "agentroster-endpoint"}) as http:
            answer = http.post(REGISTRATIONS_PATH, json=request,
                               headers={"authorization": f"Bearer {key}"})
    except httpx.TimeoutException:
        raise CollectorUnreachable(f"the collector at {url} did not answer in time") from None
    except (httpx.HTTPError, OSError) as exc:  # refused, reset, TLS, a bad CA bundle
        text = (str(exc) or type(exc).__name__).splitlines()[0][:200]
        raise CollectorUnreachable(f"cannot reach the collector at {url}: {text}") from None
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise CollectorUnreachable(f"the collector at {url} is unavailable ({answer.status_code}); try again later")
    if answer.status_code != 201:
        raise RegistrationRefused(refusal(answer.status_code, body))
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise CollectorUnreachable(f"the collector at {url} answered 201 without a registration")
    return body



STATUS_PAGE = 500  # the collector's largest page

STATUS_PAGES = 4  # a device with more registrations than this shows the newest ones' status



def fetch_statuses(*, collector_url: str, key: str, ca_bundle: str | Path | None, timeout_s: float = 5.0,
                   transport: httpx.BaseTransport | None = None) -> dict[str, dict[str, Any]] | None:
    """This device's registrations at the collector (``GET /api/v1/registrations`` with the device key:
    its own rows only), newest per sighting; None when it cannot be asked (down, refused, not understood)."""
    import httpx

    from endpoint.service.reporter import verify_for

    rows: list[Any] = []
    try:
        with httpx.Client(base_url=collector_url.rstrip("/"), verify=verify_for(ca_bundle), transport=transport,
                          timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)), follow_redirects=False,
                          headers={"user-agent": "agentroster-endpoint", "authorization": f"Bearer {key}"}) as http:
            for page in range(STATUS_PAGES):
                answer = http.get(REGISTRATIONS_PATH, params={"skip": page * STATUS_PAGE, "limit": STATUS_PAGE})
                if answer.status_code != 200:
                    return None
                body = answer.json()
                data = body.get("data") if isinstance(body, dict) else None
                if not isinstance(data, list):
                    return None
                rows += data
                if len(data) < STATUS_PAGE:
                    break
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return newest_by_sighting(rows)



def newest_by_sighting(rows: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """The newest registration of each sighting from the collector's rows (any order), as id and status."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("id"), int) \
                or not isinstance(row.get("sighting_id"), str) or not isinstance(row.get("status"), str):
            continue
        have = out.get(row["sighting_id"])
        if have is None or row["id"] > have["id"]:
            # an approval past the policy's re-attestation period is still "approved" at the collector,
            # with review_due set: the employee is shown what is asked of them
            status = "review_due" if row["status"] == "approved" and row.get("review_due") is True \
                else row["status"]
            out[row["sighting_id"]] = {"id": row["id"], "status": status, "created_at": row.get("created_at")}
    return out
