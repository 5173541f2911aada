"""Reads signature pack files and the provider catalog from YAML and validates them, with file:line errors.

The YAML is composed into a node tree (safe tags only, no duplicate keys), turned into plain data,
validated by the pydantic models in ``signatures.schema``, and every error is mapped back to the line
of the node it concerns. Checks that span files (duplicate ids, unknown providers) come last. Only a
cold start (no fresh cache) and ``signatures check`` come here; see ``signatures.loader``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from signatures.anchors import anchor_words
from signatures.errors import SignatureError
from signatures.schema import Catalog, Pack

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_BOOL_WORDS = frozenset(["yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF"])
_NULL_WORDS = frozenset(["null", "Null", "NULL"])


class _PackLoader(_Loader):  # type: ignore[misc]
    """The safe loader, with a quicker tag resolver for the plain words that fill packs."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # Most scalars are keys and names: a plain word is text unless it is a YAML bool or null.
        if kind is yaml.ScalarNode and implicit[0] and value[:1].isalpha():
            if value in _BOOL_WORDS:
                return f"{_TAG}bool"
            return f"{_TAG}null" if value in _NULL_WORDS else f"{_TAG}str"
        return super().resolve(kind, value, implicit)
_SCALAR_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MAX_DEPTH = 64
_constructor = yaml.constructor.SafeConstructor()
_M = TypeVar("_M", bound=BaseModel)


class _Problem(Exception):
    """A problem at a YAML node, raised while turning the node tree into data."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


@dataclass
class SourceFile:
    """One YAML file: its path and node tree, to find the line of any location in its data."""

    path: Path
    root: yaml.Node | None

    def line(self, loc: Sequence[int | str]) -> int:
        """The 1-based line of the deepest node that ``loc`` (a pydantic error location) reaches."""
        node = self.root
        if node is None:
            return 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1

    def where(self, loc: Sequence[int | str]) -> str:
        return f"{self.path}:{self.line(loc)}"


def _child(node: yaml.Node, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                found: yaml.Node = value
                return found
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item: yaml.Node = node.value[part]
        return item
    return None


# -- YAML ------------------------------------------------------------------------------------------


def read_yaml(path: Path) -> tuple[object, SourceFile]:
    """Parse one file into plain data; raises SignatureError with file:line on any YAML problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SignatureError([f"{path}:1: cannot read: {exc}"]) from exc
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> tuple[object, SourceFile]:
    try:
        root: yaml.Node | None = yaml.compose(text, Loader=_PackLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise SignatureError([f"{path}:{line}: bad YAML: {exc.problem or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise SignatureError([f"{path}:1: bad YAML: {exc}"]) from exc
    source = SourceFile(path, root)
    if root is None:
        return None, source
    try:
        return _data(root, 0), source
    except _Problem as exc:
        raise SignatureError([f"{path}:{exc.node.start_mark.line + 1}: {exc.message}"]) from exc


def _data(node: yaml.Node, depth: int) -> object:
    if depth > _MAX_DEPTH:
        raise _Problem(node, "nested too deeply (or a recursive alias)")
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        _check_tag(node, f"{_TAG}seq")
        return [_data(item, depth + 1) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        _check_tag(node, f"{_TAG}map")
        return _mapping(node, depth)
    raise _Problem(node, "unexpected YAML node")


def _mapping(node: yaml.MappingNode, depth: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for key_node, value_node in node.value:
        if key_node.tag == f"{_TAG}merge":
            raise _Problem(key_node, "merge keys (<<) are not supported in packs")
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Problem(key_node, "a mapping key must be a plain scalar")
        key = str(_scalar(key_node))
        if key in out:
            raise _Problem(key_node, f"duplicate key {key!r}")
        out[key] = _data(value_node, depth + 1)
    return out


def _scalar(node: yaml.ScalarNode) -> object:
    tag = node.tag
    if tag == f"{_TAG}str" or tag == f"{_TAG}timestamp":
        return node.value  # dates stay text: no field of the format is a date
    _check_tag(node, None)
    if tag == f"{_TAG}null":
        return None
    return _constructor.construct_object(node, deep=True)


def _check_tag(node: yaml.Node, allowed: str | None) -> None:
    if node.tag != allowed and node.tag not in _SCALAR_TAGS:
        raise _Problem(node, f"unsupported YAML tag {node.tag!r}: packs are plain safe YAML")


# -- validation ------------------------------------------------------------------------------------


def _validate(model: type[_M], data: object, source: SourceFile) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SignatureError([_describe(error, source) for error in exc.errors()]) from exc


def _describe(error: Any, source: SourceFile) -> str:
    loc = tuple(error.get("loc", ()))
    field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}" if loc else "unknown field"
    elif kind == "missing":
        message = f"missing field {loc[-1]!r}" if loc else "missing field"
    else:
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    where = source.where(loc)
    return f"{where}: {field}: {message}" if field and kind not in ("extra_forbidden", "missing") else \
        f"{where}: {message}"


def read_pack(path: Path) -> tuple[Pack, SourceFile]:
    data, source = read_yaml(path)
    return _validate(Pack, data, source), source


def read_catalog(path: Path) -> tuple[Catalog, SourceFile]:
    data, source = read_yaml(path)
    return _validate(Catalog, data, source), source


def cross_check(packs: Sequence[tuple[Pack, SourceFile]], catalog: tuple[Catalog, SourceFile] | None) -> list[str]:
    """Problems that span files: duplicate ids, unknown provider or credential kind references."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for pack, source in packs:
        for i, sig in enumerate(pack.signatures):
            where = source.where(("signatures", i, "id"))
            if sig.id in seen:
                problems.append(f"{where}: duplicate signature id {sig.id!r} (first at {seen[sig.id]})")
            else:
                seen[sig.id] = where
    if catalog is None:
        return problems
    cat, cat_source = catalog
    problems += _duplicates(cat_source, "providers", [p.id for p in cat.providers], "provider")
    problems += _duplicates(cat_source, "credentials", [c.id for c in cat.credentials], "credential kind")
    kinds = {c.id for c in cat.credentials}
    for i, provider in enumerate(cat.providers):
        if provider.credential is not None and provider.credential not in kinds:
            problems.append(f"{cat_source.where(('providers', i, 'credential'))}: unknown credential kind "
                            f"{provider.credential!r}")
    provider_ids = {p.id for p in cat.providers}
    for pack, source in packs:
        for i, sig in enumerate(pack.signatures):
            for j, ref in enumerate(sig.providers):
                if ref not in provider_ids:
                    problems.append(f"{source.where(('signatures', i, 'providers', j))}: unknown provider {ref!r}")
    return problems


def lint(packs: Sequence[tuple[Pack, SourceFile]]) -> list[str]:
    """Patterns the matcher cannot prefilter: they would be tried on every process of every scan."""
    problems = []
    for pack, source in packs:
        for i, sig in enumerate(pack.signatures):
            for field in ("exe", "cmdline"):
                for j, pattern in enumerate(getattr(sig.process, field)):
                    if anchor_words(pattern) is None:
                        problems.append(
                            f"{source.where(('signatures', i, 'process', field, j))}: process.{field}: pattern "
                            f"{pattern!r} needs a whole literal word of 3+ letters or digits between "
                            f"separators (e.g. [\\\\/]name[\\\\/]) for the prefilter")
    return problems


def _duplicates(source: SourceFile, section: str, ids: list[str], what: str) -> list[str]:
    first: dict[str, int] = {}
    problems = []
    for i, ident in enumerate(ids):
        if ident in first:
            problems.append(f"{source.where((section, i, 'id'))}: duplicate {what} id {ident!r}")
        first.setdefault(ident, i)
    return problems


def read_all(pack_paths: Iterable[Path], catalog_path: Path
             ) -> tuple[list[tuple[Pack, SourceFile]], tuple[Catalog, SourceFile] | None, list[str]]:
    """Read every file, collecting every file's problems rather than stopping at the first."""
    problems: list[str] = []
    packs: list[tuple[Pack, SourceFile]] = []
    for path in pack_paths:
        try:
            packs.append(read_pack(path))
        except SignatureError as exc:
            problems += exc.problems
    catalog: tuple[Catalog, SourceFile] | None = None
    try:
        catalog = read_catalog(catalog_path)
    except SignatureError as exc:
        problems += exc.problems
    problems += cross_check(packs, catalog) + lint(packs)
    return packs, catalog, problems
