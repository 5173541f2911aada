"""What a config parser returns, and the one error it raises."""

from __future__ import annotations

from endpoint.errors import EndpointError
from endpoint.scan.evidence import McpServerConfig, ScanError, SlotRecord


class ConfigError(EndpointError, ValueError):
    """A config file could not be parsed; the message says why without quoting secrets or contents."""

    code = "config_unparsable"  # each one's own code is finer: "syntax", "too_deep", …

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code  # "syntax", "encoding", "too_deep", "unsafe_yaml", "shape", "unknown_dialect"
        self.detail = detail


class ParsedConfig(SlotRecord):
    __slots__ = ("document", "mcp_servers", "models", "base_urls", "providers", "warnings", "failures")

    def __init__(self, document: object, mcp_servers: list[McpServerConfig] | None = None,
                 models: list[str] | None = None, base_urls: list[str] | None = None,
                 providers: list[str] | None = None, warnings: list[str] | None = None,
                 failures: list[ScanError] | None = None) -> None:
        self.document = document  # the generic parsed structure (dict/list/scalars); walked for settings and secrets
        self.mcp_servers: list[McpServerConfig] = [] if mcp_servers is None else mcp_servers
        self.models: list[str] = [] if models is None else models  # model names the config selects
        self.base_urls: list[str] = [] if base_urls is None else base_urls  # provider / runtime base URLs
        self.providers: list[str] = [] if providers is None else providers  # provider ids, as the file names them
        self.warnings: list[str] = [] if warnings is None else warnings  # shape problems that did not stop parsing
        # entries reported as errors, each skipped alone, ``where`` its pointer: those whose reading raised
        # (a bug, not a bad file) and server entries that declare no server (``invalid_server``)
        self.failures: list[ScanError] = [] if failures is None else failures
