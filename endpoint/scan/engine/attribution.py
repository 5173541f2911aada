"""Network attribution: calls seen on the wire (or in a capture) to the sightings that made them.

A call goes to the sighting that owns its process, or the nearest ancestor's; a process nothing owns
that calls an LLM provider is an unknown agent. A call to the URL an MCP server is declared with marks
that tool server as in use. A provider call no process can be found for is kept as the "unattributed
calls" sighting of that provider.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from endpoint.scan.engine.placement import ProcessTree
from endpoint.scan.engine.registry import Registry, Sighting
from endpoint.scan.engine.unknowns import Unknowns
from endpoint.scan.evidence import NetworkRecord, ScanError
from endpoint.scan.faults import isolated


class NetworkAttribution:
    """Network records into endpoints and evidence of the registry's sightings."""

    def __init__(self, registry: Registry, tree: ProcessTree, unknowns: Unknowns, errors: list[ScanError]) -> None:
        self.registry = registry
        self.tree = tree
        self.unknowns = unknowns
        self.errors = errors

    def add_network(self, records: Iterable[NetworkRecord]) -> None:
        """Attribute the records; the caller links processes and declarations first."""
        remote_tools = self._remote_tools()
        for rec in records:
            with isolated(self.errors, f"network {rec.host}:{rec.port}"):
                self._add_network_record(rec, remote_tools)

    def _add_network_record(self, rec: NetworkRecord, remote_tools: dict[tuple[str, int], list[Sighting]]) -> None:
        tree = self.tree
        owner = tree.owner.get(rec.pid) if rec.pid is not None else None
        if owner is None and rec.pid is not None and rec.pid in tree.procs:
            proc = tree.procs[rec.pid]
            owner = next((tree.owner[a.pid] for a in tree.ancestors(proc) if a.pid in tree.owner), None)
            if owner is None and rec.provider is not None:
                owner = self.unknowns.sighting_for(proc)  # calls an LLM provider: a browser fetching a page does not
        tools = remote_tools.get((rec.host.lower().rstrip("."), rec.port), [])
        if tools:
            # a call to an MCP server declared with this URL: the tool server is in use; prefer the
            # declarations of the agent that made the call
            called = [t for t in tools if owner is not None and t.parent is owner] or tools
            for tool in called:
                add_endpoint(tool, rec)
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
            owner = self.registry.sighting(("unattributed", rec.provider), None, user=None, type_="unknown",
                                           name=f"unattributed calls to {rec.provider}")
        add_endpoint(owner, rec)
        owner.add_evidence("network", f"network.{rec.via}", f"{rec.host}:{rec.port}"
                           + (f" ({rec.provider})" if rec.provider else ""), "network")

    def _remote_tools(self) -> dict[tuple[str, int], list[Sighting]]:
        """(host, port) -> the tool-server sightings whose MCP server is declared with a URL there."""
        found: dict[tuple[str, int], list[Sighting]] = {}
        for tool in self.registry.sightings.values():
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


def add_endpoint(sighting: Sighting, rec: NetworkRecord) -> None:
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
