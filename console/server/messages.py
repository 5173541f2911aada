"""Sentences for people: what a refused request got wrong and what to do, from the validation errors of a
422 (``message`` beside the machine-readable ``errors``), so that no validation library's own wording
reaches the console's status bar. Submitted values are never repeated (an enroll secret could be one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: a field's own advice where the plain rule is not enough
_ADVICE = {
    "targets": "to act on more sightings, act on their filter (POST /api/v1/agents/actions/filter)",
    "cursor": "start again from the first page",
    "limit": "ask for fewer rows and page with next_cursor",
}


def sentence(errors: Sequence[Mapping[str, Any]]) -> str:
    """One or two sentences about the first error (and how many more there are)."""
    if not errors:
        return "The request was not understood: check it against the API documentation and send it again."
    first = errors[0]
    field = _field(first.get("loc", ()))
    rule = _rule(str(first.get("type", "")), first.get("ctx") or {})
    advice = _ADVICE.get(field.split(".")[0]) if field else None
    text = f"{field or 'The request'} {rule}" if field else f"The request {rule}"
    text = text[0].upper() + text[1:] + (f": {advice}." if advice else ".")
    more = len(errors) - 1
    if more:
        text += f" {more} other {'value is' if more == 1 else 'values are'} wrong too."
    return text


def _field(loc: Sequence[Any]) -> str:
    """``["query", "limit"]`` -> ``limit``; ``["body", "targets", 3, "device_id"]`` -> ``targets[3].device_id``."""
    parts: list[str] = []
    for part in loc:
        if part in ("body", "query", "path", "header"):
            continue
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]" if parts else f"item {part}"]
        elif isinstance(part, str) and not part.startswith("function-"):
            parts.append(part)
    return ".".join(parts)


def _rule(kind: str, ctx: Mapping[str, Any]) -> str:
    expected = ctx.get("expected")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not something this request takes: leave it out"
    if kind == "literal_error" and isinstance(expected, str):
        return f"must be one of {expected}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind == "too_long":
        return f"may hold at most {ctx.get('max_length')} items"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item{'s' if ctx.get('min_length') != 1 else ''}"
    if kind == "string_too_long":
        return f"may be at most {ctx.get('max_length')} characters long"
    if kind == "string_too_short":
        return "may not be empty"
    if kind == "string_pattern_mismatch":
        return "holds a character it may not (a NUL)"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind in ("string_type", "str_type"):
        return "must be text"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object"
    if kind.startswith("datetime") or kind.startswith("date"):
        return "must be a time in ISO 8601 (2026-01-31T09:00:00Z)"
    return "is not valid here"
