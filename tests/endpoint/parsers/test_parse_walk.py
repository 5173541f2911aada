"""walk(): every scalar leaf once, with its JSON pointer and key, within node and depth caps."""

from __future__ import annotations

import pytest

from endpoint.scan.parsers import walk
from endpoint.scan.parsers.walk import pointer


def test_leaves_come_in_document_order_with_pointers_and_keys():
    document = {"mcpServers": {"gh": {"command": "npx", "args": ["-y", "pkg"], "env": {"TOKEN": "x"}}}, "n": 1}
    assert list(walk(document)) == [
        ("/mcpServers/gh/command", "command", "npx"),
        ("/mcpServers/gh/args/0", None, "-y"),
        ("/mcpServers/gh/args/1", None, "pkg"),
        ("/mcpServers/gh/env/TOKEN", "TOKEN", "x"),
        ("/n", "n", 1),
    ]


def test_pointer_segments_escape_slash_and_tilde():
    document = {"projects": {"/home/a~b": {"k": None}}}
    assert list(walk(document)) == [("/projects/~1home~1a~0b/k", "k", None)]
    assert pointer("projects", "/home/a~b", "k") == "/projects/~1home~1a~0b/k"


def test_non_string_keys_are_named_as_text():
    assert list(walk({1: "a", 2.5: "b", None: "c"})) == [("/1", "1", "a"), ("/2.5", "2.5", "b"), ("/None", "None", "c")]


def test_a_scalar_document_is_one_leaf():
    assert list(walk("text")) == [("", None, "text")]
    assert list(walk({})) == []


def test_a_shared_container_is_visited_once():
    shared = {"TOKEN": "x"}
    assert list(walk({"a": shared, "b": shared, "c": [shared]})) == [("/a/TOKEN", "TOKEN", "x")]


def test_a_cycle_does_not_loop():
    cyclic: list[object] = ["leaf"]
    cyclic.append(cyclic)
    assert list(walk(cyclic)) == [("/0", None, "leaf")]


def test_it_stops_quietly_at_the_node_budget():
    document = {"items": list(range(1_000))}
    leaves = list(walk(document, max_nodes=10))
    assert len(leaves) == 8  # ten nodes: the root, the "items" list and eight of its numbers
    assert leaves[-1] == ("/items/7", None, 7)


def test_it_skips_what_lies_below_the_depth_cap():
    document: dict[str, object] = {"v": 0}
    node = document
    for level in range(1, 100):
        node["next"] = {"v": level}
        node = node["next"]  # type: ignore[assignment]
    values = [value for _, _, value in walk(document, max_depth=5)]
    assert values == [0, 1, 2, 3, 4]


@pytest.mark.timeout(30)
def test_a_wide_document_is_walked_whole():
    document = {f"k{i}": {"a": [i, str(i)], "b": {"c": i}} for i in range(15_000)}  # 90,000 nodes
    count = sum(1 for _ in walk(document))
    assert count == 45_000
