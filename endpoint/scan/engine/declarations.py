"""Declarations: what configs and installed artifacts say, and the MCP servers configs declare.

A config is evidence for its client's agent (its user's sighting, or every user's for a machine-wide
file), with the autonomy settings and plaintext secrets it holds. Each MCP server it declares becomes a
tool-server sighting under that agent, flagged for what it reaches; once processes are in, a running
process of the agent that runs a declared command is linked to its declaration.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from endpoint.scan.credentials import redactor
from endpoint.scan.engine.placement import ProcessTree, is_loose_tool
from endpoint.scan.engine.registry import Registry, Sighting
from endpoint.scan.evidence import (
    ArtifactRecord,
    ConfigRecord,
    Credential,
    McpServerConfig,
    ProcessRecord,
    ScanError,
)
from endpoint.scan.faults import isolated
from endpoint.scan.relevance import program_name

if TYPE_CHECKING:
    from contract import scan as contract
    from signatures import Library, Match
    from signatures.runtime import Signature

ClassifyCredentials = Callable[[Sequence[str]], tuple[list[str], list[Credential]]]

_LAUNCHERS = frozenset({"npx", "uvx", "bunx", "pnpm", "pnpx", "pipx", "uv", "docker", "podman", "node",
                        "nodejs", "python", "python3", "deno", "bun", "cmd", "cmd.exe", "yarn", "npm"})
_BROAD = frozenset({"shell", "filesystem", "browser", "code_execution"})


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


def _mcp_dict(server: McpServerConfig, source: str) -> contract.McpServer:
    # Everything here comes from a user's file: scrubbed (the engine's own redaction, which also
    # fingerprints, replaces the args); the server's env and headers never leave.
    scrub = redactor()
    entry: contract.McpServer = {
        "name": scrub.text(server.name), "transport": server.transport,
        "command": scrub.text(server.command) if server.command else server.command,
        "args": scrub.argv(server.args), "url": redact_url(server.url) if server.url else None,
        "source": source, "enabled": server.enabled, "project": server.project}  # fmt: skip
    if server.tools:  # only then: a server without tools keeps the shape (and the checksums) it had
        entry["tools"] = [scrub.text(t) for t in server.tools]
    return entry


class Declarations:
    """Configs, artifacts and the MCP servers configs declare, into the registry's sightings.

    ``home``: the home of the user the scan runs as; a server given it as an argument reaches every file
    there, as one given ``/`` or ``~`` does.
    """

    def __init__(self, lib: Library, registry: Registry, tree: ProcessTree, errors: list[ScanError], *,
                 classify_credentials: ClassifyCredentials | None, home: str) -> None:
        self.lib = lib
        self.registry = registry
        self.tree = tree
        self.errors = errors
        self.redact_args = classify_credentials
        self.home = home
        self._servers: dict[tuple[str | None, str | None, tuple[str, ...]], Match | None] = {}

    # -- configs ---------------------------------------------------------------------------------
    def add_configs(self, configs: Iterable[ConfigRecord]) -> None:
        for config in configs:
            with isolated(self.errors, config.display_path):
                sig = self.lib.by_id.get(config.signature)
                if sig is None:
                    continue
                for target in self._running_from(sig, config) or self.registry.targets(sig, config.user):
                    self._attach_config(target, config)

    def _running_from(self, sig: Signature, config: ConfigRecord) -> list[Sighting]:
        """The running sightings of ``sig`` whose project folder holds ``config``: a platform's data folder
        (n8n's ``~/.n8n``, whose ``config`` the file sensor finds) is the folder its running process reads,
        so the file is evidence of that one sighting, not of a second, not-running one beside it. A folder
        no running process of the signature reads keeps its file's sighting, as every config does, and so does
        a user's file in a folder another user's process names (its environment is that user's to set)."""
        found = []
        folders = [_folder_key(posixpath.dirname(p.replace("\\", "/"))) for p in (config.display_path, config.path)]
        for sighting in self.registry.sightings.values():
            root = _folder_key(sighting.project["root"]) if sighting.project is not None else ""
            # below root, never a drive's or the filesystem's root itself: that would hold every file, and names none
            if (sighting.signature is sig and sighting.processes and root and root.rstrip("/").count("/") > 0
                    and (not config.user or sighting.user == config.user)
                    and any(f == root or f.startswith(root + "/") for f in folders if f)):
                found.append(sighting)
        return found

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
        tool = self.registry.sighting(("tool", agent.id, server.name, server.project or ""), sig, user=agent.user,
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
        if broad or _reaches_whole_disk(server, self.home):
            tool.flags.add("broad_tools")
            if tool.parent is not None:
                tool.parent.flags.add("broad_tools")
        if server.url:
            host = urlsplit(server.url).hostname or ""
            if not is_local_host(host):
                tool.flags.add("remote_tool_server")
                if tool.parent is not None:
                    tool.parent.flags.add("remote_tool_server")

    def link_running_servers(self) -> None:
        """Attach running MCP server processes to the servers their agent declared."""
        for tool in [s for s in self.registry.sightings.values() if s.declared is not None and s.parent is not None]:
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
            self.tree.absorb_tree(proc, tool, self.registry)
            tool.add_evidence("process", "mcp.process", f"pid {proc.pid}: runs the declared command",
                              "mcp.process")
            break

    def _declared_candidates(self, agent: Sighting, tokens: list[str]) -> Iterable[ProcessRecord]:
        for agent_pid in list(agent.processes):
            for proc in self.tree.descendants(agent_pid):
                owner = self.tree.owner.get(proc.pid)
                if owner is not None and owner is not agent and not is_loose_tool(owner):
                    continue
                joined = " ".join(proc.cmdline)
                if all(t in joined for t in tokens):
                    yield proc

    # -- artifacts -------------------------------------------------------------------------------
    def add_artifacts(self, artifacts: Iterable[ArtifactRecord]) -> None:
        for art in artifacts:
            with isolated(self.errors, art.display_path):
                self._add_artifact(art)

    def _add_artifact(self, art: ArtifactRecord) -> None:
        sig = self.lib.by_id.get(art.signature)
        if sig is None:
            return
        detail = f"{art.ident} {art.version}".strip() + f" at {art.display_path}" if art.ident else art.display_path
        for target in self.registry.targets(sig, art.user):
            target.add_evidence("artifact", f"{art.kind}", detail, f"artifact.{art.kind}")


def _folder_key(path: str) -> str:
    """An absolute folder as compared here (``/`` separators, normalised; a Windows path, whose drive letters and
    names are not case-sensitive, lower-cased), or "" for a relative one."""
    path = path.replace("\\", "/")
    if re.match(r"^[A-Za-z]:/", path):
        return posixpath.normpath(path).lower()
    return posixpath.normpath(path) if path.startswith("/") else ""


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


def _reaches_whole_disk(server: McpServerConfig, home: str) -> bool:
    whole = ("/", "C:\\", "C:/", "~", home) if home else ("/", "C:\\", "C:/", "~")
    return any(a in whole for a in server.args[1:] if server.command)
