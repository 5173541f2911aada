"""Every scalar leaf of a parsed document, with its JSON pointer: what the credential scanner reads.

The walk visits each container once, so YAML aliases (which share one object among many places)
cannot multiply the work, and it stops quietly at a node budget and a depth cap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Leaf = tuple[str, str | None, object]  # (JSON pointer, key of the leaf or None in a list, value)


def walk(document: object, *, max_nodes: int = 100_000, max_depth: int = 64) -> Iterator[Leaf]:
    """Yield ``(pointer, key, value)`` for each scalar leaf, depth first, in document order."""
    if not isinstance(document, (dict, list)):
        if max_nodes > 0:
            yield "", None, document
        return
    budget = max_nodes - 1
    seen = {id(document)}
    stack: list[tuple[str, Iterator[tuple[str, str | None, Any]]]] = [("", _entries(document))]
    while stack:
        prefix, entries = stack[-1]
        for segment, key, value in entries:
            budget -= 1
            if budget < 0:
                return
            pointer = f"{prefix}/{segment}"
            if not isinstance(value, (dict, list)):
                yield pointer, key, value
            elif id(value) not in seen and len(stack) < max_depth:
                seen.add(id(value))
                stack.append((pointer, _entries(value)))
                break  # descend; this level's iterator resumes where it stopped
        else:
            stack.pop()


def _entries(node: dict[Any, Any] | list[Any]) -> Iterator[tuple[str, str | None, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            name = key if isinstance(key, str) else str(key)  # YAML allows int, bool, null keys
            yield escape(name), name, value
    else:
        for index, value in enumerate(node):
            yield str(index), None, value


def escape(segment: str) -> str:
    """One JSON pointer segment (RFC 6901: ``~`` is ``~0``, ``/`` is ``~1``)."""
    if "~" in segment or "/" in segment:
        return segment.replace("~", "~0").replace("/", "~1")
    return segment


def pointer(*segments: str) -> str:
    """A JSON pointer built from raw keys, e.g. ``pointer("projects", "/home/a", "mcpServers")``."""
    return "".join("/" + escape(s) for s in segments)
