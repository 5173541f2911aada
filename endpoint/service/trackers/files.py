"""The daemon's file tracker: every home's and the machine's config files, and the watches on them.

watchdog observers on every config location of every home (and the machine-wide ones) turn a config
edit into a rescan of that home (its "source") within a debounce of ~200 ms; a full rescan of every
source is the safety net. A directory is watched non-recursively, with the names in it that matter.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from endpoint.scan.evidence import ArtifactRecord, ConfigRecord, ScanError
from endpoint.scan.homes import (
    Home,
    expand_home_template,
    expand_machine_template,
    find_homes,
    is_home_template,
    template_platforms,
)
from endpoint.service.trackers.events import EventQueue

if TYPE_CHECKING:
    from signatures import Library

log = logging.getLogger("agentroster.daemon")

DEBOUNCE_S = 0.2  # a burst of file events (write, rename, chmod) becomes one rescan
MACHINE = "machine"  # the source key of machine-wide files
#: a file's mtime comes from a clock coarser than time.time_ns(): a write just before a source is read may
#: carry a stamp a few ms earlier than the read began; the slack takes such writes as "maybe not read"
MTIME_SLACK_NS = 20_000_000
_GLOB_CHARS = frozenset("*?[")  # a watched name with one of these is a pattern (fnmatch)
MAX_WATCHED_DIRS = 4096  # beyond this, directories are left to the full rescan (inotify has limits too)

FileEvidence = ConfigRecord | ArtifactRecord | ScanError


@dataclass
class WatchPlan:
    """Directories to watch, each with the names in it that matter (glob patterns), per source."""

    dirs: dict[str, set[str]] = field(default_factory=dict)
    missing: set[tuple[str, str]] = field(default_factory=set)  # (directory, child) not there when planned

    def add(self, target: str, boundary: str) -> None:
        """Watch for ``target`` (a path, maybe with ``*``): its nearest existing directory within
        ``boundary``, and in it the name of the next component on the way to the target."""
        boundary = boundary.rstrip("/") or "/"
        if not (target == boundary or target.startswith(boundary.rstrip("/") + "/")):
            return
        rel = target[len(boundary):].strip("/")
        parts = [p for p in rel.split("/") if p]
        directory = boundary
        for index, part in enumerate(parts):
            if index == len(parts) - 1 or "*" in part or any(c in part for c in "?["):
                self.dirs.setdefault(directory, set()).add(part)
                return
            candidate = os.path.join(directory, part)
            if not os.path.isdir(candidate) or os.path.islink(candidate):
                self.dirs.setdefault(directory, set()).add(part)
                if not os.path.lexists(candidate):
                    self.missing.add((directory, part))
                return
            directory = candidate

    def stale(self) -> bool:
        """A directory that was missing when planned exists now (made between the plan and its watch)."""
        return any(os.path.isdir(p) and not os.path.islink(p) for p in (os.path.join(d, c) for d, c in self.missing))

    def changed_since(self, when_ns: int) -> bool:
        """A file this plan watches for was written (or made, or moved in) at ``when_ns`` or later. A stamp
        later than now is no write's (a user's ``touch -d``, a skewed clock's): it counts as no change,
        or each read of the source would ask for the next, in a loop."""
        until_ns = time.time_ns() + MTIME_SLACK_NS

        def written(st: os.stat_result) -> bool:
            # files only: a folder made meanwhile is stale()'s, and one written in is watched
            return not stat.S_ISDIR(st.st_mode) and when_ns <= st.st_mtime_ns <= until_ns

        for directory, patterns in self.dirs.items():
            globs = [p for p in patterns if _GLOB_CHARS.intersection(p)]
            # a name is looked up, not searched for: a home of a million files costs a few lstats, not a listing
            for name in patterns.difference(globs):
                try:
                    if written(os.lstat(os.path.join(directory, name))):
                        return True
                except OSError:  # not there, or gone: its watch says so, or the next full scan does
                    continue
            if not globs:
                continue
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if any(fnmatch.fnmatchcase(entry.name, p) for p in globs) \
                                and written(entry.stat(follow_symlinks=False)):
                            return True
            except OSError:  # gone or unreadable: its watch says so, or the next full scan does
                continue
        return False

    def matches(self, directory: str, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.dirs.get(directory, ()))


def home_plan(lib: Library, home: Home, configs: Iterable[ConfigRecord]) -> WatchPlan:
    plan = WatchPlan()
    for _sig, fm in lib.file_templates:
        if fm.scope == "user" and is_home_template(fm.path) \
                and template_platforms(fm.path, list(fm.platforms)) & home.platforms:
            plan.add(expand_home_template(fm.path, home), home.path)
    project_templates = [fm.path[len("{project}"):] for _s, fm in lib.file_templates if fm.scope == "project"]
    projects = {os.path.dirname(c.path) for c in configs if c.scope == "project"}
    for config in configs:
        plan.add(config.path, home.path)
    for project in projects:  # a project that holds one config: the others a client could add there
        for template in project_templates:
            plan.add(project + template, home.path)
    return plan


def machine_plan(lib: Library, root: str) -> WatchPlan:
    plan = WatchPlan()
    for _sig, fm in lib.file_templates:
        if fm.scope == "managed" and not is_home_template(fm.path):
            for pattern in expand_machine_template(fm.path, root):
                plan.add(pattern, root)
    return plan


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Watcher:
    """watchdog observers, one watch per directory (non-recursive), shared by the sources that need it."""

    def __init__(self, events: EventQueue) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.events = events
        self.observer = Observer(timeout=0.2)
        self.plans: dict[str, WatchPlan] = {}
        self.watches: dict[str, Any] = {}
        self.inodes: dict[str, tuple[int, int] | None] = {}
        self.users: dict[str, set[str]] = {}  # watched (or wanted) directory -> the sources whose plans hold it
        self.unwatched_dirs: set[str] = set()  # wanted but not watched (over MAX_WATCHED_DIRS, or refused)
        self.unwatched = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                for path in (event.src_path, getattr(event, "dest_path", "")):
                    if path:
                        outer.seen(os.fsdecode(path))

        self.handler = Handler()

    def start(self) -> None:
        self.observer.daemon = True
        self.observer.start()

    def seen(self, path: str) -> None:
        directory, name = os.path.split(path.rstrip("/"))
        with self._lock:
            sources = [s for s, plan in self.plans.items() if plan.matches(directory, name)]
        for source in sources:
            self.events.put(("files", source))

    def arm(self, source: str, plan: WatchPlan) -> None:
        """Watch what ``plan`` needs for ``source``; drop the watches no source needs any more. The cost is
        the size of this source's plans, old and new, not of every source's: a full scan arms each of a
        machine's homes in turn, and a server with thousands of them must not stat every watch each time."""
        with self._lock:
            old = self.plans.get(source)
            self.plans[source] = plan
        after = set(plan.dirs)
        for directory in set(old.dirs if old is not None else ()) - after:
            users = self.users.get(directory, set())
            users.discard(source)
            if not users:  # no source needs it any more
                self.users.pop(directory, None)
                self.unwatched_dirs.discard(directory)
                self._unwatch(directory)
        for directory in sorted(after):
            self.users.setdefault(directory, set()).add(source)
            if directory in self.watches and _inode(directory) != self.inodes.get(directory):
                self._unwatch(directory)  # deleted, and maybe made again: the old watch sees nothing
            if directory in self.watches:
                continue
            if len(self.watches) >= MAX_WATCHED_DIRS:
                self.unwatched_dirs.add(directory)
                continue
            try:
                self.inodes[directory] = _inode(directory)
                self.watches[directory] = self.observer.schedule(self.handler, directory, recursive=False)
                self.unwatched_dirs.discard(directory)
            except OSError as exc:
                self.unwatched_dirs.add(directory)
                message = f"{directory}: {exc.strerror or exc}"
                if message not in self.errors:
                    self.errors = [*self.errors[-9:], message]
        self.unwatched = len(self.unwatched_dirs)

    def _unwatch(self, directory: str) -> None:
        self.inodes.pop(directory, None)
        try:
            self.observer.unschedule(self.watches.pop(directory))
        except (KeyError, ValueError, OSError):
            pass

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=0.5)


def _collect(records: Iterable[FileEvidence], progress: Callable[[], None] | None) -> list[FileEvidence]:
    if progress is None:
        return list(records)
    collected = []
    for record in records:
        collected.append(record)
        progress()
    return collected


class FileTracker:
    """The latest file evidence per source (a home's path, or MACHINE), rescanned on the watches' events."""

    def __init__(self, lib: Library, root: str, events: EventQueue) -> None:
        self.lib = lib
        self.root = root
        self.events = events
        self.records: dict[str, list[FileEvidence]] = {}
        self.homes: dict[str, Home] = {}
        self.watcher: Watcher | None = None
        self._pending: dict[str, float] = {}  # source -> when its first event came

    def start_watching(self) -> None:
        try:
            self.watcher = Watcher(self.events)
            self.watcher.start()
        except Exception as exc:
            log.warning("file watching unavailable: %s", exc)
            self.watcher = None

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def changed(self, source: str, now: float) -> None:
        """A watched file of ``source`` changed: rescan it once its events have settled (DEBOUNCE_S)."""
        self._pending.setdefault(source, now)

    def next_due(self) -> list[float]:
        """When the sources waiting for their events to settle are due."""
        return [t + DEBOUNCE_S for t in self._pending.values()]

    def settled(self, now: float) -> list[str]:
        """The sources whose events have settled, no longer waiting."""
        ready = [src for src, first in self._pending.items() if now - first >= DEBOUNCE_S]
        for src in ready:
            self._pending.pop(src, None)
        return ready

    def scan(self, sources: Iterable[str] | None = None, *, agent_homes: Iterable[str] = (),
             progress: Callable[[], None] | None = None) -> None:
        """Rescan the files of these sources (home paths, or MACHINE); all of them, with the homes found
        again (and ``agent_homes``, running agents' homes outside the usual places), when None.
        ``progress`` is called after each record and each source (the daemon pings its watchdog from it;
        what it raises ends the scan, the records of the source under way dropped)."""
        from endpoint.scan.sensors.files import FileScan

        scan = FileScan(self.lib, self.root)
        if sources is None:
            extra = [h for h in agent_homes if h not in self.homes]
            self.homes = {h.path: h for h in find_homes(self.root, extra)}
            wanted = [MACHINE, *self.homes]
            for gone in set(self.records) - set(wanted):
                self.records.pop(gone, None)
        else:
            wanted = list(sources)
        for source in wanted:
            read_from = time.time_ns() - MTIME_SLACK_NS
            if source == MACHINE:
                self.records[MACHINE] = _collect(scan.machine(), progress)
            elif source in self.homes:
                self.records[source] = _collect(scan.home(self.homes[source]), progress)
            if self.watcher is not None:
                self._arm(source, read_from)
            if progress is not None:
                progress()

    def _arm(self, source: str, read_from: int) -> None:
        """Watch ``source``'s files from now on; a file that changed since ``read_from`` (ns), i.e. while it
        was being read and before its watch existed, makes the source be read again."""
        assert self.watcher is not None
        if source == MACHINE:
            plan = machine_plan(self.lib, self.root)
        else:
            configs = [r for r in self.records.get(source, []) if isinstance(r, ConfigRecord)]
            plan = home_plan(self.lib, self.homes[source], configs)
        self.watcher.arm(source, plan)
        if plan.stale() or plan.changed_since(read_from):  # an edit or a `mkdir -p` outran the watch: look again
            self.events.put(("files", source))

    def add_homes(self, agent_homes: Iterable[str]) -> list[str]:
        """Take in running agents' homes not known yet; the sources that are new."""
        extra = [h for h in agent_homes if os.path.realpath(h) not in self.homes]
        if not extra:
            return []
        found = {h.path: h for h in find_homes(self.root, extra)}
        new = [path for path in found if path not in self.homes]
        self.homes.update(found)
        return new

    def health(self) -> str:
        if self.watcher is None:
            return "ok (rescans only)"
        if self.watcher.unwatched:
            return f"limited: {self.watcher.unwatched} directories not watched (left to the full rescan)"
        return f"ok: watching {len(self.watcher.watches)} directories"
