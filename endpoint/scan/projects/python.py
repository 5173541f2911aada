"""Python: from a process's command line to its project, entry module, imports and installed frameworks.

Shapes understood (the server or queue named either as ``-m NAME`` or as its console script):

- ``python -m pkg.mod`` and ``python path/script.py`` (the script's folder first on the path, as Python does);
- ASGI/WSGI servers: ``uvicorn|hypercorn|gunicorn|granian [opts] module:app`` (``--app-dir``, ``--chdir``,
  ``--working-dir``, ``--pythonpath``; gunicorn's ``-k uvicorn.workers.UvicornWorker`` and its retitled
  ``gunicorn: master [app:app]``), ``fastapi run|dev [file.py]`` (or the files it looks for by default);
- task queues: ``celery -A proj[.mod][:app] worker``, ``dramatiq [broker] mod…``, ``arq mod.WorkerSettings``,
  ``rq worker`` (which names no module: the working folder's modules are read);
- console scripts: a ``bin/`` script with a Python shebang whose body imports its entry point;
- Jupyter kernels (``ipykernel_launcher -f …``): the notebook is not knowable, the kernel's working
  folder is, and its modules and notebooks are read;
- shapes found in public repositories beyond those: a UI around the agent (``streamlit run app.py``,
  ``chainlit run app.py``, also as ``python -m``), and ``taskiq worker pkg.broker:broker [modules…]``.

The module search path is the process's own: the working folder (or the script's), ``--app-dir`` and
the like, ``PYTHONPATH``, the paths of editable installs, and the interpreter's site-packages, found
from ``VIRTUAL_ENV``, the venv that holds argv[0] or the script, or the executable's prefix.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, NamedTuple

from endpoint.scan import safeio
from endpoint.scan.projects import MANIFEST_BYTES, Found, Reads, interesting_module

if TYPE_CHECKING:
    from endpoint.scan.evidence import ProcessRecord
    from endpoint.scan.projects import ProjectReader

SERVERS = frozenset({"uvicorn", "hypercorn", "gunicorn", "granian"})
QUEUES = frozenset({"celery", "rq", "dramatiq", "arq", "taskiq"})
UIS = frozenset({"streamlit", "chainlit"})  # ``streamlit run app.py``, ``chainlit run app.py``: a UI around an agent
KERNELS = frozenset({"ipykernel_launcher", "ipykernel"})
FASTAPI_DEFAULTS = ("main.py", "app.py", "api.py", "app/main.py", "app/app.py", "api/main.py")
IMPORT_LEVELS = 4  # local imports followed this many modules deep from the entry
WALK_FILES = 40  # modules and notebooks of a working folder read when the entry is not knowable
MAX_SEARCH = 16  # folders on a process's module search path that are looked in
MAX_PTH = 20  # .pth files read per site-packages folder
MAX_DIR_OPTIONS = 8  # --app-dir, --chdir… taken from one command line (a real one names one or two)

_APP = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(.*\))?$")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_PY_VALUE_OPTIONS = frozenset({"-W", "-X", "--check-hash-based-pycs"})
_FLAGS = frozenset({"--reload", "--factory", "--debug", "-fsd", "--fs-discover", "--headless", "--no-browser",
                    "--watch", "--use-colors", "--no-access-log"})  # options that take no value
_DIR_OPTIONS = ("--app-dir", "--chdir", "--working-dir", "--pythonpath", "--workdir", "--path", "-P")
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]++(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)|import[ \t]+([^\n#;]+))",
                     re.M)
_SCRIPT_IMPORT = re.compile(r"^from[ \t]+([\w.]+)[ \t]+import[ \t]+(\w+)", re.M)


class Command(NamedTuple):
    """What the command line says the process runs."""

    entry: str  # as a person names it: "app.worker", "api.main:app", "agent.py", "invoice-worker"
    modules: tuple[str, ...] = ()  # entry modules, looked up on the search path
    scripts: tuple[str, ...] = ()  # entry files (absolute)
    dirs: tuple[str, ...] = ()  # folders first on the module search path
    walk: bool = False  # the entry is not knowable: read the working folder's modules
    venv: str = ""  # the venv a console script lives in


def parse(argv: list[str], cwd: str) -> Command | None:
    """The command a Python process runs, or None (an interactive interpreter, ``-c`` code, stdin)."""
    while argv and not argv[-1]:
        argv = argv[:-1]  # a retitled process leaves empty strings where its arguments were
    if not argv:
        return None
    if argv[0].startswith("gunicorn:"):  # gunicorn retitles itself "gunicorn: master [app:app]"
        found = re.search(r"\[([^\]\s]+)\]", " ".join(argv))
        return _server([found.group(1)], cwd) if found else None
    if not os.path.basename(argv[0].split(" ", 1)[0]).lower().startswith("python"):
        return _script(argv[0], argv[1:], cwd)  # retitled, or a frozen launcher: argv[0] is the script
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m" or (arg.startswith("-m") and len(arg) > 2 and not arg.startswith("--")):
            module = args[i + 1] if arg == "-m" and i + 1 < len(args) else arg[2:]
            rest = args[i + 2:] if arg == "-m" else args[i + 1:]
            return _module(module, rest, cwd) if module else None
        if arg == "-" or arg.startswith("-c"):
            return None
        if arg in _PY_VALUE_OPTIONS:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return _script(arg, args[i + 1:], cwd)
    return None


def _module(module: str, rest: list[str], cwd: str) -> Command | None:
    top = module.split(".")[0]
    if top in SERVERS:
        return _server(rest, cwd)
    if top in QUEUES:
        return _queue(top, rest, cwd)
    if top in KERNELS:
        return Command("jupyter kernel", dirs=(cwd,), walk=True)
    if top in ("fastapi", "fastapi_cli"):
        return _fastapi(rest, cwd)
    if top in UIS:
        return _ui(top, rest, cwd)
    if not _DOTTED.match(module):
        return None
    return Command(module, modules=(module,), dirs=(cwd,))


def _script(script: str, rest: list[str], cwd: str) -> Command | None:
    path = os.path.normpath(os.path.join(cwd, script)) if cwd or os.path.isabs(script) else ""
    name = os.path.basename(script)
    stem = name[:-3] if name.endswith(".py") else name
    if stem in SERVERS:
        return _server(rest, cwd)
    if stem in QUEUES:
        return _queue(stem, rest, cwd)
    if stem == "fastapi":
        return _fastapi(rest, cwd)
    if stem in UIS:
        return _ui(stem, rest, cwd)
    if stem in KERNELS:
        return Command("jupyter kernel", dirs=(cwd,), walk=True)
    if not path:
        return None
    folder = os.path.dirname(path)
    if os.path.basename(folder) in ("bin", "Scripts") and not name.endswith(".py"):
        venv = os.path.dirname(folder)
        return Command(name, scripts=(path,), venv=venv)  # a venv only if site_dirs finds its pyvenv.cfg
    entry = os.path.relpath(path, cwd) if cwd and safeio.is_within(path, cwd) else path
    return Command(entry, scripts=(path,), dirs=(folder,))


def _options(rest: list[str]) -> tuple[list[str], list[str], dict[str, str]]:
    """(positional arguments, folders named by a path option, other ``--opt value`` pairs seen)."""
    positional: list[str] = []
    dirs: list[str] = []
    values: dict[str, str] = {}
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            positional.extend(rest[i + 1:])
            break
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if not eq and len(name) > 2 and not name.startswith("--") and name[:2] in ("-A", "-P", "-c"):
                name, value, eq = name[:2], name[2:], "="  # -Aproj
            if not eq and i + 1 < len(rest) and not rest[i + 1].startswith("-") \
                    and not _APP.match(rest[i + 1]) and name not in _FLAGS:
                value = rest[i + 1]
                i += 1
            values.setdefault(name, value)
            if name in _DIR_OPTIONS and value and len(dirs) < MAX_DIR_OPTIONS:
                dirs.append(value)
        else:
            positional.append(arg)
        i += 1
    return positional, dirs, values


def _server(rest: list[str], cwd: str) -> Command | None:
    positional, dirs, values = _options(rest)
    app = next((a for a in [*positional, *values.values()] if _APP.match(a)), None)
    if app is None:
        app = next((a for a in positional if _DOTTED.match(a)), None)
    if app is None:
        return None
    base = [os.path.join(cwd, d) for d in dirs] + [cwd]
    return Command(app, modules=(app.split(":")[0],), dirs=tuple(base))


def _queue(name: str, rest: list[str], cwd: str) -> Command | None:
    positional, dirs, values = _options(rest)
    base = tuple([os.path.join(cwd, d) for d in dirs] + [cwd])
    if name == "celery":
        app = values.get("-A") or values.get("--app")
        if not app:
            return Command("celery worker", dirs=base, walk=True)
        module = app.split(":")[0]
        return Command(app, modules=(module, module + ".celery"), dirs=base)
    if name == "rq":
        config = values.get("-c") or values.get("--config")
        return Command("rq worker", modules=(config,) if config and _DOTTED.match(config) else (), dirs=base,
                       walk=True)
    named = [a for a in positional if _DOTTED.match(a.split(":")[0])]
    if name == "taskiq":  # taskiq worker pkg.broker:broker [task modules…]
        named = [a for a in named if a not in ("worker", "scheduler")]
        if not named:
            return None
        return Command(named[0], modules=tuple(a.split(":")[0] for a in named[:8]), dirs=base)
    if name == "arq":
        if not named:
            return None
        head = named[0].rpartition(".")[0] or named[0]
        return Command(named[0], modules=(head,), dirs=base)
    if not named:  # dramatiq: a broker, then the modules holding the actors
        return None
    return Command(" ".join(named[:3]), modules=tuple(a.split(":")[0] for a in named[:8]), dirs=base)


def _ui(name: str, rest: list[str], cwd: str) -> Command | None:
    """``streamlit run app.py`` / ``chainlit run app.py``: the script, with its folder first on the path."""
    positional, _, _ = _options(rest)
    script = next((a for a in positional if a.endswith(".py")), None)
    if script is None:
        return None
    path = os.path.normpath(os.path.join(cwd, script))
    return Command(f"{name} run {script}", scripts=(path,), dirs=(os.path.dirname(path), cwd))


def _fastapi(rest: list[str], cwd: str) -> Command | None:
    positional, _, values = _options(rest)
    entry = values.get("--entrypoint")
    if entry and _APP.match(entry):
        return Command(entry, modules=(entry.split(":")[0],), dirs=(cwd,))
    files = [a for a in positional if a.endswith(".py")]
    if files:
        path = os.path.normpath(os.path.join(cwd, files[0]))
        return Command(f"fastapi {files[0]}", scripts=(path,), dirs=(os.path.dirname(path), cwd))
    scripts = tuple(os.path.join(cwd, f) for f in FASTAPI_DEFAULTS)
    return Command("fastapi app", scripts=scripts, dirs=(cwd,))


# -- the module search path ----------------------------------------------------------------------


class Site(NamedTuple):
    """What one site-packages folder holds that matters: frameworks (name, version), editable paths, and
    whether any framework or LLM SDK module lies in it."""

    dists: tuple[tuple[str, str], ...]
    editable: tuple[str, ...]
    has_modules: bool = False


def site_dirs(record: ProcessRecord, command: Command, reads: Reads,
              reader: ProjectReader) -> tuple[list[str], str]:
    """The interpreter's site-packages folders, and its venv ("" for a system interpreter)."""
    env = record.env_values
    venvs: list[str] = []
    candidates = [env.get("VIRTUAL_ENV", ""), command.venv]
    if record.cmdline and os.path.isabs(record.cmdline[0]):
        candidates.append(os.path.dirname(os.path.dirname(record.cmdline[0])))
    for candidate in candidates:
        if candidate and os.path.isabs(candidate) and candidate not in venvs \
                and reads.isfile(os.path.join(candidate, "pyvenv.cfg")) and not reads.foreign(candidate, "virtualenv"):
            venvs.append(candidate)
    prefixes = list(venvs)
    if not prefixes and record.exe and os.path.isabs(record.exe):
        prefix = os.path.dirname(os.path.dirname(record.exe))
        prefixes = [prefix, "/usr/local"] if prefix == "/usr" else [prefix]
        home = env.get("HOME", "")
        if home and os.path.isabs(home):
            prefixes.append(os.path.join(home, ".local"))
    found: list[str] = []
    for prefix in prefixes[:4]:
        lib = os.path.join(prefix, "lib")
        listed = reader.listings.get(lib) if not reads.unlisted(lib) else []  # not another process's listing
        if listed is None:
            listed = reader.listings[lib] = sorted(reads.listing(lib))
        for name in listed:
            if name.startswith("python3"):
                for leaf in ("site-packages", "dist-packages"):
                    folder = os.path.join(lib, name, leaf)
                    # the user's own or root's only (a system prefix, HOME/.local of a HOME set to another's)
                    if reads.isdir(folder) and not reads.foreign(folder, "site-packages folder"):
                        found.append(folder)
    return found[:6], venvs[0] if venvs else ""


def read_site(folder: str, reader: ProjectReader, reads: Reads) -> Site:
    """The frameworks installed in ``folder`` (name and version from their METADATA) and the folders
    its editable installs put on the path; remembered for the scan, per folder and user: which of its files
    may be used (its .pth lines, its METADATA) depends on whose process reads it."""
    known = reader.sites.get((folder, reads.uid))
    if isinstance(known, Site):
        return known
    names = reads.listing(folder)
    dists: list[tuple[str, str]] = []
    editable: list[str] = []
    pth = 0
    for name in names:
        if name.endswith(".dist-info"):
            project, _, version = name[: -len(".dist-info")].partition("-")
            # a dist-info folder's name is escaped with single underscores (PEP 427): no regex needed
            if project.lower().replace("_", "-").replace(".", "-") not in reader.interests.pypi:
                continue
            meta = reads.text(os.path.join(folder, name, "METADATA"), folder, limit=MANIFEST_BYTES, code=False)
            shown, shown_version = project, version
            for line in (meta or "").splitlines()[:40]:
                if line.startswith("Name:"):
                    shown = line[5:].strip()[:100] or project
                elif line.startswith("Version:"):
                    shown_version = line[8:].strip()[:40] or version
                elif not line.strip():
                    break
            dists.append((shown, shown_version))
        elif name.endswith(".pth") and pth < MAX_PTH:
            pth += 1
            text = reads.text(os.path.join(folder, name), folder, limit=16 << 10, code=False) or ""
            for line in text.splitlines()[:20]:
                line = line.strip()
                if line and not line.startswith(("import", "#")) and os.path.isabs(line) and reads.isdir(line):
                    editable.append(line)
    site = Site(tuple(sorted(dists)), tuple(editable), bool(dists) or _holds_modules(names, reader))
    reader.sites[(folder, reads.uid)] = site
    return site


def _holds_modules(names: list[str], reader: ProjectReader) -> bool:
    """Whether a folder's listing holds a framework's or SDK's top-level package or module."""
    roots = {m.split(".")[0] for m in reader.interests.modules}
    return any((n[:-3] if n.endswith(".py") else n).lower() in roots for n in names)


class Finder:
    """Finds modules on a search path, listing each folder once."""

    def __init__(self, bases: list[str], reads: Reads) -> None:
        self.bases = bases
        self.reads = reads
        self._tops: dict[str, frozenset[str]] = {}

    def find(self, module: str, bases: list[str] | None = None) -> tuple[str, str] | None:
        """(file, the base folder it was found in) of ``module``, or None."""
        parts = module.split(".")
        for base in self.bases if bases is None else bases:
            tops = self._tops.get(base)
            if tops is None:
                tops = self._tops[base] = frozenset(self.reads.listing(base))
            if parts[0] not in tops and parts[0] + ".py" not in tops:
                continue
            stem = os.path.join(base, *parts)
            for candidate in (stem + ".py", os.path.join(stem, "__init__.py")):
                if self.reads.isfile(candidate):
                    return candidate, base
        return None


def _import_names(text: str) -> list[tuple[int, str, list[str]]]:
    """(level of dots, module, names imported from it) of each import statement."""
    found: list[tuple[int, str, list[str]]] = []
    for match in _IMPORT.finditer(text):
        dots, source, names, plain = match.groups()
        if plain is not None:
            for part in plain.split(","):
                words = part.split()
                if words and _DOTTED.match(words[0]):
                    found.append((0, words[0], []))
        else:
            listed = [w.split()[0] for w in names.strip("()").replace("\\", " ").split(",") if w.split()]
            found.append((len(dots), source, [n for n in listed if n.isidentifier()]))
    return found


def _absolute(level: int, source: str, package: str) -> str | None:
    if level == 0:
        return source
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or not package:
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, source] if source else base) or None


class Walk:
    """Follows a project's local imports from its entry files, noting framework and SDK imports."""

    def __init__(self, finder: Finder, local: list[str], reads: Reads, reader: ProjectReader, root: str, *,
                 sites: frozenset[str] = frozenset(), app_tops: frozenset[str] = frozenset()) -> None:
        self.finder = finder
        self.local = local
        self.sites = sites
        self.app_tops = app_tops
        self.reads = reads
        self.modules = reader.interests.modules
        self.root = root
        self.imports: list[tuple[str, str]] = []
        self.seen: set[str] = set()
        self.queue: list[tuple[str, str, str, int]] = []  # (file, base, module name, depth)

    def add(self, path: str, base: str, module: str, depth: int = 0) -> None:
        if path not in self.seen:
            self.seen.add(path)
            self.queue.append((path, base, module, depth))

    def run(self) -> None:
        self._run()
        if not self.reads.in_time():
            self.reads.left()  # says once that the rest was not read

    def _run(self) -> None:
        while self.queue:
            path, base, module, depth = self.queue.pop(0)
            if path.endswith(".ipynb"):
                text = self._notebook(path, base)
            else:
                text = self.reads.text(path, base)
            if text is None:
                continue
            package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
            shown = os.path.relpath(path, self.root) if safeio.is_within(path, self.root) else path
            for level, source, names in _import_names(text):
                target = _absolute(level, source, package)
                if target is None:
                    continue
                candidates = [target] + ([f"{target}.{n}" for n in names] if level or names else [])
                for candidate in candidates:
                    if interesting_module(candidate, self.modules):
                        self.imports.append((candidate, shown))
                        break
                    # a lookup costs a few stats per folder on the path: thousands of imports are bounded in time
                    if depth + 1 <= IMPORT_LEVELS and self.reads.in_time():
                        located = self.finder.find(candidate, self.local)
                        if located is not None and (located[1] not in self.sites
                                                    or candidate.split(".")[0] in self.app_tops):
                            self.add(located[0], located[1], candidate, depth + 1)

    def _notebook(self, path: str, base: str) -> str | None:
        text = self.reads.text(path, base, limit=MANIFEST_BYTES, code=False)
        if not text:
            return None
        try:
            cells = json.loads(text).get("cells", [])
            source = "\n".join("".join(c.get("source", [])) if isinstance(c.get("source"), list)
                               else str(c.get("source", "")) for c in cells[:500] if isinstance(c, dict))
        except (ValueError, RecursionError, AttributeError, TypeError):
            self.reads.error(path, "syntax", "not a notebook's JSON")
            return None
        self.reads.notice(source)
        return source


def resolve(record: ProcessRecord, cwd: str, reader: ProjectReader, reads: Reads) -> Found | None:
    command = parse(record.cmdline, cwd)
    if command is None:
        return None
    if command.venv or any(os.path.basename(os.path.dirname(s)) in ("bin", "Scripts") for s in command.scripts):
        command = _console_script(command, reads)
        if command is None:
            return None
    sites, venv = site_dirs(record, command, reads, reader)
    installed = [read_site(s, reader, reads) for s in sites]
    search: list[str] = []
    for folder in [*command.dirs, *_pythonpath(record, cwd), *(e for s in installed for e in s.editable)]:
        if len(search) >= MAX_SEARCH:
            break  # a command line of 100,000 --app-dir options costs no more than its first folders
        folder = os.path.normpath(folder)
        if folder and os.path.isabs(folder) and folder not in search and reads.isdir(folder) \
                and not reads.off_limits(folder):
            search.append(folder)
    finder = Finder([*search, *sites], reads)
    if sites and not any(s.has_modules for s in installed) \
            and not any(_holds_modules(reads.listing(f), reader) for f in search):
        # No framework or SDK anywhere on its path: it cannot import one, so its code is not read.
        return Found(_root([], cwd, sites, venv, command), command.entry, [], [])
    entries: list[tuple[str, str, str]] = []  # (file, base, module)
    for script in command.scripts:
        if reads.isfile(script):
            entries.append((script, os.path.dirname(script), "__main__"))
            break  # fastapi's defaults: the first that exists
    for module in command.modules:
        located = finder.find(module)
        if located is not None:
            entries.append((located[0], located[1], module))
    root = _root(entries, cwd, sites, venv, command)
    local = list(search)
    app_tops: set[str] = set()
    for _, base, module in entries:
        if base in sites:  # an installed app: its own package is local, not the whole site-packages
            local.append(base)
            app_tops.add(module.split(".")[0])
    walk = Walk(finder, local, reads, reader, root, sites=frozenset(sites), app_tops=frozenset(app_tops))
    for file, base, module in entries:
        walk.add(file, base, module)
    if command.walk and cwd and not entries:
        for path, module in _folder_modules(cwd, reads):
            walk.add(path, cwd, module, IMPORT_LEVELS - 1)
    walk.run()
    packages = [("pypi", name, version, venv or site) for site, found in zip(sites, installed, strict=True)
                for name, version in found.dists]
    return Found(root, command.entry, walk.imports, packages)


def _console_script(command: Command, reads: Reads) -> Command | None:
    """A console script's entry module, read from its ``from X import main`` line."""
    script = command.scripts[0]
    text = reads.text(script, os.path.dirname(script), limit=safeio.MAX_SCRIPT_BYTES, code=False)
    if not text or not text.startswith("#!") or "python" not in text.split("\n", 1)[0]:
        return None
    found = _SCRIPT_IMPORT.search(text)
    if found is None:
        return None
    return command._replace(modules=(found.group(1),), scripts=())


def _pythonpath(record: ProcessRecord, cwd: str) -> list[str]:
    value = record.env_values.get("PYTHONPATH", "")
    return [os.path.join(cwd, p) if cwd else p for p in value.split(os.pathsep)[:MAX_SEARCH] if p]


def _root(entries: list[tuple[str, str, str]], cwd: str, sites: list[str], venv: str, command: Command) -> str:
    """The project folder: the working folder when the entry lies below it, else where the entry lies."""
    if entries:
        base = entries[0][1]
        if base in sites:
            return os.path.dirname(venv) if venv else os.path.dirname(entries[0][0])
        if cwd and cwd != "/" and safeio.is_within(base, cwd):
            return cwd
        if os.path.basename(base) == "src":
            return os.path.dirname(base)
        return base
    if command.scripts and not cwd:
        return os.path.dirname(command.scripts[0])
    return cwd or "/"


def _folder_modules(folder: str, reads: Reads) -> list[tuple[str, str]]:
    """The Python modules and notebooks of a working folder and its packages (two levels, bounded)."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, str, int]] = [(folder, "", 0)]
    while stack and len(found) < WALK_FILES:
        path, prefix, depth = stack.pop(0)
        for name in sorted(reads.listing(path)):
            if name.startswith((".", "__pycache__")) or name in ("node_modules", "site-packages", "venv", "env"):
                continue
            full = os.path.join(path, name)
            if name.endswith((".py", ".ipynb")):
                module = prefix + (name[:-3] if name.endswith(".py") else "__notebook__")
                found.append((full, module))
                if len(found) >= WALK_FILES:
                    break
            elif depth < 1 and name.isidentifier() and reads.isdir(full) and not reads.islink(full):
                stack.append((full, f"{prefix}{name}.", depth + 1))
    return found
