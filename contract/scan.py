"""The scan document (``agentroster.scan/1``) and the sighting in it: what ``agentroster scan --json``
prints and what a report carries, with the agent types and the flag vocabulary.

Plain TypedDicts: the scan builds dicts of these shapes without a validation library; the ``Annotated``
limits (``contract.bounds``) are what the collector's adapters check.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict, get_args

from contract.bounds import Default, Doc, Pattern, Range

SCAN_SCHEMA = "agentroster.scan/1"

SightingType = Literal["coding", "in_product", "enterprise", "runtime", "tool_server", "unknown"]
#: flags the endpoint decides from what it sees on the machine
EndpointFlag = Literal["autonomous", "broad_tools", "plaintext_secret", "remote_tool_server"]
#: flags the collector decides from registrations and the org policy
CollectorFlag = Literal["unregistered", "pending", "drift", "unsanctioned_provider", "personal_credential"]
Flag = Literal[CollectorFlag, EndpointFlag]
ENDPOINT_FLAGS: frozenset[str] = frozenset(get_args(EndpointFlag))
COLLECTOR_FLAGS: frozenset[str] = frozenset(get_args(CollectorFlag))

#: what each flag means, in one sentence, wherever a person reads it (the console, ``agentroster scan``)
FLAG_MEANINGS: dict[str, str] = {
    "unregistered": "No registration, approval or org policy covers this agent.",
    "pending": "Its owner registered this agent; an admin has not approved the registration yet.",
    "drift": "It does more than was approved: providers, MCP servers or autonomy beyond its declaration.",
    "unsanctioned_provider": "It calls an LLM provider that is not on the organisation's allow-list.",
    "personal_credential": "It uses an API key that is not one of the organisation's corporate keys.",
    "autonomous": "It runs with human approval turned off (a skip-permissions, yolo, full-auto or bypass mode).",
    "broad_tools": "It has tools that reach a shell, the whole disk, a browser or a database with write access.",
    "plaintext_secret": "A credential sits in clear text in one of its config files.",
    "remote_tool_server": "It uses an MCP server over the network, outside the organisation.",
}

#: what to do about each flag, in one line
FLAG_NEXT_STEPS: dict[str, str] = {
    "unregistered": "register it: agentroster register",
    "pending": "wait for the admin's answer, or ask IT",
    "drift": "update the registration to what it does now, or turn off what it should not do",
    "unsanctioned_provider": "use a provider the organisation allows, or ask IT to allow this one",
    "personal_credential": "use the organisation's key instead of a personal one, and rotate the personal key",
    "autonomous": "turn human approval back on (drop --yolo, --dangerously-skip-permissions, bypass modes)",
    "broad_tools": "limit its tools to what the work needs (one folder, read-only, no shell)",
    "plaintext_secret": "move the key out of the config file (an environment variable or a keychain) and rotate it",
    "remote_tool_server": "check that the remote MCP server is one the organisation trusts",
}

OS = Literal["linux", "macos", "windows"]
Transport = Literal["stdio", "http", "sse", "streamable_http", "builtin", "unknown"]
ConfigScope = Literal["managed", "user", "project"]
Via = Literal["sni", "dns", "connect", "http", "socket"]
CredentialSource = Literal["env", "config", "cmdline"]
EvidenceKind = Literal["process", "config", "artifact", "network"]

#: Integer bounds, so that no number in a report reaches the store out of range (SQLite's and PostgreSQL's
#: BIGINT hold -2**63..2**63-1; the collector stores seq + 1 and sums counts, so these leave room).
PID_MAX = 2**32 - 1  # a Windows DWORD; POSIX pid_t is smaller
PORT_MAX = 65535
COUNT_MAX = 2**53 - 1  # exact in a JSON number read as a double
FINGERPRINT_PATTERN = r"^hmac-sha256:[0-9a-f]{32}$"


class Device(TypedDict):
    id: Annotated[str, Doc("stable device id (machine-id, or host:NAME)")]
    hostname: str
    os: OS
    os_version: NotRequired[Annotated[str, Default("")]]
    arch: NotRequired[Annotated[str, Default("")]]
    agentroster_version: str


ContainerRuntime = Literal["docker", "podman", "containerd", "cri-o", "kubernetes", "buildkit"]


class Container(TypedDict):
    """The container a process runs in, as its cgroup names it and its runtime's metadata describes it."""

    runtime: ContainerRuntime
    id: Annotated[str, Pattern(r"^[0-9a-z]{20,64}$"), Doc("the container id its runtime gave it")]
    name: Annotated[str, Doc("the container's name, \"\" when the runtime's metadata was not readable")]
    image: Annotated[str, Doc("the image it was started from, \"\" when not known")]


class Process(TypedDict):
    pid: Annotated[int, Range(0, PID_MAX)]
    ppid: Annotated[int, Range(0, PID_MAX)]
    name: str
    exe: str
    cmdline: Annotated[list[str], Doc("argv with every credential replaced by [REDACTED:kind]")]
    user: str
    started: float
    container: NotRequired[Annotated[Container | None, Doc("the container it runs in (absent when none, and "
                                                           "in older endpoints' reports)")]]


class Config(TypedDict):
    path: str
    client: Annotated[str, Doc("the signature id whose file template matched")]
    format: Annotated[str, Doc("the config dialect")]
    scope: ConfigScope


class McpServer(TypedDict):
    name: str
    transport: Transport
    command: str | None
    args: list[str]
    url: Annotated[str | None, Doc("without userinfo or query values")]
    source: Annotated[str, Doc("the config file that declares it")]
    enabled: bool
    project: NotRequired[Annotated[str | None, Default(None)]]
    # no default: a server without tools keeps the shape (and the checksums) it had before tools were reported
    tools: NotRequired[Annotated[list[str], Doc("the tools its config names (an allow or auto-approve list); absent "
                                                 "when it names none, and in older endpoints' reports")]]


class Endpoint(TypedDict):
    host: str
    port: Annotated[int, Range(0, PORT_MAX)]
    provider: str | None
    via: Via
    first_seen: float
    last_seen: float
    count: Annotated[int, Range(0, COUNT_MAX)]


class CredentialRef(TypedDict):
    kind: str
    fingerprint: Annotated[str | None, Pattern(FINGERPRINT_PATTERN),
                           Doc("null when the scan had no organisation key (an errors[] entry says so)")]
    source: CredentialSource
    where: str


class Evidence(TypedDict):
    kind: EvidenceKind
    rule: str
    detail: str


class Workflow(TypedDict):
    """A workflow platform's workflow (n8n, Flowise, Langflow) that holds AI agent nodes: names and kinds
    only, never values."""

    name: str
    active: bool
    agent_nodes: Annotated[int, Range(0, COUNT_MAX)]
    providers: Annotated[list[str], Doc("provider ids of its model nodes")]
    credentials: Annotated[list[str], Doc("the kinds of credential its nodes use (e.g. openAiApi), never values")]


class Project(TypedDict):
    """An enterprise agent's project: what its process really runs, read from its code and environment."""

    root: Annotated[str, Doc("the project folder")]
    entry: Annotated[str, Doc("what the process runs: a module, module:app, a script, npm start")]
    language: Literal["python", "node"]
    framework: Annotated[str, Doc("the framework's package as the project names it, e.g. langgraph")]
    version: Annotated[str | None, Doc("the framework's installed (or declared) version")]
    providers: Annotated[list[str], Doc("provider ids from its environment's variable names and SDK imports")]
    models: Annotated[list[str], Doc("model names written in its code")]
    tools: Annotated[list[str], Doc("tools it declares statically (@tool, function_tool, BaseTool)")]
    workflows: Annotated[list[Workflow], Doc("a platform's workflows with AI agent nodes (n8n, Flowise, Langflow)")]


class Sighting(TypedDict):
    id: str
    signature: str | None
    name: str
    vendor: str
    type: SightingType
    user: Annotated[str | None, Doc("null for a machine-wide install")]
    running: bool
    confidence: Annotated[float, Range(0, 1)]
    parent: Annotated[str | None, Doc("the id of the sighting that declared or spawned this one")]
    processes: list[Process]
    configs: list[Config]
    mcp_servers: list[McpServer]
    endpoints: list[Endpoint]
    credentials: list[CredentialRef]
    flags: list[Flag]
    evidence: list[Evidence]
    first_seen: str
    last_seen: str
    project: NotRequired[Annotated[Project | None, Doc("an enterprise agent's project (null for every other; "
                                                       "absent in older endpoints' reports)")]]


class ScanError(TypedDict):
    """What could not be read or processed: where, a short error code, and a line of detail."""

    where: str
    error: str
    detail: str


class ScanDocument(TypedDict):
    schema: Literal["agentroster.scan/1"]
    device: Device
    scanned_at: str
    sightings: list[Sighting]
    errors: list[ScanError]
