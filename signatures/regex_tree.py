"""The parse tree of a regular expression, for the code that reads a pattern's shape.

Two speed-ups read what every match of a pattern must contain: ``anchors`` (the words that let a
process skip the patterns it cannot match) and ``redaction`` (the literal starts of a secret's shape,
looked for with ``in`` before the regex). Python has no public API for a pattern's structure, so this
module is the one place that uses ``re``'s own parser (``re._parser``); callers get plain
``(opcode name, argument)`` pairs and treat ``ShapeUnknown`` as "no shortcut": when a Python release
changes the parser, patterns are simply tried in full, never matched wrongly.
"""

from __future__ import annotations

import importlib
import re
from typing import Any


class ShapeUnknown(Exception):
    """The pattern's tree cannot be read (a bad pattern, or a parser this module does not know)."""


def _parser() -> Any:
    try:
        return importlib.import_module("re._parser")
    except ImportError as exc:  # a Python without it: every caller falls back
        raise ShapeUnknown("re._parser is not available") from exc


def parse(pattern: str) -> list[tuple[str, Any]]:
    """The top-level items of ``pattern`` as (opcode name, argument) pairs, e.g. ``("LITERAL", 97)``.

    Arguments are ``re``'s own: sub-patterns inside them are iterables of (opcode, argument) whose
    opcodes compare equal to their names with ``str()``."""
    try:
        tree = _parser().parse(pattern)
        return [(str(op), arg) for op, arg in tree]
    except (re.error, RecursionError) as exc:
        raise ShapeUnknown(f"not a pattern: {exc}") from exc
    except (AttributeError, TypeError, ValueError) as exc:  # the parser's shape changed
        raise ShapeUnknown(f"unknown parse tree: {type(exc).__name__}") from exc
