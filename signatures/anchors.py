"""Anchor words: the prefilter that spares a process the regexes it cannot match.

A pattern is tried on a process only when the process's text holds one of its anchor words: whole
[a-z0-9] runs that any text the pattern matches must contain, read off the parsed pattern. The words
are kept in the signatures cache, so the loader's cache key includes a digest of this module's source.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from signatures.regex_tree import ShapeUnknown, parse

_SEP, _UNK = "<sep>", "<unk>"  # tokens besides single letters: a sure word boundary, or anything
_MAX_VARIANTS = 64
_SEP_CATEGORIES = {"CATEGORY_SPACE", "CATEGORY_NOT_WORD"}
_COMMON_WORDS = frozenset({
    "usr", "bin", "lib", "local", "opt", "applications", "contents", "macos", "program", "files", "appdata",
    "users", "home", "share", "node", "modules", "python", "dist", "resources", "app", "exe", "windows",
    "library", "support", "application", "programs", "frameworks", "helper", "cli", "main", "index", "server",
})


class _TooComplex(Exception):
    """The pattern expands into too many alternatives to prove an anchor."""


@functools.lru_cache(maxsize=4096)
def anchor_words(pattern: str) -> frozenset[str] | None:
    """Words (lower-case, 3+ chars) one of which any match of ``pattern`` contains whole; None if unprovable."""
    try:
        variants = _variants(parse(pattern))
    except (_TooComplex, ShapeUnknown, RecursionError):
        return None
    chosen: set[str] = set()
    for tokens in variants:
        words = _bounded_words(tokens)
        if not words:
            return None
        chosen.add(max(words, key=lambda w: (w not in _COMMON_WORDS, len(w))))
    return frozenset(chosen)


def _variants(items: Any) -> list[list[str]]:
    seqs: list[list[str]] = [[]]
    for op, av in items:
        alternatives = _alternatives(str(op), av)
        seqs = [s + a for s in seqs for a in alternatives]
        if len(seqs) > _MAX_VARIANTS:
            raise _TooComplex
    return seqs


def _alternatives(op: str, av: Any) -> list[list[str]]:
    if op == "LITERAL":
        ch = chr(av).lower()
        return [[ch]] if ch.isascii() and ch.isalnum() else [[_SEP]]
    if op == "AT":
        return [[_UNK]] if str(av) == "AT_NON_BOUNDARY" else [[_SEP]]
    if op == "IN":
        return [[_SEP]] if all(_is_separator(o, a) for o, a in av) else [[_UNK]]
    if op in ("SUBPATTERN", "ATOMIC_GROUP"):
        return _variants(av[-1] if op == "SUBPATTERN" else av)
    if op == "BRANCH":
        return [v for branch in av[1] for v in _variants(branch)]
    if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        return _repeat(*av)
    return [[_UNK]]


def _repeat(low: int, high: int, sub: Any) -> list[list[str]]:
    inner = _variants(sub)
    absent: list[list[str]] = [[]] if low == 0 else []
    if high == 1:
        return absent + inner
    if all(v and all(t == _SEP for t in v) for v in inner):
        return absent + [[_SEP]]
    return absent + [[_UNK]]


def _is_separator(op: Any, av: Any) -> bool:
    if str(op) == "LITERAL":
        ch = chr(av)
        return not (ch.isascii() and ch.isalnum())
    return str(op) == "CATEGORY" and str(av) in _SEP_CATEGORIES


def _bounded_words(tokens: list[str]) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    before = _UNK
    for token in [*tokens, _UNK]:
        if token not in (_SEP, _UNK):
            current.append(token)
            continue
        if len(current) >= 3 and before == _SEP and token == _SEP:
            words.append("".join(current))
        current, before = [], token
    return words


# -- rules gated by anchor words --------------------------------------------------------------------


class Rule:
    """A process pattern of one signature, compiled when a process first holds one of its anchor words."""

    __slots__ = ("_regex", "index", "source")

    def __init__(self, index: int, source: str) -> None:
        self.index = index  # the signature's position in Library.signatures
        self.source = source
        self._regex: re.Pattern[str] | None = None

    @property
    def regex(self) -> re.Pattern[str]:
        if self._regex is None:
            self._regex = re.compile(self.source, re.I)
        return self._regex


class RuleSet:
    """Regexes gated by anchor words, so that a process with none of their words costs one set lookup."""

    def __init__(self, anchors: dict[str, frozenset[str] | None]) -> None:
        self.rules: list[Rule] = []
        self.by_word: dict[str, list[int]] = {}
        self.always: list[int] = []
        self.anchors = anchors

    def add(self, index: int, source: str) -> None:
        position = len(self.rules)
        self.rules.append(Rule(index, source))
        if source not in self.anchors:
            self.anchors[source] = anchor_words(source)
        words = self.anchors[source]
        if words is None:
            self.always.append(position)
        for word in words or ():
            self.by_word.setdefault(word, []).append(position)

    def candidates(self, words: set[str]) -> list[Rule]:
        if not self.always and self.by_word.keys().isdisjoint(words):
            return []  # the common case: none of this set's words in the process
        picked = set(self.always)
        for word in words.intersection(self.by_word):
            picked.update(self.by_word[word])
        return [self.rules[p] for p in sorted(picked)]


_WORD = re.compile(r"[a-z0-9]+")
_NOT_WORD = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def text_words(text: str) -> set[str]:
    """The [a-z0-9] runs of a text: a translate-and-split for ASCII (3x quicker than a regex)."""
    text = text.lower()
    if text.isascii():
        return set(text.translate(_NOT_WORD).split())
    return set(_WORD.findall(text))
