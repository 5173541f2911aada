"""Placement: processes to sightings.

Each process a signature matches is placed in a sighting: a helper of the agent above it, a tool
server under the agent that launched it (or whose environment it inherited), or the agent itself for
its user. ``ProcessTree`` holds the processes of the pass, who is whose child, and which sighting owns
each process; the declarations, unknowns and network attribution read and extend it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from endpoint.scan.engine.projects import Frameworks
from endpoint.scan.engine.registry import Registry, Sighting
from endpoint.scan.evidence import ProcessRecord, Project, ScanError
from endpoint.scan.faults import isolated
from endpoint.scan.relevance import is_interpreter, program_name, script_of
from signatures.launchers import ProcessFacts

if TYPE_CHECKING:
    from signatures import Library, Match
    from signatures.runtime import Signature

ReadScript = Callable[[str], str | None]

SHELLS = frozenset({"sh", "bash", "zsh", "fish", "dash", "ksh", "tcsh", "csh", "pwsh", "powershell",
                    "cmd", "nu"})
MAX_TREE_DEPTH = 64


class ProcessTree:
    """The processes of one pass: by pid, their children, the sighting that owns each, the match that
    placed it."""

    def __init__(self) -> None:
        self.procs: dict[int, ProcessRecord] = {}
        self.children: dict[int, list[int]] = {}
        self.owner: dict[int, Sighting] = {}  # pid -> the sighting that process belongs to
        self.matched: dict[int, Match] = {}  # pid -> the signature match that placed the process

    def add(self, proc: ProcessRecord) -> None:
        self.procs[proc.pid] = proc
        self.children.setdefault(proc.ppid, []).append(proc.pid)

    def depth(self, pid: int) -> int:
        depth, seen = 0, set()
        while pid in self.procs and pid not in seen and depth < MAX_TREE_DEPTH:
            seen.add(pid)
            pid = self.procs[pid].ppid
            depth += 1
        return depth

    def ancestors(self, proc: ProcessRecord) -> Iterable[ProcessRecord]:
        seen = {proc.pid}
        pid = proc.ppid
        while pid in self.procs and pid not in seen and len(seen) < MAX_TREE_DEPTH:
            seen.add(pid)
            yield self.procs[pid]
            pid = self.procs[pid].ppid

    def descendants(self, pid: int) -> Iterable[ProcessRecord]:
        stack, seen = list(self.children.get(pid, [])), set()
        while stack:
            child = stack.pop()
            if child in seen or child not in self.procs:
                continue
            seen.add(child)
            yield self.procs[child]
            stack.extend(self.children.get(child, []))

    def owning_ancestor(self, proc: ProcessRecord) -> tuple[Sighting | None, bool]:
        """The nearest ancestor's sighting, and whether a human's interactive shell stands between."""
        interactive = False
        for anc in self.ancestors(proc):
            owner = self.owner.get(anc.pid)
            if owner is not None:
                return owner, interactive
            if program_name(anc.exe or anc.name) in SHELLS and _is_interactive_shell(anc.cmdline):
                interactive = True
        return None, interactive

    def own(self, proc: ProcessRecord, target: Sighting) -> None:
        """``proc`` belongs to ``target``: its credentials and the autonomy its environment sets go with it."""
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

    def absorb_tree(self, proc: ProcessRecord, target: Sighting, registry: Registry) -> None:
        """``proc`` and the processes below it run ``target`` (a declared server): they move to it."""
        for member in (proc, *self.descendants(proc.pid)):
            previous = self.owner.get(member.pid)
            if previous is not None and previous is not target and is_loose_tool(previous):
                self.merge(previous, target, registry)
            elif previous is not None and previous is target.parent:
                del previous.processes[member.pid]  # launched by the agent, but it is the server
                self.owner.pop(member.pid)
            if (owner := self.owner.get(member.pid)) is None or owner is target:
                self.own(member, target)

    def merge(self, source: Sighting, into: Sighting, registry: Registry) -> None:
        for pid, proc in source.processes.items():
            into.processes[pid] = proc
            self.owner[pid] = into
        into.evidence.update(source.evidence)
        into.weights.extend(source.weights)
        into.flags |= source.flags
        if into.signature is None:
            into.signature, into.vendor = source.signature, source.vendor
        registry.remove(source)


class Placement:
    """Matches processes against the signatures and places each matched one in a sighting."""

    def __init__(self, lib: Library, registry: Registry, tree: ProcessTree, errors: list[ScanError], *,
                 platform: str, read_script: ReadScript | None) -> None:
        self.lib = lib
        self.registry = registry
        self.tree = tree
        self.errors = errors
        self.platform = platform
        self.read_script = read_script
        self.frameworks = Frameworks(lib)

    def add_processes(self, processes: Iterable[ProcessRecord], *,
                      read_details: Callable[[ProcessRecord], object] | None = None,
                      details_for: Collection[int] = (), matched: Mapping[int, Match] | None = None) -> None:
        """See ``Engine.add_processes``."""
        tree = self.tree
        matches: dict[int, Match] = {}
        batch = []
        for proc in processes:
            batch.append(proc)
            tree.add(proc)
            if matched is not None:
                found_match = matched.get(proc.pid)
                if found_match is not None:
                    matches[proc.pid] = found_match
                continue
            with isolated(self.errors, f"pid {proc.pid}"):
                facts = ProcessFacts(name=proc.name, exe=proc.exe, cmdline=tuple(proc.cmdline),
                                     env_keys=proc.env_keys, platform=self.platform)
                found = self.lib.match_process(facts, script_reader(self.read_script, proc))
                if found:
                    matches[proc.pid] = found[0]
        tree.matched.update(matches)
        if read_details is not None:
            for proc in self._needing_details(batch, matches.keys() | set(details_for)):
                with isolated(self.errors, f"pid {proc.pid}"):
                    read_details(proc)
        # A process no signature names may run a project whose code imports a framework (read with its details).
        for proc in batch:
            if proc.project is not None and proc.pid not in matches:
                with isolated(self.errors, f"pid {proc.pid}"):
                    found_match = self.frameworks.match(proc.project)
                    if found_match is not None:
                        matches[proc.pid] = tree.matched[proc.pid] = found_match
        # Parents before children, so that a child finds its ancestor's sighting already made.
        for pid in sorted(matches, key=tree.depth):
            with isolated(self.errors, f"pid {pid}"):
                self.place_process(tree.procs[pid], matches[pid])
        for pid in sorted(matches, key=tree.depth):
            with isolated(self.errors, f"pid {pid}"):
                self.join_platform_helpers(tree.procs[pid])

    def _needing_details(self, batch: Sequence[ProcessRecord], picked: set[int]) -> list[ProcessRecord]:
        below: dict[int, bool] = {}  # pid -> it or an ancestor is picked or placed
        procs, owner = self.tree.procs, self.tree.owner

        def under_picked(pid: int, depth: int = 0) -> bool:
            if pid in picked or pid in owner:
                return True
            found = below.get(pid)
            if found is None:
                proc = procs.get(pid)
                found = below[pid] = (proc is not None and proc.ppid != pid and depth < MAX_TREE_DEPTH
                                      and under_picked(proc.ppid, depth + 1))
            return found

        return [proc for proc in batch if is_interpreter(proc) or under_picked(proc.pid)]

    def place_process(self, proc: ProcessRecord, match: Any) -> None:
        sig = match.signature
        ancestor, interactive = self.tree.owning_ancestor(proc)
        if ancestor is not None and ancestor.signature is sig:
            target = ancestor  # a helper process of the same agent
        elif sig.type == "enterprise" and proc.project is not None and self._project_names(proc.project, sig):
            target = self._project_sighting(proc, proc.project, sig, ancestor, interactive)
        elif sig.type == "tool_server":
            parent = ancestor if ancestor is not None and ancestor.type != "tool_server" else None
            parent = parent or self._env_parent(proc, sig)
            target = self.registry.sighting(("tool", parent.id if parent else "", sig.id, _command_key(proc.cmdline)),
                                            sig, user=proc.user, name=sig.name)
            target.parent = parent
        else:
            target = self.registry.agent(sig, proc.user)
            if target.parent is None and ancestor is not None and not interactive:
                target.parent = ancestor
            if target.parent is None and ancestor is None:
                target.parent = self._env_parent(proc, sig)
            if sig.autonomy.flags:
                for hit in self.lib.autonomy_flags(sig, proc.cmdline):
                    target.flags.add("autonomous")
                    target.add_evidence("process", "autonomy.flags", f"pid {proc.pid}: {hit}", "process.cmdline")
        self.tree.own(proc, target)
        target.add_evidence("process", match.rule, f"pid {proc.pid}: {match.detail}", match.rule)
        if proc.container:  # where it runs: a person looks for it there (no new contract field needed)
            from endpoint.scan.containers import describe

            target.add_evidence("process", "process.container", describe(proc.container), "process.container")

    def join_platform_helpers(self, proc: ProcessRecord) -> None:
        """The processes below a running platform (n8n) that run the platform's own code join its sighting.

        n8n 2 starts its task runner as a child (``node …/node_modules/@n8n/task-runner/dist/start.js``): no
        signature names it, so it would be in no sighting at all, yet it is that n8n at work. A descendant that
        nothing else owns and whose script lies in one of the platform's own npm packages (one the signature
        lists, ``n8n``, or one of its scope or family, ``@n8n/…``, ``n8n-…``) is part of the platform. Its
        user controls that script's path, but all it can do is join its own platform's sighting, with its
        credentials: nothing is hidden from the report.
        """
        target = self.tree.owner.get(proc.pid)
        sig = target.signature if target is not None else None
        if target is None or sig is None or proc.project is None or proc.project.platform != sig.id:
            return
        own = [name.lower() for name in sig.packages.npm]
        if not own:
            return
        for child in self.tree.descendants(proc.pid):
            if child.pid in self.tree.owner:
                continue
            package = npm_package_of(script_of(child.cmdline) or "")
            if package is not None and any(package == name or package.startswith((f"@{name}/", f"{name}-"))
                                           for name in own):
                self.tree.own(child, target)
                target.add_evidence("process", "process.platform_helper",
                                    f"pid {child.pid}: runs {package}, part of {sig.name}", "process.platform_helper")

    def _project_names(self, project: Project, sig: Signature) -> bool:
        """Whether the project's own code names ``sig`` (a platform run by its name, ``npx n8n``, stays itself)."""
        found = self.frameworks.match(project)
        return found is not None and found.signature is sig

    def _project_sighting(self, proc: ProcessRecord, project: Project, sig: Signature, ancestor: Sighting | None,
                          interactive: bool) -> Sighting:
        """An enterprise agent named after its project (one per framework, user, project and entry), with
        the project's evidence and what it is configured for."""
        # a project in a container is that container's: two containers of one image are two agents
        # (the key grows only then: every other sighting keeps its id)
        box = ("container", proc.container[1]) if proc.container else ()
        where = f" (container {proc.container[2] or proc.container[1][:12]})" if proc.container else ""
        target = self.registry.sighting(("agent", sig.id, proc.user or "", "project", project.root, project.entry, *box),
                                        sig, user=proc.user, name=f"{project.entry} in {project.root}{where}")
        if target.parent is None and ancestor is not None and not interactive:
            target.parent = ancestor
        if target.project is None:
            target.project = self.frameworks.info(project, sig, proc)
        for rule, detail in self.frameworks.evidence(project, sig):
            target.add_evidence("process", rule, detail, rule)
        return target

    def _env_parent(self, proc: ProcessRecord, sig: Signature) -> Sighting | None:
        for other in self.lib.signatures:
            if other.id != sig.id and other.process.child_env and proc.env_keys.intersection(other.process.child_env):
                return self.registry.agent(other, proc.user)
        return None


def npm_package_of(path: str) -> str | None:
    """The npm package (``name`` or ``@scope/name``, lower case) a script inside a ``node_modules`` folder
    belongs to, or None."""
    parts = path.replace("\\", "/").lower().split("/")
    if "node_modules" not in parts:
        return None
    rest = parts[len(parts) - parts[::-1].index("node_modules"):]
    if len(rest) < 2 or rest[0] in ("", ".bin") or (rest[0].startswith("@") and len(rest) < 3):
        return None  # a package's file is at least one below the package's folder
    return f"{rest[0]}/{rest[1]}" if rest[0].startswith("@") else rest[0]


def is_loose_tool(sighting: Sighting) -> bool:
    """A tool-server process sighting that no config declared: it folds into a declared one."""
    return sighting.type == "tool_server" and sighting.declared is None


def script_reader(read: ReadScript | None, proc: ProcessRecord) -> ReadScript | None:
    """``read`` for the scripts ``proc`` names: a relative path is taken from its working directory."""
    if read is None:
        return None
    cwd = proc.cwd
    return lambda path: read(os.path.join(cwd, path) if cwd and not os.path.isabs(path) else path)


def once_per_path(read: ReadScript) -> ReadScript:
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
