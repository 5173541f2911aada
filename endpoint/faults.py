"""Fault isolation: one unit of input that breaks the code becomes one ``errors[]`` entry, never a dead scan.

The endpoint reads files, processes and packets that any user controls, so a bug anywhere in parsing,
fingerprinting or encoding is reachable by anyone who can write one file. Each unit of input (a file,
a server entry in it, a process, a network record, a sighting) is processed under ``isolated(...)``:
an exception there is recorded as ``ScanError(where, "internal", detail)`` and the rest goes on.

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

from endpoint.evidence import ScanError

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
