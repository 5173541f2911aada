"""Fault isolation: one unit of input that breaks the code becomes one ``errors[]`` entry, never a dead scan.

The endpoint reads files, processes and packets that any user controls, so a bug anywhere in parsing,
fingerprinting or encoding is reachable by anyone who can write one file. Each unit of input (a file,
a server entry in it, a process, a network record, a sighting) is processed under ``isolated(...)``:
an exception there is recorded as ``ScanError(where, "internal", detail)`` and the rest goes on. The
packets of a capture are counted instead (``FailureTally``): one entry for the capture, however many.

The detail names the exception's type and the line of agentroster's code that raised it, with a short
message whose quoted parts are dropped: messages quote their input (``KeyError('sk-…')``, "Port could
not be cast to integer value as '…'"), and input may hold a credential. No traceback is kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from endpoint.scan.evidence import ScanError

T = TypeVar("T")

INTERNAL = "internal"  # the error code of a unit the code could not process (a bug, not a bad file)
_MAX_MESSAGE = 120
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LONG_TOKEN = re.compile(r"\S{24,}")  # an unquoted long token may still be a key: keep none


def describe(exc: BaseException) -> str:
    """``ValueError in redact_url (fingerprint.py:85): Port could not be cast to integer value as '…'``."""
    message = _QUOTED.sub("'…'", str(exc).replace("\n", " "))
    message = _LONG_TOKEN.sub("…", message)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    where = _raised_at(exc)
    return f"{type(exc).__name__}{where}: {message}" if message else f"{type(exc).__name__}{where}"


def _raised_at(exc: BaseException) -> str:
    """`` in FUNCTION (FILE:LINE)`` for the innermost frame of agentroster's own code, or ``""``."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(("endpoint.", "signatures.")):
            found = tb
        tb = tb.tb_next
    if found is None:
        return ""
    code = found.tb_frame.f_code
    return f" in {code.co_name} ({os.path.basename(code.co_filename)}:{found.tb_lineno})"


def internal_error(where: str, exc: BaseException) -> ScanError:
    return ScanError(where, INTERNAL, describe(exc))


class isolated:  # noqa: N801  # used as a statement (``with isolated(...)``), named as one
    """``with isolated(errors, where):`` — an ``Exception`` inside becomes one entry of ``errors``.

    ``where`` names the unit: a path, ``pid N``, ``network HOST:PORT``, ``sighting ID``; a callable is
    asked only when something failed (a name that costs something to build). KeyboardInterrupt and
    SystemExit pass through.
    """

    __slots__ = ("errors", "where")

    def __init__(self, errors: list[ScanError], where: str | Callable[[], str]) -> None:
        self.errors = errors
        self.where = where

    def __enter__(self) -> isolated:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        where = self.where
        if not isinstance(where, str):
            try:
                where = where()
            except Exception:
                where = "?"
        self.errors.append(internal_error(where, exc))
        return True


class FailureTally:
    """Failures of many small units of one source (the packets of a capture) kept as one error: how many,
    and what the first one was. A capture may hold thousands of packets crafted alike; one entry says it.
    """

    __slots__ = ("where", "unit", "count", "first")

    def __init__(self, where: str, unit: str = "packet") -> None:
        self.where = where  # the source, e.g. ``network capture FILE``
        self.unit = unit
        self.count = 0
        self.first = ""

    def add(self, exc: BaseException) -> None:
        if not self.count:
            self.first = describe(exc)
        self.count += 1

    def errors(self) -> list[ScanError]:
        """[] when nothing failed, else one ``internal`` entry for the source."""
        if not self.count:
            return []
        units = self.unit if self.count == 1 else f"{self.unit}s"
        return [ScanError(self.where, INTERNAL, f"{self.count} {units} could not be processed; the first: {self.first}")]


def isolated_records(records: Iterable[T], where: str) -> Iterator[T | ScanError]:
    """``records`` as they come; when producing them raises, one internal error for ``where`` ends them
    (what was yielded before stays)."""
    try:
        yield from records
    except Exception as exc:
        yield internal_error(where, exc)


def sensor_of(where: str) -> str:
    """The sensor whose unit an error entry names: processes (``pid N``), network, fingerprint
    (``sighting …``), else files (a path)."""
    if where.startswith("pid ") or where == "processes":
        return "processes"
    if where.startswith("network"):
        return "network"
    if where.startswith("sighting "):
        return "fingerprint"
    return "files"


def health(errors: Iterable[ScanError]) -> tuple[int, list[str]]:
    """How many units failed (internal errors) and the sensors they belong to, sorted: a report's
    ``units_failed`` and ``degraded``."""
    failed = [e for e in errors if e.error == INTERNAL]
    return len(failed), sorted({sensor_of(e.where) for e in failed})


class LogLimit:
    """Whether to log about a unit now: at most once per unit per ``period_s``.

    A file that breaks the code breaks it at every rescan; its line in the log once an hour says as
    much as once a second. Bounded: beyond ``max_units`` keys, the oldest are forgotten (and may be
    logged again: better than a log or a memory that grows with what users write).
    """

    __slots__ = ("period_s", "max_units", "_last")

    def __init__(self, period_s: float = 3600.0, max_units: int = 4096) -> None:
        self.period_s = period_s
        self.max_units = max_units
        self._last: dict[str, float] = {}  # unit -> when it was last logged, oldest first

    def due(self, unit: str, now: float) -> bool:
        last = self._last.get(unit)
        if last is not None and now - last < self.period_s:
            return False
        self._last.pop(unit, None)
        self._last[unit] = now
        while len(self._last) > self.max_units:
            del self._last[next(iter(self._last))]
        return True
