"""Config text to a plain document (dicts, lists, scalars): JSON, JSONC, YAML, TOML and dotenv.

Every loader raises ``ConfigError`` with a line and column and a generic reason; no message quotes
the file, because the line that failed may hold a secret. Documents are capped at ``MAX_DEPTH``
levels of nesting (both in ``endpoint.scan.parsers.shape``), and YAML is read with the safe loader,
with merge keys kept to a budget and no alias cycles (``endpoint.scan.parsers.yaml_format``). PyYAML
and tomllib are imported only when a file of their dialect is parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from endpoint.scan.parsers.base import ConfigError
from endpoint.scan.parsers.shape import BOM, at, check_tree, generic_reason, too_deep


def _blank(text: str) -> bool:
    return not text or text.isspace()


# -- JSON and JSONC ---------------------------------------------------------------------------------

# One pass blanks comments, a second one trailing commas. Each pattern's first alternative takes a
# whole run of ordinary text and complete strings at once (so "//" or "," inside a string is never
# touched, and the callback runs once per comment or comma rather than once per string).
_JSON_STRING = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'  # "unrolled": no backtracking inside a string
_COMMENT = re.compile(rf'(?P<keep>(?:[^"/]++|{_JSON_STRING})++)|//[^\n]*|/\*[\s\S]*?\*/|(?P<open>/\*)')
_TRAILING_COMMA = re.compile(rf'(?P<keep>(?:[^",]++|{_JSON_STRING}|,(?!\s*[}}\]]))++)|,')
_NOT_NEWLINE = re.compile(r"[^\n]")


def load_json(text: str) -> Any:
    """Strict JSON; an empty file is an empty document."""
    text = text.removeprefix(BOM)
    if _blank(text):
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("syntax", at(exc.lineno, exc.colno, exc.msg)) from None
    except RecursionError:
        raise too_deep() from None
    except ValueError:  # an integer literal past Python's digit limit
        raise ConfigError("syntax", "a number is too long") from None
    check_tree(document)
    return document


def load_jsonc(text: str) -> Any:
    """JSON with // and /* */ comments and trailing commas, as VS Code, Zed and opencode accept."""
    text = text.removeprefix(BOM)
    try:
        return load_json(text)
    except ConfigError as exc:
        if exc.code != "syntax":
            raise
    # Blanking comments and trailing commas in place keeps every line and column where it was,
    # so that json's error position still points into the original file.
    return load_json(_TRAILING_COMMA.sub(_keep_string_or_blank, _COMMENT.sub(_blank_comment, text)))


def _blank_comment(m: re.Match[str]) -> str:
    kind, token = m.lastgroup, m.group(0)
    if kind == "keep":
        return token
    if kind == "open":  # "/*" with no "*/" after it
        line = m.string.count("\n", 0, m.start()) + 1
        column = m.start() - m.string.rfind("\n", 0, m.start())
        raise ConfigError("syntax", at(line, column, "unterminated comment"))
    return _NOT_NEWLINE.sub(" ", token) if "\n" in token else " " * len(token)


def _keep_string_or_blank(m: re.Match[str]) -> str:
    return m.group(0) if m.lastgroup == "keep" else " "


# -- YAML -------------------------------------------------------------------------------------------


def load_yaml(text: str) -> Any:
    """One YAML document through the safe loader; tags it does not know are refused."""
    # PyYAML costs some 10 ms to import: only a scan that meets a YAML file pays it.
    from endpoint.scan.parsers.yaml_format import load_yaml as load

    return load(text)


# -- TOML -------------------------------------------------------------------------------------------

_TOML_WHERE = re.compile(r"^(?P<reason>.*?) \(at (?:line (?P<line>\d+), column (?P<column>\d+)|end of document)\)$")


def load_toml(text: str) -> Any:
    import tomllib  # imported by the first TOML file a scan meets

    text = text.removeprefix(BOM)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_WHERE.match(str(exc))
        if m is None:
            raise ConfigError("syntax", "invalid TOML") from None
        reason = generic_reason(m["reason"])
        if m["line"] is None:
            raise ConfigError("syntax", f"end of file: {reason}") from None
        raise ConfigError("syntax", at(int(m["line"]), int(m["column"]), reason)) from None
    except RecursionError:
        raise too_deep() from None
    except ValueError:  # an integer literal past Python's digit limit
        raise ConfigError("syntax", "a number is too long") from None
    check_tree(document)
    return document


# -- dotenv -----------------------------------------------------------------------------------------

_ASSIGNMENT = re.compile(r"(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s*(?P<rest>.*)\Z", re.S)
_DOUBLE_QUOTED = re.compile(r'"((?:[^"\\]++|\\.)*+)"', re.S)  # may span lines
_ESCAPE = re.compile(r"\\(.)", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
_INLINE_COMMENT = re.compile(r"\s#")


def load_dotenv(text: str, warnings: list[str]) -> dict[str, str]:
    """KEY=VALUE lines (``export`` prefix, quotes, # comments); a bad line is a warning, not an error."""
    text = text.removeprefix(BOM)
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    env: dict[str, str] = {}
    index = 0
    while index < len(lines):
        raw, number = lines[index], index + 1
        index += 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _ASSIGNMENT.match(line)
        if m is None:
            warnings.append(f"line {number}: not a KEY=VALUE assignment; skipped")
            continue
        rest = m["rest"]
        if not rest.startswith('"'):
            env[m["key"]] = _unquoted_value(rest, number)
            continue
        # A double-quoted value may run over several lines: match it in the whole text, once.
        opening = raw.index('"', raw.index("="))
        quoted = _DOUBLE_QUOTED.match(text, starts[index - 1] + opening)
        if quoted is None:
            raise ConfigError("syntax", at(number, opening + 1, "unterminated double-quoted value"))
        env[m["key"]] = _ESCAPE.sub(lambda e: _ESCAPES.get(e.group(1), e.group(0)), quoted.group(1))
        while index < len(lines) and starts[index] < quoted.end():
            index += 1
    return env


def _unquoted_value(rest: str, line: int) -> str:
    if rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            raise ConfigError("syntax", at(line, 1, "unterminated single-quoted value"))
        return rest[1:end]
    comment = _INLINE_COMMENT.search(rest)
    return (rest[: comment.start()] if comment else rest).strip()
