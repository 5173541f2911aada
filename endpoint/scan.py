"""One scan of a machine: run the sensors, fingerprint the evidence, return the contract's document.

``scan()`` never raises for a file, process or packet it could not read: each such failure is an
entry of ``errors[]`` and the rest of the scan completes.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import endpoint
from endpoint import credentials, safeio
from endpoint.evidence import ArtifactRecord, ConfigRecord, NetworkRecord, ProcessRecord, ScanError
from endpoint.fingerprint import Engine
from endpoint.homes import find_homes

if TYPE_CHECKING:
    from signatures import Library

SCHEMA = "agentroster.scan/1"
PLATFORM = "linux" if sys.platform.startswith("linux") else "macos" if sys.platform == "darwin" else "windows"


@dataclass
class ScanOptions:
    root: str = "/"
    homes: list[str] = field(default_factory=list)
    processes: bool = True
    files: bool = True
    walk_projects: bool = True
    network: list[NetworkRecord] = field(default_factory=list)
    network_errors: list[ScanError] = field(default_factory=list)


def device_info(root: str = "/") -> dict[str, Any]:
    """Who this device is: a stable id (machine-id where there is one), host name and OS."""
    machine_id = ""
    for candidate in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            machine_id = safeio.read_text(os.path.join(root, candidate), boundary=root, limit=256).strip()
        except safeio.ReadRefused:
            continue
        if machine_id:
            break
    hostname = socket.gethostname() if root in ("", "/") else os.path.basename(os.path.abspath(root))
    return {"id": machine_id or f"host:{hostname}", "hostname": hostname, "os": PLATFORM,
            "os_version": platform.release() if root in ("", "/") else "", "arch": platform.machine(),
            "agentroster_version": endpoint.__version__}


def read_script(path: str) -> str | None:
    """The head of a script an interpreter runs, for its import lines; None when it is not a plain file."""
    try:
        data = safeio.read_bytes(path, boundary="/", limit=safeio.MAX_SCRIPT_BYTES)
    except safeio.ReadRefused:
        return None
    return data.decode("utf-8", "replace")


def scan(options: ScanOptions | None = None, *, lib: Library | None = None) -> dict[str, Any]:
    import signatures

    options = options or ScanOptions()
    lib = lib or signatures.load()
    root = os.path.abspath(options.root)
    errors: list[ScanError] = list(options.network_errors)
    device = device_info(root)
    key = credentials.fingerprint_key()
    engine = Engine(lib, device_id=device["id"], platform=PLATFORM, read_script=read_script,
                    classify_credentials=lambda argv: credentials.redact_argv(argv, lib.credential_kind,
                                                                              where="mcp args", key=key))
    live = root == "/"
    if options.processes and live:
        engine.add_processes(_collect(_processes(lib), errors))
    if options.files:
        from endpoint.sensors.files import FileScan

        extra = list(options.homes)
        if live:
            extra += _agent_homes(engine)
        homes = find_homes(root, extra)
        records = list(_collect(FileScan(lib, root, walk_projects=options.walk_projects).run(homes), errors))
        engine.add_configs(r for r in records if isinstance(r, ConfigRecord))
        engine.add_artifacts(r for r in records if isinstance(r, ArtifactRecord))
    engine.add_network(options.network)
    if live and options.processes and hasattr(os, "geteuid") and os.geteuid() != 0:
        errors.append(ScanError("processes", "not_root", "not running as root: other users' process environments "
                                "and some executables could not be read"))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "schema": SCHEMA,
        "device": device,
        "scanned_at": now,
        "sightings": engine.result(now),
        "errors": [{"where": e.where, "error": e.error, "detail": e.detail} for e in errors],
    }


def _processes(lib: Library) -> Iterable[ProcessRecord | ScanError]:
    from endpoint.sensors.processes import iter_processes

    keep = {"HOME", "USERPROFILE"}
    for sig in lib.signatures:
        keep.update(e.partition("=")[0] for e in sig.autonomy.env)
    return iter_processes(lib.credential_kind, keep_env=keep, skip_pids={os.getpid()})


def _collect(records: Iterable[Any], errors: list[ScanError]) -> Iterable[Any]:
    for record in records:
        if isinstance(record, ScanError):
            errors.append(record)
        else:
            yield record


def _agent_homes(engine: Engine) -> list[str]:
    """Homes of running agents (their HOME), which may lie outside /home: a throwaway or service home."""
    homes = []
    for sighting in engine.sightings.values():
        for proc in sighting.processes.values():
            home = proc.env_values.get("HOME") or proc.env_values.get("USERPROFILE")
            if home and os.path.isabs(home) and home not in homes and os.path.isdir(home) and home != "/":
                homes.append(home)
    return homes
