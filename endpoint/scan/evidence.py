"""Evidence: one observation made by a sensor, before any signature is applied.

Sensors yield these records; ``endpoint.scan.engine`` turns them into sightings. Credential values
never sit in a record: only their kind and keyed fingerprint (``endpoint.scan.credentials``).

Immutable records are named tuples; the ones the scan fills in as it goes are plain classes with
``__slots__`` on ``SlotRecord``. Neither is a dataclass: ``dataclasses`` costs every ``agentroster
scan`` some 13 ms of imports and per-class code generation, a tenth of its budget.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

Via = Literal["sni", "dns", "connect", "http", "socket"]


class SlotRecord:
    """A mutable record: equal to another of its class with equal fields, unhashable, shown with its fields.

    Subclasses list their fields in ``__slots__``, in constructor order.
    """

    __slots__: tuple[str, ...] = ()
    __hash__ = None  # type: ignore[assignment]  # mutable: as a dataclass with eq and without frozen

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SlotRecord) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Credential(NamedTuple):
    kind: str  # a credential kind id from signatures/providers.yaml, e.g. "openai"
    fingerprint: str | None  # keyed fingerprint, never the value; None without the org's key
    source: Literal["env", "config", "cmdline"]
    where: str  # "pid 123 env OPENAI_API_KEY" or "/home/a/.cursor/mcp.json#/mcpServers/gh/env/GITHUB_TOKEN"


class RawProcess(NamedTuple):
    """One process as a per-OS reader (``endpoint/scan/sensors/_procs_*``) sees it, before its details are read."""

    pid: int
    ppid: int
    name: str
    exe: str
    cmdline: list[str]
    user: str
    uid: int | None
    create_time: float  # seconds since the epoch


class Project(NamedTuple):
    """What a Python or Node process really runs, read from its project (``endpoint.scan.projects``).

    Only names, paths below the project, versions and counts: never a file's contents or a value.
    """

    kind: Literal["python", "node"]
    root: str  # the project folder (the process's working directory, or where its entry module lies)
    entry: str  # what it runs, as a person would name it: "app.worker", "api.main:app", "dist/index.js"
    imports: tuple[tuple[str, str], ...] = ()  # (framework or SDK module, file relative to root) it imports
    packages: tuple[tuple[str, str, str, str], ...] = ()  # (pypi|npm, name, version, where it is installed)
    native: tuple[tuple[str, str], ...] = ()  # (package, library basename) of native extensions it has mapped
    models: tuple[str, ...] = ()  # model names written in its code
    tools: tuple[str, ...] = ()  # tools it declares statically (@tool, function_tool, CrewAI BaseTool)
    errors: tuple[tuple[str, str, str], ...] = ()  # (where, code, detail) of what could not be read
    # a platform's workflows with AI agent nodes: (name, active, agent nodes, providers, credential kinds)
    workflows: tuple[tuple[str, bool, int, tuple[str, ...], tuple[str, ...]], ...] = ()
    platform: str = ""  # the signature id of the platform whose data this is ("n8n"), "" for a project

    def to_plain(self) -> tuple[object, ...]:
        """Plain tuples and strings (for marshal): ``Project.from_plain`` makes it again."""
        return tuple(self)

    @classmethod
    def from_plain(cls, data: Any) -> Project:
        """From ``to_plain``'s tuples (marshal gives them back as tuples; the lists of a JSON copy work too)."""
        kind, root, entry, imports, packages, native, models, tools, errors, workflows, platform = data
        return cls(kind, str(root), str(entry), tuple(tuple(i) for i in imports), tuple(tuple(p) for p in packages),
                   tuple(tuple(n) for n in native), tuple(models), tuple(tools), tuple(tuple(e) for e in errors),
                   tuple((str(w[0]), bool(w[1]), int(w[2]), tuple(w[3]), tuple(w[4])) for w in workflows),
                   str(platform))


class ProcessRecord(SlotRecord):
    __slots__ = ("pid", "ppid", "name", "exe", "cmdline", "user", "uid", "create_time", "env_keys", "env_values",
                 "credentials", "cwd", "project", "container")

    def __init__(self, pid: int, ppid: int, name: str, exe: str, cmdline: list[str], user: str, uid: int | None,
                 create_time: float, env_keys: frozenset[str] = frozenset(), env_values: dict[str, str] | None = None,
                 credentials: list[Credential] | None = None, cwd: str = "", project: Project | None = None,
                 container: tuple[str, str, str, str] | None = None) -> None:
        self.pid = pid
        self.ppid = ppid
        self.name = name
        self.exe = exe
        self.cmdline = cmdline
        self.user = user
        self.uid = uid
        self.create_time = create_time
        self.env_keys = env_keys  # names only; values are reduced to credentials on read
        self.env_values: dict[str, str] = {} if env_values is None else env_values  # HOME, autonomy markers
        self.credentials: list[Credential] = [] if credentials is None else credentials
        self.cwd = cwd  # read for interpreters only, to find the script they run
        self.project = project  # an interpreter's project, read with its details (``endpoint.scan.projects``)
        self.container = container  # (runtime, id, name, image) it runs in (``endpoint.scan.containers``)


class McpServerConfig(NamedTuple):
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
    tools: tuple[str, ...] = ()  # the tools the entry names (an allow or auto-approve list), in its order


class ConfigRecord(SlotRecord):
    __slots__ = ("path", "display_path", "signature", "dialect", "scope", "user", "mcp_servers", "models",
                 "base_urls", "providers", "autonomy", "credentials")

    def __init__(self, path: str, display_path: str, signature: str, dialect: str,
                 scope: Literal["managed", "user", "project"], user: str,
                 mcp_servers: list[McpServerConfig] | None = None, models: list[str] | None = None,
                 base_urls: list[str] | None = None, providers: list[str] | None = None,
                 autonomy: list[str] | None = None, credentials: list[Credential] | None = None) -> None:
        self.path = path  # the real path on this machine (under the scan root)
        self.display_path = display_path  # the path as it is on the scanned system (root prefix removed)
        self.signature = signature  # the signature whose file template matched
        self.dialect = dialect
        self.scope = scope
        self.user = user
        self.mcp_servers: list[McpServerConfig] = [] if mcp_servers is None else mcp_servers
        self.models: list[str] = [] if models is None else models
        self.base_urls: list[str] = [] if base_urls is None else base_urls
        self.providers: list[str] = [] if providers is None else providers  # provider ids the config selects
        self.autonomy: list[str] = [] if autonomy is None else autonomy  # the setting markers that matched
        self.credentials: list[Credential] = [] if credentials is None else credentials


class ArtifactRecord(NamedTuple):
    kind: Literal["app", "extension", "package"]
    signature: str
    path: str
    display_path: str
    user: str  # owner of the home it sits in, or "" for a machine-wide install
    ident: str = ""  # extension id, package name
    version: str = ""


class NetworkRecord(SlotRecord):
    """A call to a host, seen by the network sensor; pid is None when it could not be attributed."""

    __slots__ = ("host", "port", "via", "ts", "pid", "provider", "src", "sport", "dst", "count", "last_ts", "process")

    def __init__(self, host: str, port: int, via: Via, ts: float, pid: int | None = None, provider: str | None = None,
                 src: str = "", sport: int = 0, dst: str = "", count: int = 1, last_ts: float = 0.0,
                 process: str = "") -> None:
        self.host = host
        self.port = port
        self.via: Via = via
        self.ts = ts
        self.pid = pid
        self.provider = provider
        self.src = src
        self.sport = sport
        self.dst = dst
        self.count = count
        self.last_ts = last_ts  # when count > 1, the last time it was seen (``ts`` is the first); 0.0: only at ts
        self.process = process  # the process name at attribution time: the pid may be gone when it is read


class ScanError(NamedTuple):
    """Something that could not be read; the scan goes on. ``detail`` never quotes file contents."""

    where: str
    error: str  # short code: not_regular, too_large, binary, encoding, syntax, symlink_escape, ...
    detail: str = ""
