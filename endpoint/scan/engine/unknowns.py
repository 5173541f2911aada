"""Unknowns: the processes no signature claims that still act as an agent.

The rules (``endpoint.scan.relevance``) say why a process is one: it names a hosted LLM API, or it is an
interpreter holding an LLM key or running a script that imports an LLM SDK. Each such process, unless it
runs below an agent (whose environment it inherited), goes to one ``unknown`` sighting per user and
program.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from endpoint.scan.engine.placement import ProcessTree, ReadScript, script_reader
from endpoint.scan.engine.registry import Registry, Sighting
from endpoint.scan.evidence import ProcessRecord, ScanError
from endpoint.scan.faults import isolated
from endpoint.scan.relevance import llm_credential_kinds, program_name, script_of, unknown_reason

if TYPE_CHECKING:
    from signatures import Library


class Unknowns:
    """Finds the unknown agents among the processes nothing owns, and makes their sightings."""

    def __init__(self, lib: Library, registry: Registry, tree: ProcessTree, errors: list[ScanError], *,
                 read_script: ReadScript | None) -> None:
        self.lib = lib
        self.registry = registry
        self.tree = tree
        self.errors = errors
        self.read_script = read_script
        self._llm_kinds = llm_credential_kinds(lib)

    def find_all(self) -> None:
        for proc in list(self.tree.procs.values()):
            if proc.pid in self.tree.owner:
                continue
            with isolated(self.errors, f"pid {proc.pid}"):
                self._find(proc)

    def _find(self, proc: ProcessRecord) -> None:
        reason = unknown_reason(proc, self.lib, llm_kinds=self._llm_kinds,
                                read_script=script_reader(self.read_script, proc))
        if reason is None:
            return
        if any(self.tree.owner.get(a.pid) is not None for a in self.tree.ancestors(proc)):
            return  # inherited an agent's environment: part of that agent's work
        target = self.sighting_for(proc)
        rule, detail = reason
        target.add_evidence("process", rule, f"pid {proc.pid}: {detail}", rule)

    def sighting_for(self, proc: ProcessRecord) -> Sighting:
        """The unknown sighting of a process no signature claims: one per user and program."""
        script = script_of(proc.cmdline)
        key = ("unknown", proc.user, program_name(proc.exe or proc.name), script or "")
        target = self.registry.sighting(key, None, user=proc.user, type_="unknown",
                                        name=script or program_name(proc.exe or proc.name))
        self.tree.own(proc, target)
        return target
