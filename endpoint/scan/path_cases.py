"""A signature's path cases, run through the file sensor itself.

The file a case names (in template notation: ``~/.cursor/mcp.json``, ``%APPDATA%/Code/User/mcp.json``,
``{project}/.mcp.json``, ``/etc/codex/managed_config.toml``) is written into a throwaway machine tree,
and the case matches when a scan of that tree (``FileScan`` with the real home discovery, template
expansion, globbing and project walk) credits that file to the signature. The signatures package never
imports the endpoint: ``signatures check`` and the test suite hand ``path_found`` to
``signatures.cases``. A project case (a process case with the files of the project it runs in) is run
the same way through ``project_found``: the files are written into a project folder and read by the
project resolver (``endpoint.scan.projects``) as a deployed process's would be.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

from endpoint.scan.evidence import ArtifactRecord, ConfigRecord
from endpoint.scan.homes import find_homes
from endpoint.scan.sensors.files import FileScan

if TYPE_CHECKING:
    from signatures import Library

#: where each home-relative variable points inside a home, as ``homes.expand_home_template`` has it
_HOME_VARS = (("%APPDATA%", "AppData/Roaming"), ("%LOCALAPPDATA%", "AppData/Local"), ("%USERPROFILE%", ""),
              ("~", ""))
#: where each machine-wide variable points under the root, as ``homes.expand_machine_template`` has it
_MACHINE_VARS = (("%PROGRAMDATA%", "ProgramData"), ("%PROGRAMFILES%", "Program Files"))
#: a home's own folders that make ``homes.find_homes`` take it for that OS's layout
_LAYOUT = {"linux": ("home/alice", ""), "macos": ("Users/alice", "Library"), "windows": ("Users/alice", "AppData")}
#: the smallest document each kind of file parses to without an error
_EMPTY = {".json": "{}\n", ".jsonc": "{}\n", ".yaml": "{}\n", ".yml": "{}\n", ".xml": "<application/>\n"}


def case_platform(path: str, declared: str | None = None) -> str:
    """The OS a path case is on: as declared, else as its shape says."""
    if declared:
        return declared
    if path.startswith("%"):
        return "windows"
    if path.startswith(("/Library/", "/Applications/", "~/Library/")):
        return "macos"
    return "linux"


def concrete_path(path: str, platform: str) -> str:
    """The path a case names, relative to a machine tree's root, with the user ``alice`` and a project
    ``src/demo`` in her home."""
    home = _LAYOUT[platform][0]
    for var, sub in _HOME_VARS:
        if path.startswith(var):
            return "/".join(p for p in (home, sub, path[len(var):].strip("/")) if p)
    if path.startswith("{project}"):
        return f"{home}/src/demo/{path[len('{project}'):].strip('/')}"
    for var, sub in _MACHINE_VARS:
        if path.startswith(var):
            return f"{sub}/{path[len(var):].strip('/')}"
    if path.startswith("/"):
        return path.lstrip("/")
    raise ValueError(f"not a path in template notation: {path!r}")


def _path_found(lib: Library, signature_id: str, path: str, platform: str | None = None) -> bool:
    """Whether the file sensor, scanning a tree that holds only the file ``path`` names, credits it to
    the signature ``signature_id`` (a config it reads, or an app it notes)."""
    chosen = case_platform(path, platform)
    with tempfile.TemporaryDirectory(prefix="agentroster-case-") as made:
        root = os.path.realpath(made)
        home, layout = _LAYOUT[chosen]
        os.makedirs(os.path.join(root, home, layout))
        target = os.path.join(root, concrete_path(path, chosen))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as out:
            out.write(_EMPTY.get(os.path.splitext(target)[1].lower(), ""))
        for record in FileScan(lib, root).run(find_homes(root)):
            if isinstance(record, (ConfigRecord, ArtifactRecord)) and record.signature == signature_id \
                    and os.path.realpath(record.path) == target:
                return True
    return False


def project_found(lib: Library, argv: list[str], files: dict[str, str]) -> str | None:
    """The signature the endpoint names for a process ``argv`` run from a project holding ``files``: the
    project resolver reads the project (its interpreter's venv holds every enterprise framework's package
    and modules, so that only the code decides), then the engine's framework match; None when it names none."""
    from endpoint.scan.engine.projects import Frameworks
    from endpoint.scan.evidence import ProcessRecord
    from endpoint.scan.projects import ProjectReader, interests_of
    from signatures.matching import pep503

    with tempfile.TemporaryDirectory(prefix="agentroster-case-") as made:
        root = os.path.realpath(made)
        project, venv = os.path.join(root, "project"), os.path.join(root, "venv")
        for name, text in files.items():
            target = os.path.join(project, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as out:
                out.write(text)
        os.makedirs(project, exist_ok=True)
        site = os.path.join(venv, "lib", "python3.11", "site-packages")
        os.makedirs(site)
        with open(os.path.join(venv, "pyvenv.cfg"), "w", encoding="utf-8") as out:
            out.write("home = /usr/bin\n")
        for sig in lib.signatures:
            if sig.type != "enterprise":
                continue
            for name in sig.packages.pypi[:1]:
                os.makedirs(os.path.join(site, f"{pep503(name).replace('-', '_')}-1.0.dist-info"), exist_ok=True)
            for module in sig.process.script_imports:
                os.makedirs(os.path.join(site, module.split(".")[0]), exist_ok=True)
        node = os.path.basename(argv[0]) in ("node", "npm", "npx", "tsx") or argv[0].startswith("npm ")
        record = ProcessRecord(pid=os.getpid(), ppid=1, name=os.path.basename(argv[0])[:15],
                               exe="/usr/bin/node" if node else os.path.join(venv, "bin", "python3"), cmdline=argv,
                               user="alice", uid=os.getuid(), create_time=0.0, env_values={"VIRTUAL_ENV": venv},
                               cwd=project)
        found = ProjectReader(interests_of(lib), maps=False).read(record)
        match = Frameworks(lib).match(found) if found is not None else None
        return match.signature.id if match is not None else None


class _CaseSearch:
    """``path_found`` as ``signatures.cases`` takes it: called for a path case, with ``project_found`` for
    a project case."""

    project_found = staticmethod(project_found)

    def __call__(self, lib: Library, signature_id: str, path: str, platform: str | None = None) -> bool:
        return _path_found(lib, signature_id, path, platform)


#: what ``signatures.check`` and ``run_signature_cases`` are handed: path cases through the file sensor's
#: search, project cases through the project resolver and the engine
path_found = _CaseSearch()
