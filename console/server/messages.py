"""Sentences for people: what a refused request got wrong and what to do, from the validation errors of a
422 (``message`` beside the machine-readable ``errors``), so that no validation library's own wording
reaches the console's status bar. Submitted values are never repeated (an enroll secret could be one):
each error keeps only where it is (``loc``), its kind (``type``) and a length's or range's bound from our
own schema, never the library's text, the input or the rest of its context; and a name in ``loc`` that
is no field or parameter of the API (an extra field, a dict's key: what the client wrote, perhaps a key
pasted in the wrong place) is ``*`` there and in the sentence.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

UNNAMED = "*"  # in a loc: a name the client wrote that the API does not have, never repeated
_PLACES = ("body", "query", "path", "header", "cookie")
_BOUND_KEYS = ("max_length", "min_length", "le", "ge", "lt", "gt")

#: a field's own advice where the plain rule is not enough
_ADVICE = {
    "targets": "to act on more sightings, act on their filter (POST /api/v1/agents/actions/filter)",
    "cursor": "start again from the first page",
    "limit": "ask for fewer rows and page with next_cursor",
}


def invalid(errors: Sequence[Mapping[str, Any]], names: Collection[str], *, reason: str = "invalid_request",
            shown: int = 20) -> dict[str, Any]:
    """The detail of a 422 for these validation errors: the reason, the sentence, the first ``shown`` errors
    (each its ``loc``, names the API lacks as ``*``, its ``type`` and, for a length or range, its bound)
    and how many there are. ``names``:
    the field and parameter names the API declares (``field_names``)."""
    masked = [{**e, "loc": _masked(e.get("loc", ()), names)} for e in errors]
    return {"reason": reason, "message": sentence(masked),
            "errors": [{"loc": e["loc"], "type": str(e.get("type", "")), **_bounds(e.get("ctx"))}
                       for e in masked[:shown]],
            "error_count": len(errors)}


def _bounds(ctx: Any) -> dict[str, dict[str, int]]:
    """A length or range error's bound, a whole number from the API's own schema (``{"max_length": 1000}``),
    so that a client can say "at most 1,000 agents"; nothing else of pydantic's context, which can hold the
    input (a ``value_error``'s exception)."""
    if not isinstance(ctx, Mapping):
        return {}
    bounds = {k: v for k, v in ctx.items() if k in _BOUND_KEYS and type(v) is int}
    return {"ctx": bounds} if bounds else {}


def field_names(schema: Any) -> frozenset[str]:
    """Every property and parameter name an OpenAPI document or JSON schema declares: the names a ``loc``
    may repeat."""
    names: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            properties = node.get("properties")
            if isinstance(properties, Mapping):
                names.update(k for k in properties if isinstance(k, str))
            if isinstance(node.get("name"), str) and node.get("in") in _PLACES:  # an OpenAPI parameter
                names.add(node["name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(names)


def _masked(loc: Sequence[Any], names: Collection[str]) -> list[str | int]:
    # bool is an int too, but never a loc part pydantic makes; only real ints are list positions
    return [part if (isinstance(part, int) and not isinstance(part, bool)) or part in _PLACES
            or (isinstance(part, str) and part in names) else UNNAMED for part in loc]


def sentence(errors: Sequence[Mapping[str, Any]]) -> str:
    """One or two sentences about the first error (and how many more there are)."""
    if not errors:
        return "The request was not understood: check it against the API documentation and send it again."
    first = errors[0]
    loc = list(first.get("loc", ()))
    field = _field(loc)
    rule = _rule(str(first.get("type", "")), first.get("ctx") or {})
    advice = _ADVICE.get(field.split(".")[0]) if field else None
    if loc and loc[-1] == UNNAMED:  # a name the client wrote: said without it
        text = f"A field of {field} {rule}" if field else f"A field the request holds {rule}"
    else:
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
        if part in _PLACES or part == UNNAMED:
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
