"""The fingerprint engine: evidence in, sightings out.

Pure logic, no I/O: processes, configs, installed artifacts and network calls are matched against
the signatures and folded into one sighting per agent per user, with the MCP servers it declares or
spawned as child sightings (``parent``), the endpoint-side flags, and the evidence that supports it.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from contract import scan as contract
from endpoint.scan.credentials import redactor, sha256_hex
from endpoint.scan.evidence import (
    ArtifactRecord,
    ConfigRecord,
    Credential,
    McpServerConfig,
    NetworkRecord,
    ProcessRecord,
    ScanError,
)
from endpoint.scan.faults import isolated
from endpoint.scan.relevance import (
    is_interpreter,
    llm_credential_kinds,
    program_name,
    script_of,
    unknown_reason,
)

if TYPE_CHECKING:
    from signatures import Library, Match
    from signatures.runtime import Signature

ReadScript = Callable[[str], str | None]

# How much one kind of evidence says that an agent is really there; combined as independent signals.
WEIGHTS = {
    "process.cmdline": 0.9, "process.exe": 0.9, "process.names": 0.8, "process.script_imports": 0.7,
    "process.child_env": 0.5, "config.user": 0.7, "config.project": 0.6, "config.managed": 0.5,
    "artifact.app": 0.6, "artifact.extension": 0.8, "artifact.package": 0.6, "mcp.declared": 0.7,
    "mcp.process": 0.9, "network": 0.5, "unknown.credential": 0.4, "unknown.sdk": 0.5, "unknown.host": 0.5,
}

SHELLS = frozenset({"sh", "bash", "zsh", "fish", "dash", "ksh", "tcsh", "csh", "pwsh", "powershell",
                    "cmd", "nu"})
_LAUNCHERS = frozenset({"npx", "uvx", "bunx", "pnpm", "pnpx", "pipx", "uv", "docker", "podman", "node",
                        "nodejs", "python", "python3", "deno", "bun", "cmd", "cmd.exe", "yarn", "npm"})
_BROAD = frozenset({"shell", "filesystem", "browser", "code_execution"})
_MAX_TREE_DEPTH = 64


def stable_id(*parts: str) -> str:
    # surrogatepass: a path with bytes that are not UTF-8 (any user can make one) still has an id
    return sha256_hex("\x1f".join(parts).encode("utf-8", "surrogatepass"))[:20]


def combine(weights: Iterable[float]) -> float:
    miss = 1.0
    for w in weights:
        miss *= 1.0 - w
    return round(1.0 - miss, 2)


#: the longest name, vendor or user a sighting carries: the collector indexes these and refuses longer ones
#: (``console.server.ingest.MAX_TEXT``), so a server named in a user's file can never make a report unsendable
MAX_NAME = 1024


def short_text(text: str) -> str:
    """``text`` as a report may carry it in an indexed field: no NUL (no PostgreSQL text holds one) and at
    most ``MAX_NAME`` characters, cut with an ellipsis."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def redact_url(url: str) -> str:
    """A URL without userinfo, key-shaped path segments, query values or fragment; never raises."""
    return redactor().url(url)


def is_local_host(host: str) -> bool:
    host = host.strip("[]").rstrip(".").lower()
    if host in ("localhost", "") or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return addr.is_loopback or addr.is_private or addr.is_link_local


class Sighting:
    """A sighting being assembled; ``to_dict`` gives the contract's shape."""

    __slots__ = ("key", "signature", "name", "vendor", "type", "user", "parent", "processes", "configs",
                 "mcp_servers", "endpoints", "credentials", "flags", "evidence", "weights", "declared", "_id")

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
            "processes": [{"pid": p.pid, "ppid": p.ppid, "name": scrub(p.name), "exe": scrub(p.exe) if p.exe else p.exe,
                           "cmdline": p.cmdline, "user": p.user, "started": p.create_time}
                          for p in self.processes.values()],
            "configs": list(self.configs.values()),
            "mcp_servers": list(self.mcp_servers.values()),
            "endpoints": list(self.endpoints.values()),
            "credentials": [{"kind": c.kind, "fingerprint": c.fingerprint, "source": c.source, "where": c.where}
                            for c in self.credentials.values()],
            "flags": sorted(self.flags),
            "evidence": [{"kind": k, "rule": r, "detail": scrub(d)} for k, r, d in self.evidence],
            "first_seen": seen_at,
            "last_seen": seen_at,
        }


def _mcp_dict(server: McpServerConfig, source: str) -> contract.McpServer:
    # Everything here comes from a user's file: scrubbed (the engine's own redaction, which also
    # fingerprints, replaces the args); the server's env and headers never leave.
    scrub = redactor()
    return {"name": scrub.text(server.name), "transport": server.transport,
            "command": scrub.text(server.command) if server.command else server.command,
            "args": scrub.argv(server.args), "url": redact_url(server.url) if server.url else None,
            "source": source, "enabled": server.enabled, "project": server.project}


class Engine:
    """One fingerprinting pass over one scan's evidence.

    Each unit (a process, a config, a server it declares, an artifact, a network record, a sighting)
    is handled under ``isolated``: a failure is one entry of ``errors``, which the caller reports with
    its own, and the other units are still fingerprinted.
    """

    def __init__(self, lib: Library, *, device_id: str, platform: str, read_script: ReadScript | None = None,
                 classify_credentials: Callable[[Sequence[str]], tuple[list[str], list[Credential]]] | None = None
                 ) -> None:
        self.lib = lib
        self.device_id = device_id
        self.platform = platform
        self.read_script = _once_per_path(read_script) if read_script is not None else None
        self.redact_args = classify_credentials
        self.sightings: dict[tuple[str, ...], Sighting] = {}
        self.owner: dict[int, Sighting] = {}  # pid -> the sighting that process belongs to
        self.procs: dict[int, ProcessRecord] = {}
        self.children: dict[int, list[int]] = {}
        self.matched: dict[int, Match] = {}  # pid -> the signature match that placed the process
        self._linked = False
        self._llm_kinds = llm_credential_kinds(lib)
        self._servers: dict[tuple[str | None, str | None, tuple[str, ...]], Match | None] = {}
        self.errors: list[ScanError] = []  # units that could not be fingerprinted (code "internal")

    # -- sightings -------------------------------------------------------------------------------
    def _sighting(self, key: tuple[str, ...], sig: Signature | None, *, name: str | None = None,
                  user: str | None, type_: contract.SightingType | None = None) -> Sighting:
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
        return self._sighting(("agent", sig.id, user or ""), sig, user=user)

    def _agents_of(self, sig: Signature) -> list[Sighting]:
        return [s for k, s in self.sightings.items() if k[0] == "agent" and k[1] == sig.id and s.user]

    # -- processes -------------------------------------------------------------------------------
    def add_processes(self, processes: Iterable[ProcessRecord], *,
                      read_details: Callable[[ProcessRecord], object] | None = None,
                      details_for: Collection[int] = (), matched: Mapping[int, Match] | None = None) -> None:
        """Match processes and place each matched one in a sighting.

        Records may come without their details (environment, credentials: the costly part of reading a
        process). Then ``read_details`` is called, before anything is placed, on each process where they
        can matter: those a signature matches, those below a matched or placed process, interpreters
        (an unknown agent is an interpreter holding an LLM key), and the pids in ``details_for``.
        ``matched``: the matches another engine already made of these same records (pid -> its best
        match), which are then taken as they are instead of being made again.
        """
        from signatures.matching import ProcessFacts

        matches: dict[int, Match] = {}
        batch = []
        for proc in processes:
            batch.append(proc)
            self.procs[proc.pid] = proc
            self.children.setdefault(proc.ppid, []).append(proc.pid)
            if matched is not None:
                found_match = matched.get(proc.pid)
                if found_match is not None:
                    matches[proc.pid] = found_match
                continue
            with isolated(self.errors, f"pid {proc.pid}"):
                facts = ProcessFacts(name=proc.name, exe=proc.exe, cmdline=tuple(proc.cmdline),
                                     env_keys=proc.env_keys, platform=self.platform)
                found = self.lib.match_process(facts, self._script_reader(proc))
                if found:
                    matches[proc.pid] = found[0]
        self.matched.update(matches)
        if read_details is not None:
            for proc in self._needing_details(batch, matches.keys() | set(details_for)):
                with isolated(self.errors, f"pid {proc.pid}"):
                    read_details(proc)
        # Parents before children, so that a child finds its ancestor's sighting already made.
        for pid in sorted(matches, key=self._depth):
            with isolated(self.errors, f"pid {pid}"):
                self._place_process(self.procs[pid], matches[pid])

    def _needing_details(self, batch: Sequence[ProcessRecord], picked: set[int]) -> list[ProcessRecord]:
        below: dict[int, bool] = {}  # pid -> it or an ancestor is picked or placed

        def under_picked(pid: int, depth: int = 0) -> bool:
            if pid in picked or pid in self.owner:
                return True
            found = below.get(pid)
            if found is None:
                proc = self.procs.get(pid)
                found = below[pid] = (proc is not None and proc.ppid != pid and depth < _MAX_TREE_DEPTH
                                      and under_picked(proc.ppid, depth + 1))
            return found

        return [proc for proc in batch if is_interpreter(proc) or under_picked(proc.pid)]

    def link(self) -> None:
        """After processes and configs are in: running servers to their declarations, then unknowns."""
        if self._linked:
            return
        self._linked = True
        self._link_declared_servers()
        self._find_unknowns()

    def _script_reader(self, proc: ProcessRecord) -> ReadScript | None:
        read = self.read_script
        if read is None:
            return None
        cwd = proc.cwd
        return lambda path: read(os.path.join(cwd, path) if cwd and not os.path.isabs(path) else path)

    def _depth(self, pid: int) -> int:
        depth, seen = 0, set()
        while pid in self.procs and pid not in seen and depth < _MAX_TREE_DEPTH:
            seen.add(pid)
            pid = self.procs[pid].ppid
            depth += 1
        return depth

    def _ancestors(self, proc: ProcessRecord) -> Iterable[ProcessRecord]:
        seen = {proc.pid}
        pid = proc.ppid
        while pid in self.procs and pid not in seen and len(seen) < _MAX_TREE_DEPTH:
            seen.add(pid)
            yield self.procs[pid]
            pid = self.procs[pid].ppid

    def _owning_ancestor(self, proc: ProcessRecord) -> tuple[Sighting | None, bool]:
        """The nearest ancestor's sighting, and whether a human's interactive shell stands between."""
        interactive = False
        for anc in self._ancestors(proc):
            owner = self.owner.get(anc.pid)
            if owner is not None:
                return owner, interactive
            if program_name(anc.exe or anc.name) in SHELLS and _is_interactive_shell(anc.cmdline):
                interactive = True
        return None, interactive

    def _env_parent(self, proc: ProcessRecord, sig: Signature) -> Sighting | None:
        for other in self.lib.signatures:
            if other.id != sig.id and other.process.child_env and proc.env_keys.intersection(other.process.child_env):
                return self.agent(other, proc.user)
        return None

    def _place_process(self, proc: ProcessRecord, match: Any) -> None:
        sig = match.signature
        ancestor, interactive = self._owning_ancestor(proc)
        if ancestor is not None and ancestor.signature is sig:
            target = ancestor  # a helper process of the same agent
        elif sig.type == "tool_server":
            parent = ancestor if ancestor is not None and ancestor.type != "tool_server" else None
            parent = parent or self._env_parent(proc, sig)
            target = self._sighting(("tool", parent.id if parent else "", sig.id, _command_key(proc.cmdline)),
                                    sig, user=proc.user, name=sig.name)
            target.parent = parent
        else:
            target = self.agent(sig, proc.user)
            if target.parent is None and ancestor is not None and not interactive:
                target.parent = ancestor
            if target.parent is None and ancestor is None:
                target.parent = self._env_parent(proc, sig)
            if sig.autonomy.flags:
                for hit in self.lib.autonomy_flags(sig, proc.cmdline):
                    target.flags.add("autonomous")
                    target.add_evidence("process", "autonomy.flags", f"pid {proc.pid}: {hit}", "process.cmdline")
        self._own(proc, target)
        target.add_evidence("process", match.rule, f"pid {proc.pid}: {match.detail}", match.rule)

    def _own(self, proc: ProcessRecord, target: Sighting) -> None:
        self.owner[proc.pid] = target
        target.processes[proc.pid] = proc
        for cred in proc.credentials:
            target.credentials[(cred.kind, cred.fingerprint)] = cred
        for key, value in proc.env_values.items():
            for sig_env in (target.signature.autonomy.env if target.signature else []):
                name, _, want = sig_env.partition("=")
                if key == name and (not want or value.lower() == want.lower()):
                    target.flags.add("autonomous")
                    target.add_evidence("process", "autonomy.env", f"pid {proc.pid}: {name}", "process.child_env")

    def _descendants(self, pid: int) -> Iterable[ProcessRecord]:
        stack, seen = list(self.children.get(pid, [])), set()
        while stack:
            child = stack.pop()
            if child in seen or child not in self.procs:
                continue
            seen.add(child)
            yield self.procs[child]
            stack.extend(self.children.get(child, []))

    def _absorb_tree(self, proc: ProcessRecord, target: Sighting) -> None:
        for member in (proc, *self._descendants(proc.pid)):
            previous = self.owner.get(member.pid)
            if previous is not None and previous is not target and self._is_loose_tool(previous):
                self._merge(previous, target)
            elif previous is not None and previous is target.parent:
                del previous.processes[member.pid]  # launched by the agent, but it is the server
                self.owner.pop(member.pid)
            if (owner := self.owner.get(member.pid)) is None or owner is target:
                self._own(member, target)

    @staticmethod
    def _is_loose_tool(sighting: Sighting) -> bool:
        """A tool-server process sighting that no config declared: it folds into a declared one."""
        return sighting.type == "tool_server" and sighting.declared is None

    # -- configs ---------------------------------------------------------------------------------
    def add_configs(self, configs: Iterable[ConfigRecord]) -> None:
        for config in configs:
            with isolated(self.errors, config.display_path):
                sig = self.lib.by_id.get(config.signature)
                if sig is None:
                    continue
                targets = [self.agent(sig, config.user)] if config.user else (self._agents_of(sig)
                                                                              or [self.agent(sig, None)])
                for target in targets:
                    self._attach_config(target, config)

    def _attach_config(self, target: Sighting, config: ConfigRecord) -> None:
        target.configs[config.display_path] = {"path": config.display_path, "client": config.signature,
                                               "format": config.dialect, "scope": config.scope}
        target.add_evidence("config", f"files.{config.scope}", config.display_path, f"config.{config.scope}")
        for setting in config.autonomy:
            target.flags.add("autonomous")
            target.add_evidence("config", "autonomy.settings", f"{config.display_path}: {setting}", "config.user")
        for cred in config.credentials:
            target.credentials[(cred.kind, cred.fingerprint)] = cred
            target.flags.add("plaintext_secret")
        for server in config.mcp_servers:
            with isolated(self.errors, f"{config.display_path}#{server.where or server.name}"):
                self._declare_server(target, server, config)

    def _declare_server(self, agent: Sighting, server: McpServerConfig, config: ConfigRecord) -> None:
        entry = _mcp_dict(server, config.display_path)
        found: list[Credential] = []  # the declaration's own secrets: hidden, each one a fingerprint of the tool
        if self.redact_args is not None:
            if server.command or server.args:
                argv, found = self.redact_args([server.command or "", *server.args])
                entry["args"] = argv[1:]
                if server.command:
                    entry["command"] = argv[0]
            if server.url:
                urls, in_url = self.redact_args([server.url])
                entry["url"], found = redact_url(urls[0]), found + in_url
        agent.mcp_servers[(config.display_path, server.where or server.name)] = entry
        match = self._match_server(server)
        sig = match.signature if match else None
        tool = self._sighting(("tool", agent.id, server.name, server.project or ""), sig, user=agent.user,
                              name=server.name, type_="tool_server")
        if sig is None:
            tool.vendor = ""
        tool.parent = agent
        tool.declared = tool.declared or server
        tool.mcp_servers[(config.display_path, server.where or server.name)] = entry
        tool.add_evidence("config", "mcp.declared", f"{config.display_path}{'#' + server.where if server.where else ''}",
                          "mcp.declared")
        if match is not None:
            tool.add_evidence("config", match.rule, match.detail, "mcp.declared")
        for cred in config.credentials:
            if server.where and cred.where.split("#", 1)[-1].startswith(server.where + "/"):
                tool.credentials[(cred.kind, cred.fingerprint)] = cred
                tool.flags.add("plaintext_secret")
        for cred in found:
            tool.credentials[(cred.kind, cred.fingerprint)] = cred
            tool.flags.add("plaintext_secret")
        self._flag_tool(tool, server, sig)

    def _match_server(self, server: McpServerConfig) -> Match | None:
        """The signature of a declared server; the same few servers are declared in home after home."""
        key = (server.url, server.command, server.args)
        if key not in self._servers:
            self._servers[key] = (self.lib.match_url(server.url) if server.url
                                  else self.lib.match_command(server.command or "", server.args) if server.command
                                  else None)
        return self._servers[key]

    def _flag_tool(self, tool: Sighting, server: McpServerConfig, sig: Signature | None) -> None:
        if not server.enabled:
            return
        broad = sig is not None and (bool(_BROAD.intersection(sig.risk.reaches))
                                     or ("database" in sig.risk.reaches and sig.risk.write))
        if broad or _reaches_whole_disk(server):
            tool.flags.add("broad_tools")
            if tool.parent is not None:
                tool.parent.flags.add("broad_tools")
        if server.url:
            host = urlsplit(server.url).hostname or ""
            if not is_local_host(host):
                tool.flags.add("remote_tool_server")
                if tool.parent is not None:
                    tool.parent.flags.add("remote_tool_server")

    def _link_declared_servers(self) -> None:
        """Attach running MCP server processes to the servers their agent declared."""
        for tool in [s for s in self.sightings.values() if s.declared is not None and s.parent is not None]:
            with isolated(self.errors, f"sighting {tool.id}"):
                self._link_declared(tool)

    def _link_declared(self, tool: Sighting) -> None:
        server, agent = tool.declared, tool.parent
        assert server is not None and agent is not None
        if not agent.processes:
            return  # not running: no process of it can run the server (most declared servers)
        tokens = _distinctive_tokens(server)
        if server.url or not tokens:
            return
        for proc in self._declared_candidates(agent, tokens):
            self._absorb_tree(proc, tool)
            tool.add_evidence("process", "mcp.process", f"pid {proc.pid}: runs the declared command",
                              "mcp.process")
            break

    def _declared_candidates(self, agent: Sighting, tokens: list[str]) -> Iterable[ProcessRecord]:
        for agent_pid in list(agent.processes):
            for proc in self._descendants(agent_pid):
                owner = self.owner.get(proc.pid)
                if owner is not None and owner is not agent and not self._is_loose_tool(owner):
                    continue
                joined = " ".join(proc.cmdline)
                if all(t in joined for t in tokens):
                    yield proc

    def _merge(self, source: Sighting, into: Sighting) -> None:
        for pid, proc in source.processes.items():
            into.processes[pid] = proc
            self.owner[pid] = into
        into.evidence.update(source.evidence)
        into.weights.extend(source.weights)
        into.flags |= source.flags
        if into.signature is None:
            into.signature, into.vendor = source.signature, source.vendor
        for key, value in list(self.sightings.items()):
            if value is source:
                del self.sightings[key]

    # -- unknowns --------------------------------------------------------------------------------
    def _find_unknowns(self) -> None:
        for proc in list(self.procs.values()):
            if proc.pid in self.owner:
                continue
            with isolated(self.errors, f"pid {proc.pid}"):
                self._find_unknown(proc)

    def _find_unknown(self, proc: ProcessRecord) -> None:
        reason = self._unknown_reason(proc)
        if reason is None:
            return
        if any(self.owner.get(a.pid) is not None for a in self._ancestors(proc)):
            return  # inherited an agent's environment: part of that agent's work
        target = self._unknown_for(proc)
        rule, detail = reason
        target.add_evidence("process", rule, f"pid {proc.pid}: {detail}", rule)

    def _unknown_for(self, proc: ProcessRecord) -> Sighting:
        """The unknown sighting of a process no signature claims: one per user and program."""
        script = script_of(proc.cmdline)
        key = ("unknown", proc.user, program_name(proc.exe or proc.name), script or "")
        target = self._sighting(key, None, user=proc.user, type_="unknown", name=script or program_name(proc.exe or proc.name))
        self._own(proc, target)
        return target

    def _unknown_reason(self, proc: ProcessRecord) -> tuple[str, str] | None:
        return unknown_reason(proc, self.lib, llm_kinds=self._llm_kinds, read_script=self._script_reader(proc))

    # -- artifacts and network -------------------------------------------------------------------
    def add_artifacts(self, artifacts: Iterable[ArtifactRecord]) -> None:
        for art in artifacts:
            with isolated(self.errors, art.display_path):
                self._add_artifact(art)

    def _add_artifact(self, art: ArtifactRecord) -> None:
        sig = self.lib.by_id.get(art.signature)
        if sig is None:
            return
        targets = [self.agent(sig, art.user)] if art.user else (self._agents_of(sig) or [self.agent(sig, None)])
        detail = f"{art.ident} {art.version}".strip() + f" at {art.display_path}" if art.ident else art.display_path
        for target in targets:
            target.add_evidence("artifact", f"{art.kind}", detail, f"artifact.{art.kind}")

    def add_network(self, records: Iterable[NetworkRecord]) -> None:
        self.link()
        remote_tools = self._remote_tools()
        for rec in records:
            with isolated(self.errors, f"network {rec.host}:{rec.port}"):
                self._add_network_record(rec, remote_tools)

    def _add_network_record(self, rec: NetworkRecord, remote_tools: dict[tuple[str, int], list[Sighting]]) -> None:
        owner = self.owner.get(rec.pid) if rec.pid is not None else None
        if owner is None and rec.pid is not None and rec.pid in self.procs:
            proc = self.procs[rec.pid]
            owner = next((self.owner[a.pid] for a in self._ancestors(proc) if a.pid in self.owner), None)
            if owner is None and rec.provider is not None:
                owner = self._unknown_for(proc)  # calls an LLM provider: a browser fetching a page does not
        tools = remote_tools.get((rec.host.lower().rstrip("."), rec.port), [])
        if tools:
            # a call to an MCP server declared with this URL: the tool server is in use; prefer the
            # declarations of the agent that made the call
            called = [t for t in tools if owner is not None and t.parent is owner] or tools
            for tool in called:
                _add_endpoint(tool, rec)
                caller = f" by pid {rec.pid}" if rec.pid is not None else ""
                tool.add_evidence("network", "network.mcp_url", f"{rec.host}:{rec.port} called{caller}", "network")
            if owner is None:
                return
            owner.add_evidence("network", "network.mcp_url",
                               f"{rec.host}:{rec.port} (MCP server {', '.join(sorted({t.name for t in called}))})",
                               "network")
        if owner is None:
            if rec.provider is None:
                return
            owner = self._sighting(("unattributed", rec.provider), None, user=None, type_="unknown",
                                   name=f"unattributed calls to {rec.provider}")
        _add_endpoint(owner, rec)
        owner.add_evidence("network", f"network.{rec.via}", f"{rec.host}:{rec.port}"
                           + (f" ({rec.provider})" if rec.provider else ""), "network")

    def _remote_tools(self) -> dict[tuple[str, int], list[Sighting]]:
        """(host, port) -> the tool-server sightings whose MCP server is declared with a URL there."""
        found: dict[tuple[str, int], list[Sighting]] = {}
        for tool in self.sightings.values():
            server = tool.declared
            if server is None or not server.url:
                continue
            try:
                parts = urlsplit(server.url)
                port = parts.port or {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme.lower())
            except ValueError:
                continue  # an unparseable URL or port: nothing on the wire can match it
            host = (parts.hostname or "").rstrip(".")
            if host and port:
                found.setdefault((host, port), []).append(tool)
        return found

    def result(self, seen_at: str) -> list[contract.Sighting]:
        self.link()
        ordered = sorted(self.sightings.values(), key=lambda s: (s.parent is not None, str(s.type),
                                                                 str(s.name).lower(), str(s.user or "")))
        found = []
        for sighting in ordered:
            with isolated(self.errors, f"sighting {sighting.id}"):
                found.append(sighting.to_dict(seen_at))
        return found


def _add_endpoint(sighting: Sighting, rec: NetworkRecord) -> None:
    """Count one network record on a sighting's endpoints (one entry per host, port and channel)."""
    key = (rec.host, rec.port, rec.via)
    entry = sighting.endpoints.get(key)
    if entry is None:
        sighting.endpoints[key] = {"host": rec.host, "port": rec.port, "provider": rec.provider, "via": rec.via,
                                   "first_seen": rec.ts, "last_seen": rec.last_ts or rec.ts, "count": rec.count}
    else:
        entry["first_seen"] = min(entry["first_seen"], rec.ts)
        entry["last_seen"] = max(entry["last_seen"], rec.last_ts or rec.ts)
        entry["count"] += rec.count


def _once_per_path(read: ReadScript) -> ReadScript:
    """``read``, asked once per path in one pass: interpreters run the same few scripts, and a script is
    read both to match signatures and to look for an unknown agent's SDK."""
    texts: dict[str, str | None] = {}

    def remembered(path: str) -> str | None:
        if path not in texts:
            texts[path] = read(path)
        return texts[path]

    return remembered


def _is_interactive_shell(argv: Sequence[str]) -> bool:
    if not argv:
        return True
    if argv[0].startswith("-"):
        return True  # a login shell
    return "-c" not in argv[1:] and not any(a.startswith("-") and "c" in a[1:] and not a.startswith("--")
                                            for a in argv[1:]) and len([a for a in argv[1:] if not a.startswith("-")]) == 0


def _command_key(argv: Sequence[str]) -> str:
    script = script_of(argv)
    return script or (program_name(argv[0]) if argv else "")


def _distinctive_tokens(server: McpServerConfig) -> list[str]:
    argv = [server.command or "", *server.args]
    tokens = []
    if program_name(argv[0]) not in _LAUNCHERS:
        tokens.append(posixpath.basename(argv[0].replace("\\", "/")))
    for arg in argv[1:]:
        if not arg or arg.startswith("-") or "${" in arg or arg in ("run", "exec", "dlx", "tool", "x"):
            continue
        if re.match(r"^@?[\w.-]+(/[\w.-]+)?@[\w.^~<>=*-]+$", arg):
            arg = arg.rsplit("@", 1)[0]  # a package spec with a version: the process shows the name
        if arg.startswith("@") and "/" in arg:
            arg = arg.split("/", 1)[1]  # npx runs the scoped package's bin, named without the scope
        tokens.append(arg)
    return tokens[:3]


def _reaches_whole_disk(server: McpServerConfig) -> bool:
    return any(a in ("/", "C:\\", "C:/", "~", os.path.expanduser("~")) for a in server.args[1:] if server.command)
