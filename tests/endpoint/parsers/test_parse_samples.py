"""Every dialect on the real-format samples in tests/fixtures/configs: the exact servers, models and URLs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from endpoint.scan.evidence import McpServerConfig
from endpoint.scan.parsers import parse_config

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "configs"


def S(name: str, transport: str, command: str | None = None, args: tuple[str, ...] = (), url: str | None = None,  # noqa: N802 - short, like a table row
      env: tuple[str, ...] = (), enabled: bool = True, project: str | None = None,
      tools: tuple[str, ...] = ()) -> McpServerConfig:
    return McpServerConfig(name, transport, command, args, url, env, enabled, project, "", tools)  # type: ignore[arg-type]


def parse(rel: str, dialect: str):
    path = SAMPLES / rel
    return parse_config(dialect, path.read_text(encoding="utf-8"), path=str(path))


def servers(parsed) -> list[McpServerConfig]:
    return [s._replace(where="") for s in parsed.mcp_servers]


NPX = "npx"
CASES = {
    "claude-desktop/claude_desktop_config.json": ("mcp_json", [
        S("filesystem", "stdio", NPX, ("-y", "@modelcontextprotocol/server-filesystem", "/Users/username/Desktop",
                                       "/Users/username/Downloads")),
        S("github", "stdio", NPX, ("-y", "@modelcontextprotocol/server-github"), env=("GITHUB_PERSONAL_ACCESS_TOKEN",)),
        S("sqlite", "stdio", "uvx", ("mcp-server-sqlite", "--db-path", "/Users/username/test.db")),
    ], [], [], []),
    "cursor/mcp.json": ("mcp_json", [
        S("server-name", "stdio", NPX, ("-y", "mcp-server"), env=("API_KEY",)),
        S("python-tools", "stdio", "python", ("mcp-server.py",), env=("API_KEY",)),
        S("remote-server", "http", url="https://mcp.example.com/mcp"),
        S("legacy-events", "sse", url="http://localhost:8931/sse"),
    ], [], [], []),
    "windsurf/mcp_config.json": ("mcp_json", [
        S("github", "stdio", NPX, ("-y", "@modelcontextprotocol/server-github"), env=("GITHUB_PERSONAL_ACCESS_TOKEN",)),
        S("figma", "http", url="https://mcp.figma.example/mcp"),
        S("linear", "sse", url="https://mcp.linear.app/sse"),
    ], [], [], []),
    "cline/cline_mcp_settings.json": ("mcp_json", [
        S("weather", "stdio", "node", ("/Users/username/Documents/Cline/MCP/weather-server/build/index.js",),
          env=("OPENWEATHER_API_KEY",), tools=("get_forecast",)),
        S("brave-search", "stdio", NPX, ("-y", "@modelcontextprotocol/server-brave-search"), env=("BRAVE_API_KEY",),
          enabled=False),
        S("docs", "http", url="https://docs.example.com/mcp"),
        S("events", "sse", url="https://events.example.com/sse"),
    ], [], [], []),
    "roo-code/mcp_settings.json": ("mcp_json", [
        S("local-server", "stdio", "python", ("/path/to/server.py",), env=("API_KEY",), tools=("tool1", "tool2")),
        S("modern-remote-server", "http", url="https://your-modern-server-url.com/mcp", tools=("newToolA",)),
        S("legacy-remote-server", "sse", url="https://your-legacy-server-url.com/mcp", enabled=False),
    ], [], [], []),
    "claude-code/.claude.json": ("claude_code", [
        S("sentry", "http", url="https://mcp.sentry.dev/mcp"),
        S("airtable", "stdio", NPX, ("-y", "airtable-mcp-server"), env=("AIRTABLE_API_KEY",)),
        S("stripe", "http", url="https://mcp.stripe.com", project="/home/alice/src/api"),
        S("postgres", "stdio", NPX, ("-y", "@bytebase/dbhub", "--dsn", "postgresql://readonly@localhost:5432/app"),
          enabled=False, project="/home/alice/src/api"),
        S("asana", "sse", url="https://mcp.asana.com/sse", project="/home/alice/src/api"),
    ], [], [], []),
    "claude-code/project/.mcp.json": ("mcp_json", [
        S("shared-docs", "http", url="${DOCS_MCP_URL:-https://docs.internal.example/mcp}"),
        S("shared-tools", "stdio", "/usr/local/bin/company-mcp", ("--config", "/etc/company/mcp.toml"),
          env=("CACHE_DIR",)),
    ], [], [], []),
    "claude-code/settings.json": ("claude_settings", [],
        ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"], [],
        ["https://llm-gateway.example.com/anthropic"]),
    "claude-code/managed/managed-settings.json": ("claude_settings", [],
        ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"], ["bedrock"], ["https://bedrock-gateway.example.com"]),
    "vscode/mcp.json": ("vscode_mcp", [
        S("Perplexity", "stdio", NPX, ("-y", "server-perplexity-ask"), env=("PERPLEXITY_API_KEY",)),
        S("Fetch", "stdio", "uvx", ("mcp-server-fetch",)),
        S("github", "http", url="https://api.githubcopilot.com/mcp"),
        S("legacy", "sse", url="http://localhost:3001/sse"),
    ], [], [], []),
    "vscode/settings.json": ("vscode_settings", [
        S("memory", "stdio", NPX, ("-y", "@modelcontextprotocol/server-memory")),
        S("notion", "http", url="https://mcp.notion.com/mcp"),
        S("playwright", "stdio", NPX, ("-y", "@playwright/mcp@latest", "--headless")),
    ], [], [], []),
    "zed/settings.json": ("zed_settings", [
        S("local-search", "stdio", "some-command", ("arg-1", "arg-2"), env=("SEARCH_API_KEY",)),
        S("git-old-shape", "stdio", "uvx", ("mcp-server-git",)),
        S("remote-docs", "http", url="https://docs.example.com/mcp"),
        S("mcp-server-github", "builtin"),
        S("paused", "stdio", NPX, ("-y", "@modelcontextprotocol/server-everything"), enabled=False),
    ], ["claude-sonnet-4-latest"], ["anthropic"], ["http://localhost:11434", "https://api.together.xyz/v1"]),
    "codex/config.toml": ("codex_toml", [
        S("context7", "stdio", NPX, ("-y", "@upstash/context7-mcp")),
        S("github", "stdio", NPX, ("-y", "@modelcontextprotocol/server-github"),
          env=("GITHUB_PERSONAL_ACCESS_TOKEN", "GITHUB_HOST")),
        S("figma", "http", url="https://mcp.figma.com/mcp"),
        S("chrome_devtools", "stdio", NPX, ("chrome-devtools-mcp@latest",), enabled=False),
    ], ["gpt-5-codex", "gpt-oss:20b"], ["openai", "ollama"],
        ["http://localhost:11434/v1", "https://example-resource.openai.azure.com/openai"]),
    "gemini-cli/settings.json": ("gemini_settings", [
        S("pythonTools", "stdio", "python", ("-m", "my_mcp_server", "--port", "8080"), env=("DATABASE_URL", "API_KEY")),
        S("events", "sse", url="http://localhost:8080/events"),
        S("httpServerWithAuth", "http", url="http://localhost:3000/mcp"),
        S("experimental", "stdio", "node", ("dist/server.js",), enabled=False),
    ], ["gemini-2.5-pro"], [], []),
    "continue/config.yaml": ("continue_config", [
        S("SQLite MCP", "stdio", NPX, ("-y", "mcp-sqlite", "/path/to/your/database.db")),
        S("Remote Docs", "http", url="https://docs.example.com/mcp"),
        S("Legacy Events", "sse", url="https://events.example.com/sse"),
        S("anthropic/memory-mcp", "unknown"),
    ], ["claude-sonnet-4-5", "qwen2.5-coder:1.5b", "mistral/codestral"], ["anthropic", "ollama"],
        ["http://localhost:11434"]),
    "continue/config.json": ("continue_config", [
        S("mcp-server-sqlite", "stdio", "uvx", ("mcp-server-sqlite", "--db-path", "/path/to/your/database.db")),
        S("search", "sse", url="https://search.example.com/sse"),
    ], ["gpt-4o", "llama3.1:8b", "starcoder2:3b"], ["openai", "ollama"], ["http://192.168.1.20:11434"]),
    "continue/mcpServers/playwright-mcp.yaml": ("continue_config", [
        S("Browser search", "stdio", NPX, ("@playwright/mcp@latest",)),
    ], [], [], []),
    "continue/mcpServers/context7.json": ("continue_config", [
        S("context7", "stdio", NPX, ("-y", "@upstash/context7-mcp")),
    ], [], [], []),
    "continue/mcpServers/everything.json": ("continue_config", [
        S("everything", "stdio", NPX, ("-y", "@modelcontextprotocol/server-everything")),
    ], [], [], []),
    "goose/config.yaml": ("goose_yaml", [
        S("developer", "builtin"),
        S("computercontroller", "builtin", enabled=False),
        S("github", "stdio", NPX, ("-y", "@modelcontextprotocol/server-github"),
          env=("GITHUB_PERSONAL_ACCESS_TOKEN",)),
        S("remote-tools", "http", url="https://example.com/mcp"),
        S("old-events", "sse", url="http://localhost:8000/sse", enabled=False),
    ], ["qwen2.5"], ["ollama"], ["localhost"]),
    "goose/config-providers.yaml": ("goose_yaml", [
        S("memory", "builtin"),
        S("filesystem", "stdio", NPX, ("-y", "@modelcontextprotocol/server-filesystem", "/tmp"), env=("FS_LOG_LEVEL",)),
    ], ["claude-sonnet-4-5-20250929"], ["anthropic"], []),
    "opencode/opencode.json": ("opencode_json", [
        S("my-local-mcp-server", "stdio", "bun", ("x", "my-mcp-command"), env=("MY_ENV_VAR",)),
        S("my-remote-mcp", "http", url="https://my-mcp-server.com"),
        S("sentry-events", "sse", url="https://mcp.sentry.example/sse", enabled=False),
    ], ["anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"], ["anthropic", "ollama"],
        ["http://localhost:11434/v1"]),
    "opencode/opencode.jsonc": ("opencode_json", [
        S("mcp_everything", "stdio", NPX, ("-y", "@modelcontextprotocol/server-everything")),
    ], ["lmstudio/qwen3-coder-30b"], ["lmstudio"], ["http://127.0.0.1:1234/v1"]),
    "aider/.aider.conf.yml": ("aider_yaml", [],
        ["ollama_chat/qwen2.5-coder:32b", "ollama_chat/qwen2.5-coder:7b"], ["gemini", "openrouter"],
        ["http://localhost:8000/v1", "http://127.0.0.1:11434"]),
    "crush/crush.json": ("crush_json", [
        S("filesystem", "stdio", "node", ("/path/to/mcp-server.js",), env=("NODE_ENV",)),
        S("github", "http", url="https://api.githubcopilot.com/mcp/"),
        S("streaming-service", "sse", url="https://example.com/mcp/sse", enabled=False),
    ], ["deepseek-chat", "llama3.2:3b"], ["deepseek", "ollama"],
        ["https://api.deepseek.com/v1", "http://localhost:11434/v1/"]),
    "amp/settings.json": ("amp_settings", [
        S("playwright", "stdio", NPX, ("-y", "@playwright/mcp@latest", "--headless", "--isolated")),
        S("semgrep", "http", url="https://mcp.semgrep.ai/mcp"),
        S("linear", "stdio", NPX, ("mcp-remote", "https://mcp.linear.app/sse"), enabled=False),
        S("sourcegraph", "stdio", NPX, ("-y", "@sourcegraph/mcp-server"), env=("SRC_ACCESS_TOKEN", "SRC_ENDPOINT")),
    ], [], [], []),
    "dotenv/.env": ("dotenv", [], ["claude-sonnet-4-5"], [],
        ["https://llm-proxy.internal.example/v1", "http://127.0.0.1:11434"]),
}  # fmt: skip


@pytest.mark.parametrize("rel", sorted(CASES))
def test_sample_yields_exactly_its_servers_models_and_urls(rel):
    dialect, expected, models, providers, base_urls = CASES[rel]
    parsed = parse(rel, dialect)
    assert servers(parsed) == expected
    assert (parsed.models, parsed.providers, parsed.base_urls) == (models, providers, base_urls)
    assert parsed.warnings == []


def _resolve(document, pointer: str):
    node = document
    for raw in pointer.split("/")[1:]:
        segment = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(segment)] if isinstance(node, list) else node[segment]
    return node


@pytest.mark.parametrize("rel", sorted(CASES))
def test_each_server_points_at_its_entry(rel):
    dialect = CASES[rel][0]
    parsed = parse(rel, dialect)
    for server in parsed.mcp_servers:
        assert isinstance(_resolve(parsed.document, server.where), dict), server.where


def test_every_dialect_has_a_sample():
    from typing import get_args

    from signatures.schema import Dialect

    covered = {dialect for dialect, *_ in CASES.values()} | {"json", "jsonc", "yaml", "toml"}
    assert covered == set(get_args(Dialect)) - {"none"}


@pytest.mark.parametrize(("rel", "dialect", "load"), [
    ("claude-desktop/claude_desktop_config.json", "json", json.loads),
    ("opencode/opencode.jsonc", "jsonc", lambda t: parse_config("opencode_json", t).document),
    ("goose/config.yaml", "yaml", yaml.safe_load),
    ("codex/config.toml", "toml", tomllib.loads),
])  # fmt: skip
def test_plain_formats_give_the_document_and_nothing_else(rel, dialect, load):
    text = (SAMPLES / rel).read_text(encoding="utf-8")
    parsed = parse_config(dialect, text)
    assert parsed.document == load(text)
    assert (parsed.mcp_servers, parsed.models, parsed.base_urls, parsed.warnings) == ([], [], [], [])


def test_claude_code_document_keeps_the_projects_for_the_files_sensor():
    parsed = parse("claude-code/.claude.json", "claude_code")
    assert list(parsed.document["projects"]) == ["/home/alice/src/api", "/home/alice/scratch"]


def test_dotenv_sample_values():
    parsed = parse("dotenv/.env", "dotenv")
    assert parsed.document["OLLAMA_HOST"] == "http://127.0.0.1:11434"
    assert parsed.document["OPENAI_BASE_URL"] == "https://llm-proxy.internal.example/v1"
    assert parsed.document["MULTILINE_NOTE"] == "first line\nsecond line"
    assert parsed.document["ANTHROPIC_API_KEY"].startswith("sk-ant-api03-FAKE")
