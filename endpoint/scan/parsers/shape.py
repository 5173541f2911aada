"""What every config loader shares: the nesting limit and tree checks, and error messages that quote
nothing of the file (the line that failed may hold a secret).

Both ``endpoint.scan.parsers.formats`` and ``endpoint.scan.parsers.yaml_format`` use these; neither
imports the other's helpers.
"""

from __future__ import annotations

import re
from typing import Any

from endpoint.scan.parsers.base import ConfigError

MAX_DEPTH = 64  # levels of nesting; real agent configs use fewer than 10

BOM = "\ufeff"


# -- messages ---------------------------------------------------------------------------------------

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def generic_reason(reason: str) -> str:
    """A parser's reason with quoted fragments of the file removed (punctuation such as ':' stays)."""
    def scrub(m: re.Match[str]) -> str:
        return m.group(0) if not any(c.isalnum() for c in m.group(0)) else "(…)"

    return _QUOTED.sub(scrub, reason).strip().rstrip(":") or "invalid syntax"


def at(line: int, column: int, reason: str) -> str:
    return f"line {line}, column {column}: {reason}"


def too_deep() -> ConfigError:
    return ConfigError("too_deep", f"nested deeper than {MAX_DEPTH} levels")


# -- shape ------------------------------------------------------------------------------------------


def check_tree(document: object, *, limit: int = MAX_DEPTH) -> None:
    """Refuse a document nested deeper than ``limit``; it must be a tree (no object reached twice)."""
    level = [document] if isinstance(document, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            raise too_deep()
        below: list[Any] = []
        for node in level:
            below += [c for c in (node.values() if type(node) is dict else node) if type(c) in (dict, list)]
        level = below


def check_graph(document: object, *, limit: int = MAX_DEPTH) -> None:
    """Refuse a YAML document nested deeper than ``limit``, or whose aliases make a cycle.

    YAML aliases share one object among many places, so each container is checked once: an alias
    bomb costs what its text costs.
    """
    if not isinstance(document, (dict, list)):
        return
    on_path, done = {id(document)}, set()
    stack = [(id(document), iter(_children(document)))]
    while stack:
        for child in stack[-1][1]:
            if not isinstance(child, (dict, list)) or id(child) in done:
                continue
            if id(child) in on_path:
                raise ConfigError("unsafe_yaml", "an alias refers to a node that contains it")
            if len(stack) >= limit:
                raise too_deep()
            on_path.add(id(child))
            stack.append((id(child), iter(_children(child))))
            break
        else:
            ident, _ = stack.pop()
            on_path.discard(ident)
            done.add(ident)


def _children(node: dict[Any, Any] | list[Any]) -> Any:
    return node.values() if isinstance(node, dict) else node
