"""macOS, Windows and the rest: processes through psutil, with the same functions as ``_procs_linux``.

psutil's errors are mapped to the built-in ones the process sensor expects: ``ProcessLookupError``
when the process is gone, ``PermissionError`` when it may not be read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psutil

from endpoint.scan.evidence import RawProcess

#: what is read of each process; psutil has no uids on Windows (a process is its account's: username)
_ATTRS = [a for a in ("ppid", "name", "exe", "cmdline", "username", "uids", "create_time") if hasattr(psutil.Process, a)]


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except (psutil.NoSuchProcess, psutil.ZombieProcess) as exc:
        raise ProcessLookupError(str(exc)) from exc
    except psutil.AccessDenied as exc:
        raise PermissionError(str(exc)) from exc


def pids() -> list[int]:
    return psutil.pids()


def read(pid: int, users: dict[int, str]) -> RawProcess | None:
    """The process's facts (what may not be read stays empty). ``users`` is unused: psutil names users."""
    with _mapped():
        proc = psutil.Process(pid)
        with proc.oneshot():
            info = proc.as_dict(_ATTRS, ad_value=None)
    uids = info.get("uids")
    uid = uids.real if uids else None
    return RawProcess(pid=pid, ppid=info["ppid"] or 0, name=_clean(info["name"] or ""), exe=_clean(info["exe"] or ""),
                      cmdline=[_clean(a) for a in info["cmdline"] or []],
                      user=_clean(info["username"] or (str(uid) if uid is not None else "")), uid=uid,
                      create_time=info["create_time"] or 0.0)


def environ(pid: int) -> dict[str, str]:
    with _mapped():
        env = psutil.Process(pid).environ()
    return {_clean(k): _clean(v) for k, v in env.items()}


def cwd(pid: int) -> str:
    with _mapped():
        return _clean(psutil.Process(pid).cwd())


def real_uid(pid: int) -> int | None:
    if not hasattr(psutil.Process, "uids"):  # Windows: no uid at all
        return None
    with _mapped():
        uids = psutil.Process(pid).uids()
    return uids.real


def _clean(text: str) -> str:
    # psutil keeps undecodable bytes as lone surrogates, which no JSON encoder may write as UTF-8.
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
