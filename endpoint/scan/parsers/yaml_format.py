"""YAML configs through PyYAML's safe loader, guarded: merge keys kept to a budget, no alias cycles,
nesting capped, and errors that never quote the file. Imported only when a scan meets a YAML file.
"""

from __future__ import annotations

from typing import Any

import yaml

from endpoint.scan.parsers.base import ConfigError
from endpoint.scan.parsers.shape import BOM, at, check_graph, check_tree, generic_reason, too_deep

MAX_YAML_MERGED_PAIRS = 20_000  # key/value pairs that YAML merge keys (<<) may copy in one file

_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _GuardedLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """The safe loader, with a budget on what merge keys copy (nested merges grow quadratically).

    Strings, mappings and sequences -- nearly every node of a config -- are built here without
    recursion and several times faster than the generic constructor; every other tag goes through
    the safe constructor, which refuses the ones it does not know.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.merge_budget = MAX_YAML_MERGED_PAIRS
        self.shares_nodes = False  # an alias made two places hold one object (a graph, not a tree)

    # First characters with which a plain scalar may resolve to something other than a string.
    _TYPED_FIRST = frozenset(k for k in _SafeLoader.yaml_implicit_resolvers if k)

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        # The generic resolver tries path resolvers and regular expressions for every node; a safe
        # loader has no path resolvers, and most scalars are quoted or start with a letter that no
        # implicit type (bool, int, float, null, timestamp, merge) starts with.
        if kind is yaml.ScalarNode and (not implicit[0] or (value and value[0] not in self._TYPED_FIRST)):
            return _STR
        if kind is yaml.MappingNode:
            return _MAP
        if kind is yaml.SequenceNode:
            return _SEQ
        return str(super().resolve(kind, value, implicit))

    def construct_document(self, node: yaml.Node) -> Any:
        built: dict[int, Any] = {}  # by node identity, so that an alias yields the same object
        pending: list[tuple[Any, yaml.Node]] = []

        def make(node: yaml.Node) -> Any:
            if id(node) in built:
                self.shares_nodes = True
                return built[id(node)]
            if node.tag == _STR and isinstance(node, yaml.ScalarNode):
                value: Any = node.value
            elif node.tag == _MAP and isinstance(node, yaml.MappingNode):
                value = {}
                pending.append((value, node))
            elif node.tag == _SEQ and isinstance(node, yaml.SequenceNode):
                value = []
                pending.append((value, node))
            else:
                value = self.construct_object(node, deep=True)
            built[id(node)] = value
            return value

        root = make(node)
        # Fill containers in document order, as the generic constructor does, so that a chain of
        # merge keys is flattened one link at a time instead of recursing down the whole chain.
        for container, source in _growing(pending):
            if isinstance(container, list):
                container.extend(make(item) for item in source.value)
                continue
            self.flatten_mapping(source)
            for key_node, value_node in source.value:
                try:
                    container[make(key_node)] = make(value_node)
                except TypeError:  # a list, mapping or set used as a key
                    raise yaml.constructor.ConstructorError("while constructing a mapping", source.start_mark,
                                                            "found unhashable key", key_node.start_mark) from None
        return root

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        super().flatten_mapping(node)
        self.merge_budget -= len(node.value)
        if self.merge_budget < 0:
            raise ConfigError("unsafe_yaml", f"merge keys (<<) expand to more than {MAX_YAML_MERGED_PAIRS} entries")


def _growing(items: list[Any]) -> Any:
    """Iterate over a list that grows while it is iterated."""
    index = 0
    while index < len(items):
        yield items[index]
        index += 1


def load_yaml(text: str) -> Any:
    """One YAML document through the safe loader; tags it does not know are refused."""
    text = text.removeprefix(BOM)
    loader = _GuardedLoader(text)
    try:
        document = loader.get_single_data()
    except ConfigError:
        raise
    except yaml.constructor.ConstructorError as exc:
        raise _yaml_error(exc, "unsafe_yaml" if "constructor for the tag" in str(exc.problem) else "syntax") from None
    except yaml.MarkedYAMLError as exc:
        code = "too_deep" if "maximum nesting depth" in str(exc.problem) else "syntax"
        raise _yaml_error(exc, code) from None
    except yaml.YAMLError:
        raise ConfigError("syntax", "invalid YAML") from None
    except RecursionError:
        raise too_deep() from None
    except ValueError:  # an integer literal past Python's digit limit
        raise ConfigError("syntax", "a number is too long") from None
    finally:
        loader.dispose()
    # Only aliases can share objects or make cycles; without them the document is a plain tree.
    (check_graph if loader.shares_nodes else check_tree)(document)
    return {} if document is None else document


def _yaml_error(exc: yaml.MarkedYAMLError, code: str) -> ConfigError:
    if code == "unsafe_yaml":
        reason = "tag not allowed by the safe loader"
    elif code == "too_deep":
        reason = "nested too deep"
    else:
        parts = [part for part in (exc.context, exc.problem) if part]
        reason = generic_reason(": ".join(parts) or "invalid YAML")
    mark = exc.problem_mark or exc.context_mark
    return ConfigError(code, at(mark.line + 1, mark.column + 1, reason) if mark else reason)
