"""Config parsers: an agent's config text to a document plus the MCP servers, models and endpoints in it.

``parse_config(dialect, text, path=...)`` picks the text format and the extractor for one of the
dialects in ``signatures.schema.Dialect``; ``walk(document)`` yields the document's scalar leaves for
the credential scanner and the autonomy-setting lookups. Both are safe on hostile input: a broken
file raises ``ConfigError`` with a short code, a wrong-shaped entry becomes a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from endpoint.scan.parsers import formats
from endpoint.scan.parsers.aider import extract_aider_yaml
from endpoint.scan.parsers.amp import extract_amp_settings
from endpoint.scan.parsers.base import ConfigError, ParsedConfig
from endpoint.scan.parsers.claude import extract_claude_code, extract_claude_settings
from endpoint.scan.parsers.codex import extract_codex_toml
from endpoint.scan.parsers.continue_ import extract_continue_config
from endpoint.scan.parsers.crush import extract_crush_json
from endpoint.scan.parsers.envvars import extract_dotenv
from endpoint.scan.parsers.findings import Findings
from endpoint.scan.parsers.gemini import extract_gemini_settings
from endpoint.scan.parsers.goose import extract_goose_yaml
from endpoint.scan.parsers.mcp import extract_mcp_json
from endpoint.scan.parsers.opencode import extract_opencode_json
from endpoint.scan.parsers.vscode import extract_vscode_mcp, extract_vscode_settings
from endpoint.scan.parsers.walk import walk
from endpoint.scan.parsers.zed import extract_zed_settings

__all__ = ["DIALECTS", "ConfigError", "ParsedConfig", "parse_config", "walk"]

Loader = Callable[[str, str, list[str]], Any]  # (text, path, warnings) -> document
Extractor = Callable[[dict[str, Any], Findings], None]


def _json(text: str, path: str, warnings: list[str]) -> Any:
    return formats.load_json(text)


def _jsonc(text: str, path: str, warnings: list[str]) -> Any:
    return formats.load_jsonc(text)


def _yaml(text: str, path: str, warnings: list[str]) -> Any:
    return formats.load_yaml(text)


def _toml(text: str, path: str, warnings: list[str]) -> Any:
    return formats.load_toml(text)


def _dotenv(text: str, path: str, warnings: list[str]) -> Any:
    return formats.load_dotenv(text, warnings)


def _json_or_yaml(text: str, path: str, warnings: list[str]) -> Any:
    """Continue: config.json (comments allowed) beside config.yaml and YAML block files."""
    if path.lower().endswith((".json", ".jsonc")):
        return formats.load_jsonc(text)
    return formats.load_yaml(text)


class _Dialect(NamedTuple):
    load: Loader
    extract: Extractor | None = None  # None: the document alone is the result


# The strict-JSON dialects are read by clients that use a strict JSON parser; the others accept
# comments and trailing commas, and so must we.
DIALECTS: dict[str, _Dialect] = {
    "json": _Dialect(_json),
    "jsonc": _Dialect(_jsonc),
    "yaml": _Dialect(_yaml),
    "toml": _Dialect(_toml),
    "dotenv": _Dialect(_dotenv, extract_dotenv),
    "mcp_json": _Dialect(_json, extract_mcp_json),
    "claude_code": _Dialect(_json, extract_claude_code),
    "claude_settings": _Dialect(_jsonc, extract_claude_settings),
    "vscode_mcp": _Dialect(_jsonc, extract_vscode_mcp),
    "vscode_settings": _Dialect(_jsonc, extract_vscode_settings),
    "zed_settings": _Dialect(_jsonc, extract_zed_settings),
    "codex_toml": _Dialect(_toml, extract_codex_toml),
    "gemini_settings": _Dialect(_jsonc, extract_gemini_settings),
    "continue_config": _Dialect(_json_or_yaml, extract_continue_config),
    "goose_yaml": _Dialect(_yaml, extract_goose_yaml),
    "opencode_json": _Dialect(_jsonc, extract_opencode_json),
    "aider_yaml": _Dialect(_yaml, extract_aider_yaml),
    "crush_json": _Dialect(_json, extract_crush_json),
    "amp_settings": _Dialect(_jsonc, extract_amp_settings),
}


def parse_config(dialect: str, text: str, *, path: str = "") -> ParsedConfig:
    """Parse ``text`` (already decoded) as ``dialect``; ``path`` tells Continue's JSON from its YAML."""
    spec = DIALECTS.get(dialect)
    if spec is None:
        raise ConfigError("unknown_dialect", f"no parser for dialect {dialect!r}")
    out = Findings(path=path)
    document = spec.load(text, path, out.warnings)
    if spec.extract is not None:
        if not isinstance(document, dict):
            raise ConfigError("shape", f"the top level is {_kind(document)}, not a mapping")
        spec.extract(document, out)
    return out.result(document)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "a scalar"
