"""Node.js: from a process's command line to its project, entry file, imports and framework packages.

Shapes understood: ``node [opts] dist/index.js``; TypeScript runners (``tsx src/agent.ts``, ``ts-node``,
``nodemon``; tsx's own child ``node --require …/tsx/… --import …/tsx/… src/agent.ts``); ``npm start``,
``npm run NAME`` (and yarn / pnpm), which run the project of the working folder. The project is the
nearest folder at or above the entry (or the working folder) holding a ``package.json``; its
dependencies that are frameworks or LLM SDKs are reported with the version installed in its
``node_modules`` (else the range it declares), and the entry's imports (relative ones followed a few
files deep) with the file that imports them. A program that lives in ``node_modules`` itself (n8n,
a globally installed CLI) is no project of the user's: signatures name those.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING

from endpoint.scan import safeio
from endpoint.scan.projects import MANIFEST_BYTES, Found, Reads, nearest

if TYPE_CHECKING:
    from endpoint.scan.evidence import ProcessRecord
    from endpoint.scan.projects import ProjectReader

RUNNERS = frozenset({"tsx", "ts-node", "ts-node-dev", "nodemon", "node-dev"})
PACKAGE_MANAGERS = frozenset({"npm", "yarn", "pnpm"})
IMPORT_FILES = 24  # files of a project read following relative imports
IMPORT_LEVELS = 3
EXTENSIONS = (".ts", ".js", ".mjs", ".cjs", ".tsx", ".mts", ".cts", ".jsx")

_VALUE_OPTIONS = frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader", "-e", "--eval",
                            "-p", "--print", "--env-file", "--inspect-port", "--title", "-C", "--conditions"})
_SPECIFIER = re.compile(r"""(?:\bfrom\s*|\brequire\s*\(\s*|\bimport\s*\(\s*|^[ \t]*import[ \t]+)["']([^"'\n]{1,200})["']""",
                        re.M)


def _package_of(path: str) -> str | None:
    """The npm package a path inside ``node_modules`` belongs to (``@scope/name`` or ``name``)."""
    parts = path.replace("\\", "/").split("/")
    if "node_modules" not in parts:
        return None
    rest = parts[len(parts) - 1 - parts[::-1].index("node_modules") + 1:]
    if not rest:
        return None
    if rest[0].startswith("@") and len(rest) > 1:
        return f"{rest[0]}/{rest[1]}"
    return rest[0] if rest[0] != ".bin" else (rest[1] if len(rest) > 1 else None)


def parse(argv: list[str], cwd: str) -> tuple[str, str] | None:
    """(entry as a person names it, the entry file or "" for a package manager's script), or None."""
    while argv and not argv[-1]:
        argv = argv[:-1]  # a retitled process leaves empty strings where its arguments were
    if not argv:
        return None
    words = argv[0].split() if len(argv) == 1 and " " in argv[0] else argv  # npm retitles itself "npm start"
    first = os.path.basename(words[0]).lower()
    args = words[1:]
    if first in ("npx", "bunx", "pnpx"):
        return None  # runs a published package, not a project of the user's: the signatures name those
    if first in PACKAGE_MANAGERS:
        return _manager(first, args)
    if first in RUNNERS:
        script = next((a for a in args if not a.startswith("-")), None)
        return (script, _path(script, cwd)) if script else None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-e", "--eval", "-p", "--print", "-i", "--interactive"):
            return None
        if arg in _VALUE_OPTIONS:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        path = _path(arg, cwd)
        package = _package_of(path)
        if package is None:
            return arg, path
        name = package.rsplit("/", 1)[-1]
        if name in PACKAGE_MANAGERS or os.path.basename(arg) in ("npm-cli.js", "yarn.js", "pnpm.cjs"):
            return _manager(name if name in PACKAGE_MANAGERS else "npm", args[i + 1:])
        if name in RUNNERS:
            rest = args[i + 1:]
            script = next((a for a in rest if not a.startswith("-")), None)
            return (script, _path(script, cwd)) if script else None
        return None  # a package's own program (n8n, a global CLI): the signatures name it
    return None


def _manager(manager: str, args: list[str]) -> tuple[str, str] | None:
    words = [a for a in args if not a.startswith("-")]
    if not words:
        return None
    if words[0] in ("start", "test", "dev", "serve"):
        return f"{manager} {words[0]}", ""
    if words[0] in ("run", "run-script") and len(words) > 1:
        return f"{manager} run {words[1]}", ""
    if manager != "npm" and words[0] not in ("install", "add", "exec", "dlx", "x"):
        return f"{manager} {words[0]}", ""  # yarn NAME / pnpm NAME run the script NAME
    return None


def _path(script: str, cwd: str) -> str:
    if script.startswith("file://"):
        script = script[len("file://"):]
    return os.path.normpath(os.path.join(cwd, script)) if cwd or os.path.isabs(script) else script


def resolve(record: ProcessRecord, cwd: str, reader: ProjectReader, reads: Reads) -> Found | None:
    parsed = parse(record.cmdline, cwd)
    if parsed is None:
        return None
    entry, script = parsed
    start = os.path.dirname(script) if script and os.path.isabs(script) else cwd
    if not start:
        return None
    root = nearest(start, ("package.json",), isfile=reads.isfile) or (os.path.dirname(script) if script else cwd)
    wanted = reader.interests.npm
    packages: list[tuple[str, str, str, str]] = []
    manifest = reads.text(os.path.join(root, "package.json"), root, limit=MANIFEST_BYTES, code=False)
    if manifest:
        try:
            data = json.loads(manifest)
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            reads.error(os.path.join(root, "package.json"), "syntax", "not valid JSON")
            data = {}
        if isinstance(data, dict):
            for field in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
                deps = data.get(field)
                if not isinstance(deps, dict):
                    continue
                for name, declared in list(deps.items())[:2000]:
                    if isinstance(name, str) and name.lower() in wanted:
                        version, where = _installed(root, name, reads)
                        if not version:
                            version, where = (str(declared)[:40] if isinstance(declared, str) else ""), "package.json"
                        packages.append(("npm", name, version, where))
    imports: list[tuple[str, str]] = []
    # With no framework or SDK declared, on NODE_PATH or in a node_modules it can require from, its code
    # cannot import one: it is not read.
    readable = bool(packages or record.env_values.get("NODE_PATH") or _reachable(root, wanted, reader, reads))
    if readable and script and safeio.is_within(script, root):
        _follow(script, root, wanted, reads, imports)
    elif readable and entry.split(" ", 1)[0] in PACKAGE_MANAGERS and manifest:
        main = _main_of(manifest)
        if main:
            _follow(os.path.normpath(os.path.join(root, main)), root, wanted, reads, imports)
    shown = os.path.relpath(script, root) if script and safeio.is_within(script, root) else entry
    return Found(root, shown, imports, packages)


def _reachable(root: str, wanted: frozenset[str], reader: ProjectReader, reads: Reads) -> bool:
    """Whether a ``node_modules`` at or above ``root`` (as Node looks them up) holds a framework or SDK."""
    folder = root
    for _ in range(8):
        modules = os.path.join(folder, "node_modules")
        names = reader.listings.get(modules) if not reads.unlisted(modules) else []  # not another process's listing
        if names is None:
            names = reader.listings[modules] = reads.listing(modules) if reads.isdir(modules) else []
        for name in names:
            if name.lower() in wanted:
                return True
            if name.startswith("@") and any(f"{name}/{sub}".lower() in wanted
                                            for sub in reads.listing(os.path.join(modules, name))):
                return True
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return False


def _installed(root: str, name: str, reads: Reads) -> tuple[str, str]:
    """The version of ``name`` in the project's node_modules, and where: ("", "") when it is not there."""
    path = os.path.join(root, "node_modules", *name.split("/"), "package.json")
    if not reads.isfile(path):
        return "", ""
    text = reads.text(path, root, limit=MANIFEST_BYTES, code=False)
    try:
        version = json.loads(text).get("version", "") if text else ""
    except (ValueError, RecursionError, AttributeError):
        return "", ""
    return (str(version)[:40], "node_modules") if version else ("", "")


def _main_of(manifest: str) -> str:
    try:
        data = json.loads(manifest)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        return ""
    main = data.get("main") if isinstance(data, dict) else None
    return main if isinstance(main, str) and not os.path.isabs(main) and ".." not in main else ""


def _follow(entry: str, root: str, wanted: frozenset[str], reads: Reads, imports: list[tuple[str, str]]) -> None:
    queue = [(entry, 0)]
    seen = {entry}
    while queue and len(seen) <= IMPORT_FILES:
        path, depth = queue.pop(0)
        text = reads.text(path, root)
        if text is None:
            continue
        shown = os.path.relpath(path, root)
        for specifier in _SPECIFIER.findall(text):
            if specifier.startswith("."):
                # a relative specifier costs up to 20 lookups: a file of thousands of them is bounded in time
                if depth < IMPORT_LEVELS and reads.in_time():
                    target = _local_file(os.path.join(os.path.dirname(path), specifier), reads)
                    if target and target not in seen and safeio.is_within(target, root):
                        seen.add(target)
                        queue.append((target, depth + 1))
                continue
            package = _bare_package(specifier)
            if package and package.lower() in wanted:
                imports.append((package, shown))
    if not reads.in_time():
        reads.left()  # says once that the rest was not read


def _bare_package(specifier: str) -> str | None:
    if specifier.startswith(("node:", "/")):
        return None
    parts = specifier.split("/")
    if specifier.startswith("@"):
        return "/".join(parts[:2]) if len(parts) > 1 else None
    return parts[0]


def _local_file(base: str, reads: Reads) -> str | None:
    """The file a relative specifier names: as written, with an extension, as a folder's index, or a
    TypeScript source written with its compiled ``.js`` name."""
    base = os.path.normpath(base)
    stem, ext = os.path.splitext(base)
    candidates = [base] if ext in EXTENSIONS else []
    if ext in (".js", ".mjs", ".cjs", ".jsx"):
        candidates += [stem + ".ts", stem + ".mts", stem + ".cts", stem + ".tsx"]
    candidates += [base + e for e in EXTENSIONS] + [os.path.join(base, "index" + e) for e in EXTENSIONS]
    for candidate in candidates:
        if reads.isfile(candidate):
            return candidate
    return None
