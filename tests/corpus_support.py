"""The real-config corpus (tests/corpus/): its fixtures, and where each one goes in a machine tree.

Each fixture is a config file copied from a public repository (``tests/corpus/SOURCES.tsv`` says
which). ``place()`` writes it where its client reads it, in a fake Linux home under a ``--root`` tree:
user-level paths for the clients that have one (``~/.config/Code/User/mcp.json``, ``~/.cursor/mcp.json``
…), a project folder under the home for Claude Code's project ``.mcp.json`` (found by the scanner's
project walk). ``build_tree()`` gives every fixture a home of its own, so that files with the same
path never overwrite each other. ``declared_servers()`` reads a fixture on its own, strictly, to say
which MCP servers it plainly declares, with a command or a URL (None when it is not plain JSON/TOML
of a known shape).
Import it as a plain module: the repo's ``tests/`` directory is on ``sys.path``.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "corpus"

# Where each client reads its file, relative to a Linux home ("{project}" is a folder of the home).
CLIENT_PATHS: dict[str, str] = {
    "vscode": ".config/Code/User/mcp.json",
    "cursor": ".cursor/mcp.json",
    "claude-code": "src/{project}/.mcp.json",
    "claude-settings": ".claude/settings.json",
    "claude-desktop": ".config/Claude/claude_desktop_config.json",
    "windsurf": ".codeium/windsurf/mcp_config.json",
    "cline": ".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
    "roo-code": ".config/Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json",
    "continue": ".continue/config.yaml",
    "zed": ".config/zed/settings.json",
    "codex": ".codex/config.toml",
    "gemini": ".gemini/settings.json",
    "opencode": ".config/opencode/opencode.json",
    "crush": ".config/crush/crush.json",
    "aider": ".aider.conf.yml",
    "goose": ".config/goose/config.yaml",
    "amp": ".config/amp/settings.json",
    "continue-block": ".continue/mcpServers/{project}.yaml",
    "opencode-jsonc": ".config/opencode/opencode.jsonc",
}

# The key under which each client's file maps server names to servers.
_SERVER_KEYS: dict[str, tuple[str, ...]] = {
    "vscode": ("servers",),
    "cursor": ("mcpServers",),
    "claude-code": ("mcpServers",),
    "claude-desktop": ("mcpServers",),
    "windsurf": ("mcpServers",),
    "cline": ("mcpServers",),
    "roo-code": ("mcpServers",),
    "gemini": ("mcpServers",),
    "opencode": ("mcp",),
    "crush": ("mcp",),
    "zed": ("context_servers",),
    "codex": ("mcp_servers",),
    "amp": ("amp.mcpServers",),
}


@dataclass(frozen=True)
class Fixture:
    """One corpus file and where it came from."""

    path: Path  # the fixture in the repository
    source: str  # https://github.com/OWNER/REPO/blob/COMMIT/PATH
    client: str
    notes: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def slug(self) -> str:
        """A short unique name for the fixture (its number and repository), safe as a folder or user name."""
        return re.sub(r"[^a-z0-9]+", "-", self.path.name.split(".")[0].lower()).strip("-")[:40]

    def text(self) -> bytes:
        return self.path.read_bytes()


def load_corpus() -> list[Fixture]:
    """Every fixture listed in SOURCES.tsv, in its order."""
    with (CORPUS / "SOURCES.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [Fixture(CORPUS / r["fixture"], r["source"], r["client"], r.get("notes") or "") for r in rows]


def home_of(root: Path, user: str) -> Path:
    return root / "home" / user


def place(fixture: Fixture, root: Path, user: str, content: bytes | None = None) -> Path:
    """Write ``fixture`` (or ``content`` in its place) where its client reads it in ``user``'s home."""
    rel = CLIENT_PATHS[fixture.client].replace("{project}", fixture.slug)
    target = home_of(root, user) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(fixture.text() if content is None else content)
    return target


def user_for(index: int) -> str:
    return f"u{index:03d}"


def build_tree(fixtures: list[Fixture], root: Path) -> dict[Path, Fixture]:
    """Every fixture in one tree, each in a home of its own; the placed path of each."""
    return {place(f, root, user_for(i)): f for i, f in enumerate(fixtures)}


def declared_servers(fixture: Fixture) -> set[str] | None:
    """The server names a fixture plainly declares, read strictly on its own; None when the file is not
    plain JSON (or TOML for Codex) of its client's shape, so that no claim can be made about it."""
    keys = _SERVER_KEYS.get(fixture.client)
    if keys is None:
        return None
    try:
        text = fixture.text().decode("utf-8")
        document: Any = tomllib.loads(text) if fixture.client == "codex" else json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    names: set[str] = set()
    for key in keys:
        servers = document.get(key)
        if servers is None:
            continue
        if not isinstance(servers, dict):
            return None
        names.update(n for n, v in servers.items() if isinstance(v, dict) and _runnable(v))
    return names


def _runnable(entry: dict[str, Any]) -> bool:
    """An entry that says how to reach its server (a command or a URL of its own); entries that only
    switch a server defined elsewhere on or off, or nest it in a shape no client documents, are not
    plain declarations."""
    return any(isinstance(entry.get(k), (str, list)) and entry.get(k) for k in ("command", "url", "httpUrl", "serverUrl"))
