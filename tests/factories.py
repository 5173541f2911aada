"""Builds realistic user-home trees full of AI-client config files, for tests and bench.

``build_homes(root)`` lays out Linux (``root/home/<user>``), macOS (``root/Users/<user>``) and Windows
homes (``root/Users/<user>`` with ``AppData``, or ``root/mnt/c/Users/<user>`` as WSL sees them), each
holding the config files of a dozen AI clients in the places and formats those clients use, plus
``.env`` files with fake keys and some junk. The returned manifest says, per file, which client it
belongs to and which MCP servers it declares, so a test or benchmark knows what a scanner must find.
Import it as a plain module: put the repo's ``tests/`` directory on ``sys.path``.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

OS = Literal["linux", "macos", "windows"]

USER_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "uma", "victor", "wendy",
)


# ----------------------------------------------------------------------------- manifest records


@dataclass(frozen=True)
class McpServer:
    """One MCP server as a config file declares it."""

    name: str
    transport: Literal["stdio", "http", "sse", "builtin"]
    command: str | None = None
    args: tuple[str, ...] = ()
    url: str | None = None
    enabled: bool = True
    project: str | None = None  # the project a per-project entry belongs to (machine path)


@dataclass(frozen=True)
class ConfigFile:
    """One file written into a home, with what a scanner must find in it."""

    path: Path  # the real path under the build root
    machine_path: str  # the same file as its user sees it, e.g. /Users/bob/.cursor/mcp.json
    user: str
    os: OS
    client: str  # claude-code, claude-desktop, cursor, windsurf, vscode, zed, codex, ...
    format: Literal["json", "jsonc", "toml", "yaml", "dotenv", "junk"]
    servers: tuple[McpServer, ...] = ()
    secrets: tuple[str, ...] = ()  # fake credential values written into the file
    broken: bool = False  # junk a parser must reject without losing the rest of the scan


@dataclass(frozen=True)
class Home:
    user: str
    os: OS
    path: Path  # real path under the build root
    machine_path: str  # /home/alice, /Users/bob, C:\Users\carol


@dataclass
class HomesManifest:
    """Everything ``build_homes`` wrote, and what a scanner must find in it."""

    root: Path
    homes: list[Home] = field(default_factory=list)
    files: list[ConfigFile] = field(default_factory=list)

    @property
    def clients(self) -> set[str]:
        return {f.client for f in self.files}

    @property
    def secrets(self) -> set[str]:
        return {s for f in self.files for s in f.secrets}

    def files_of(self, user: str) -> list[ConfigFile]:
        return [f for f in self.files if f.user == user]

    def servers(self, *, user: str | None = None, include_builtin: bool = False) -> set[tuple[Path, str]]:
        """(real file path, server name) for every server declared, optionally for one user."""
        return {
            (f.path, s.name)
            for f in self.files
            if user is None or f.user == user
            for s in f.servers
            if include_builtin or s.transport != "builtin"
        }

    def server_names(self, *, user: str | None = None) -> set[str]:
        return {name for _, name in self.servers(user=user)}

    def home(self, user: str) -> Home:
        return next(h for h in self.homes if h.user == user)


# ----------------------------------------------------------------------------- fake values


def _rand(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def fake_key(kind: str, rng: random.Random) -> str:
    """A credential in its provider's real shape, with FAKE in it so nobody mistakes it for a live one."""
    b64ish = string.ascii_letters + string.digits + "_-"
    if kind == "anthropic":
        return "sk-ant-api03-FAKE" + _rand(rng, 87, b64ish) + "AA"
    if kind == "openai":
        return "sk-proj-FAKE" + _rand(rng, 60, b64ish) + "T3BlbkFJ" + _rand(rng, 60, b64ish)
    if kind == "github":
        return "ghp_FAKE" + _rand(rng, 32)
    if kind == "slack":
        return f"xoxb-{rng.randrange(10**11, 10**12)}-{rng.randrange(10**11, 10**12)}-FAKE{_rand(rng, 20)}"
    if kind == "gemini":
        return "AIzaSyFAKE" + _rand(rng, 29, b64ish)
    if kind == "brave":
        return "BSAFAKE" + _rand(rng, 24)
    raise ValueError(kind)


# ----------------------------------------------------------------------------- home layout


@dataclass
class _HomeWriter:
    """Writes one home's files and records them."""

    home: Home
    rng: random.Random
    manifest: HomesManifest

    @property
    def os(self) -> OS:
        return self.home.os

    def machine(self, rel: str) -> str:
        """The path a file at ``rel`` below the home has on the user's own machine."""
        if self.os == "windows":
            return str(PureWindowsPath(self.home.machine_path, *rel.split("/")))
        return str(PurePosixPath(self.home.machine_path, rel))

    def write(self, rel: str, text: str, **record: Any) -> ConfigFile:
        path = self.home.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        entry = ConfigFile(path=path, machine_path=self.machine(rel), user=self.home.user, os=self.os, **record)
        self.manifest.files.append(entry)
        return entry

    def key(self, kind: str) -> str:
        return fake_key(kind, self.rng)

    # per-OS locations -------------------------------------------------------------------------

    def appdata(self, tail: str) -> str:
        """An app-data path: ~/.config on Linux, Application Support on macOS, Roaming on Windows."""
        base = {"linux": ".config", "macos": "Library/Application Support", "windows": "AppData/Roaming"}
        return f"{base[self.os]}/{tail}"

    def vscode_user(self, product: str = "Code") -> str:
        return self.appdata(f"{product}/User")

    def xdg(self, tail: str) -> str:
        """Tools that keep ~/.config on every OS (opencode, goose and zed off Windows, crush off Windows)."""
        return f".config/{tail}"


# ----------------------------------------------------------------------------- MCP server catalog


def _server_catalog(w: _HomeWriter) -> list[tuple[McpServer, dict[str, str]]]:
    """Realistic servers, each with the env it needs (fake secrets included)."""
    projects = w.machine("src")
    return [
        (McpServer("filesystem", "stdio", "npx", ("-y", "@modelcontextprotocol/server-filesystem", projects)), {}),
        (McpServer("github", "stdio", "npx", ("-y", "@modelcontextprotocol/server-github")),
         {"GITHUB_PERSONAL_ACCESS_TOKEN": w.key("github")}),
        (McpServer("git", "stdio", "uvx", ("mcp-server-git", "--repository", w.machine("src/api"))), {}),
        (McpServer("fetch", "stdio", "uvx", ("mcp-server-fetch",)), {}),
        (McpServer("postgres", "stdio", "npx",
                   ("-y", "@modelcontextprotocol/server-postgres", "postgresql://app@localhost:5432/app")), {}),
        (McpServer("playwright", "stdio", "npx", ("@playwright/mcp@latest",)), {}),
        (McpServer("slack", "stdio", "npx", ("-y", "@modelcontextprotocol/server-slack")),
         {"SLACK_BOT_TOKEN": w.key("slack"), "SLACK_TEAM_ID": "T0FAKE123"}),
        (McpServer("sqlite", "stdio", "uvx", ("mcp-server-sqlite", "--db-path", w.machine("data/local.db"))), {}),
        (McpServer("memory", "stdio", "npx", ("-y", "@modelcontextprotocol/server-memory")), {}),
        (McpServer("sequential-thinking", "stdio", "npx",
                   ("-y", "@modelcontextprotocol/server-sequential-thinking")), {}),
        (McpServer("brave-search", "stdio", "npx", ("-y", "@modelcontextprotocol/server-brave-search")),
         {"BRAVE_API_KEY": w.key("brave")}),
        (McpServer("github-docker", "stdio", "docker",
                   ("run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server")),
         {"GITHUB_PERSONAL_ACCESS_TOKEN": w.key("github")}),
        (McpServer("crm-tools", "stdio", "python3", (w.machine("tools/crm_mcp.py"), "--stdio")), {}),
        (McpServer("context7", "http", url="https://mcp.context7.com/mcp"), {}),
        (McpServer("linear", "sse", url="https://mcp.linear.app/sse"), {}),
        (McpServer("sentry", "http", url="https://mcp.sentry.dev/mcp"), {}),
        (McpServer("notion", "http", url="https://mcp.notion.com/mcp"), {}),
        (McpServer("atlassian", "sse", url="https://mcp.atlassian.com/v1/sse"), {}),
    ]


def _pick(w: _HomeWriter, n: int, *, remote: bool = True) -> list[tuple[McpServer, dict[str, str]]]:
    pool = [c for c in _server_catalog(w) if remote or c[0].transport == "stdio"]
    return w.rng.sample(pool, min(n, len(pool)))


def _secrets(env: dict[str, str]) -> tuple[str, ...]:
    return tuple(v for k, v in env.items() if not k.endswith("_ID"))


def _standard_entry(server: McpServer, env: dict[str, str], *, remote_key: str = "url") -> dict[str, Any]:
    """The ``mcpServers`` entry shape shared by Claude, Cursor, Windsurf, Gemini, Kiro, Amazon Q, Cline."""
    if server.transport != "stdio":
        return {remote_key: server.url}
    entry: dict[str, Any] = {"command": server.command, "args": list(server.args)}
    if env:
        entry["env"] = env
    return entry


def _mcp_servers_block(
    picked: list[tuple[McpServer, dict[str, str]]], **kw: Any
) -> tuple[dict[str, Any], tuple[McpServer, ...], tuple[str, ...]]:
    block = {s.name: _standard_entry(s, env, **kw) for s, env in picked}
    secrets = tuple(v for _, env in picked for v in _secrets(env))
    return block, tuple(s for s, _ in picked), secrets


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2) + "\n"


# ----------------------------------------------------------------------------- client writers


def _claude_code(w: _HomeWriter) -> None:
    """~/.claude.json (user and per-project servers), ~/.claude/settings.json, a project .mcp.json."""
    user_block, user_servers, user_secrets = _mcp_servers_block(_pick(w, 2))
    project = w.machine("src/api").replace("\\", "/")  # Claude Code keys projects with "/" on Windows too
    proj_picked = _pick(w, 2)
    proj_block, proj_servers, proj_secrets = _mcp_servers_block(proj_picked)
    doc = {
        "numStartups": w.rng.randrange(3, 400),
        "installMethod": "npm-global",
        "autoUpdates": True,
        "userID": _rand(w.rng, 64, "0123456789abcdef"),
        "hasCompletedOnboarding": True,
        "mcpServers": user_block,
        "projects": {
            project: {
                "allowedTools": [],
                "mcpServers": proj_block,
                "enabledMcpjsonServers": [],
                "hasTrustDialogAccepted": True,
                "projectOnboardingSeenCount": 1,
            },
            w.machine("src/scratch").replace("\\", "/"): {"allowedTools": [], "mcpServers": {}, "hasTrustDialogAccepted": False},
        },
    }
    servers = user_servers + tuple(McpServer(**{**s.__dict__, "project": project}) for s in proj_servers)
    w.write(".claude.json", _dump(doc), client="claude-code", format="json",
            servers=servers, secrets=user_secrets + proj_secrets)
    mode = w.rng.choice(["default", "acceptEdits", "bypassPermissions"])
    settings = {
        "permissions": {
            "allow": ["Bash(npm run test:*)", "Bash(git diff:*)", "Read(~/src/**)", "WebFetch(domain:docs.python.org)"],
            "deny": ["Read(./.env)", "Bash(curl:*)"],
            "defaultMode": mode,
        },
        "model": "sonnet",
        "env": {"CLAUDE_CODE_ENABLE_TELEMETRY": "0"},
    }
    w.write(".claude/settings.json", _dump(settings), client="claude-code", format="json")
    mcpjson_block, mcpjson_servers, mcpjson_secrets = _mcp_servers_block(_pick(w, 2))
    w.write("src/api/.mcp.json", _dump({"mcpServers": mcpjson_block}), client="claude-code", format="json",
            servers=tuple(McpServer(**{**s.__dict__, "project": project}) for s in mcpjson_servers),
            secrets=mcpjson_secrets)


def _claude_desktop(w: _HomeWriter) -> None:
    """claude_desktop_config.json at the OS's path; on Windows sometimes the MSIX (Store) one too."""
    block, servers, secrets = _mcp_servers_block(_pick(w, 3, remote=False))
    doc = {"mcpServers": block, "globalShortcut": "Ctrl+Space"}
    w.write(w.appdata("Claude/claude_desktop_config.json"), _dump(doc), client="claude-desktop",
            format="json", servers=servers, secrets=secrets)
    if w.os == "windows":
        msix = "AppData/Local/Packages/Claude_pzs8sxrjxfjjc/LocalCache/Roaming/Claude/claude_desktop_config.json"
        block, servers, secrets = _mcp_servers_block(_pick(w, 2, remote=False))
        w.write(msix, _dump({"mcpServers": block}), client="claude-desktop", format="json",
                servers=servers, secrets=secrets)


def _cursor(w: _HomeWriter) -> None:
    """~/.cursor/mcp.json and a project's .cursor/mcp.json (remote servers take ``url`` + headers)."""
    block, servers, secrets = _mcp_servers_block(_pick(w, 3))
    w.write(".cursor/mcp.json", _dump({"mcpServers": block}), client="cursor", format="json",
            servers=servers, secrets=secrets)
    block, servers, secrets = _mcp_servers_block(_pick(w, 1))
    project = w.machine("src/web")
    w.write("src/web/.cursor/mcp.json", _dump({"mcpServers": block}), client="cursor", format="json",
            servers=tuple(McpServer(**{**s.__dict__, "project": project}) for s in servers),
            secrets=secrets)


def _windsurf(w: _HomeWriter) -> None:
    """~/.codeium/windsurf/mcp_config.json: remote servers use ``serverUrl``."""
    block, servers, secrets = _mcp_servers_block(_pick(w, 3), remote_key="serverUrl")
    w.write(".codeium/windsurf/mcp_config.json", _dump({"mcpServers": block}), client="windsurf",
            format="json", servers=servers, secrets=secrets)


def _vscode_entry(server: McpServer, env: dict[str, str]) -> dict[str, Any]:
    if server.transport != "stdio":
        return {"type": server.transport, "url": server.url}
    entry: dict[str, Any] = {"type": "stdio", "command": server.command, "args": list(server.args)}
    if env:
        entry["env"] = env
    return entry


def _vscode(w: _HomeWriter) -> None:
    """User/mcp.json, User/settings.json with an ``mcp`` block (JSONC), a profile, a project .vscode/mcp.json."""
    user = w.vscode_user()
    picked = _pick(w, 2)
    doc = {
        "servers": {s.name: _vscode_entry(s, env) for s, env in picked},
        "inputs": [{"type": "promptString", "id": "api-key", "description": "API key", "password": True}],
    }
    secrets = tuple(v for _, env in picked for v in _secrets(env))
    w.write(f"{user}/mcp.json", _dump(doc), client="vscode", format="json",
            servers=tuple(s for s, _ in picked), secrets=secrets)
    picked = _pick(w, 1, remote=False)
    mcp = json.dumps({"servers": {s.name: _vscode_entry(s, env) for s, env in picked}}, indent=4)
    settings = (
        "{\n"
        '    // Editor\n    "editor.fontSize": 14,\n    "editor.formatOnSave": true,\n'
        '    "workbench.colorTheme": "Default Dark Modern",\n'
        '    "github.copilot.enable": {"*": true, "markdown": false},\n'
        '    "chat.agent.enabled": true,\n'
        f'    "mcp": {mcp.replace(chr(10), chr(10) + "    ")},\n'
        "}\n"
    )
    w.write(f"{user}/settings.json", settings, client="vscode", format="jsonc",
            servers=tuple(s for s, _ in picked),
            secrets=tuple(v for _, env in picked for v in _secrets(env)))
    picked = _pick(w, 1)
    profile = _rand(w.rng, 8, "0123456789abcdef")
    w.write(f"{user}/profiles/-{profile}/mcp.json",
            _dump({"servers": {s.name: _vscode_entry(s, env) for s, env in picked}}), client="vscode",
            format="json", servers=tuple(s for s, _ in picked),
            secrets=tuple(v for _, env in picked for v in _secrets(env)))
    picked = _pick(w, 1)
    project = w.machine("src/web")
    w.write("src/web/.vscode/mcp.json", _dump({"servers": {s.name: _vscode_entry(s, e) for s, e in picked}}),
            client="vscode", format="json",
            servers=tuple(McpServer(**{**s.__dict__, "project": project}) for s, _ in picked),
            secrets=tuple(v for _, env in picked for v in _secrets(env)))


def _extension_storage(w: _HomeWriter, ext: str, file: str, client: str, disabled: bool) -> None:
    block, servers, secrets = _mcp_servers_block(_pick(w, 2, remote=False))
    for entry in block.values():
        entry.update({"disabled": False, "autoApprove": []})
    if disabled and servers:
        first = servers[0]
        block[first.name]["disabled"] = True
        servers = (McpServer(**{**first.__dict__, "enabled": False}), *servers[1:])
    w.write(f"{w.vscode_user()}/globalStorage/{ext}/settings/{file}", _dump({"mcpServers": block}),
            client=client, format="json", servers=servers, secrets=secrets)


def _cline(w: _HomeWriter) -> None:
    _extension_storage(w, "saoudrizwan.claude-dev", "cline_mcp_settings.json", "cline", disabled=True)


def _roo(w: _HomeWriter) -> None:
    _extension_storage(w, "rooveterinaryinc.roo-cline", "mcp_settings.json", "roo-code", disabled=False)


def _zed(w: _HomeWriter) -> None:
    """Zed settings.json (JSONC) with ``context_servers`` in the current and the older command shape."""
    rel = "AppData/Roaming/Zed/settings.json" if w.os == "windows" else w.xdg("zed/settings.json")
    (new, env), (old, _) = _pick(w, 2, remote=False)
    env_text = json.dumps(env)
    text = (
        "// Zed settings\n//\n// For information on how to configure Zed, see the Zed documentation.\n{\n"
        '  "ui_font_size": 16,\n  "buffer_font_size": 15,\n'
        '  "agent": {"default_model": {"provider": "zed.dev", "model": "claude-sonnet-4"}},\n'
        '  "context_servers": {\n'
        f'    "{new.name}": {{"source": "custom", "command": {json.dumps(new.command)}, '
        f'"args": {json.dumps(list(new.args))}, "env": {env_text}}},\n'
        f'    "{old.name}": {{"command": {{"path": {json.dumps(old.command)}, '
        f'"args": {json.dumps(list(old.args))}, "env": {{}}}}, "settings": {{}}}},\n'
        '    "mcp-server-github": {"source": "extension", "enabled": true, "settings": {}},\n'
        "  },\n}\n"
    )
    from_extension = McpServer("mcp-server-github", "builtin")  # provided by a Zed extension, no command
    w.write(rel, text, client="zed", format="jsonc", servers=(new, old, from_extension), secrets=_secrets(env))


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _codex(w: _HomeWriter) -> None:
    """~/.codex/config.toml with [mcp_servers.<name>] tables (stdio, and ``url`` for streamable HTTP)."""
    picked = [p for p in _pick(w, 4) if p[0].transport != "sse"][:3]
    policy = w.rng.choice(["on-request", "untrusted", "never"])
    lines = ['model = "gpt-5-codex"', f'approval_policy = "{policy}"', 'sandbox_mode = "workspace-write"', ""]
    for server, env in picked:
        lines.append(f"[mcp_servers.{server.name}]")
        if server.transport == "stdio":
            lines.append(f"command = {_toml_str(server.command or '')}")
            lines.append("args = [" + ", ".join(_toml_str(a) for a in server.args) + "]")
        else:
            lines.append(f"url = {_toml_str(server.url or '')}")
        if env:
            lines += ["", f"[mcp_servers.{server.name}.env]"] + [f"{k} = {_toml_str(v)}" for k, v in env.items()]
        lines.append("")
    lines += ["[projects.\"" + w.machine("src/api").replace("\\", "\\\\") + '"]', 'trust_level = "trusted"', ""]
    w.write(".codex/config.toml", "\n".join(lines), client="codex", format="toml",
            servers=tuple(s for s, _ in picked), secrets=tuple(v for _, e in picked for v in _secrets(e)))


def _gemini(w: _HomeWriter) -> None:
    """~/.gemini/settings.json: ``mcpServers`` with ``httpUrl`` for streamable HTTP servers."""
    picked = _pick(w, 2)
    block = {}
    for server, env in picked:
        block[server.name] = _standard_entry(server, env, remote_key="httpUrl" if server.transport == "http" else "url")
    doc = {"theme": "GitHub", "selectedAuthType": "gemini-api-key", "mcpServers": block,
           "general": {"vimMode": False}}
    w.write(".gemini/settings.json", _dump(doc), client="gemini-cli", format="json",
            servers=tuple(s for s, _ in picked), secrets=tuple(v for _, e in picked for v in _secrets(e)))


def _yaml_list(items: tuple[str, ...] | list[str], indent: int) -> str:
    pad = " " * indent
    return "".join(f"{pad}- {json.dumps(i)}\n" for i in items)


def _continue(w: _HomeWriter) -> None:
    """~/.continue/config.yaml: a list of ``mcpServers`` (stdio, or ``type`` + ``url``)."""
    picked = _pick(w, 2)
    text = "name: Local Assistant\nversion: 1.0.0\nschema: v1\nmodels:\n"
    text += "  - name: Claude Sonnet\n    provider: anthropic\n    model: claude-sonnet-4-5\n"
    key = w.key("anthropic")
    text += f"    apiKey: {key}\n"
    secrets = [key]
    text += "mcpServers:\n"
    for server, env in picked:
        text += f"  - name: {server.name}\n"
        if server.transport == "stdio":
            text += f"    command: {server.command}\n    args:\n" + _yaml_list(server.args, 6)
            if env:
                text += "    env:\n" + "".join(f"      {k}: {json.dumps(v)}\n" for k, v in env.items())
                secrets += _secrets(env)
        else:
            kind = "sse" if server.transport == "sse" else "streamable-http"
            text += f"    type: {kind}\n    url: {server.url}\n"
    w.write(".continue/config.yaml", text, client="continue", format="yaml",
            servers=tuple(s for s, _ in picked), secrets=tuple(secrets))


def _goose(w: _HomeWriter) -> None:
    """Goose config.yaml ``extensions`` map: builtin, stdio (cmd/args/envs) and remote (uri)."""
    rel = "AppData/Roaming/Block/goose/config/config.yaml" if w.os == "windows" else w.xdg("goose/config.yaml")
    picked = _pick(w, 2)
    text = "GOOSE_PROVIDER: anthropic\nGOOSE_MODEL: claude-sonnet-4-5\nGOOSE_MODE: smart_approve\nextensions:\n"
    text += ("  developer:\n    bundled: true\n    display_name: Developer\n    enabled: true\n"
             "    name: developer\n    timeout: 300\n    type: builtin\n")
    secrets: list[str] = []
    for server, env in picked:
        text += f"  {server.name}:\n    enabled: true\n    name: {server.name}\n    timeout: 300\n"
        if server.transport == "stdio":
            text += f"    type: stdio\n    cmd: {server.command}\n    args:\n" + _yaml_list(server.args, 4)
            text += "    envs:\n" + "".join(f"      {k}: {json.dumps(v)}\n" for k, v in env.items()) if env else ""
            secrets += _secrets(env)
        else:
            kind = "sse" if server.transport == "sse" else "streamable_http"
            text += f"    type: {kind}\n    uri: {server.url}\n"
    builtin = McpServer("developer", "builtin")
    w.write(rel, text, client="goose", format="yaml",
            servers=(builtin, *(s for s, _ in picked)), secrets=tuple(secrets))


def _opencode(w: _HomeWriter) -> None:
    """~/.config/opencode/opencode.json: ``mcp`` with type local (command as an array) or remote."""
    picked = _pick(w, 3)
    block: dict[str, Any] = {}
    servers = []
    for i, (server, env) in enumerate(picked):
        enabled = i != 2
        if server.transport == "stdio":
            entry: dict[str, Any] = {"type": "local", "command": [server.command, *server.args], "enabled": enabled}
            if env:
                entry["environment"] = env
        else:
            entry = {"type": "remote", "url": server.url, "enabled": enabled}
        block[server.name] = entry
        servers.append(McpServer(**{**server.__dict__, "enabled": enabled}))
    doc = {"$schema": "https://opencode.ai/config.json", "model": "anthropic/claude-sonnet-4-5", "mcp": block}
    w.write(w.xdg("opencode/opencode.json"), _dump(doc), client="opencode", format="json",
            servers=tuple(servers), secrets=tuple(v for _, e in picked for v in _secrets(e)))


def _crush(w: _HomeWriter) -> None:
    """Crush crush.json: ``mcp`` with type stdio/http/sse."""
    rel = "AppData/Local/crush/crush.json" if w.os == "windows" else w.xdg("crush/crush.json")
    picked = _pick(w, 2)
    block: dict[str, Any] = {}
    for server, env in picked:
        if server.transport == "stdio":
            block[server.name] = {"type": "stdio", "command": server.command, "args": list(server.args), "env": env}
        else:
            block[server.name] = {"type": server.transport, "url": server.url}
    doc = {"$schema": "https://charm.land/crush.json", "mcp": block, "options": {"debug": False}}
    w.write(rel, _dump(doc), client="crush", format="json", servers=tuple(s for s, _ in picked),
            secrets=tuple(v for _, e in picked for v in _secrets(e)))


def _amazon_q(w: _HomeWriter) -> None:
    block, servers, secrets = _mcp_servers_block(_pick(w, 2, remote=False))
    w.write(".aws/amazonq/mcp.json", _dump({"mcpServers": block}), client="amazon-q", format="json",
            servers=servers, secrets=secrets)


def _kiro(w: _HomeWriter) -> None:
    block, servers, secrets = _mcp_servers_block(_pick(w, 2))
    for entry in block.values():
        entry.update({"disabled": False, "autoApprove": []})
    w.write(".kiro/settings/mcp.json", _dump({"mcpServers": block}), client="kiro", format="json",
            servers=servers, secrets=secrets)


def _aider(w: _HomeWriter) -> None:
    """~/.aider.conf.yml with a model and a key in clear text (aider reads both)."""
    key = w.key("anthropic")
    text = f"model: sonnet\nanthropic-api-key: {key}\nauto-commits: false\ncheck-update: false\n"
    if w.rng.random() < 0.5:
        text += "yes-always: true\n"
    w.write(".aider.conf.yml", text, client="aider", format="yaml", secrets=(key,))


def _dotenv(w: _HomeWriter) -> None:
    openai, anthropic = w.key("openai"), w.key("anthropic")
    text = f"# local dev only\nOPENAI_API_KEY={openai}\nANTHROPIC_API_KEY=\"{anthropic}\"\nDEBUG=1\n"
    w.write("src/api/.env", text, client="dotenv", format="dotenv", secrets=(openai, anthropic))


def _junk(w: _HomeWriter) -> None:
    """A truncated JSON file and an empty file where clients expect config."""
    choice = w.rng.randrange(3)
    if choice == 0:
        w.write("src/old/.mcp.json", '{"mcpServers": {"half": {"command": "np', client="claude-code",
                format="junk", broken=True)
    elif choice == 1:
        w.write(".lmstudio/mcp.json", "", client="lm-studio", format="junk", broken=True)
    else:
        w.write("src/old/.cursor/mcp.json", "{\n  \"mcpServers\": [\n", client="cursor", format="junk",
                broken=True)


WRITERS: dict[str, Callable[[_HomeWriter], None]] = {
    "claude-code": _claude_code,
    "claude-desktop": _claude_desktop,
    "cursor": _cursor,
    "windsurf": _windsurf,
    "vscode": _vscode,
    "cline": _cline,
    "roo-code": _roo,
    "zed": _zed,
    "codex": _codex,
    "gemini-cli": _gemini,
    "continue": _continue,
    "goose": _goose,
    "opencode": _opencode,
    "crush": _crush,
    "amazon-q": _amazon_q,
    "kiro": _kiro,
    "aider": _aider,
}


# ----------------------------------------------------------------------------- entry point


def _home_for(root: Path, index: int) -> Home:
    user = USER_NAMES[index % len(USER_NAMES)] + ("" if index < len(USER_NAMES) else str(index))
    kind = index % 6
    if kind in (0, 3):
        return Home(user, "linux", root / "home" / user, f"/home/{user}")
    if kind in (1, 4):
        return Home(user, "macos", root / "Users" / user, f"/Users/{user}")
    if kind == 2:
        return Home(user, "windows", root / "Users" / user, f"C:\\Users\\{user}")
    return Home(user, "windows", root / "mnt" / "c" / "Users" / user, f"C:\\Users\\{user}")


def _clients_for(index: int, home: Home, rng: random.Random) -> list[str]:
    """Every client appears across any 3 consecutive homes; each home has 6-9 clients."""
    names = sorted(WRITERS)
    rotating = [names[(index * 6 + i) % len(names)] for i in range(6)]
    extra = [rng.choice(names)]
    if rng.random() < 0.6:
        extra.append("claude-code")  # the most common agent in the fleet
    if home.os == "windows":
        extra.append("claude-desktop")  # so the MSIX path shows up in every tree
    return list(dict.fromkeys(rotating + extra))


def _iter_homes(root: Path, homes: int, seed: int) -> Iterator[_HomeWriter]:
    manifest = HomesManifest(root=root)
    for index in range(homes):
        rng = random.Random(f"{seed}:{index}")
        home = _home_for(root, index)
        home.path.mkdir(parents=True, exist_ok=True)
        manifest.homes.append(home)
        yield _HomeWriter(home, rng, manifest)


def build_homes(root: Path, *, homes: int = 10, seed: int = 0) -> HomesManifest:
    """Write ``homes`` user homes under ``root`` (about 10 config files each) and return the manifest."""
    root = Path(root)
    manifest: HomesManifest | None = None
    for index, writer in enumerate(_iter_homes(root, homes, seed)):
        manifest = writer.manifest
        for client in _clients_for(index, writer.home, writer.rng):
            WRITERS[client](writer)
        _dotenv(writer)
        if index % 2 == 0:
            _junk(writer)
    return manifest if manifest is not None else HomesManifest(root=root)


def main() -> None:
    """``python tests/factories.py DIR [HOMES]``: build a tree and print a summary."""
    import sys

    root = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    manifest = build_homes(root, homes=count)
    print(f"{len(manifest.homes)} homes, {len(manifest.files)} files, {len(manifest.clients)} clients, "
          f"{len(manifest.servers())} (file, server) pairs")
    for f in manifest.files:
        names = ",".join(s.name for s in f.servers)
        print(f"{f.client:15} {f.path.relative_to(root)}  [{names}]")


if __name__ == "__main__":
    main()
