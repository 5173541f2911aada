"""The daemon's state as ``agentroster register`` reads it: the sightings, the collector it enrolled with,
its key, and the ledger of what was registered from this machine (``registrations.json``, 0600).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.scan import Sighting
from endpoint.service.registration.errors import NotEnrolled, StateUnavailable

LEDGER_FILE = "registrations.json"

LEDGER_SCHEMA = "agentroster.registrations/1"

LEDGER_MAX_BYTES = 4 << 20



def parse_ledger(data: bytes, collector_url: str | None) -> dict[str, dict[str, Any]]:
    """The registrations this machine sent to ``collector_url``, by sighting id (a bad file reads as none)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("schema") != LEDGER_SCHEMA:
        return {}
    if collector_url is None or str(doc.get("collector_url", "")).rstrip("/") != collector_url.rstrip("/"):
        return {}
    entries = doc.get("registrations")
    if not isinstance(entries, dict):
        return {}
    return {str(k): v for k, v in entries.items() if isinstance(v, dict) and isinstance(v.get("id"), int)}



def ledger_document(entries: Mapping[str, Mapping[str, Any]], collector_url: str) -> bytes:
    return json.dumps({"schema": LEDGER_SCHEMA, "collector_url": collector_url.rstrip("/"),
                       "registrations": dict(entries)}, indent=1, sort_keys=True).encode()



@dataclass
class DeviceState:
    """What the daemon's data dir says: its sightings, the collector it enrolled with, and its key."""

    data_dir: Path
    sightings: list[Sighting]
    collector_url: str | None
    device_id: str | None

    @classmethod
    def read(cls, data_dir: str | os.PathLike[str]) -> DeviceState:
        from endpoint.service.inventory import STATE_FILE, Inventory, StateError

        try:
            os.stat(Path(data_dir) / STATE_FILE)
        except PermissionError:  # a data dir this user cannot enter reads as "no state" further down
            raise StateUnavailable(_ROOT_ONLY.format(where=Path(data_dir))) from None
        except OSError:
            pass  # missing: the inventory says so
        try:
            inventory = Inventory(data_dir, readonly=True)
        except StateError as exc:
            raise StateUnavailable(_state_hint(str(exc))) from None
        try:
            meta = inventory.meta()
            sightings = inventory.stored_sightings()
        finally:
            inventory.close()
        return cls(Path(data_dir), sightings, meta.get("collector_url"), meta.get("device_id"))

    def device_key(self) -> str:
        from endpoint.service.inventory import KEY_FILE

        try:
            key = (self.data_dir / KEY_FILE).read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            key = ""
        except PermissionError:
            raise StateUnavailable(f"{self.data_dir / KEY_FILE}: permission denied; the device key is root's: "
                                   "run `sudo agentroster register …`") from None
        if not key or not self.collector_url or not self.device_id:
            raise NotEnrolled("this device is not enrolled with a collector yet (the daemon enrolls when it "
                              "first reaches one; see `agentroster status`)")
        return key

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / LEDGER_FILE

    def ledger(self) -> dict[str, dict[str, Any]]:
        """What was registered from this machine (missing, unreadable or not ours: nothing)."""
        try:
            fd = os.open(self.ledger_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return {}
        with os.fdopen(fd, "rb") as fh:
            import stat

            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return {}
            data = fh.read(LEDGER_MAX_BYTES + 1)
        return {} if len(data) > LEDGER_MAX_BYTES else parse_ledger(data, self.collector_url)

    def remember(self, sighting_id: str, answer: Mapping[str, Any]) -> None:
        """Add a registration to the ledger (written whole, then renamed; mode 0600)."""
        assert self.collector_url
        entries = self.ledger()
        entries[sighting_id] = {"id": answer.get("id"), "status": answer.get("status", "pending"),
                                "created_at": answer.get("created_at"), "owner": answer.get("owner")}
        tmp = self.ledger_path.with_name(LEDGER_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(ledger_document(entries, self.collector_url))
        os.replace(tmp, self.ledger_path)



_ROOT_ONLY = ("{where}: the daemon's state is readable by root only, and no daemon answers on its local "
              "socket; list and register your agents with `sudo agentroster register`")



def _state_hint(message: str) -> str:
    if "run as root" in message or "ermission denied" in message:
        return _ROOT_ONLY.format(where=message.split(": ")[0])
    return message
