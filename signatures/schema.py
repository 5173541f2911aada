"""The signature pack format: what an agent, a provider and a credential look like, as validated data.

A pack is a YAML file under ``signatures/packs/``; ``docs/signatures.md`` describes the format for
people who write them. Everything here is plain data; matching lives in ``signatures.matching``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

AgentType = Literal["coding", "in_product", "enterprise", "runtime", "tool_server", "unknown"]
Platform = Literal["linux", "macos", "windows"]
Scope = Literal["managed", "user", "project"]
Status = Literal["stable", "test", "experimental"]

# Config dialects the endpoint can parse (endpoint/parsers); "none" means the path is an artifact
# whose presence is the evidence (an app bundle, an install directory).
Dialect = Literal[
    "none",
    "json",
    "jsonc",
    "yaml",
    "toml",
    "dotenv",
    "mcp_json",  # {"mcpServers": {...}}: Claude Desktop, Cursor, Windsurf, Cline, Roo, Kilo, .mcp.json
    "claude_code",  # ~/.claude.json: mcpServers at the top and under projects.<dir>.mcpServers
    "claude_settings",  # .claude/settings*.json and managed-settings.json: permissions, env
    "vscode_mcp",  # .vscode/mcp.json and the user-profile mcp.json: "servers" + "inputs"
    "vscode_settings",  # settings.json (JSONC): "mcp": {"servers": ...}, chat.* settings
    "zed_settings",  # ~/.config/zed/settings.json (JSONC): "context_servers"
    "codex_toml",  # ~/.codex/config.toml: [mcp_servers.<name>], approval_policy, sandbox_mode
    "gemini_settings",  # ~/.gemini/settings.json: mcpServers with url / httpUrl, general settings
    "continue_config",  # ~/.continue/config.yaml|json and .continue/mcpServers/*.yaml
    "goose_yaml",  # ~/.config/goose/config.yaml: extensions (builtin, stdio, sse, streamable_http)
    "opencode_json",  # opencode.json(c): "mcp": {name: {type: local|remote, command: [...]}}
    "aider_yaml",  # .aider.conf.yml: model, api keys, yes-always
    "crush_json",  # crush.json: "mcp": {name: {type: stdio|http|sse, command, args, url}}
    "amp_settings",  # ~/.config/amp/settings.json: "amp.mcpServers"
]

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ALL_PLATFORMS: list[Platform] = ["linux", "macos", "windows"]


def _compiles(pattern: str) -> str:
    # Checked per item, so that a bad pattern's error points at its own line in the pack.
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProcessMatcher(_Strict):
    """How a running process (or an MCP server's configured command line) is recognised.

    ``names`` are compared, case-insensitively and without ``.exe``, with the executable's basename,
    argv[0]'s basename, the kernel's process name, and -- for interpreters such as node or python --
    the basename of the script they run (and its package directory for ``.../pkg/cli.js``).
    A name may hold ``*`` wildcards (``mcp-server-*``). ``cmdline`` and ``exe`` are regular
    expressions searched (case-insensitively) in the joined command line and the full executable
    path; ``exclude`` are regular expressions that, found in either, veto this signature (Claude
    Code's ``claude`` is not Claude Desktop's ``Claude.app``). ``script_imports`` are module names
    looked for in the import lines of the Python script an interpreter runs. ``child_env`` are
    environment variables that the agent sets for the processes it spawns: a process that has one is
    attributed to this agent as its parent (they never identify the process itself).
    """

    names: list[str] = Field(default_factory=list)
    cmdline: list[Regex] = Field(default_factory=list)
    exe: list[Regex] = Field(default_factory=list)
    exclude: list[Regex] = Field(default_factory=list)
    script_imports: list[str] = Field(default_factory=list)
    child_env: list[str] = Field(default_factory=list)
    platforms: list[Platform] = Field(default_factory=list)


class FileMatcher(_Strict):
    """A file or directory that belongs to an agent.

    ``path`` is a template: ``~`` is the user's home, ``{project}`` a project directory, and
    ``%APPDATA%``, ``%LOCALAPPDATA%``, ``%USERPROFILE%``, ``%PROGRAMDATA%``, ``%PROGRAMFILES%`` the
    Windows folders; an absolute path is read under the scan root. ``*`` matches within one path
    component. ``dialect`` names the parser; ``none`` means presence alone is the evidence.
    """

    path: str
    dialect: Dialect = "none"
    scope: Scope = "user"
    platforms: list[Platform] = Field(default_factory=list)

    @model_validator(mode="after")
    def _scope_fits_path(self) -> FileMatcher:
        p = self.path
        if p.startswith("{project}/") != (self.scope == "project"):
            raise ValueError("a project-scoped path starts with {project}/, and only such a path is project-scoped")
        if self.scope == "managed" and (p.startswith("~") or p.startswith("%APPDATA%") or p.startswith("%LOCALAPPDATA%")):
            raise ValueError("a managed path is a machine-wide path, not one under a home")
        if "**" in p or ".." in p.split("/"):
            raise ValueError("paths may use * within one component, never ** or ..")
        if "\\" in p:
            raise ValueError("write paths with forward slashes; Windows ones too")
        return self


class Packages(_Strict):
    """Agent packages installed with a package manager (found in site-packages and npm global dirs)."""

    pypi: list[str] = Field(default_factory=list)
    npm: list[str] = Field(default_factory=list)


class NetworkMatcher(_Strict):
    """Hosts (``*`` wildcards allowed) and ports that this agent itself serves or calls."""

    hosts: list[str] = Field(default_factory=list)
    ports: list[int] = Field(default_factory=list)


class SettingMarker(_Strict):
    """A config key (dotted path; ``*`` matches any one key) whose value switches human approval off."""

    key: str
    equals: str | bool | int | list[str] | None = None
    contains: str | None = None
    dialects: list[Dialect] = Field(default_factory=list)


class Autonomy(_Strict):
    """Markers that the agent runs without a human approving its actions."""

    flags: list[str] = Field(default_factory=list)
    settings: list[SettingMarker] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)


class Case(_Strict):
    """One test input. Exactly one of the fields is set."""

    process: str | None = None  # a command line, as a shell would show it
    exe: str | None = None  # with ``process``: the executable path
    path: str | None = None  # a path in template notation, e.g. ~/.cursor/mcp.json
    extension: str | None = None
    package: str | None = None  # "npm:@scope/name" or "pypi:name"
    host: str | None = None
    autonomous_cmdline: str | None = None
    autonomous_settings: dict[str, object] | None = None
    dialect: Dialect | None = None  # with autonomous_settings
    script: str | None = None  # with process: the text of the script the interpreter runs
    platform: Platform | None = None  # with process: the OS it runs on (else guessed from the paths)
    # with process: the files of the project it runs in (path below the project -> text), read by the
    # endpoint's project resolver as a deployed process's would be
    project: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Case:
        kinds = [k for k in ("process", "path", "extension", "package", "host", "autonomous_cmdline",
                             "autonomous_settings") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a case sets exactly one of process, path, extension, package, host, "
                             f"autonomous_cmdline, autonomous_settings (got {kinds or 'none'})")
        if self.package is not None and not self.package.startswith(("npm:", "pypi:")):
            raise ValueError("a package case is written npm:NAME or pypi:NAME")
        if self.project is not None and (self.process is None or self.script is not None):
            raise ValueError("a project case is a process case with the project's files (and no script)")
        if self.project is not None and any(p.startswith("/") or ".." in p.split("/") for p in self.project):
            raise ValueError("a project case's files are paths below the project (no /, no ..)")
        return self


class Cases(_Strict):
    match: list[Case] = Field(default_factory=list)
    no_match: list[Case] = Field(default_factory=list)


class Risk(_Strict):
    """What a tool server can reach; decides the ``broad_tools`` flag."""

    reaches: list[Literal["shell", "filesystem", "browser", "database", "network", "code_execution",
                          "cloud", "email", "messaging"]] = Field(default_factory=list)
    write: bool = False


class Signature(_Strict):
    id: str
    name: str
    vendor: str
    type: AgentType
    status: Status = "test"
    description: str = ""
    references: list[str] = Field(default_factory=list)
    platforms: list[Platform] = Field(default_factory=lambda: list(_ALL_PLATFORMS))
    process: ProcessMatcher = Field(default_factory=ProcessMatcher)
    files: list[FileMatcher] = Field(default_factory=list)
    apps: list[str] = Field(default_factory=list)  # app bundle or install dir templates (presence)
    extensions: list[str] = Field(default_factory=list)  # VS Code-family and JetBrains plugin ids
    packages: Packages = Field(default_factory=Packages)
    network: NetworkMatcher = Field(default_factory=NetworkMatcher)
    providers: list[str] = Field(default_factory=list)  # provider ids it calls by default
    autonomy: Autonomy = Field(default_factory=Autonomy)
    risk: Risk = Field(default_factory=Risk)
    cases: Cases = Field(default_factory=Cases)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("an id is lower-case letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _stable_has_cases(self) -> Signature:
        if self.status == "stable" and (not self.cases.match or not self.cases.no_match):
            raise ValueError("a stable signature carries at least one match and one no_match case")
        has_matcher = (self.process.names or self.process.cmdline or self.process.exe
                       or self.process.script_imports or self.files or self.apps or self.extensions
                       or self.packages.pypi or self.packages.npm or self.network.hosts or self.network.ports)
        if not has_matcher:
            raise ValueError("a signature needs at least one matcher (process, files, apps, extensions, "
                             "packages or network)")
        return self


class Pack(_Strict):
    pack: str
    description: str = ""
    signatures: list[Signature]


class Provider(_Strict):
    """An LLM API provider: the hosts its API is served on, with the vendor's doc as reference."""

    id: str
    name: str
    hosts: list[str]
    credential: str | None = None  # credential kind id its keys have
    local: bool = False  # a local runtime's API (served on loopback ports)
    ports: list[int] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("an id is lower-case letters, digits, '.', '_' or '-'")
        return value


class ValueCases(_Strict):
    """Values (obviously fake) that a credential kind must and must not recognise."""

    match: list[str] = Field(default_factory=list)
    no_match: list[str] = Field(default_factory=list)


class CredentialKind(_Strict):
    """A kind of secret: recognised by its value's shape or by the variable or key that holds it."""

    id: str
    name: str
    patterns: list[Regex] = Field(default_factory=list)  # regexes a whole value must match
    env: list[str] = Field(default_factory=list)  # variable / config key names (case-insensitive)
    references: list[str] = Field(default_factory=list)
    cases: ValueCases = Field(default_factory=lambda: ValueCases())


class Catalog(_Strict):
    """signatures/providers.yaml: the providers and credential kinds shared by endpoint and console."""

    providers: list[Provider]
    credentials: list[CredentialKind]
