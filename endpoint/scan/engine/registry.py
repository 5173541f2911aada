"""The sighting registry: every sighting of one pass, keyed, with the evidence and weights that make it.

A sighting is made once per key (an agent per signature and user, a tool server per declaring agent
and name, an unknown program per user) and found again by it; ``to_dict`` gives the contract's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast

from endpoint.scan.credentials import redactor, sha256_hex
from endpoint.scan.evidence import Credential, McpServerConfig, ProcessRecord

if TYPE_CHECKING:
    from contract import scan as contract
    from signatures.runtime import Signature

# How much one kind of evidence says that an agent is really there; combined as independent signals.
WEIGHTS = {
    "process.cmdline": 0.9, "process.exe": 0.9, "process.names": 0.8, "process.script_imports": 0.7,
    "process.child_env": 0.5, "config.user": 0.7, "config.project": 0.6, "config.managed": 0.5,
    "artifact.app": 0.6, "artifact.extension": 0.8, "artifact.package": 0.6, "mcp.declared": 0.7,
    "mcp.process": 0.9, "network": 0.5, "unknown.credential": 0.4, "unknown.sdk": 0.5, "unknown.host": 0.5,
    "project.imports": 0.7, "project.dependency": 0.6, "project.installed": 0.4, "project.native": 0.2,
    "project.workflows": 0.6,
    "project.platform": 0.8,  # a platform's own project folder (Dify's api, by its pyproject's name)
    "process.platform_helper": 0.2,  # a platform's own child process (n8n's task runner): part of what is there
    "process.container": 0.1,  # says where an agent runs, not that it is one: it adds little to the confidence
}

#: the longest name, vendor or user a sighting carries: the collector indexes these and refuses longer ones
#: (``console.server.ingest.MAX_TEXT``), so a server named in a user's file can never make a report unsendable
MAX_NAME = 1024


def stable_id(*parts: str) -> str:
    # surrogatepass: a path with bytes that are not UTF-8 (any user can make one) still has an id
    return sha256_hex("\x1f".join(parts).encode("utf-8", "surrogatepass"))[:20]


def combine(weights: Iterable[float]) -> float:
    miss = 1.0
    for w in weights:
        miss *= 1.0 - w
    return round(1.0 - miss, 2)


def container_dict(container: tuple[str, str, str, str], scrub: Callable[[str], str]) -> contract.Container:
    """A process's container as the report carries it; its name and image are the runtime's metadata,
    which whoever started it wrote: scrubbed and cut like any other name."""
    runtime, ident, name, image = container
    return {"runtime": cast("contract.ContainerRuntime", runtime), "id": ident, "name": short_text(scrub(name)), "image": short_text(scrub(image))}


def short_text(text: str) -> str:
    """``text`` as a report may carry it in an indexed field: no NUL (no PostgreSQL text holds one) and at
    most ``MAX_NAME`` characters, cut with an ellipsis."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


class Sighting:
    """A sighting being assembled; ``to_dict`` gives the contract's shape."""

    __slots__ = ("key", "signature", "name", "vendor", "type", "user", "parent", "processes", "configs",
                 "mcp_servers", "endpoints", "credentials", "flags", "evidence", "weights", "declared", "project",
                 "_id")

    def __init__(self, key: tuple[str, ...], signature: Signature | None, name: str, vendor: str,
                 type: contract.SightingType,
                 user: str | None, parent: Sighting | None = None) -> None:
        self.key = key
        self.signature = signature
        self.name = name
        self.vendor = vendor
        self.type = type
        self.user = user
        self.parent = parent
        self.processes: dict[int, ProcessRecord] = {}
        self.configs: dict[str, contract.Config] = {}
        self.mcp_servers: dict[tuple[str, str], contract.McpServer] = {}
        self.endpoints: dict[tuple[str, int, str], contract.Endpoint] = {}
        self.credentials: dict[tuple[str, str | None], Credential] = {}
        self.flags: set[contract.EndpointFlag] = set()
        self.evidence: dict[tuple[contract.EvidenceKind, str, str], None] = {}  # ordered set
        self.weights: list[float] = []
        self.declared: McpServerConfig | None = None  # a tool server: its declaration
        self.project: contract.Project | None = None  # an enterprise agent: the project its process runs
        self._id: str | None = None

    def __repr__(self) -> str:
        return f"Sighting(key={self.key!r}, name={self.name!r}, type={self.type!r}, user={self.user!r})"

    @property
    def id(self) -> str:  # the key never changes; the id is asked for again and again
        if self._id is None:
            self._id = stable_id(*self.key)
        return self._id

    def add_evidence(self, kind: contract.EvidenceKind, rule: str, detail: str, weight_key: str) -> None:
        if (kind, rule, detail) not in self.evidence:
            self.evidence[(kind, rule, detail)] = None
            self.weights.append(WEIGHTS.get(weight_key, 0.3))

    @staticmethod
    def _process(p: ProcessRecord, scrub: Callable[[str], str]) -> contract.Process:
        process: contract.Process = {"pid": p.pid, "ppid": p.ppid, "name": scrub(p.name),
                                     "exe": scrub(p.exe) if p.exe else p.exe, "cmdline": p.cmdline, "user": p.user,
                                     "started": p.create_time}
        if p.container:
            process["container"] = container_dict(p.container, scrub)
        return process

    def to_dict(self, seen_at: str) -> contract.Sighting:
        # names, paths and evidence details quote users' files and command lines (command lines came redacted)
        scrub = redactor().text
        return {
            "id": self.id,
            "signature": self.signature.id if self.signature else None,
            "name": short_text(scrub(self.name)),
            "vendor": short_text(self.vendor),
            "type": self.type,
            "user": short_text(self.user) if self.user else self.user,
            "running": bool(self.processes),
            "confidence": combine(self.weights),
            "parent": self.parent.id if self.parent else None,
            "processes": [self._process(p, scrub) for p in self.processes.values()],
            "configs": list(self.configs.values()),
            "mcp_servers": list(self.mcp_servers.values()),
            "endpoints": list(self.endpoints.values()),
            "credentials": [{"kind": c.kind, "fingerprint": c.fingerprint, "source": c.source, "where": c.where}
                            for c in self.credentials.values()],
            "flags": sorted(self.flags),
            "evidence": [{"kind": k, "rule": r, "detail": scrub(d)} for k, r, d in self.evidence],
            "first_seen": seen_at,
            "last_seen": seen_at,
            "project": None if self.project is None else {
                **self.project, "root": scrub(self.project["root"]), "entry": scrub(self.project["entry"]),
                "workflows": [{**w, "name": scrub(w["name"])} for w in self.project["workflows"]]},
        }


class Registry:
    """The sightings of one pass by key (``device_id`` first in each sighting's own key, for its id)."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.sightings: dict[tuple[str, ...], Sighting] = {}

    def sighting(self, key: tuple[str, ...], sig: Signature | None, *, name: str | None = None,
                 user: str | None, type_: contract.SightingType | None = None) -> Sighting:
        """The sighting under ``key``, made on first use from the signature (or the name and type given)."""
        found = self.sightings.get(key)
        if found is None:
            found = Sighting(key=(self.device_id, *key), signature=sig, name=name or (sig.name if sig else "?"),
                             vendor=sig.vendor if sig else "",
                             # a pack's type is one of the agent types: the signature schema allows no other
                             type=type_ or (cast("contract.SightingType", sig.type) if sig else "unknown"),
                             user=user)
            self.sightings[key] = found
        return found

    def agent(self, sig: Signature, user: str | None) -> Sighting:
        return self.sighting(("agent", sig.id, user or ""), sig, user=user)

    def agents_of(self, sig: Signature) -> list[Sighting]:
        """The sightings of one agent that belong to a user."""
        return [s for k, s in self.sightings.items() if k[0] == "agent" and k[1] == sig.id and s.user]

    def targets(self, sig: Signature, user: str) -> list[Sighting]:
        """Where a user's evidence of an agent goes, or a machine-wide one's: that agent's sightings of
        every user (one without a user when it has none)."""
        return [self.agent(sig, user)] if user else (self.agents_of(sig) or [self.agent(sig, None)])

    def remove(self, sighting: Sighting) -> None:
        for key, value in list(self.sightings.items()):
            if value is sighting:
                del self.sightings[key]

    def ordered(self) -> list[Sighting]:
        """Agents before their tool servers, then by type, name and user: the order a report lists them."""
        return sorted(self.sightings.values(), key=lambda s: (s.parent is not None, str(s.type),
                                                              str(s.name).lower(), str(s.user or "")))
