"""The limits a contract field carries, as ``Annotated`` metadata that needs no validation library.

``Annotated[int, Range(0, PORT_MAX)]`` reads as a plain ``int`` to mypy and to the endpoint;
``contract.validation`` turns each marker into the pydantic constraint it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: no NUL: PostgreSQL text cannot hold one
NO_NUL = r"^[^\x00]*$"


@dataclass(frozen=True, slots=True)
class Range:
    """A number within ``ge``..``le``, both inclusive."""

    ge: float | None = None
    le: float | None = None


@dataclass(frozen=True, slots=True)
class Length:
    """A string's characters, or a list's items, within ``min``..``max``."""

    min: int | None = None
    max: int | None = None


@dataclass(frozen=True, slots=True)
class Pattern:
    """A string that matches ``regex``."""

    regex: str


@dataclass(frozen=True, slots=True)
class Strip:
    """A string taken with its surrounding whitespace removed (before its length is checked)."""


@dataclass(frozen=True, slots=True)
class Default:
    """The value a key that may be left out takes: ``value``, or a fresh ``factory()`` each time."""

    value: Any = None
    factory: Callable[[], Any] | None = None


@dataclass(frozen=True, slots=True)
class Doc:
    """What the field means, for the JSON Schema's description."""

    text: str
