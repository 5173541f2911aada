"""Matching: which signature a process, MCP command, URL, extension or package is, and what it reveals.

``Library`` holds the loaded signatures with indexes built once (name sets, prefiltered regexes), so
that a scan can ask about a thousand processes in a few milliseconds. Everything here is pure: no
file, process or network I/O (a script's text comes through the ``read_script`` callback).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal, NamedTuple

from signatures.anchors import Rule, RuleSet, text_words
from signatures.launchers import ProcessFacts, basename, name_candidates, normalise, split_cmdline
from signatures.runtime import CredentialKind, FileMatcher, Provider, SettingMarker, Signature

GENERIC_MCP = "mcp-server"
CMDLINE_CAP = 1024  # characters of the joined command line that cmdline patterns see
SCRIPT_CAP = 256 * 1024  # characters of a script read for its imports

ReadScript = Callable[[str], str | None]

# Rule ranks: lower is stronger evidence. A path pattern or a command-line pattern was written for
# this one agent; an exact name is nearly as good; an import or a wildcard name is a weaker hint.
_RANK = {"process.exe": 0, "process.cmdline": 1, "process.names": 2, "process.script_imports": 3,
         "process.names*": 4}


class Match(NamedTuple):
    """A signature that matched, the rule that decided it, and a short safe description of why."""

    signature: Signature
    rule: str
    detail: str


# -- Python imports --------------------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import\b|import[ \t]+([\w.][\w., \t]*))", re.M)


def imported_modules(text: str) -> set[str]:
    """The modules named by ``import X`` / ``from X import`` lines (top-level and nested)."""
    found: set[str] = set()
    for match in _IMPORT_LINE.finditer(text[:SCRIPT_CAP]):
        if match.group(1):
            found.add(match.group(1).lower())
        else:
            for part in match.group(2).split(","):
                name = part.strip().split()[0] if part.strip() else ""
                if name:
                    found.add(name.lower())
    return found


# -- hosts ------------------------------------------------------------------------------------------


def host_pattern(pattern: str) -> re.Pattern[str]:
    """A host wildcard as a regex: a leading ``*.`` spans one or more labels, any other ``*`` part of one."""
    pattern = pattern.lower().rstrip(".")
    head = ""
    if pattern.startswith("*."):
        head, pattern = r"(?:[^.]+\.)+", pattern[2:]
    body = r"[^.]+".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(head + body)


def normalise_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host


class _HostTable:
    """Exact and wildcard hosts to one value each; the first declared wins."""

    def __init__(self) -> None:
        self.exact: dict[str, int] = {}
        # (pattern, literal head, literal tail, value): a wildcard is compiled only for a host that has
        # its head and tail, so a scan that asks about a few hosts compiles next to nothing.
        self.wild_patterns: list[tuple[str, str, str, int]] = []
        self._wild: dict[str, re.Pattern[str]] = {}

    def add(self, pattern: str, value: int) -> None:
        if "*" in pattern:
            lowered = pattern.lower().rstrip(".")
            self.wild_patterns.append((lowered, lowered.split("*", 1)[0], lowered.rsplit("*", 1)[1], value))
        else:
            self.exact.setdefault(normalise_host(pattern), value)

    def find(self, host: str) -> int | None:
        host = normalise_host(host)
        if host in self.exact:
            return self.exact[host]
        for pattern, head, tail, value in self.wild_patterns:
            if not (host.startswith(head) and host.endswith(tail)):
                continue
            regex = self._wild.get(pattern)
            if regex is None:
                regex = self._wild[pattern] = host_pattern(pattern)
            if regex.fullmatch(host):
                return value
        return None


# -- credentials ------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"\$\{|\$\(|\{\{|<[^>]*>|^\$[A-Za-z_]|^%[A-Za-z_]+%$|x{4,}|\*{3,}|\.{3}|your[_-]"
    r"|change[_-]?me|placeholder|replace[_-]?me|redacted|example|dummy|^(?:none|null|undefined|todo|secret)$"
    r"|://", re.I)


_SPACE = re.compile(r"\s")  # the same characters as str.isspace()


def looks_secret(value: str) -> bool:
    """Whether a value could be a real secret (not empty, short, spaced, templated or a placeholder)."""
    if not 12 <= len(value) <= 4096 or value.isdigit():
        return False
    if _SPACE.search(value) is not None or len(set(value)) < 6:
        return False
    return _PLACEHOLDER.search(value) is None


def env_key(name: str) -> str:
    return name.strip().upper().replace("-", "_")


# -- autonomy ---------------------------------------------------------------------------------------


def _flag_spec(entry: str) -> tuple[str, str | None]:
    parts = entry.split()
    if len(parts) == 2:
        return parts[0], parts[1]
    flag, eq, value = entry.partition("=")
    return flag, (value if eq else None)


def flags_present(specs: Sequence[tuple[str, tuple[str, str | None]]], argv: Sequence[str]) -> list[str]:
    """The entries of ``specs`` found in argv: ``--f``, ``--f=v``, ``--f v``; options end at ``--``."""
    args = split_cmdline(argv)
    try:
        args = args[: args.index("--")]
    except ValueError:
        pass
    found: list[str] = []
    for entry, (flag, want) in specs:
        for i, arg in enumerate(args):
            name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if name != flag:
                continue
            if want is None:
                hit = True
            elif eq:
                hit = value.lower() == want.lower()
            else:
                hit = i + 1 < len(args) and args[i + 1].lower() == want.lower()
            if hit:
                found.append(entry)
                break
    return found


def _lookup(node: object, parts: Sequence[str], path: tuple[str, ...] = ()) -> Iterator[tuple[str, object]]:
    """(dotted path, value) for each place ``parts`` reaches: literal dotted keys first, then nested."""
    if not parts:
        yield ".".join(path), node
        return
    parts = list(parts)
    if isinstance(node, dict):
        for n in range(len(parts), 0, -1):
            head = parts[:n]
            if head == ["*"]:
                for key, value in list(node.items())[:1000]:
                    yield from _lookup(value, parts[1:], (*path, str(key)))
            elif "*" not in head:
                key = ".".join(head)
                if key in node:
                    yield from _lookup(node[key], parts[n:], (*path, key))
    elif isinstance(node, list) and parts[0] == "*":
        for i, value in enumerate(node[:1000]):
            yield from _lookup(value, parts[1:], (*path, str(i)))


def _fires(marker: SettingMarker, value: object) -> bool:
    want = marker.equals
    if want is not None:
        if isinstance(want, bool):
            return value is want
        if isinstance(want, int):
            return type(value) is int and value == want
        if isinstance(want, str):
            return isinstance(value, str) and value == want
        return value == want
    if marker.contains is not None:
        if isinstance(value, str):
            return marker.contains in value
        if isinstance(value, (list, dict)):
            return marker.contains in value
        return False
    return value not in (None, False, "", 0, [], {})


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)[:80]
    try:
        return json.dumps(value, sort_keys=True, default=str)[:80]
    except (TypeError, ValueError):
        return type(value).__name__


def settings_present(markers: Sequence[SettingMarker], dialect: str, document: object) -> list[str]:
    found: list[str] = []
    for marker in markers:
        if marker.dialects and dialect not in marker.dialects:
            continue
        try:
            hits = [f"{path}={_show(value)}" for path, value in _lookup(document, marker.key.split("."))
                    if _fires(marker, value)]
        except (TypeError, ValueError, RecursionError):
            continue  # an odd document shape is no autonomy marker
        found.extend(h for h in hits if h not in found)
    return found


# -- the library ------------------------------------------------------------------------------------


class Library:
    """The loaded signatures, providers and credential kinds, with the lookups the endpoint makes."""

    def __init__(self, signatures: Sequence[Signature], providers: Sequence[Provider],
                 credential_kinds: Sequence[CredentialKind], *,
                 anchors: Mapping[str, frozenset[str] | None] | None = None) -> None:
        self.signatures = list(signatures)
        self.by_id = {s.id: s for s in self.signatures}
        self.providers = list(providers)
        self.credential_kinds = list(credential_kinds)
        self.file_templates: list[tuple[Signature, FileMatcher]] = [(s, f) for s in self.signatures for f in s.files]
        self.app_templates: list[tuple[Signature, str]] = [(s, a) for s in self.signatures for a in s.apps]
        self.project_markers = frozenset(
            f.path.split("/")[1] for _, f in self.file_templates if f.path.startswith("{project}/"))
        self._generic = self.by_id.get(GENERIC_MCP)
        self._anchors: dict[str, frozenset[str] | None] = dict(anchors or {})
        self._index_processes()
        self._index_artifacts()
        self._index_providers()
        self._index_credentials()
        self._flags = {s.id: [(e, _flag_spec(e)) for e in s.autonomy.flags] for s in self.signatures}

    # -- indexes ---------------------------------------------------------------------------------
    def _index_processes(self) -> None:
        self._names: dict[str, list[int]] = {}
        self._prefix15: dict[str, list[int]] = {}
        self._globs: list[tuple[Rule, int, str]] = []
        self._exe = RuleSet(self._anchors)
        self._cmdline = RuleSet(self._anchors)
        self._exclude: dict[int, list[Rule]] = {}
        self._imports: dict[str, list[int]] = {}
        for i, sig in enumerate(self.signatures):
            proc = sig.process
            for name in proc.names:
                key = normalise(name)
                if "*" in key:
                    self._globs.append((Rule(i, ".*".join(re.escape(p) for p in key.split("*"))), i, name))
                    continue
                self._names.setdefault(key, []).append(i)
                if len(key) > 15:
                    self._prefix15.setdefault(key[:15], []).append(i)
            for source in proc.exe:
                self._exe.add(i, source)
            for source in proc.cmdline:
                self._cmdline.add(i, source)
            if proc.exclude:
                self._exclude[i] = [Rule(i, p) for p in proc.exclude]
            for module in proc.script_imports:
                self._imports.setdefault(module.lower(), []).append(i)
        self._any_glob = re.compile("|".join(f"(?:{g.source})" for g, _, _ in self._globs)) if self._globs else None

    def _index_artifacts(self) -> None:
        # Built back to front, so that the first signature to declare an id keeps it.
        self._extensions = {e.lower(): s for s in reversed(self.signatures) for e in s.extensions}
        self._npm = {n.lower(): s for s in reversed(self.signatures) for n in s.packages.npm}
        self._pypi = {pep503(n): s for s in reversed(self.signatures) for n in s.packages.pypi}
        self._tool_hosts = _HostTable()
        self._sig_hosts = _HostTable()
        for i, sig in enumerate(self.signatures):
            for host in sig.network.hosts:
                self._sig_hosts.add(host, i)
                if sig.type == "tool_server" and sig.id != GENERIC_MCP:
                    self._tool_hosts.add(host, i)

    def _index_providers(self) -> None:
        self._provider_hosts = _HostTable()
        self._ports: dict[int, Provider] = {}
        for i, provider in enumerate(self.providers):
            for host in provider.hosts:
                self._provider_hosts.add(host, i)
            if provider.local:
                for port in provider.ports:
                    self._ports.setdefault(port, provider)

    def _index_credentials(self) -> None:
        self._credential_env: dict[str, CredentialKind] = {}
        shaped = [(k, p) for k in self.credential_kinds for p in k.patterns]
        for kind in self.credential_kinds:
            for name in kind.env:
                self._credential_env.setdefault(env_key(name), kind)
        self._shapes = shaped  # each compiled only where the combined pattern cannot be
        try:
            self._shape_any: re.Pattern[str] | None = re.compile(
                "|".join(f"(?P<k{i}>{p})" for i, (_, p) in enumerate(shaped))) if shaped else None
        except re.error:
            self._shape_any = None  # a pattern that cannot be combined is tried on its own

    def anchors(self) -> dict[str, frozenset[str] | None]:
        """The prefilter words of every process pattern (kept in the load cache)."""
        return dict(self._anchors)

    # -- processes -------------------------------------------------------------------------------
    def match_process(self, facts: ProcessFacts, read_script: ReadScript | None = None) -> list[Match]:
        """Signatures this process matches, best first; [] if none."""
        hits: dict[int, tuple[int, str, str]] = {}
        candidates, script = name_candidates(facts)
        for name, source, truncated in candidates:
            self._match_name(name, source, truncated, hits)
        joined = " ".join(facts.cmdline)[:CMDLINE_CAP]
        if not joined and not facts.exe:
            return self._ranked(hits, facts, joined)  # a kernel thread: its name is all there is
        words = text_words(f"{facts.exe} {joined}")
        for rule in self._exe.candidates(words):
            if facts.exe and rule.regex.search(facts.exe):
                _hit(hits, rule.index, "process.exe", f"exe matches /{rule.source}/")
        for rule in self._cmdline.candidates(words):
            if rule.regex.search(joined):
                _hit(hits, rule.index, "process.cmdline", f"command line matches /{rule.source}/")
        if script and self._imports and read_script is not None:
            self._match_imports(script, read_script, hits)
        return self._ranked(hits, facts, joined)

    def _match_name(self, name: str, source: str, truncated: bool, hits: dict[int, tuple[int, str, str]]) -> None:
        for i in self._names.get(name, ()):
            _hit(hits, i, "process.names", f"{source} {name!r}")
        if truncated:
            for i in self._prefix15.get(name, ()):
                _hit(hits, i, "process.names", f"{source} {name!r} (truncated)")
        if self._any_glob is not None and self._any_glob.fullmatch(name):
            for rule, i, glob in self._globs:
                if rule.regex.fullmatch(name):
                    _hit(hits, i, "process.names*", f"{source} {name!r} is {glob!r}")

    def _match_imports(self, script: str, read_script: ReadScript, hits: dict[int, tuple[int, str, str]]) -> None:
        try:
            text = read_script(script)
        except OSError:
            return
        if not text:
            return
        for module in sorted(imported_modules(text)):
            parts = module.split(".")
            for n in range(len(parts), 0, -1):
                for i in self._imports.get(".".join(parts[:n]), ()):
                    _hit(hits, i, "process.script_imports", f"script imports {module!r}")

    def _ranked(self, hits: dict[int, tuple[int, str, str]], facts: ProcessFacts, joined: str) -> list[Match]:
        if not hits:
            return []
        kept = []
        for i, (rank, rule, detail) in hits.items():
            sig = self.signatures[i]
            if facts.platform and (facts.platform not in sig.platforms or
                                   (sig.process.platforms and facts.platform not in sig.process.platforms)):
                continue
            if any(x.regex.search(facts.exe) or x.regex.search(joined) for x in self._exclude.get(i, ())):
                continue
            kept.append((sig.id == GENERIC_MCP, rank, i, Match(sig, rule.rstrip("*"), detail)))
        kept.sort(key=lambda k: k[:3])
        return [k[3] for k in kept]

    def match_command(self, command: str, args: Sequence[str]) -> Match | None:
        """An MCP server's configured stdio command: the best tool server, else the generic one."""
        facts = ProcessFacts(name=basename(command), exe=command, cmdline=[command, *args], platform="")
        for found in self.match_process(facts):
            if found.signature.type == "tool_server":
                return found
        if self._generic is None:
            return None
        return Match(self._generic, "mcp.declared", f"declared MCP server command {normalise(basename(command))!r}")

    def match_url(self, url: str) -> Match | None:
        """A remote MCP server URL: a known tool server for its host, else the generic one."""
        from urllib.parse import urlsplit

        try:
            host = urlsplit(url.strip()).hostname or ""
        except ValueError:
            host = ""
        found = self._tool_hosts.find(host) if host else None
        if found is not None:
            return Match(self.signatures[found], "network.hosts", f"host {normalise_host(host)!r}")
        if self._generic is None:
            return None
        return Match(self._generic, "mcp.declared", f"remote MCP server at {normalise_host(host)!r}")

    def match_host(self, host: str) -> Signature | None:
        """The signature whose own network hosts include ``host`` (e.g. a coding agent's backend)."""
        found = self._sig_hosts.find(host)
        return None if found is None else self.signatures[found]

    # -- artifacts -------------------------------------------------------------------------------
    def match_extension(self, ext_id: str) -> Signature | None:
        return self._extensions.get(ext_id.strip().lower())

    def match_package(self, ecosystem: Literal["pypi", "npm"], name: str) -> Signature | None:
        if ecosystem == "pypi":
            return self._pypi.get(pep503(name))
        return self._npm.get(name.strip().lower())

    # -- providers -------------------------------------------------------------------------------
    def provider_for_host(self, host: str) -> Provider | None:
        found = self._provider_hosts.find(host)
        return None if found is None else self.providers[found]

    def provider_for_port(self, port: int) -> Provider | None:
        return self._ports.get(port)

    # -- autonomy --------------------------------------------------------------------------------
    def autonomy_flags(self, sig: Signature, argv: Sequence[str]) -> list[str]:
        specs = self._flags.get(sig.id)
        if specs is None:
            specs = [(e, _flag_spec(e)) for e in sig.autonomy.flags]
        return flags_present(specs, argv) if specs else []

    def autonomy_settings(self, sig: Signature, dialect: str, document: object) -> list[str]:
        return settings_present(sig.autonomy.settings, dialect, document)

    # -- credentials -----------------------------------------------------------------------------
    def credential_kind(self, name: str | None, value: str) -> CredentialKind | None:
        """The kind of a secret: by the value's shape, else by the variable or key name that holds it."""
        if not isinstance(value, str):
            return None
        value = value.strip()
        if not looks_secret(value):
            return None
        shaped = self._by_shape(value)
        if shaped is not None:
            return shaped
        return self._credential_env.get(env_key(name)) if name else None

    def _by_shape(self, value: str) -> CredentialKind | None:
        if self._shape_any is not None:
            match = self._shape_any.fullmatch(value)
            if match is None or match.lastgroup is None:
                return None
            return self._shapes[int(match.lastgroup[1:])][0]
        for kind, pattern in self._shapes:
            if re.fullmatch(pattern, value):
                return kind
        return None


def _hit(hits: dict[int, tuple[int, str, str]], index: int, rule: str, detail: str) -> None:
    rank = _RANK[rule]
    if index not in hits or rank < hits[index][0]:
        hits[index] = (rank, rule, detail)


def pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()
