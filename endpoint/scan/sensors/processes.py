"""The process sensor: every process of every user, with its tree, reduced to safe records.

Reading is split in two, so that a scan of a thousand processes stays cheap: ``iter_processes`` yields
each process's command line, executable, parent and owner; ``read_details`` adds the costlier facts
(the environment, reduced to variable names, a few kept values and credential fingerprints; on Linux
the real owner and the container it runs in, ``endpoint.scan.containers``) for the processes where
they can matter, which the fingerprint engine picks.
Races (a process that exits mid-scan) and access errors never break the scan: a process we may not
inspect still yields what we could read. Command lines are redacted here, and environment values are
reduced to credential fingerprints here, so no secret travels further than this module.

/proc is read directly on Linux (``_procs_linux``); psutil serves the other systems (``_procs_psutil``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from endpoint.scan import credentials
from endpoint.scan.evidence import Credential, ProcessRecord, ScanError
from endpoint.scan.platforms import PLATFORM
from endpoint.scan.projects import PROJECT_ENV

if TYPE_CHECKING:
    from endpoint.scan.projects import ProjectReader

if sys.platform.startswith("linux"):
    from endpoint.scan.sensors import _procs_linux as _reader
else:
    from endpoint.scan.sensors import _procs_psutil as _reader  # type: ignore[no-redef]

DEFAULT_KEEP_ENV = ("HOME", "USERPROFILE")
_MAX_ENV_ENTRIES = 4096  # an environment with more variables than this is read no further


def iter_processes(classify: credentials.Classifier, *, pids: Iterable[int] | None = None,
                   keep_env: Collection[str] = DEFAULT_KEEP_ENV, read_env: bool = True,
                   skip_pids: Collection[int] = ()) -> Iterator[ProcessRecord | ScanError]:
    """One record per live process (kernel threads and zombies excluded), an error per unreadable one.

    ``pids``: only these processes (default: all); one that is gone is skipped. With ``read_env``
    each record comes with its details (``read_details``); without, the caller reads them for the
    processes it picks.
    """
    key = credentials.fingerprint_key()
    users: dict[int, str] = {}
    envs: dict[tuple[int, int], Reduced] = {}
    classify = remembering(classify)
    for pid in _reader.pids() if pids is None else pids:
        if pid in skip_pids:
            continue
        try:
            raw = _reader.read(pid, users)
        except (ProcessLookupError, PermissionError):
            continue  # gone, or hidden from us (hidepid): nothing to see
        except OSError as exc:
            yield ScanError(f"pid {pid}", "unreadable", f"process: {exc.strerror or exc}")
            continue
        if raw is None or (not raw.cmdline and not raw.exe and PLATFORM == "linux"):
            continue  # kernel thread, or a zombie with nothing left to see
        argv, creds = credentials.redact_argv(raw.cmdline, classify, where=f"pid {pid}", key=key)
        record = ProcessRecord(pid=pid, ppid=raw.ppid, name=raw.name, exe=raw.exe, cmdline=argv, user=raw.user,
                               uid=raw.uid, create_time=raw.create_time, credentials=creds)
        if _needs_cwd(argv):
            try:
                record.cwd = _reader.cwd(pid)
            except OSError:
                pass
        if read_env:
            error = read_details(record, classify, keep_env=keep_env, key=key, users=users, envs=envs)
            if error is not None:
                yield error
        yield record


# An environment reduced to what a record keeps: its names, its ``keep_env`` values, and its
# credentials with ``where`` holding only " NAME" (the pid goes in front per process). No values.
Reduced = tuple[frozenset[str], dict[str, str], list[Credential]]


def read_details(record: ProcessRecord, classify: credentials.Classifier, *,
                 keep_env: Collection[str] = DEFAULT_KEEP_ENV, key: bytes | None = None,
                 users: dict[int, str] | None = None,
                 envs: dict[tuple[int, int], Reduced] | None = None,
                 projects: ProjectReader | None = None) -> ScanError | None:
    """Add the environment's names, its ``keep_env`` values and its credentials to ``record``, and for a
    Python or Node interpreter the project it runs (``endpoint.scan.projects``; ``projects``: the scan's
    reader, default one of its own).

    On Linux, a process that /proc shows as root's may be another user's that made itself
    non-dumpable: its real owner is read too. Returns an error only for an unexpected read failure.
    ``envs`` (one per scan, with the same ``classify``, ``keep_env`` and ``key``) remembers each
    environment reduced, by its bytes' length and hash: the processes of a session share one.
    """
    if record.uid == 0 and PLATFORM == "linux":
        try:
            uid = _reader.real_uid(record.pid)
        except OSError:
            uid = None
        if uid is not None and uid != 0:
            record.uid = uid
            record.user = _reader.user_name(uid, users if users is not None else {})
    key = key or credentials.fingerprint_key()
    keep_env = {*keep_env, *PROJECT_ENV}  # where the project is: never a credential, never reported
    try:
        if envs is not None and hasattr(_reader, "environ_bytes"):
            data = _reader.environ_bytes(record.pid)
            seen = (len(data), hash(data))  # hashes are salted per process: no one can aim a collision
            reduced = envs.get(seen)
            if reduced is None:
                reduced = envs[seen] = _reduce(_reader.parse_environ(data), classify, keep_env, key)
        else:
            reduced = _reduce(_reader.environ(record.pid), classify, keep_env, key)
    except (ProcessLookupError, PermissionError):
        return None  # gone, or another user's process while not root: the scan says so once
    except OSError as exc:
        return ScanError(f"pid {record.pid}", "unreadable", f"environment: {exc.strerror or exc}")
    names, kept, found = reduced
    record.env_keys = names
    record.env_values = dict(kept)
    where = f"pid {record.pid} env"
    record.credentials.extend(Credential(c.kind, c.fingerprint, c.source, where + c.where) for c in found)
    container_error = _read_container(record, projects)
    return _read_project(record, projects) or container_error


def _read_container(record: ProcessRecord, projects: ProjectReader | None) -> ScanError | None:
    """The container ``record`` runs in (Linux; only a process whose root is not ours can be in one), and
    an error when its runtime's metadata could not be read (once per container and scan: the scan's
    ``projects`` reader keeps what was read)."""
    if PLATFORM != "linux":
        return None
    from endpoint.scan import containers

    if not containers.in_other_root(record.pid):
        return None
    problems: list[tuple[str, str]] = []
    found = containers.container_of(record.pid, record.uid, errors=problems,
                                    seen=projects.containers if projects is not None else None)
    if found is None:
        return None
    record.container = (found.runtime, found.id, found.name, found.image)
    if not problems:
        return None
    code, detail = problems[0]
    return ScanError(f"pid {record.pid} container {found.id[:12]}", code, detail)


def _read_project(record: ProcessRecord, projects: ProjectReader | None) -> ScanError | None:
    """The project an interpreter runs onto ``record``; one error for the whole project at most."""
    from endpoint.scan.projects import default_reader, language

    if language(record) is None:
        return None
    reader = projects or default_reader()
    if reader.cwd_of is None:
        reader.cwd_of = _reader.cwd
    try:
        record.project = reader.read(record)
    except (ProcessLookupError, PermissionError):
        return None
    except OSError as exc:
        return ScanError(f"pid {record.pid} project", "unreadable", f"project: {exc.strerror or exc}")
    if record.project is None or not record.project.errors:
        return None
    where, code, detail = record.project.errors[0]
    more = len(record.project.errors) - 1
    return ScanError(f"pid {record.pid} project {record.project.root}", code,
                     f"{where}: {detail}" + (f" (and {more} more)" if more else ""))


def _reduce(env: dict[str, str], classify: credentials.Classifier, keep_env: Collection[str],
            key: bytes | None) -> Reduced:
    if len(env) > _MAX_ENV_ENTRIES:
        env = dict(list(env.items())[:_MAX_ENV_ENTRIES])
    return (frozenset(env), {k: env[k] for k in keep_env if k in env},
            credentials.from_env(env, classify, where="", key=key))


def remembering(classify: credentials.Classifier) -> credentials.Classifier:
    """``classify``, answering each (name, value) once: most processes inherit the same environment.

    What it remembers is keyed by the value's hash, never the value, so no secret outlives its process
    record's reading. Make one per scan.
    """
    answers: dict[tuple[str | None, int, int], object] = {}

    def remembered(name: str | None, value: str) -> Any:
        key = (name, len(value), hash(value))  # hashes are salted per process: no one can aim a collision
        if key not in answers:
            answers[key] = classify(name, value)
        return answers[key]

    return remembered


_PYTHON = re.compile(r"^python(\d+(\.\d+)*)?w?(\.exe)?$", re.IGNORECASE)


def _needs_cwd(argv: list[str]) -> bool:
    """A Python interpreter running a script by a relative path: its imports are read from there."""
    if len(argv) < 2 or not _PYTHON.match(os.path.basename(argv[0])):
        return False
    script = next((a for a in argv[1:] if not a.startswith("-")), "")
    return bool(script) and not os.path.isabs(script)
