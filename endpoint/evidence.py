"""Evidence: one observation made by a sensor, before any signature is applied.

Sensors yield these records; ``endpoint.fingerprint`` turns them into sightings. Credential values
never sit in a record: only their kind and keyed fingerprint (``endpoint.credentials``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Via = Literal["sni", "dns", "connect", "http", "socket"]


@dataclass(frozen=True, slots=True)
class Credential:
    kind: str  # a credential kind id from signatures/providers.yaml, e.g. "openai"
    fingerprint: str  # keyed fingerprint, never the value
    source: Literal["env", "config", "cmdline"]
    where: str  # "pid 123 env OPENAI_API_KEY" or "/home/a/.cursor/mcp.json#/mcpServers/gh/env/GITHUB_TOKEN"


class RawProcess(NamedTuple):
    """One process as a per-OS reader (``endpoint/sensors/_procs_*``) sees it, before its details are read."""

    pid: int
    ppid: int
    name: str
    exe: str
    cmdline: list[str]
    user: str
    uid: int | None
    create_time: float  # seconds since the epoch


@dataclass(slots=True)
class ProcessRecord:
    pid: int
    ppid: int
    name: str
    exe: str
    cmdline: list[str]
    user: str
    uid: int | None
    create_time: float
    env_keys: frozenset[str] = frozenset()  # names only; values are reduced to credentials on read
    env_values: dict[str, str] = field(default_factory=dict)  # only HOME and autonomy markers: never secrets
    credentials: list[Credential] = field(default_factory=list)
    cwd: str = ""  # read for interpreters only, to find the script they run


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """One MCP server as a client's config declares it (nothing is started to learn about it)."""

    name: str
    transport: Literal["stdio", "http", "sse", "streamable_http", "builtin", "unknown"]
    command: str | None = None
    args: tuple[str, ...] = ()
    url: str | None = None
    env_keys: tuple[str, ...] = ()
    enabled: bool = True
    project: str | None = None  # the project directory a per-project entry belongs to
    where: str = ""  # JSON pointer of the entry in its file, e.g. /mcpServers/github


@dataclass(slots=True)
class ConfigRecord:
    path: str  # the real path on this machine (under the scan root)
    display_path: str  # the path as it is on the scanned system (root prefix removed)
    signature: str  # the signature whose file template matched
    dialect: str
    scope: Literal["managed", "user", "project"]
    user: str
    mcp_servers: list[McpServerConfig] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    base_urls: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)  # provider ids the config selects (anthropic, ollama, ...)
    autonomy: list[str] = field(default_factory=list)  # the setting markers that matched
    credentials: list[Credential] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    kind: Literal["app", "extension", "package"]
    signature: str
    path: str
    display_path: str
    user: str  # owner of the home it sits in, or "" for a machine-wide install
    ident: str = ""  # extension id, package name
    version: str = ""


@dataclass(slots=True)
class NetworkRecord:
    """A call to a host, seen by the network sensor; pid is None when it could not be attributed."""

    host: str
    port: int
    via: Via
    ts: float
    pid: int | None = None
    provider: str | None = None
    src: str = ""
    sport: int = 0
    dst: str = ""
    count: int = 1
    last_ts: float = 0.0  # when count > 1, the last time it was seen (``ts`` is the first); 0.0: only at ts
    process: str = ""  # the process name at attribution time: the pid may be gone when it is read


@dataclass(frozen=True, slots=True)
class ScanError:
    """Something that could not be read; the scan goes on. ``detail`` never quotes file contents."""

    where: str
    error: str  # short code: not_regular, too_large, binary, encoding, syntax, symlink_escape, ...
    detail: str = ""
