"""The reporter: enrolls the device, then drains the spool to the collector, oldest report first.

A report leaves the spool only when the collector acknowledges it (applied, or a duplicate: it holds it
already); a ``need_snapshot`` answer replaces the spool by a snapshot; a rejected device key is
put aside and the device enrolls again, showing that key as proof that it is the device that held it
(the collector lets no one else re-enroll an identity whose key is live). Enrollment brings the
organisation's fingerprint key, kept root-only beside the device key. Every failure is one of the errors below, retried with capped
exponential backoff and jitter, so that a fleet coming back after an outage does not return in step.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.report import finish_body
from endpoint.errors import EndpointError
from endpoint.service.inbox import InboxPoller
from endpoint.service.inventory import SpoolFull

if TYPE_CHECKING:
    import httpx

    from endpoint.service.inventory import Inventory, Spooled

log = logging.getLogger("agentroster.reporter")

ENROLL_PATH = "/api/v1/enroll"
REPORTS_PATH = "/api/v1/reports"
REENROLL_REASONS = frozenset({"invalid_device_key", "missing_token", "not_a_device_key", "device_mismatch",
                              "invalid_token"})


# -- the error tree ------------------------------------------------------------------------------------


class ReporterError(EndpointError):
    """A report or an enrollment did not reach the collector, or was refused."""

    code = "report_failed"


class CollectorUnreachable(ReporterError):
    """No answer: connection refused or reset, a timeout, a TLS failure, or a 5xx / 429 (try again later)."""

    code = "collector_unreachable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EnrollmentRejected(ReporterError):
    """The collector refused to enroll this device: wrong or no enroll secret, or the device is revoked."""

    code = "enrollment_rejected"


class DeviceKeyRejected(ReporterError):
    """The collector no longer knows this device's key (revoked, replaced, or its store was reset)."""

    code = "device_key_rejected"


class ReportRefused(ReporterError):
    """The collector refused a report it can never apply (400, 413, 422); the report is dropped."""

    code = "report_refused"


# -- backoff -------------------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Capped exponential backoff with jitter: base, 2×base, 4×base … up to cap, each ×[0.5, 1)."""

    base_s: float
    cap_s: float
    failures: int = 0
    rng: random.Random | None = None

    def next(self) -> float:
        raw = min(self.cap_s, self.base_s * 2.0 ** min(self.failures, 30))
        self.failures += 1
        jitter = self.rng.random() if self.rng is not None else random.random()
        return raw * (0.5 + 0.5 * jitter)

    def reset(self) -> None:
        self.failures = 0


def _reason(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        return f"http {answer.status_code}"
    if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
        return str(detail["reason"])[:200]
    return f"http {answer.status_code}"


def _retry_after(answer: httpx.Response) -> float | None:
    value = answer.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def verify_for(ca_bundle: str | Path | None) -> ssl.SSLContext | bool:
    """TLS verification against the org's CA bundle (a file or a directory), or the system's."""
    if ca_bundle is None:
        return True
    path = Path(ca_bundle)
    if path.is_dir():
        return ssl.create_default_context(capath=str(path))
    return ssl.create_default_context(cafile=str(path))


@dataclass
class ReporterStats:
    """What ``agentroster status`` shows about the link to the collector."""

    last_sent_at: float | None = None
    last_sent_seq: int | None = None
    last_ack_at: float | None = None
    last_acked_seq: int | None = None
    last_error: str = ""
    last_error_at: float | None = None
    enrollments: int = 0
    rejected_reports: int = 0
    next_attempt_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Reporter:
    """Enrolls and sends; ``run()`` in a thread of its own, or ``enroll()`` / ``send_next()`` one at a time.

    ``enroll_secret`` is called at each enrollment (a secret file may be rotated meanwhile); ``device``
    gives the scan's device document; ``status`` the DeviceStatus sent with each report.
    """

    def __init__(self, inventory: Inventory, *, collector_url: str, enroll_secret: Callable[[], str | None],
                 device: Callable[[], Mapping[str, Any]], status: Callable[[], Mapping[str, Any]] = dict,
                 ca_bundle: str | Path | None = None, drain_reports_per_s: float = 5.0,
                 retry_base_s: float = 1.0, retry_cap_s: float = 60.0, enroll_cap_s: float = 300.0,
                 timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None, hardware_id: str = "",
                 on_enrolled: Callable[[], None] | None = None) -> None:
        import httpx

        self.inventory = inventory
        self.collector_url = collector_url.rstrip("/")
        self._secret = enroll_secret
        self._device = device
        self._status = status
        self.hardware_id = hardware_id
        self._on_enrolled = on_enrolled
        self.min_gap_s = 1.0 / drain_reports_per_s if drain_reports_per_s > 0 else 0.0
        self.retry = Backoff(retry_base_s, retry_cap_s)
        self.enroll_retry = Backoff(retry_base_s, enroll_cap_s)
        self.stats = ReporterStats()
        self.http = httpx.Client(base_url=self.collector_url, verify=verify_for(ca_bundle), transport=transport,
                                 timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                                 headers={"user-agent": "agentroster-endpoint"}, follow_redirects=False)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_send = 0.0
        self._streak = ""  # the last failure logged as a warning
        self.inbox = InboxPoller(inventory.dir)  # what the collector sends back, fetched when idle

    # -- one step at a time --------------------------------------------------------------------------
    def _post(self, path: str, **kw: Any) -> httpx.Response:
        import httpx

        try:
            return self.http.post(path, **kw)
        except httpx.TimeoutException as exc:
            raise CollectorUnreachable(f"{self.collector_url}: timed out ({type(exc).__name__})") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            raise CollectorUnreachable(f"{self.collector_url}: {_short(exc)}") from None
        except httpx.HTTPError as exc:
            raise CollectorUnreachable(f"{self.collector_url}: {type(exc).__name__}: {_short(exc)}") from None

    def _unavailable(self, answer: httpx.Response, what: str) -> CollectorUnreachable | None:
        if answer.status_code == 429 or answer.status_code >= 500:
            return CollectorUnreachable(f"{what}: {answer.status_code} {_reason(answer)}",
                                        retry_after=_retry_after(answer))
        return None

    def enroll(self) -> None:
        """Trade the enroll secret for this device's own key, and start its sequence with a snapshot."""
        secret = self._secret()
        if not secret:
            raise EnrollmentRejected("no enroll secret is configured (enroll_secret or enroll_secret_file)")
        device = dict(self._device())
        request: dict[str, Any] = {"enroll_secret": secret, "host_identifier": device["id"], "device": device}
        if self.hardware_id:
            request["hardware_id"] = self.hardware_id
        proof = self.inventory.previous_device_key()
        if proof:
            request["device_key"] = proof
        answer = self._post(ENROLL_PATH, json=request)
        busy = self._unavailable(answer, "enroll")
        if busy:
            raise busy
        if answer.status_code != 200:
            raise EnrollmentRejected(f"enroll refused: {answer.status_code} {_reason(answer)}")
        try:
            body = answer.json()
            key, device_id = str(body["device_key"]), str(body["device_id"])
            org_key, conflict = body.get("fingerprint_key"), bool(body.get("identity_conflict"))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EnrollmentRejected("enroll: the collector's answer is not an EnrollResponse") from None
        self.inventory.save_enrollment(key, device_id=device_id, collector_url=self.collector_url)
        if isinstance(org_key, str) and 16 <= len(org_key) <= 512 and org_key.isprintable():
            from endpoint.scan.credentials import save_fingerprint_key

            save_fingerprint_key(self.inventory.dir, org_key)
        self.stats.enrollments += 1
        if conflict:
            log.warning("enrolled with %s as device %s, apart: the collector holds this identity under another "
                        "key, and shows this device to its admins as an identity conflict", self.collector_url,
                        device_id)
        else:
            log.info("enrolled with %s as device %s", self.collector_url, device_id)
        if self._on_enrolled is not None:
            self._on_enrolled()
        # A new key restarts the device's sequence at the collector: it expects a snapshot first.
        head = self.inventory.pending()
        if head is None or head.kind != "snapshot" or _device_id(head.body) != device["id"]:
            # (a report spooled before the identity changed, an upgrade from the machine-id identity, would
            # be refused as device_mismatch for ever: it is replaced by a snapshot under this identity)
            self.inventory.resnapshot(device)

    def forget_other_collector(self) -> None:
        """A key from another collector (the setting changed) is no key here: enroll with this one."""
        enrolled_with = self.inventory.meta().get("collector_url")
        if enrolled_with and enrolled_with.rstrip("/") != self.collector_url and self.inventory.device_key():
            log.warning("enrolled with another collector: enrolling with %s", self.collector_url)
            self.inventory.forget_device_key()

    def send_next(self) -> bool:
        """Send the oldest spooled report; False when the spool is empty."""
        spooled = self.inventory.pending()
        if spooled is None:
            return False
        key = self.inventory.device_key()
        if key is None:
            raise DeviceKeyRejected("not enrolled")
        self._send(spooled, key)
        return True

    def _send(self, spooled: Spooled, key: str) -> None:
        now = time.time()
        body = finish_body(spooled.body, sent_at=datetime.now(UTC).isoformat(timespec="seconds"),
                           status=self._status())
        self.stats.last_sent_at, self.stats.last_sent_seq = now, spooled.seq
        answer = self._post(REPORTS_PATH, content=body, headers={"authorization": f"Bearer {key}",
                                                                 "content-type": "application/json"})
        busy = self._unavailable(answer, f"report {spooled.seq}")
        if busy:
            raise busy
        if answer.status_code in (401, 403):
            reason = _reason(answer)
            if answer.status_code == 401 or reason in REENROLL_REASONS:
                raise DeviceKeyRejected(f"report {spooled.seq}: {answer.status_code} {reason}")
            raise ReportRefused(f"report {spooled.seq}: {answer.status_code} {reason}")
        if answer.status_code != 200:
            self._drop(spooled, f"{answer.status_code} {_reason(answer)}")
            return
        try:
            ack = answer.json()
            need_snapshot, ok = bool(ack["need_snapshot"]), bool(ack["applied"] or ack["duplicate"])
        except (ValueError, KeyError, TypeError):
            raise CollectorUnreachable(f"report {spooled.seq}: the answer is not a ReportAck") from None
        if ok:
            self.inventory.acked(spooled.seq)
            self.stats.last_ack_at, self.stats.last_acked_seq = time.time(), spooled.seq
        elif need_snapshot:
            log.info("collector asks for a snapshot (%s)", str(ack.get("reason", ""))[:200])
            self.inventory.resnapshot(self._device())
        else:
            raise CollectorUnreachable(f"report {spooled.seq}: neither applied nor a duplicate")

    def _drop(self, spooled: Spooled, why: str) -> None:
        """A report the collector can never apply: drop it, and start again from a snapshot."""
        self.stats.rejected_reports += 1
        self.inventory.acked(spooled.seq)  # out of the spool; the snapshot below makes the state whole
        if spooled.kind != "snapshot":
            self.inventory.resnapshot(self._device())
        raise ReportRefused(f"report {spooled.seq} ({spooled.kind}) rejected: {why}")

    # -- the loop ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="agentroster-reporter", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self.http.close()

    def wake(self) -> None:
        """Something was spooled: send it now."""
        self._wake.set()

    def _wait(self, seconds: float) -> None:
        self.stats.next_attempt_at = time.time() + seconds
        self._stop.wait(seconds)
        self.stats.next_attempt_at = None

    def run(self) -> None:
        self.forget_other_collector()
        while not self._stop.is_set():
            try:
                if self.inventory.device_key() is None:
                    self.enroll()
                    self.enroll_retry.reset()
                self._wake.clear()
                if self.inventory.pending() is None:
                    self.inbox.poll_if_due(self.http, self.inventory.device_key, self.collector_url,
                                           self._sighting_users)
                    self._wake.wait(5.0)  # wake() says when something is spooled
                    continue
                gap = self._last_send + self.min_gap_s - time.monotonic()
                if gap > 0:  # the drain-rate limit
                    self._stop.wait(gap)
                    continue
                self._last_send = time.monotonic()
                self.send_next()
                self.inbox.reported()
                self.retry.reset()
                self._streak = ""
            except DeviceKeyRejected as exc:
                self._failed(exc)
                log.warning("enrolling again")
                self.inventory.forget_device_key(keep_as_proof=True)
                self._wait(self.retry.next())
            except EnrollmentRejected as exc:
                self._failed(exc)
                self._wait(self.enroll_retry.next())
            except CollectorUnreachable as exc:
                self._failed(exc)
                backoff = self.retry.next()
                self._wait(min(self.retry.cap_s, max(backoff, exc.retry_after or 0.0)))
            except (ReportRefused, SpoolFull) as exc:
                self._failed(exc)
                self._wait(self.retry.next())
            except Exception as exc:  # a bug or a broken state file must not end reporting for good
                log.exception("reporter: unexpected error")
                self._failed(exc)
                self._wait(self.retry.next())

    def _sighting_users(self) -> dict[str, str | None]:
        return {str(s["id"]): s.get("user") for s in self.inventory.stored_sightings()}

    def _failed(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"[:300]
        # said once per streak: a collector down for a day is one warning, not thousands
        log.log(logging.DEBUG if message == self._streak else logging.WARNING, "%s", message)
        self._streak = message
        self.stats.last_error = message
        self.stats.last_error_at = time.time()


def _device_id(body: bytes) -> object:
    """The device id a spooled report carries (None when it cannot be read)."""
    import json

    try:
        return json.loads(body).get("device", {}).get("id")
    except (ValueError, AttributeError):
        return None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
