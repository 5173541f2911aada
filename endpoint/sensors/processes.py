"""The process sensor: every process of every user, with its tree, reduced to safe records.

Races (a process that exits mid-scan) and access errors never break the scan: a process we may not
inspect still yields what we could read. Command lines are redacted here, and environment values are
reduced to credential fingerprints here, so no secret travels further than this module.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Collection, Iterator

import psutil

from endpoint import credentials
from endpoint.evidence import ProcessRecord, ScanError

_ATTRS = ["pid", "ppid", "name", "exe", "cmdline", "username", "uids", "create_time"]
_MAX_ENV_BYTES = 256 << 10  # an environment larger than this is read no further

PLATFORM = "linux" if sys.platform.startswith("linux") else "macos" if sys.platform == "darwin" else "windows"


def iter_processes(classify: credentials.Classifier, *, keep_env: Collection[str] = ("HOME",),
                   read_env: bool = True, skip_pids: Collection[int] = ()) -> Iterator[ProcessRecord | ScanError]:
    """Yield one record per live process (kernel threads excluded) and an error per unreadable one."""
    key = credentials.fingerprint_key()
    for proc in psutil.process_iter(_ATTRS, ad_value=None):
        info = proc.info
        pid = info["pid"]
        if pid in skip_pids:
            continue
        cmdline = info["cmdline"] or []
        exe = info["exe"] or ""
        if not cmdline and not exe and PLATFORM == "linux":
            continue  # kernel thread, or a zombie with nothing left to see
        argv, creds = credentials.redact_argv(cmdline, classify, where=f"pid {pid}", key=key)
        uids = info["uids"]
        record = ProcessRecord(
            pid=pid, ppid=info["ppid"] or 0, name=info["name"] or "", exe=exe, cmdline=argv,
            user=info["username"] or (str(uids.real) if uids else ""), uid=uids.real if uids else None,
            create_time=info["create_time"] or 0.0, credentials=creds,
        )
        if _needs_cwd(argv):
            try:
                record.cwd = proc.cwd()
            except (psutil.Error, OSError):
                pass
        if read_env:
            error = _read_env(proc, record, classify, keep_env, key)
            if error is not None:
                yield error
        yield record


_PYTHON = re.compile(r"^python(\d+(\.\d+)*)?w?(\.exe)?$", re.IGNORECASE)


def _needs_cwd(argv: list[str]) -> bool:
    """A Python interpreter running a script by a relative path: its imports are read from there."""
    if len(argv) < 2 or not _PYTHON.match(os.path.basename(argv[0])):
        return False
    script = next((a for a in argv[1:] if not a.startswith("-")), "")
    return bool(script) and not os.path.isabs(script)


def _read_env(proc: psutil.Process, record: ProcessRecord, classify: credentials.Classifier,
              keep_env: Collection[str], key: bytes) -> ScanError | None:
    try:
        env = proc.environ()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return None  # expected for other users' processes when not root; the scan says so once
    except OSError as exc:
        return ScanError(f"pid {record.pid}", "unreadable", f"environment: {exc.strerror or exc}")
    if sum(len(k) + len(v) for k, v in env.items()) > _MAX_ENV_BYTES:
        env = dict(list(env.items())[:512])
    record.env_keys = frozenset(env)
    record.env_values = {k: env[k] for k in keep_env if k in env}
    record.credentials.extend(credentials.from_env(env, classify, where=f"pid {record.pid} env", key=key))
    return None
