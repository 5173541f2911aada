"""What a dialect's extractor collects from a document, and the small typed accessors it uses.

Extractors read untrusted documents, so every accessor checks the type it expects and treats
anything else as absent; a dialect turns a wrong-shaped entry into a warning, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from endpoint.scan.evidence import McpServerConfig, ScanError, SlotRecord
from endpoint.scan.faults import isolated
from endpoint.scan.parsers.base import ParsedConfig
from endpoint.scan.parsers.walk import escape

INVALID_SERVER = "invalid_server"  # the error code of a server entry that declares no server


class Findings(SlotRecord):
    __slots__ = ("path", "servers", "models", "base_urls", "providers", "warnings", "failures")

    def __init__(self, path: str = "") -> None:
        self.path = path  # the file's path, for the dialects whose shape depends on its name
        self.servers: list[McpServerConfig] = []
        self.models: list[str] = []
        self.base_urls: list[str] = []
        self.providers: list[str] = []
        self.warnings: list[str] = []
        # entries reported as errors (where: the entry's pointer): those the code could not read
        # ("internal") and those that are not servers ("invalid_server")
        self.failures: list[ScanError] = []

    def entry(self, where: str) -> isolated:
        """``with out.entry(where):`` one entry of the document; an exception in it skips only that entry
        and is kept in ``failures`` (the file sensor reports it as an error naming the file and entry)."""
        return isolated(self.failures, where or "/")

    def each_entry(self, entries: object, where: str, what: str,
                   handle: Callable[[Findings, str, object, str], None]) -> None:
        """``handle(self, name, entry, pointer)`` for every entry of the mapping ``entries`` found at
        ``where``, each isolated (``entry``); absent is fine, anything but a mapping is a warning that it
        "is not a ``what``"."""
        if entries is None:
            return
        if not isinstance(entries, dict):
            self.warn(where, f"is not a {what}; ignored")
            return
        for name, entry in entries.items():
            key = str(name)
            pointer = f"{where}/{escape(key)}"
            with self.entry(pointer):
                handle(self, key, entry, pointer)

    def model(self, value: object) -> None:
        _add(self.models, value)

    def base_url(self, value: object) -> None:
        _add(self.base_urls, value)

    def provider(self, value: object) -> None:
        _add(self.providers, value)

    def warn(self, where: str, reason: str) -> None:
        self.warnings.append(f"{where or '/'}: {reason}")

    def invalid_server(self, where: str, reason: str) -> None:
        """An MCP server entry that is not a server (skipped, and one ``invalid_server`` error for the
        file and entry, never dropped silently); ``reason`` never quotes the file."""
        self.failures.append(ScanError(where or "/", INVALID_SERVER, reason))

    def result(self, document: object) -> ParsedConfig:
        return ParsedConfig(document=document, mcp_servers=self.servers, models=self.models,
                            base_urls=self.base_urls, providers=self.providers, warnings=self.warnings,
                            failures=self.failures)


def _add(bucket: list[str], value: object) -> None:
    """Keep non-empty strings once each, in the order the file gives them."""
    if isinstance(value, str):
        value = value.strip()
        if value and value not in bucket:
            bucket.append(value)


def mapping(value: object) -> dict[Any, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, dict) else {}


def text(value: object) -> str | None:
    """``value`` if it is a non-empty string."""
    return value if isinstance(value, str) and value else None


def dig(document: object, *keys: str) -> object:
    """``document[k1][k2]...`` through mappings, or None where the path breaks."""
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document
