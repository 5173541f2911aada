"""The sighting engine: evidence in, sightings out.

Pure logic, no I/O: processes, configs, installed artifacts and network calls are matched against
the signatures and folded into one sighting per agent per user, with the MCP servers it declares or
spawned as child sightings (``parent``), the endpoint-side flags, and the evidence that supports it.

``Engine`` is the one entry point; its parts, each in a module of its own, share the sighting registry
(``registry``) and the process tree (``placement.ProcessTree``):

- ``placement``: processes to sightings;
- ``declarations``: configs, artifacts and the MCP servers configs declare, linked to running servers;
- ``unknowns``: processes no signature claims that act as an agent;
- ``attribution``: network calls to the sightings that made them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from endpoint.scan.engine.attribution import NetworkAttribution
from endpoint.scan.engine.declarations import ClassifyCredentials, Declarations
from endpoint.scan.engine.placement import Placement, ProcessTree, ReadScript, once_per_path
from endpoint.scan.engine.registry import Registry, Sighting
from endpoint.scan.engine.unknowns import Unknowns
from endpoint.scan.evidence import ArtifactRecord, ConfigRecord, NetworkRecord, ProcessRecord, ScanError
from endpoint.scan.faults import isolated

if TYPE_CHECKING:
    from contract import scan as contract
    from signatures import Library, Match

__all__ = ["Engine"]


class Engine:
    """One fingerprinting pass over one scan's evidence.

    Each unit (a process, a config, a server it declares, an artifact, a network record, a sighting)
    is handled under ``isolated``: a failure is one entry of ``errors``, which the caller reports with
    its own, and the other units are still fingerprinted. ``home``: the home of the user the scan runs
    as (a server given it as an argument reaches every file there); "" when there is none to name.
    """

    def __init__(self, lib: Library, *, device_id: str, platform: str, read_script: ReadScript | None = None,
                 classify_credentials: ClassifyCredentials | None = None, home: str = "") -> None:
        self.lib = lib
        self.errors: list[ScanError] = []  # units that could not be fingerprinted (code "internal")
        self.registry = Registry(device_id)
        self.tree = ProcessTree()
        read = once_per_path(read_script) if read_script is not None else None
        self.placement = Placement(lib, self.registry, self.tree, self.errors, platform=platform, read_script=read)
        self.declarations = Declarations(lib, self.registry, self.tree, self.errors,
                                         classify_credentials=classify_credentials, home=home)
        self.unknowns = Unknowns(lib, self.registry, self.tree, self.errors, read_script=read)
        self.attribution = NetworkAttribution(self.registry, self.tree, self.unknowns, self.errors)
        self._linked = False

    @property
    def sightings(self) -> dict[tuple[str, ...], Sighting]:
        return self.registry.sightings

    @property
    def procs(self) -> dict[int, ProcessRecord]:
        return self.tree.procs

    @property
    def matched(self) -> dict[int, Match]:
        """pid -> the signature match that placed the process."""
        return self.tree.matched

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
        self.placement.add_processes(processes, read_details=read_details, details_for=details_for, matched=matched)

    def add_configs(self, configs: Iterable[ConfigRecord]) -> None:
        self.declarations.add_configs(configs)

    def add_artifacts(self, artifacts: Iterable[ArtifactRecord]) -> None:
        self.declarations.add_artifacts(artifacts)

    def link(self) -> None:
        """After processes and configs are in: running servers to their declarations, then unknowns."""
        if self._linked:
            return
        self._linked = True
        self.declarations.link_running_servers()
        self.unknowns.find_all()

    def add_network(self, records: Iterable[NetworkRecord]) -> None:
        self.link()
        self.attribution.add_network(records)

    def result(self, seen_at: str) -> list[contract.Sighting]:
        self.link()
        found = []
        for sighting in self.registry.ordered():
            with isolated(self.errors, f"sighting {sighting.id}"):
                found.append(sighting.to_dict(seen_at))
        return found
