"""What a config parser returns, and the one error it raises."""

from __future__ import annotations

from dataclasses import dataclass, field

from endpoint.evidence import McpServerConfig


class ConfigError(ValueError):
    """A config file could not be parsed; the message says why without quoting secrets or contents."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code  # "syntax", "encoding", "too_deep", "unsafe_yaml", "shape", "unknown_dialect"
        self.detail = detail


@dataclass(slots=True)
class ParsedConfig:
    document: object  # the generic parsed structure (dict/list/scalars); walked for settings and secrets
    mcp_servers: list[McpServerConfig] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # model names the config selects
    base_urls: list[str] = field(default_factory=list)  # provider / runtime base URLs it points at
    providers: list[str] = field(default_factory=list)  # provider ids it selects, as the file names them
    warnings: list[str] = field(default_factory=list)  # shape problems that did not stop parsing
