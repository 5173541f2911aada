"""Launcher unwrapping: the names a process may be known by, seen through its runners.

``npx -y @scope/server``, ``uv run --with x tool``, ``docker run image``, ``sh -c "…"``, ``python -m mod``
and node scripts in a package's ``dist/`` all run something else; ``name_candidates`` says what, so that
a signature names the agent and not its launcher. Pure: no file, process or network I/O.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterator, Sequence
from typing import NamedTuple


class ProcessFacts(NamedTuple):
    """What the matcher needs to know about one process (never environment values)."""

    name: str
    exe: str
    cmdline: Sequence[str]
    env_keys: frozenset[str] = frozenset()
    platform: str = "linux"  # "linux" | "macos" | "windows"; "" when unknown (a configured command)


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
