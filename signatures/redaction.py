"""Scrubbing credential values out of any text before it leaves the process that read it.

One ``Redactor``, built from the credential kinds of the signature library (their value patterns and the
variable names that hold them), is used by the endpoint on command lines, MCP server arguments and URLs,
and by the collector on every free-text string of a report before it is stored (defence in depth). It
never raises, is idempotent, and replaces only the secret part of a string with ``[REDACTED:kind]``
(``[REDACTED]`` for a value hidden out of caution, such as a URL's query values). Pure functions, no I/O.

What is a secret here: a known key shape anywhere; the value of ``NAME=value`` or ``NAME: value`` when
NAME says secret (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``…); the argument after a secret
flag, at any length; ``-pPASSWORD`` of database clients; ``Authorization``/``Bearer``/``x-api-key``/
``cookie`` values; ``user:password@`` of a URL, its key-shaped path segments and all its query values.
"""

from __future__ import annotations

import functools
import os.path
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from signatures.regex_tree import ShapeUnknown, parse

REDACTED = "[REDACTED]"
GENERIC = "generic"  # a secret known by the name or flag that holds it, not by its shape

# Called for each value the redactor hides with a kind: (the name or flag it was held under, the value,
# the kind guessed: a credential kind's id or "generic") -> the kind to show in the marker. The endpoint
# fingerprints the value there; the collector just takes the guess.
OnSecret = Callable[[str | None, str, str], str]


class CredentialKindLike(Protocol):
    """What the redactor needs of a credential kind (``signatures.runtime.CredentialKind`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def patterns(self) -> Sequence[str]: ...
    @property
    def env(self) -> Sequence[str]: ...


_MARKER = re.compile(r"\[REDACTED(?::[\w.-]{1,64})?\]")
_REFERENCE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_]\w*|%[A-Za-z_]\w*%|\{\{[^}]*\}\}|<[^<>]*>")

# A name (of a variable, flag, key or header) holds a secret when one of its words says so...
_SECRET_WORDS = frozenset({
    "key", "pass", "pw", "pwd", "password", "passwd", "passphrase", "secret", "secrets", "token", "auth", "oauth",
    "authorization", "cookie", "cookies", "bearer", "jwt", "credential", "credentials", "apikey", "sid",
})
_SECRET_SUFFIXES = ("token", "secret", "password", "passwd", "apikey", "secretkey", "privatekey", "accesskey",
                    "authkey", "masterkey", "licensekey", "credential", "credentials")
# ... unless its last word says it names something else: a file holding the secret, its id, its length.
_PLAIN_LAST_WORDS = frozenset({
    "file", "files", "path", "dir", "id", "ids", "name", "names", "url", "uri", "urls", "endpoint", "host",
    "hostname", "port", "type", "mode", "enabled", "disabled", "required", "optional", "timeout", "ttl", "expiry",
    "expires", "expiration", "lifetime", "size", "length", "len", "count", "limit", "max", "min", "env", "var",
    "header", "format", "algorithm", "alg", "version", "location", "store", "storage", "helper", "cmd", "command",
    "prefix", "kind", "policy", "hint", "source", "method", "provider", "scope", "scopes", "user", "username",
    "login", "field", "stdin", "prompt", "fd", "from", "backend", "strategy", "server", "service", "flow",
    "level", "interval", "tokens", "none", "author", "authors",
})
_PLAIN_NAMES = frozenset({"pwd", "oldpwd", "keyboard", "keymap", "keys", "author"})
_SCHEME_WORDS = frozenset({"bearer", "basic", "token", "digest", "bot", "apikey", "key", "sso-key"})
# Headers whose own rules ran first (a cookie's value runs to the end of the line, Authorization has a scheme).
_HEADERS_DONE = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization"})

# Database clients whose short flags carry a password: -pSECRET (attached) for MySQL and MariaDB; -p SECRET
# or -pSECRET for mongo's tools and sshpass; -a SECRET for the redis-compatible command lines.
_ATTACHED_P = re.compile(r"^(?:mysql\w*|mariadb[\w-]*|mongo\w*|sshpass)$")
_NEXT_ARG = {"mongo": "-p", "mongosh": "-p", "mongodump": "-p", "mongorestore": "-p", "mongoexport": "-p",
             "mongoimport": "-p", "mongostat": "-p", "mongotop": "-p", "mongofiles": "-p", "sshpass": "-p",
             "redis-cli": "-a", "keydb-cli": "-a", "valkey-cli": "-a"}
_CLIENT_PREFIXES = ("mysql", "mariadb", "mongo", "sshpass", "redis-cli", "keydb-cli", "valkey-cli")
_DB_CLIENT_IN_TEXT = re.compile(r"(?<![\w.-])(mysql\w*|mariadb[\w-]*|mongo\w*|sshpass|redis-cli|keydb-cli|valkey-cli)"
                                r"(?:\.exe)?(?![\w-])")

_URL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s\"'<>`]*")
_VALUE = r"(\"[^\"]*\"?|'[^']*'?|[^\s\"']+)"
# NAME=value and NAME: value (JSON, YAML, headers), the name optionally quoted and after dashes.
_ASSIGNMENT = re.compile(r"(?<![\w$.\-])(-{0,2})([\"']?)([A-Za-z_][\w.\-]{0,99})\2(\s*=\s*|\s*:\s+|\s*:(?=[\"']))"
                         + _VALUE)
_AUTH_HEADER = re.compile(r"(?i)(?<![\w-])((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
                          r"(?:(bearer|basic|token|digest|bot|apikey|sso-key|key)\s+)?([^\s\"',;]+)")
_COOKIE_HEADER = re.compile(r"(?i)(?<![\w-])((?:set-)?cookie[\"']?\s*[:=]\s*[\"']?)([^\"'\r\n]+)")
_BEARER = re.compile(r"(?i)(?<![\w-])(bearer)\s+([^\s\"',;]+)")
_HOLDER_BEFORE = re.compile(r"(?:^|[\s\"'])-{0,2}[\"']?([A-Za-z_][\w.\-]{0,99})(?:[\"']?\s*[:=]\s*[\"']?|\s+)$")
_FLAG_THEN_VALUE = re.compile(r"(?<!\S)(--?[A-Za-z][\w.-]{0,99})\s+([^\s\"'][^\s\"']*)")
# Text that none of the rules can touch: no "=", none of the words a secret's name, header or client has
# (lowercase), no start of a key shape, no URL with userinfo, query or a long path segment. Most strings are
# such, and a few substring tests tell.
_URL_TRIGGER = re.compile(r"://[^\s\"'<>/]*@|://[^\s\"'<>]*[?#]|://[^\s\"'<>]*/[A-Za-z0-9_=~+-]{24}")
_TRIGGER_WORDS = ("=", "key", "pass", "pw", "secret", "token", "auth", "cookie", "bearer", "jwt", "sid",
                  "credential", "mysql", "mariadb", "mongo", "redis")


def _combinable(pattern: str) -> str | None:
    """``pattern`` as it can sit among others in one alternation (global flags made local), or None when it
    does not compile (the library's validation reports it; it must not stop a scan here)."""
    flags = re.match(r"\(\?([imsx]+)\)", pattern)
    if flags is not None:
        pattern = f"(?{flags.group(1)}:{pattern[flags.end():]})"
    try:
        re.compile(f"(?:{pattern})|x")
    except re.error:
        return None
    return pattern


def _literal_prefixes(pattern: str, limit: int = 32) -> list[str] | None:
    """The literal starts every match of ``pattern`` has (``gh[pousr]_`` -> ghp_, gho_, …), to look for with
    ``in`` before searching: None when they are too short or too many to tell."""
    if "(?" in pattern.replace("(?:", ""):
        return None  # flags or lookarounds: no telling
    try:
        return _starts_of(pattern, limit)
    except (ShapeUnknown, IndexError, TypeError, AttributeError):  # a tree of another shape: no shortcut
        return None


def _starts_of(pattern: str, limit: int) -> list[str] | None:
    starts = [""]
    for op, arg in parse(pattern):
        if op == "LITERAL":
            starts = [s + chr(arg) for s in starts]
            continue
        branch = None
        if op == "BRANCH":
            branch = arg[1]
        elif op == "SUBPATTERN" and len(arg[3]) == 1 and str(arg[3][0][0]) == "BRANCH":
            branch = arg[3][0][1][1]
        if branch is not None:
            alternatives = []
            for alternative in branch:
                literal = ""
                for sub_op, sub_arg in alternative:
                    if str(sub_op) != "LITERAL":
                        break
                    literal += chr(sub_arg)
                alternatives.append(literal)
            starts = [s + a for s in starts for a in alternatives]
        elif op == "IN" and all(str(o) == "LITERAL" for o, _ in arg) and len(arg) * len(starts) <= limit:
            starts = [s + chr(a) for s in starts for _, a in arg]
            continue
        break
    return starts if len(starts) <= limit and min(map(len, starts)) >= 3 else None


def _sub_resuming(pattern: re.Pattern[str], text: str, replace: Callable[[re.Match[str]], str | None],
                  group: int) -> str:
    """``pattern.sub``, except that a match ``replace`` keeps (None) is searched again from its ``group``:
    in "A= DB_PASSWORD=x" the value of A is where the secret's name starts."""
    out: list[str] = []
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        replaced = replace(m)
        if replaced is None:
            resume = max(m.start(group), pos + 1)
            out.append(text[pos:resume])
            pos = resume
        else:
            out.append(text[pos:m.start()] + replaced)
            pos = m.end()  # (neither pattern matches an empty string)
    out.append(text[pos:])
    return "".join(out)


def marker(kind: str | None) -> str:
    return f"[REDACTED:{kind}]" if kind else REDACTED


def _take_guess(name: str | None, value: str, kind: str) -> str:
    return kind


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a variable, flag, key or header name says its value is a secret (``--password``, ``apiKey``,
    ``DB_PASSWORD``, ``x-api-key``, ``Authorization``), and not a file, id or size of one."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip().lstrip("-")).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", snake) if w]
    if not words or snake in _PLAIN_NAMES or words[-1] in _PLAIN_LAST_WORDS:
        return False
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_SUFFIXES) or w.startswith(("passw", "secret", "apikey"))
               for w in words)


def _is_kept_value(value: str) -> bool:
    """A value that is no secret whatever holds it: empty, already redacted, or a reference to one."""
    return not value or _MARKER.fullmatch(value) is not None or _REFERENCE.fullmatch(value) is not None


def _looks_like_key(segment: str) -> bool:
    """A URL path segment shaped like a key: long, letters and digits, not words joined by dashes (a slug,
    a UUID) nor a file name. Hidden out of caution; it becomes no fingerprint."""
    if len(segment) < 24 or re.fullmatch(r"[A-Za-z0-9_=~+-]+", segment) is None:
        return False
    digits = sum(c.isdigit() for c in segment)
    letters = sum(c.isalpha() for c in segment)
    return digits >= 2 and letters >= 2 and max(len(part) for part in re.split(r"[-_]", segment)) >= 16


class Redactor:
    """Hides credential values in text, argument lists, URLs and header or environment maps."""

    def __init__(self, shapes: Iterable[tuple[str, str]], env_kinds: Mapping[str, str] = {}) -> None:
        """``shapes``: (kind id, value pattern) pairs; ``env_kinds``: variable name -> kind id."""
        self._shapes = [(kind, scoped) for kind, pattern in shapes if (scoped := _combinable(pattern)) is not None]
        self._env_kinds = {k.upper().replace("-", "_"): v for k, v in env_kinds.items()}
        try:
            self._compile_shapes()
        except re.error:  # patterns that cannot sit together (the same group name twice): those with none
            self._shapes = [(kind, pattern) for kind, pattern in self._shapes if "(?P" not in pattern]
            self._compile_shapes()
        starts = [_literal_prefixes(p) for _, p in self._shapes]
        self._shape_starts: tuple[str, ...] | None = (
            tuple(sorted({s for found in starts if found for s in found}))
            if all(found is not None for found in starts) else None)
        by_stem: dict[str, list[str]] = {}
        for start in self._shape_starts or ():
            by_stem.setdefault(start[:3], []).append(start)
        # starts that share their first 3 characters are one test (xoxa-, xoxb-… are "xox")
        self._shape_stems = tuple(sorted(os.path.commonprefix(group) for group in by_stem.values()))
        words = {*_TRIGGER_WORDS, *(name.lower() for name in self._env_kinds)}
        if self._shape_starts is not None:  # a key shape's start in any case: more than the shapes, checked after
            words |= {stem.lower() for stem in self._shape_stems}
        # the fewest substring tests: a word that contains another is covered by that one (sk-ant- by sk-)
        self._trigger_words = tuple(sorted(w for w in words if not any(o != w and o in w for o in words)))

    def _compile_shapes(self) -> None:
        named = "|".join(f"(?P<k{i}>{pattern})" for i, (_, pattern) in enumerate(self._shapes))
        self._shape_any = re.compile(named) if named else None  # which kind a whole value is
        # the same without group names, to search text with: several times faster
        self._shape_search = re.compile("|".join(f"(?:{p})" for _, p in self._shapes)) if self._shapes else None

    @classmethod
    def from_kinds(cls, kinds: Iterable[CredentialKindLike]) -> Redactor:
        """From the library's credential kinds (``signatures.runtime.CredentialKind``)."""
        shapes: list[tuple[str, str]] = []
        env_kinds: dict[str, str] = {}
        for kind in kinds:
            shapes += [(kind.id, p) for p in kind.patterns]
            for name in kind.env:
                env_kinds.setdefault(name, kind.id)
        return cls(shapes, env_kinds)

    def might_hold_secret(self, text: str) -> bool:
        """False when no rule can change ``text`` (or any string inside it, when it is a JSON document)."""
        lowered = text.lower()
        for word in self._trigger_words:  # a loop of `in` tests: faster than one regex of alternatives
            if word in lowered:
                return True
        if "://" in text and _URL_TRIGGER.search(text) is not None:
            return True
        return self._shape_starts is None and self.holds_key_shape(text)

    def holds_key_shape(self, text: str) -> bool:
        """Whether a known key shape occurs anywhere in ``text``."""
        if self._shape_search is None:
            return False
        if self._shape_starts is not None and not any(stem in text for stem in self._shape_stems):
            return False  # substring tests are many times faster than the search
        return self._shape_search.search(text) is not None

    # -- what a value is -------------------------------------------------------------------------
    def kind_of_shape(self, value: str) -> str | None:
        """The kind whose pattern the whole value has, if any."""
        if self._shape_any is None:
            return None
        found = self._shape_any.fullmatch(value)
        return self._shapes[int(found.lastgroup[1:])][0] if found is not None and found.lastgroup else None

    def kind_of_named(self, name: str | None, value: str) -> str | None:
        """The kind of a value held under ``name``: by its shape, by a known variable, else generic when
        the name says secret; None when neither says so."""
        shaped = self.kind_of_shape(value)
        if shaped is not None:
            return shaped
        if not name:
            return None
        known = self._env_kind(name)
        return known or (GENERIC if is_secret_name(name) else None)

    def _hide(self, name: str | None, value: str, kind: str, on_secret: OnSecret) -> str:
        try:
            return marker(on_secret(name, value, kind))
        except Exception:  # the caller's bookkeeping must not let the value through
            return marker(kind)

    def _env_kind(self, name: str | None) -> str | None:
        return self._env_kinds.get(name.strip().lstrip("-").upper().replace("-", "_")) if name else None

    def _hide_value(self, name: str | None, value: str, on_secret: OnSecret) -> str:
        """A secret-held value (maybe quoted) replaced, its quotes kept."""
        quote = value[0] if value and value[0] in "'\"" else ""
        closed = bool(quote) and len(value) > 1 and value.endswith(quote)
        inner = value[1:-1] if closed else value[len(quote):]
        if _is_kept_value(inner):
            return value
        kind = self.kind_of_shape(inner) or self._env_kind(name) or GENERIC
        return quote + self._hide(name, inner, kind, on_secret) + (quote if closed else "")

    # -- text ------------------------------------------------------------------------------------
    def text(self, text: str, on_secret: OnSecret = _take_guess) -> str:
        """Any free text (an argument, an evidence detail, an error message) with every secret hidden."""
        if not isinstance(text, str) or not self.might_hold_secret(text):
            return text
        try:
            return self._text(text, on_secret)
        except Exception:  # a bug here must not let the text through unredacted
            return REDACTED

    def _text(self, text: str, on_secret: OnSecret) -> str:
        if "://" not in text:
            return self._shapes_in(self._plain(text, on_secret), on_secret)
        # URLs first, on their own: their query is NAME=value pairs that the rules below would run together
        parts: list[str] = []
        last = 0
        for m in _URL.finditer(text):
            before = text[last:m.start()]
            parts.append(self._plain(before, on_secret))
            held_by = _HOLDER_BEFORE.search(before)
            if held_by is not None and is_secret_name(held_by.group(1)):  # --password=x://y: all of it
                parts.append(self._hide(held_by.group(1), m.group(0), GENERIC, on_secret))
            else:
                parts.append(self._url(m.group(0), on_secret))
            last = m.end()
        parts.append(self._plain(text[last:], on_secret))
        return self._shapes_in("".join(parts), on_secret)

    def _plain(self, text: str, on_secret: OnSecret) -> str:
        """Text with no URL in it: headers, assignments, flags and database clients' password flags."""
        if not text:
            return text
        lowered = text.lower()
        if "cookie" in lowered:
            text = _COOKIE_HEADER.sub(lambda m: self._cookie_header(m, on_secret), text)
        if "authorization" in lowered:
            text = _AUTH_HEADER.sub(lambda m: self._auth_header(m, on_secret), text)
        # flags first: "NAME: --password x" must not take the flag for NAME's value and leave x
        text = _sub_resuming(_FLAG_THEN_VALUE, text, lambda m: self._flag_value(m, on_secret), 2)
        text = _sub_resuming(_ASSIGNMENT, text, lambda m: self._assignment(m, on_secret), 5)
        if "bearer" in lowered:
            text = _BEARER.sub(lambda m: self._bearer(m, on_secret), text)
        for client in {m.group(1).lower() for m in _DB_CLIENT_IN_TEXT.finditer(text)}:
            text = self._db_flags_in_text(client, text, on_secret)
        return text

    def _shapes_in(self, text: str, on_secret: OnSecret) -> str:
        if self._shape_search is None or self._shape_starts is not None and not any(
                stem in text for stem in self._shape_stems):
            return text
        return self._shape_search.sub(
            lambda m: self._hide(None, m.group(0), self.kind_of_shape(m.group(0)) or GENERIC, on_secret), text)

    def _assignment(self, m: re.Match[str], on_secret: OnSecret) -> str | None:
        name, value = m.group(3), m.group(5)
        if name.lower().replace("_", "-") in _HEADERS_DONE or not (self._env_kind(name) or is_secret_name(name)):
            return None
        return m.group(0)[: m.start(5) - m.start(0)] + self._hide_value(name, value, on_secret)

    def _auth_header(self, m: re.Match[str], on_secret: OnSecret) -> str:
        head, word, value = m.groups()
        if _is_kept_value(value):
            return m.group(0)
        hidden = self._hide("authorization", value, self.kind_of_shape(value) or GENERIC, on_secret)
        return head + (f"{word} " if word else "") + hidden

    def _cookie_header(self, m: re.Match[str], on_secret: OnSecret) -> str:
        head, value = m.groups()
        if _is_kept_value(value.strip()):
            return m.group(0)
        return head + self._hide("cookie", value.strip(), GENERIC, on_secret)

    def _bearer(self, m: re.Match[str], on_secret: OnSecret) -> str:
        word, value = m.groups()
        if _is_kept_value(value):
            return m.group(0)
        return f"{word} " + self._hide("authorization", value, self.kind_of_shape(value) or GENERIC, on_secret)

    def _flag_value(self, m: re.Match[str], on_secret: OnSecret) -> str | None:
        flag, value = m.groups()
        if "=" in flag or not is_secret_name(flag) or _is_kept_value(value) or value.startswith("-"):
            return None
        return m.group(0)[: m.start(2) - m.start(0)] + self._hide_value(flag, value, on_secret)

    def _db_flags_in_text(self, client: str, rest: str, on_secret: OnSecret) -> str:
        client = client.removesuffix(".exe")
        if _ATTACHED_P.match(client):
            rest = re.sub(r"(?<!\S)-p([^\s\"']+)",
                          lambda m: m.group(0) if _is_kept_value(m.group(1))
                          else "-p" + self._hide("password", m.group(1), GENERIC, on_secret), rest)
        flag = _NEXT_ARG.get(client)
        if flag is not None:
            rest = re.sub(rf"(?<!\S){flag}\s+([^\s\"'-][^\s\"']*)",
                          lambda m: m.group(0) if _is_kept_value(m.group(1))
                          else f"{flag} " + self._hide("password", m.group(1), GENERIC, on_secret), rest)
        return rest

    # -- argument lists --------------------------------------------------------------------------
    def argv(self, argv: Sequence[str], on_secret: OnSecret = _take_guess) -> list[str]:
        """A command line with every secret hidden: in any argument, and the argument after a secret flag."""
        if not self.might_hold_secret("\0".join(a for a in argv if isinstance(a, str))):
            return list(argv)  # most command lines (every secret name, flag and client has a trigger word)
        out: list[str] = []
        secret_flag: str | None = None  # the flag whose value the next argument is
        client: str | None = None  # a database client named earlier on this command line
        for arg in argv:
            if not isinstance(arg, str):
                out.append(arg)
                continue
            if secret_flag is not None and not (arg.startswith("-") and len(arg) > 1):
                out.append(arg if _is_kept_value(arg) else self._hide_value(secret_flag, arg, on_secret))
                secret_flag = None
                continue
            secret_flag = None
            base = arg[max(arg.rfind("/"), arg.rfind("\\")) + 1:].lower().removesuffix(".exe")
            if base.startswith(_CLIENT_PREFIXES) and (_ATTACHED_P.match(base) or base in _NEXT_ARG):
                client = base
            elif client is not None and _ATTACHED_P.match(client) and arg.startswith("-p") and len(arg) > 2:
                out.append("-p" + (arg[2:] if _is_kept_value(arg[2:])
                                   else self._hide("password", arg[2:], GENERIC, on_secret)))
                continue
            if client is not None and arg == _NEXT_ARG.get(client):
                secret_flag = "password"
            elif arg.startswith("-") and "=" not in arg and " " not in arg and is_secret_name(arg):
                secret_flag = arg
            out.append(self.text(arg, on_secret))
        return out

    # -- maps ------------------------------------------------------------------------------------
    def mapping(self, values: Mapping[str, object], on_secret: OnSecret = _take_guess) -> dict[str, object]:
        """A header or environment map: values under secret names hidden, any other string scrubbed."""
        out: dict[str, object] = {}
        for name, value in values.items():
            if not isinstance(value, str) or _is_kept_value(value):
                out[name] = value
            elif self.kind_of_named(name, value) is not None:
                token = value.split(None, 1)
                if len(token) == 2 and token[0].lower() in _SCHEME_WORDS:
                    out[name] = f"{token[0]} " + self._hide_value(name, token[1], on_secret)
                else:
                    out[name] = self._hide_value(name, value, on_secret)
            else:
                out[name] = self.text(value, on_secret)
        return out

    # -- URLs ------------------------------------------------------------------------------------
    def url(self, url: str, on_secret: OnSecret = _take_guess) -> str:
        """A URL without ``user:password@``, key-shaped path segments, query values or fragment; never raises."""
        if not isinstance(url, str):
            return REDACTED
        try:
            if "://" not in url:  # "host:port/path?query" as some clients take it: parsed as if it had a scheme
                return self._shapes_in(self._url("x://" + url, on_secret)[4:], on_secret)
            return self._shapes_in(_URL.sub(lambda m: self._url(m.group(0), on_secret), url), on_secret)
        except Exception:
            return REDACTED

    def _url(self, url: str, on_secret: OnSecret) -> str:
        scheme, _, rest = url.partition("://")
        url_end = re.search(r"[/?#]", rest)
        authority, rest = (rest[: url_end.start()], rest[url_end.start():]) if url_end else (rest, "")
        userinfo, at, hostport = authority.rpartition("@")
        if at:
            self._userinfo(userinfo, on_secret)
        rest, _, _fragment = rest.partition("#")  # a fragment can carry a token (OAuth's implicit flow)
        path, question, query = rest.partition("?")
        path = "/".join(self._path_segment(s, on_secret) for s in path.split("/"))
        out = f"{scheme}://{self._shapes_in(hostport, on_secret)}{path}"
        if question:
            out += "?" + "&".join(self._query_item(item, on_secret) for item in query.split("&"))
        return out

    def _userinfo(self, userinfo: str, on_secret: OnSecret) -> None:
        """Report the secret of a URL's ``user:password@`` (it is dropped from the URL)."""
        user, colon, password = userinfo.partition(":")
        if colon and password and not _is_kept_value(password):
            self._hide("password", password, self.kind_of_shape(password) or GENERIC, on_secret)
        shaped = self.kind_of_shape(user)
        if shaped is not None:
            self._hide(None, user, shaped, on_secret)

    def _path_segment(self, segment: str, on_secret: OnSecret) -> str:
        if not segment or _is_kept_value(segment):
            return segment
        scrubbed = self._shapes_in(segment, on_secret)
        if scrubbed == segment and _looks_like_key(segment):
            return REDACTED
        return scrubbed

    def _query_item(self, item: str, on_secret: OnSecret) -> str:
        name, equals, value = item.partition("=")
        if not equals:
            name, value = "", item
        if _is_kept_value(value):
            return item
        kind = self.kind_of_named(name, value)
        hidden = self._hide(name, value, kind, on_secret) if kind else REDACTED
        return f"{self._shapes_in(name, on_secret)}={hidden}" if equals else hidden

