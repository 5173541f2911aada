"""The daemon's process tracker: the live processes, re-read only where new, and which of them matter.

Every ``process_interval_s`` only the new pids are read (exited ones are dropped), without their
environment; a process's environment (its credentials) is read only when it can change the sightings:
it matches a signature, holds a credential, is the child of one that matters, or is an unknown agent by
``endpoint.scan.relevance``'s rules. The rest of a busy machine's churn (shells, compilers, test runners)
does not make the engine run again; the full rescan looks at everything anyway.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from endpoint.scan import faults, relevance
from endpoint.scan.evidence import ProcessRecord, ScanError

if TYPE_CHECKING:
    from signatures import Library


def read_pids(pids: Iterable[int], classify: Any) -> Iterator[ProcessRecord | ScanError]:
    """Records for just these pids, without their environment (``read_details`` adds it where it matters)."""
    from endpoint.scan.sensors.processes import iter_processes

    return iter_processes(classify, pids=pids, read_env=False)


def live_pids() -> set[int]:
    import psutil

    return set(psutil.pids())


class MatchCache:
    """The signature library, with its process and command matches remembered between fingerprint passes:
    the engine runs again over every process whenever something changed, but the same command line
    matches the same signatures (a full rescan clears the memory)."""

    MAX_ENTRIES = 50_000

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self._process: dict[tuple[Any, ...], Any] = {}
        self._command: dict[tuple[Any, ...], Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lib, name)

    def match_process(self, facts: Any, read_script: Any = None) -> Any:
        key = (facts.name, facts.exe, tuple(facts.cmdline), facts.env_keys, facts.platform)
        found = self._process.get(key)
        if found is None:
            if len(self._process) >= self.MAX_ENTRIES:
                self._process.clear()
            found = self._process[key] = self.lib.match_process(facts, read_script)
        return found

    def match_command(self, command: str, args: Any) -> Any:
        key = (command, tuple(args))
        if key not in self._command:
            if len(self._command) >= self.MAX_ENTRIES:
                self._command.clear()
            self._command[key] = self.lib.match_command(command, args)
        return self._command[key]

    def clear(self) -> None:
        self._process.clear()
        self._command.clear()


class ProcessTracker:
    """The latest record of every live process, and the pids that can change the sightings."""

    def __init__(self, lib: Library, matches: MatchCache, *, process_interval_s: float, key: bytes | None) -> None:
        self.lib = lib
        self.matches = matches
        self.process_interval_s = process_interval_s
        self.key = key  # the org's fingerprint key, for the credentials found in an environment
        self.records: dict[int, ProcessRecord] = {}
        self.errors: dict[int, ScanError] = {}
        self._young: set[int] = set()  # read just after they started: read once more (exec may follow fork)
        self._relevant: set[int] = set()  # pids that can change the sightings (see matters)
        self._llm_kinds = relevance.llm_credential_kinds(lib)
        keep = {"HOME", "USERPROFILE"}
        for sig in lib.signatures:
            keep.update(e.partition("=")[0] for e in sig.autonomy.env)
        self._keep_env = frozenset(keep)

    def _classify(self) -> Any:
        return self.lib.credential_kind

    def poll(self, *, everything: bool = False) -> bool:
        """Read new pids (or all), drop exited ones; True when the set of process records changed."""
        now = time.time()
        pids = live_pids() - {os.getpid()}
        gone = set(self.records) - pids
        for pid in gone:
            self.records.pop(pid, None)
        for pid in set(self.errors) - pids:
            self.errors.pop(pid, None)
        fresh = pids if everything else (pids - set(self.records) - set(self.errors)) | (self._young & pids)
        self._young = set()
        changed = bool(gone & self._relevant) or everything
        self._relevant -= gone
        if everything:
            self.records, self.errors, self._relevant = {}, {}, set()

        for record in faults.isolated_records(read_pids(sorted(fresh), self._classify()), "processes"):
            if isinstance(record, ScanError):
                pid = int(record.where.split()[-1]) if record.where.split()[-1].isdigit() else -1
                self.errors[pid] = record
                continue
            if not everything and now - record.create_time < 2 * self.process_interval_s:
                self._young.add(record.pid)
            old = self.records.get(record.pid)
            if old is not None and (old.cmdline, old.exe, old.ppid) == (record.cmdline, record.exe, record.ppid):
                continue  # read again while young, and still the same program
            self.records[record.pid] = record
            failed: list[ScanError] = []
            matters = False
            with faults.isolated(failed, f"pid {record.pid}"):
                matters = self.matters(record)
            if failed:  # a bug on this one process: an error entry, and the others are still read
                self.errors[record.pid] = failed[0]
                self.records.pop(record.pid, None)
                continue
            if matters:
                self._relevant.add(record.pid)
                changed = True
            elif record.pid in self._relevant:  # exec'd into something that does not matter
                self._relevant.discard(record.pid)
                changed = True
        return changed

    def matters(self, record: ProcessRecord) -> bool:
        """Whether a new process can change the sightings (its environment is read only then): it
        matches a signature, holds a credential, is the child of one that matters, or is an unknown
        agent by the engine's own rules (``endpoint.scan.relevance``)."""
        from endpoint.scan.platforms import PLATFORM
        from endpoint.scan.run import read_script
        from endpoint.scan.sensors.processes import read_details
        from signatures.launchers import ProcessFacts

        def facts() -> ProcessFacts:
            return ProcessFacts(name=record.name, exe=record.exe, cmdline=tuple(record.cmdline),
                                env_keys=record.env_keys, platform=PLATFORM)

        def details() -> None:
            error = read_details(record, self._classify(), keep_env=self._keep_env, key=self.key)
            if error is not None:
                self.errors[record.pid] = error

        cwd = record.cwd

        def reader(path: str) -> str | None:
            return read_script(os.path.join(cwd, path) if cwd and not os.path.isabs(path) else path)

        if record.credentials or record.ppid in self._relevant or self.matches.match_process(facts(), reader):
            details()
            return True
        if not relevance.is_interpreter(record):  # only the command line's provider host can make it matter
            if relevance.unknown_reason(record, self.lib, llm_kinds=self._llm_kinds, read_script=None) is None:
                return False
            details()
            return True
        details()  # an interpreter: its environment says whether it holds an LLM key, or matches now
        if self.matches.match_process(facts(), reader):
            return True
        return relevance.unknown_reason(record, self.lib, llm_kinds=self._llm_kinds, read_script=reader) is not None

    def agent_homes(self, root: str) -> list[str]:
        """The homes (``HOME``, ``USERPROFILE``) of running processes that are outside the usual places
        (a service's, a throwaway one), under ``root``."""
        homes = []
        for proc in self.records.values():
            home = proc.env_values.get("HOME") or proc.env_values.get("USERPROFILE")
            if home and os.path.isabs(home) and home != "/" and home not in homes and os.path.isdir(home) \
                    and (root == "/" or home.startswith(root.rstrip("/") + "/")):
                homes.append(home)
        return homes
