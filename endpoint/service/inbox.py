"""The daemon's inbox: what the collector sends back for this machine's users (an admin's request to
register an agent, the decision on a registration with the admin's comment, a question, a policy change
that made an agent of theirs governed or no longer covered), kept in the data
dir until the user has read it, and handed to that user only over the local socket.

The reporter fetches it (``InboxPoller``) after each report the collector acknowledged and every
``POLL_INTERVAL_S`` otherwise: ``GET /api/v1/inbox?ack=N`` with the device key, where N is the highest
item id stored here. The collector gives every item after N again until it is acknowledged, so an item
is stored before it is acknowledged and an id stored already is dropped: each arrives exactly once,
across restarts, outages and kills. An item is addressed to the user of its sighting as *this daemon*
knows it (the collector's copy of the user only for a sighting the daemon no longer holds).

The collector's answer also says whether this machine's users are to be shown notifications (``notify``:
false while the org's policy only reports ungoverned agents); it is kept here, the local socket's
``inbox`` and ``mine`` answers carry it, and the companion shows no notification while it is false.

``inbox.json`` (0600, written whole then renamed): ``{"schema", "collector_url", "cursor", "notify",
"items"}``; each item ``{id, kind, sighting_id, sighting_name, user, status, text, sent_by, created_at,
received_at, read_at}``. A file that is not ours (another owner, readable by others, not a regular file,
too large, not this schema or another collector's) is started again from the collector, which still
holds whatever was not acknowledged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from endpoint.errors import EndpointError
from endpoint.service.settings import shown_url

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("agentroster.inbox")

INBOX_FILE = "inbox.json"
INBOX_SCHEMA = "agentroster.inbox/1"
INBOX_PATH = "/api/v1/inbox"
# notify, remind: the nudge ladder; policy: a policy save made an agent governed, or no longer covered
KINDS = ("request", "decision", "question", "notify", "remind", "review", "policy")
POLL_INTERVAL_S = 300.0  # with no report acknowledged meanwhile (a heartbeat's default interval)
MAX_PAGES = 20  # pages of the collector's answer read in one fetch (the rest at the next)
MAX_KEPT = 1000  # items kept; the oldest read ones go first, then the oldest
MAX_FILE_BYTES = 8 << 20
MAX_TEXT = 4000  # characters of an admin's note or question kept (the collector's own bound)
MAX_FIELD = 256

_lock = threading.Lock()  # the reporter's thread stores, the socket's threads mark read: one writer at a time


class InboxUnavailable(EndpointError):
    """The collector's inbox could not be read (unreachable, refused, or an answer not understood)."""

    code = "inbox_unavailable"


# -- pure: an item as the collector sends it, and as it is kept ----------------------------------------------


def clean_item(raw: Any) -> dict[str, Any] | None:
    """An item of the collector's answer in the shape kept here, or None when it is not one."""
    if not isinstance(raw, Mapping):
        return None
    item_id, kind, sid = raw.get("id"), raw.get("kind"), raw.get("sighting_id")
    if not isinstance(item_id, int) or isinstance(item_id, bool) or item_id <= 0 or kind not in KINDS \
            or not isinstance(sid, str) or not 0 < len(sid) <= 128:
        return None

    def text(name: str, cap: int) -> str | None:
        value = raw.get(name)
        return value[:cap] if isinstance(value, str) else None

    return {"id": item_id, "kind": kind, "sighting_id": sid, "sighting_name": text("sighting_name", MAX_FIELD) or "",
            "user": text("user", MAX_FIELD) or None, "status": text("status", 16), "text": text("text", MAX_TEXT),
            "sent_by": text("sent_by", 128) or "", "created_at": text("created_at", 64)}


def merge(kept: list[dict[str, Any]], arrived: Iterable[dict[str, Any]], users: Mapping[str, str | None],
          now: str) -> tuple[list[dict[str, Any]], int]:
    """``kept`` with the items that arrived and are not kept yet (each addressed to its sighting's user as
    ``users`` says, when it says), at most ``MAX_KEPT``; and how many were new."""
    have = {item["id"] for item in kept}
    out = list(kept)
    added = 0
    for item in arrived:
        if item["id"] in have:
            continue  # given again because its acknowledgement did not arrive: once is enough
        have.add(item["id"])
        if item["sighting_id"] in users:
            item = {**item, "user": users[item["sighting_id"]] or None}
        out.append({**item, "received_at": now, "read_at": None})
        added += 1
    if len(out) > MAX_KEPT:  # drop the oldest read items first, then the oldest
        order = sorted(out, key=lambda i: (i["read_at"] is None, i["id"]))
        dropped = {i["id"] for i in order[:len(out) - MAX_KEPT]}
        out = [i for i in out if i["id"] not in dropped]
    return out, added


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the file -------------------------------------------------------------------------------------------------


class Inbox:
    """``inbox.json`` in the daemon's data dir."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / INBOX_FILE

    def read(self, collector_url: str | None = None) -> dict[str, Any]:
        """The stored inbox (empty when missing, not ours, or, with ``collector_url``, another collector's)."""
        from signatures.trusted_files import Untrusted, me_or_root, read_trusted

        empty: dict[str, Any] = {"collector_url": collector_url or "", "cursor": 0, "notify": True, "items": []}
        try:
            data = read_trusted(self.path, me_or_root(), limit=MAX_FILE_BYTES, private=True)
        except Untrusted as exc:
            if exc.code != "not_found":
                log.warning("%s: not used (%s); the inbox is fetched again", self.path, exc.code)
            return empty
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return empty
        if not isinstance(doc, dict) or doc.get("schema") != INBOX_SCHEMA or not isinstance(doc.get("items"), list):
            return empty
        if collector_url is not None and str(doc.get("collector_url", "")).rstrip("/") != collector_url.rstrip("/"):
            return empty  # another collector's ids mean nothing to this one
        items = []
        for raw in doc["items"]:
            item = clean_item(raw)
            if item is not None:
                read_at = raw.get("read_at")
                items.append({**item, "received_at": str(raw.get("received_at") or "")[:64],
                              "read_at": read_at[:64] if isinstance(read_at, str) else None})
        cursor = doc.get("cursor")
        return {"collector_url": str(doc.get("collector_url", "")), "items": items,
                "cursor": cursor if isinstance(cursor, int) and cursor >= 0 else 0,
                "notify": doc.get("notify") is not False}  # only an explicit false quiets anyone

    def write(self, doc: Mapping[str, Any]) -> None:
        from endpoint.scan.safeio import write_private

        write_private(self.path, json.dumps({"schema": INBOX_SCHEMA, **doc}, indent=1, sort_keys=True))

    def store(self, collector_url: str, arrived: list[dict[str, Any]], users: Mapping[str, str | None], *,
              cursor: int = 0) -> int:
        """Keep the items that arrived, and move the cursor past them (and to ``cursor``); how many were new."""
        with _lock:
            doc = self.read(collector_url)
            items, added = merge(doc["items"], arrived, users, now_iso())
            cursor = max([doc["cursor"], cursor, *(i["id"] for i in arrived)])
            if added or cursor != doc["cursor"]:
                self.write({"collector_url": collector_url.rstrip("/"), "cursor": cursor, "notify": doc["notify"],
                            "items": items})
            return added

    def set_notify(self, collector_url: str, notify: bool) -> bool:
        """Keep whether the users are to be shown notifications, as the collector said; whether it changed."""
        with _lock:
            doc = self.read(collector_url)
            if doc["notify"] == notify:
                return False
            self.write({**doc, "collector_url": collector_url.rstrip("/"), "notify": notify})
            return True

    def mark_read(self, ids: Iterable[int], visible: Callable[[Mapping[str, Any]], bool]) -> int:
        """Mark read the items with these ids that ``visible`` says are the caller's; how many."""
        wanted = set(ids)
        with _lock:
            doc = self.read()
            marked = 0
            for item in doc["items"]:
                if item["id"] in wanted and item["read_at"] is None and visible(item):
                    item["read_at"] = now_iso()
                    marked += 1
            if marked:
                self.write(doc)
            return marked


# -- fetching -------------------------------------------------------------------------------------------------


def fetch(http: httpx.Client, key: str, inbox: Inbox, collector_url: str,
          users: Callable[[], Mapping[str, str | None]]) -> int:
    """Fetch the collector's new items, store them, and acknowledge them; how many were new.

    ``users()`` maps each sighting id the daemon holds to its user (read only when something arrived)."""
    import httpx

    cursor = inbox.read(collector_url)["cursor"]
    added = 0
    known: Mapping[str, str | None] | None = None
    for _ in range(MAX_PAGES):
        try:
            answer = http.get(INBOX_PATH, params={"ack": cursor}, headers={"authorization": f"Bearer {key}"})
        except httpx.HTTPError as exc:
            raise InboxUnavailable(f"{shown_url(collector_url)}: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise InboxUnavailable(f"{shown_url(collector_url)}{INBOX_PATH}: {answer.status_code}")
        try:
            body = answer.json()
            data, more = body["data"], bool(body.get("more"))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InboxUnavailable(f"{shown_url(collector_url)}{INBOX_PATH}: not an inbox") from None
        if not isinstance(data, list):
            raise InboxUnavailable(f"{shown_url(collector_url)}{INBOX_PATH}: not an inbox")
        notify = body.get("notify") if isinstance(body, dict) else None
        if isinstance(notify, bool) and inbox.set_notify(collector_url, notify):
            log.info("inbox: the org's policy %s this machine's users", "nudges" if notify else "does not nudge")
        arrived = [item for item in map(clean_item, data) if item is not None]
        # an entry that is not an item is passed over (acknowledged with the rest), never asked for forever
        ids = [raw["id"] for raw in data if isinstance(raw, dict) and type(raw.get("id")) is int and raw["id"] > 0]
        if not ids:
            break
        if known is None and arrived:
            known = users()
        added += inbox.store(collector_url, arrived, known or {}, cursor=max(ids))
        cursor = max(cursor, *ids)
        if not more:  # one more request acknowledges what just arrived (else it is given again next time)
            try:
                http.get(INBOX_PATH, params={"ack": cursor, "limit": 1}, headers={"authorization": f"Bearer {key}"})
            except httpx.HTTPError:
                pass  # stored already: the next fetch acknowledges it
            break
    return added


class InboxPoller:
    """When the reporter fetches the inbox: soon after a report was acknowledged, and every
    ``interval_s`` otherwise; failures are logged once per streak and never reach the reporter."""

    def __init__(self, data_dir: str | Path, *, interval_s: float = POLL_INTERVAL_S) -> None:
        self.inbox = Inbox(data_dir)
        self.interval_s = interval_s
        self._next = 0.0  # at once, the first time
        self._failure = ""
        self.fetched = 0

    def reported(self) -> None:
        """A report was acknowledged: what the collector holds for this device may have changed."""
        self._next = 0.0

    def poll_if_due(self, http: httpx.Client, device_key: Callable[[], str | None], collector_url: str,
                    users: Callable[[], Mapping[str, str | None]]) -> None:
        """Fetch if it is time (``device_key()`` is read only then; None: not enrolled, nothing to fetch)."""
        now = time.monotonic()
        if now < self._next:
            return
        key = device_key()
        if key is None:
            return
        self._next = now + self.interval_s
        try:
            added = fetch(http, key, self.inbox, collector_url, users)
        except (InboxUnavailable, OSError) as exc:
            message = str(exc)[:300]
            if message != self._failure:
                log.warning("inbox: %s; tried again later", message)
            self._failure = message
            return
        except Exception:  # a bug here must not stop reports
            log.exception("inbox: unexpected error")
            return
        self._failure = ""
        self.fetched += added
        if added:
            log.info("inbox: %d new item%s for this machine's users", added, "" if added == 1 else "s")
