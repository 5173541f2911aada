"""Matching: which signature a process, MCP command, URL, extension or package is, and what it reveals.

``Library`` holds the loaded signatures with indexes built once (name sets, prefiltered regexes), so
that a scan can ask about a thousand processes in a few milliseconds. Everything here is pure: no
file, process or network I/O (a script's text comes through the ``read_script`` callback).
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from signatures.runtime import CredentialKind, FileMatcher, Provider, SettingMarker, Signature

GENERIC_MCP = "mcp-server"
CMDLINE_CAP = 1024  # characters of the joined command line that cmdline patterns see
SCRIPT_CAP = 256 * 1024  # characters of a script read for its imports

ReadScript = Callable[[str], str | None]

# Rule ranks: lower is stronger evidence. A path pattern or a command-line pattern was written for
# this one agent; an exact name is nearly as good; an import or a wildcard name is a weaker hint.
_RANK = {"process.exe": 0, "process.cmdline": 1, "process.names": 2, "process.script_imports": 3,
         "process.names*": 4}


class ProcessFacts(NamedTuple):
    """What the matcher needs to know about one process (never environment values)."""

    name: str
    exe: str
    cmdline: Sequence[str]
    env_keys: frozenset[str] = frozenset()
    platform: str = "linux"  # "linux" | "macos" | "windows"; "" when unknown (a configured command)


class Match(NamedTuple):
    """A signature that matched, the rule that decided it, and a short safe description of why."""

    signature: Signature
    rule: str
    detail: str


# -- process name candidates -----------------------------------------------------------------------

_EXE_SUFFIXES = (".exe", ".cmd", ".bat", ".ps1")
_SCRIPT_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".py", ".pyw", ".pyz")
_PYTHON = re.compile(r"(?:python(?:\d+(?:\.\d+)?)?w?|py|pypy\d*(?:\.\d+)?)")
_NODE = frozenset({"node", "nodejs", "tsx", "ts-node"})
_NODE_VALUE_OPTS = frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader", "--env-file",
                              "-C", "--conditions", "--title", "--input-type", "--inspect-port"})
_UV_GLOBAL_VALUE_OPTS = frozenset({"--directory", "--project", "--cache-dir", "--config-file", "--color"})
_UV_RUN_VALUE_OPTS = frozenset({"--with", "--with-editable", "--with-requirements", "--python", "-p", "--package",
                                "--env-file", "--directory", "--project", "--index", "--default-index",
                                "--extra", "--group", "-w", "--from", "--extra-index-url", "--index-url"})
_NPX_VALUE_OPTS = frozenset({"-c", "--call", "--cache", "--registry", "--userconfig", "-w", "--workspace"})
_DOCKER_VALUE_OPTS = frozenset({
    "-e", "--env", "--env-file", "-v", "--volume", "-p", "--publish", "--name", "--network", "--net", "-w",
    "--workdir", "--entrypoint", "-u", "--user", "--mount", "--platform", "-l", "--label", "-m", "--memory",
    "--cpus", "--add-host", "--cap-add", "--cap-drop", "--device", "--dns", "-h", "--hostname", "--ipc",
    "--pid", "--restart", "--runtime", "--security-opt", "--shm-size", "--ulimit", "--gpus", "--log-driver",
    "--log-opt", "--pull", "--stop-signal", "--tmpfs", "--group-add", "--expose", "--label-file", "--cidfile",
})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "fish"})
_GENERIC_SCRIPTS = frozenset({"cli", "index", "main", "server", "app", "run", "start", "__main__", "extension",
                              "entry", "bin", "stdio", "mcp", "language-server", "agent", "worker"})
_BUILD_DIRS = frozenset({"dist", "build", "lib", "bin", "src", "out", "esm", "cjs", "dist-esm", "dist-cjs",
                         "scripts", "node_modules"})
_NPM_SHIMS = {"npx-cli": "npx", "npm-cli": "npm", "pnpm": "pnpm", "yarn": "yarn", "npx": "npx", "npm": "npm"}


def basename(path: str) -> str:
    """The last component of a POSIX or Windows path."""
    return path[max(path.rfind("/"), path.rfind("\\")) + 1:]


def normalise(name: str) -> str:
    """Lower-case, without a Windows executable suffix, for comparing names."""
    name = name.strip().lower()
    if name.endswith(_EXE_SUFFIXES):
        return name.rsplit(".", 1)[0]
    return name


@functools.lru_cache(maxsize=8192)
def _program(path: str) -> str:
    # The same few hundred executables recur in every scan: normalise each path once.
    return normalise(basename(path))


def _stem(name: str) -> str:
    name = normalise(name)
    for suffix in _SCRIPT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def package_name(spec: str) -> str:
    """A package spec without registry prefix, version, extras or markers: ``@a/b@1.2`` -> ``@a/b``."""
    spec = spec.strip()
    for prefix in ("npm:", "jsr:", "pypi:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
    if spec.startswith("@"):
        at = spec.find("@", 1)
        spec = spec[:at] if at > 0 else spec
    else:
        spec = spec.split("@", 1)[0]
    return re.split(r"[=<>!~\[; ]", spec, maxsplit=1)[0].lower()


def _package_candidates(spec: str, source: str) -> Iterator[tuple[str, str]]:
    name = package_name(spec)
    if not name:
        return
    yield name, source
    if name.startswith("@") and "/" in name:
        yield name.split("/", 1)[1], source


def _image_candidates(image: str) -> Iterator[tuple[str, str]]:
    ref = image.split("@", 1)[0].lower()
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    parts = ref.split("/")
    yield ref, "image"
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        yield "/".join(parts[1:]), "image"
    if len(parts) > 1:
        yield parts[-1], "image"


def _module_candidates(module: str) -> Iterator[tuple[str, str]]:
    module = module.lower()
    seen = [module, module.split(".", 1)[0]]
    for name in dict.fromkeys(seen + [m.replace("_", "-") for m in seen]):
        yield name, "module"


def _package_dir(path: str) -> str | None:
    """The npm package a script belongs to, or the directory that names a generic entry script."""
    parts = [p for p in re.split(r"[\\/]", path) if p]
    lowered = [p.lower() for p in parts]
    if "node_modules" in lowered:
        after = parts[len(lowered) - 1 - lowered[::-1].index("node_modules") + 1:]
        if after and after[0].startswith("@") and len(after) > 2:
            return f"{after[0]}/{after[1]}".lower()
        if after and after[0] != ".bin" and len(after) > 1:
            return after[0].lower()
        return None
    if len(parts) < 2 or _stem(parts[-1]) not in _GENERIC_SCRIPTS:
        return None
    for part in reversed(parts[:-1]):
        if part.lower() not in _BUILD_DIRS:
            return part.lower()
    return None


def _script_candidates(path: str) -> Iterator[tuple[str, str]]:
    if path.startswith(("npm:", "jsr:")):
        yield from _package_candidates(path, "package")
        return
    stem = _stem(basename(path))
    if stem:
        yield stem, "script"
    package = _package_dir(path)
    if package:
        yield package, "package"
        if package.startswith("@") and "/" in package:
            yield package.split("/", 1)[1], "package"


def _positionals(args: Sequence[str], value_opts: frozenset[str]) -> Iterator[tuple[int, str]]:
    """(index, arg) of the arguments that are not options or option values."""
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--":
            for j in range(i + 1, len(args)):
                yield j, args[j]
            return
        if arg.startswith("-") and len(arg) > 1:
            skip = arg in value_opts
            continue
        yield i, arg


def _first(args: Sequence[str], value_opts: frozenset[str]) -> tuple[int, str] | None:
    return next(_positionals(args, value_opts), None)


def _option_values(args: Sequence[str], names: tuple[str, ...]) -> Iterator[str]:
    for i, arg in enumerate(args):
        if arg == "--":
            return
        if arg in names and i + 1 < len(args):
            yield args[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                yield arg[len(name) + 1:]


class Targets:
    """What an interpreter or launcher runs: name candidates, and a Python script to read imports from."""

    __slots__ = ("names", "python_script")

    def __init__(self) -> None:
        self.names: list[tuple[str, str]] = []
        self.python_script: str | None = None


def _python(args: Sequence[str], out: Targets) -> None:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            script = args[i + 1] if arg == "--" and i + 1 < len(args) else arg
            if script != "-":
                out.names.extend(_script_candidates(script))
                out.python_script = script
            return
        flags = arg[1:] if not arg.startswith("--") else ""
        for k, flag in enumerate(flags):
            if flag == "c":
                return
            if flag == "m":
                module = flags[k + 1:] or (args[i + 1] if i + 1 < len(args) else "")
                out.names.extend(_module_candidates(module))
                return
            if flag in "WXQ":
                i += 0 if flags[k + 1:] else 1
                break
        i += 1


def _node(args: Sequence[str], out: Targets, depth: int) -> None:
    found = _first(args, _NODE_VALUE_OPTS)
    if found is None:
        return
    i, script = found
    if any(arg in ("-e", "--eval", "-p", "--print") for arg in args[:i]):
        return  # node evaluates a string: there is no script
    shim = _NPM_SHIMS.get(_stem(basename(script)))
    if shim is not None:
        _targets([shim, *args[i + 1:]], out, depth + 1)
        return
    out.names.extend(_script_candidates(script))


def _launcher_package(args: Sequence[str], out: Targets, value_opts: frozenset[str],
                      package_opts: tuple[str, ...]) -> None:
    for spec in _option_values(args, package_opts):
        out.names.extend(_package_candidates(spec, "package"))
    found = _first(args, value_opts | frozenset(package_opts))
    if found is not None:
        out.names.extend(_package_candidates(found[1], "package"))


def _subcommand(args: Sequence[str], value_opts: frozenset[str] = frozenset()) -> tuple[str, Sequence[str]]:
    found = _first(args, value_opts)
    if found is None:
        return "", ()
    return found[1].lower(), args[found[0] + 1:]


def _uv(args: Sequence[str], out: Targets, depth: int) -> None:
    sub, rest = _subcommand(args, _UV_GLOBAL_VALUE_OPTS)
    if sub == "tool":
        sub, rest = _subcommand(rest)
        if sub == "run":
            _launcher_package(rest, out, _UV_RUN_VALUE_OPTS, ("--from",))
    elif sub == "run":
        for spec in _option_values(rest, ("--from",)):
            out.names.extend(_package_candidates(spec, "package"))
        found = _first(rest, _UV_RUN_VALUE_OPTS)
        if found is not None:
            _targets(rest[found[0]:], out, depth + 1)
    elif sub == "x":
        _launcher_package(rest, out, _UV_RUN_VALUE_OPTS, ("--from",))


def _docker(args: Sequence[str], out: Targets) -> None:
    sub, rest = _subcommand(args, frozenset({"-H", "--host", "--context", "-c", "--config", "-l", "--log-level"}))
    if sub == "container":
        sub, rest = _subcommand(rest)
    if sub == "run":
        found = _first(rest, _DOCKER_VALUE_OPTS)
        if found is not None:
            out.names.extend(_image_candidates(found[1]))


def _shell(head: str, args: Sequence[str], out: Targets, depth: int) -> None:
    if head == "cmd":
        for i, arg in enumerate(args):
            if arg.lower() in ("/c", "/k"):
                _targets(args[i + 1:], out, depth + 1)
                return
        return
    for i, arg in enumerate(args):
        if arg.startswith("-") and "c" in arg[1:] and not arg.startswith("--") and i + 1 < len(args):
            try:
                inner = shlex.split(args[i + 1])
            except ValueError:
                return
            _targets(inner, out, depth + 1)
            return


def _launch(head: str, args: Sequence[str], out: Targets, depth: int) -> bool:
    """Handle a package runner or shell at argv[0]; False when ``head`` is none of them."""
    if head in ("npx", "bunx", "pnpx"):
        _launcher_package(args, out, _NPX_VALUE_OPTS, ("-p", "--package"))
    elif head in ("npm", "pnpm", "yarn"):
        sub, rest = _subcommand(args)
        if sub in ("exec", "x", "dlx"):
            _launcher_package(rest, out, _NPX_VALUE_OPTS, ("-p", "--package"))
    elif head == "uvx":
        _launcher_package(args, out, _UV_RUN_VALUE_OPTS, ("--from",))
    elif head == "pipx":
        sub, rest = _subcommand(args)
        if sub == "run":
            _launcher_package(rest, out, frozenset({"--python", "--pip-args", "--index-url"}), ("--spec",))
    elif head in ("docker", "podman", "nerdctl"):
        _docker(args, out)
    elif head == "cmd" or head in _SHELLS:
        _shell(head, args, out, depth)
    else:
        return False
    return True


def _targets(argv: Sequence[str], out: Targets, depth: int = 0) -> None:
    if depth > 4 or not argv:
        return
    head = normalise(basename(argv[0]))
    if depth:
        out.names.append((head, "command"))
    args = argv[1:]
    if _PYTHON.fullmatch(head):
        _python(args, out)
    elif head in _NODE:
        _node(args, out, depth)
    elif head == "bun":
        sub, rest = _subcommand(args)
        if sub == "x":
            _launcher_package(rest, out, _NPX_VALUE_OPTS, ())
        elif sub == "run":
            found = _first(rest, frozenset())
            if found is not None:
                out.names.extend(_script_candidates(found[1]))
        elif sub:
            out.names.extend(_script_candidates(sub))
    elif head == "deno":
        sub, rest = _subcommand(args)
        found = _first(rest, frozenset({"--config", "-c", "--import-map", "--env-file"})) if sub in ("run", "serve") \
            else None
        if found is not None:
            out.names.extend(_script_candidates(found[1]))
    elif head == "uv":
        _uv(args, out, depth)
    else:
        _launch(head, args, out, depth)


def split_cmdline(cmdline: Sequence[str], exe: str = "") -> list[str]:
    """The argument list; a process that rewrote its title shows one space-joined string instead.

    A lone element that is the executable itself, or a Windows path, may hold spaces of its own.
    """
    argv = list(cmdline)
    if len(argv) == 1 and " " in argv[0].strip() and argv[0] != exe and "\\" not in argv[0]:
        return argv[0].split()
    return argv


def name_candidates(facts: ProcessFacts) -> tuple[list[tuple[str, str, bool]], str | None]:
    """(name, where it came from, is a 15-char truncated prefix), and the Python script it runs, if any."""
    argv = split_cmdline(facts.cmdline, facts.exe)
    out: list[tuple[str, str, bool]] = []
    exe = _program(facts.exe) if facts.exe else ""
    head = _program(argv[0]) if argv else ""
    if exe:
        out.append((exe, "exe", False))
    if head and head != exe:
        out.append((head, "argv[0]", False))
    if facts.name:
        name = _program(facts.name)
        truncated = len(facts.name) == 15 and facts.platform == "linux"
        if truncated or name not in (exe, head):
            out.append((name, "process name", truncated))
    if head and _is_runner(head):
        targets = Targets()
        _targets(argv, targets)
    elif argv and exe and _is_runner(exe):
        targets = Targets()
        _targets([facts.exe, *argv[1:]], targets)  # argv[0] was rewritten (a process title)
    else:
        return out, None
    out.extend((name, source, False) for name, source in targets.names if name)
    return out, targets.python_script


_RUNNERS = _NODE | _SHELLS | {"bun", "deno", "uv", "uvx", "npx", "bunx", "pnpx", "npm", "pnpm", "yarn", "pipx",
                              "docker", "podman", "nerdctl", "cmd"}


def _is_runner(head: str) -> bool:
    return head in _RUNNERS or (head.startswith("py") and _PYTHON.fullmatch(head) is not None)


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


# -- regex anchor words -----------------------------------------------------------------------------
# A pattern is tried on a process only when the process's text holds one of its anchor words: whole
# [a-z0-9] runs that any text the pattern matches must contain. They are read off the parsed pattern.

_sre: Any = importlib.import_module("re._parser")
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
        variants = _variants(_sre.parse(pattern))
    except (_TooComplex, re.error, RecursionError):
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


# -- the library ------------------------------------------------------------------------------------


class _Rule:
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


class _RuleSet:
    """Regexes gated by anchor words, so that a process with none of their words costs one set lookup."""

    def __init__(self, anchors: dict[str, frozenset[str] | None]) -> None:
        self.rules: list[_Rule] = []
        self.by_word: dict[str, list[int]] = {}
        self.always: list[int] = []
        self.anchors = anchors

    def add(self, index: int, source: str) -> None:
        position = len(self.rules)
        self.rules.append(_Rule(index, source))
        if source not in self.anchors:
            self.anchors[source] = anchor_words(source)
        words = self.anchors[source]
        if words is None:
            self.always.append(position)
        for word in words or ():
            self.by_word.setdefault(word, []).append(position)

    def candidates(self, words: set[str]) -> list[_Rule]:
        if not self.always and self.by_word.keys().isdisjoint(words):
            return []  # the common case: none of this set's words in the process
        picked = set(self.always)
        for word in words.intersection(self.by_word):
            picked.update(self.by_word[word])
        return [self.rules[p] for p in sorted(picked)]


_WORD = re.compile(r"[a-z0-9]+")
_NOT_WORD = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def _words(text: str) -> set[str]:
    """The [a-z0-9] runs of a text: a translate-and-split for ASCII (3x quicker than a regex)."""
    text = text.lower()
    if text.isascii():
        return set(text.translate(_NOT_WORD).split())
    return set(_WORD.findall(text))


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
        self._globs: list[tuple[_Rule, int, str]] = []
        self._exe = _RuleSet(self._anchors)
        self._cmdline = _RuleSet(self._anchors)
        self._exclude: dict[int, list[_Rule]] = {}
        self._imports: dict[str, list[int]] = {}
        for i, sig in enumerate(self.signatures):
            proc = sig.process
            for name in proc.names:
                key = normalise(name)
                if "*" in key:
                    self._globs.append((_Rule(i, ".*".join(re.escape(p) for p in key.split("*"))), i, name))
                    continue
                self._names.setdefault(key, []).append(i)
                if len(key) > 15:
                    self._prefix15.setdefault(key[:15], []).append(i)
            for source in proc.exe:
                self._exe.add(i, source)
            for source in proc.cmdline:
                self._cmdline.add(i, source)
            if proc.exclude:
                self._exclude[i] = [_Rule(i, p) for p in proc.exclude]
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
        words = _words(f"{facts.exe} {joined}")
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
