"""Freezes the endpoint with PyInstaller into one self-contained folder, the payload every package wraps.

Only the endpoint goes in (scan, daemon, status, register, signatures, schema): the collector, the Qt
console and the development tools are excluded by name (``NOT_THE_ENDPOINT``), and so is anything
that the endpoint's dependencies only reach through optional plugins. The folder is ``--onedir``: a
onefile build would unpack itself into a temporary folder at every start.

The folder, ``dist/agentroster-endpoint-<version>-<os>-<arch>/``, holds the ``agentroster`` executable
(``agentroster.exe`` on Windows) and ``_internal/`` with Python, the libraries and the data files the
endpoint reads beside its modules (the signature packs, the provider catalog, the contract's schemas).
What goes in is decided here; ``freeze/agentroster.spec`` only hands it to PyInstaller.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = Path(__file__).with_name("freeze") / "agentroster.spec"
ENTRY = Path(__file__).with_name("freeze") / "entry.py"
PACKAGE_LOCK = ROOT / "requirements" / "package.lock"
EXECUTABLE = "agentroster.exe" if sys.platform == "win32" else "agentroster"

#: Top-level modules (and subpackages) the frozen endpoint must not contain. PyInstaller follows every
#: import it can see, including ones behind an ``if`` or inside a plugin module, so each is named here.
NOT_THE_ENDPOINT: tuple[str, ...] = (
    # the collector and the console: `agentroster server` / `console` say they are not in this build
    "console", "PySide6", "shiboken6", "fastapi", "starlette", "uvicorn", "sqlmodel", "sqlalchemy", "alembic",
    "mako", "psycopg", "psycopg_binary", "psycopg_c", "httptools", "uvloop", "orjson", "websockets", "watchfiles",
    # development tools, reached through pydantic's mypy and hypothesis plugins
    "hypothesis", "_hypothesis_ftz_detector", "_hypothesis_globals", "_hypothesis_pytestplugin", "pytest",
    "_pytest", "pytestqt", "pluggy", "mypy", "mypyc", "ast_serialize", "librt", "jsonschema",
    "jsonschema_specifications", "referencing", "rpds", "pygments", "rich", "IPython", "importlinter", "grimp",
    "pydantic.mypy", "pydantic.v1",
    # httpx's own command line (the endpoint uses its client only)
    "httpx._main", "click",
    # build tools
    "PyInstaller", "setuptools", "pkg_resources", "_distutils_hack", "distutils", "pip", "wheel",
    # the standard library's interactive, GUI and test parts
    "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "pydoc", "pydoc_data", "pdb", "doctest", "unittest",
    "lib2to3", "ensurepip", "venv", "curses", "_curses", "readline", "xmlrpc",
)

#: Linux shared libraries taken from the system instead of bundled: libpcap is a declared dependency of
#: the .deb and .rpm (so it gets the distribution's security fixes), and these are only its own.
SYSTEM_LIBRARIES: tuple[str, ...] = ("libpcap.so", "libdbus-1.so", "libsystemd.so", "libgcrypt.so",
                                     "libgpg-error.so", "liblz4.so", "libcap.so")


#: PyInstaller's start-up scripts that the endpoint does not need, each of which costs every start its
#: imports (some 30 ms together, measured with bench/frozen.py): inspect's source lookup for frozen
#: modules (the endpoint reads no source), pkgutil.iter_modules over frozen packages (it lists none)
#: and multiprocessing's spawned helpers (it starts none).
SKIPPED_RUNTIME_HOOKS = frozenset({"pyi_rth_inspect", "pyi_rth_pkgutil", "pyi_rth_multiprocessing"})


class FreezeError(Exception):
    """The endpoint could not be frozen; the message says what to do."""


@dataclass(frozen=True)
class Plan:
    """What one freeze puts in the folder, for this machine's OS and architecture."""

    version: str
    folder: str
    excludes: list[str]
    datas: list[tuple[str, str]]  # (a file in the repository, the folder in the bundle it goes into)
    strip: bool
    system_libraries: tuple[str, ...] = field(default=())

    def keeps_runtime_hook(self, name: str) -> bool:
        """Whether PyInstaller's start-up script ``name`` runs at every start (see SKIPPED_RUNTIME_HOOKS)."""
        return name not in SKIPPED_RUNTIME_HOOKS

    def keeps_binary(self, name: str) -> bool:
        """Whether the shared library bundled as ``name`` stays in the folder (not the system's own)."""
        base = os.path.basename(name)
        return not any(base.startswith(lib) for lib in self.system_libraries)


def version() -> str:
    """The one version: ``contract.__version__`` (pyproject's dynamic version, what both sides report)."""
    if str(ROOT) not in sys.path:  # run as a script or from the spec: the repository is not on the path
        sys.path.insert(0, str(ROOT))
    import contract

    return contract.__version__


def os_name() -> str:
    """This OS as the folder and package names spell it: linux, macos or windows."""
    return {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform.rstrip("0123456789"))


def arch() -> str:
    """The machine's CPU, one spelling whatever the OS calls it: x86_64 or arm64 (each package turns it into
    its own: amd64 for a .deb, aarch64 for an .rpm, x64 for an MSI)."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def folder_name(ver: str | None = None) -> str:
    return f"agentroster-endpoint-{ver or version()}-{os_name()}-{arch()}"


def plan() -> Plan:
    """What a freeze on this machine puts in the folder, and what it leaves out."""
    ver = version()  # first: it puts the repository on the path
    excludes = list(NOT_THE_ENDPOINT)
    if sys.platform.startswith("linux") and not with_scapy():
        # Linux captures through packet sockets with libpcap's compiler called by ctypes; scapy is only
        # the capture of macOS, Windows and the BSDs.
        excludes.append("scapy")
    else:
        # scapy's capture needs its core and arch layers; what it loads on demand (contrib, the
        # layers beyond the link layer) is reached only by name and is left out anyway.
        excludes += ["scapy.contrib", "scapy.tools", "scapy.modules.krack"]
    datas = [(str(p), "signatures/packs") for p in sorted((ROOT / "signatures" / "packs").glob("*.yaml"))]
    datas.append((str(ROOT / "signatures" / "providers.yaml"), "signatures"))
    # The signatures cache is keyed by a digest of the code that derives it (signatures.loader's
    # DERIVING_CODE, read from beside the package): without these sources every start would parse
    # and validate the YAML again.
    from signatures.loader import DERIVING_CODE

    datas += [(str(path), "signatures") for path in DERIVING_CODE]
    datas += [(str(p), "contract/schema") for p in sorted((ROOT / "contract" / "schema").glob("*.json"))]
    return Plan(version=ver, folder=folder_name(ver), excludes=excludes, datas=datas,
                # stripped: libpython alone is some 23 MB with its symbols, 5 MB without (binutils' strip)
                strip=sys.platform.startswith("linux") and shutil.which("strip") is not None,
                system_libraries=SYSTEM_LIBRARIES if sys.platform.startswith("linux") else ())


def with_scapy() -> bool:
    """AGENTROSTER_FREEZE_SCAPY=1 keeps scapy in a Linux build (bench/frozen.py --scapy measures what the
    macOS and Windows builds carry that way)."""
    return os.environ.get("AGENTROSTER_FREEZE_SCAPY") == "1"


def source_digest() -> str:
    """A digest of everything a freeze is made from: the endpoint's code and data, this module and the
    spec, both locks, the Python and the platform. The same digest: the same folder."""
    digest = hashlib.sha256(f"{sys.version}\0{folder_name()}\0{with_scapy()}\0".encode())
    files: list[Path] = [Path(__file__), PACKAGE_LOCK, ROOT / "requirements" / "ci.lock"]
    files += [p for p in SPEC.parent.rglob("*") if p.is_file() and "__pycache__" not in p.parts]  # spec, entry, hooks
    for package in ("contract", "signatures", "endpoint"):
        files += [p for p in (ROOT / package).rglob("*") if p.suffix in (".py", ".yaml", ".json") and p.is_file()]
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        with contextlib.suppress(FileNotFoundError):
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def source_date_epoch() -> str:
    """SOURCE_DATE_EPOCH as set, else the last commit's time (else now, outside a git checkout)."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                              capture_output=True, text=True, timeout=30, check=True)
        return done.stdout.strip() or str(int(time.time()))
    except (OSError, subprocess.SubprocessError):
        return str(int(time.time()))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One freeze at a time into one dist/ (two test sessions, or ./dev package beside them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        if sys.platform == "win32":
            import msvcrt

            fh.seek(0)
            while True:  # LK_LOCK gives up after some 10 s; a freeze takes longer
                try:
                    msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def freeze(dist: Path, build: Path | None = None, *, reuse: bool = True, log: bool = True) -> Path:
    """The frozen endpoint folder in ``dist``, made now unless one made from the same sources is there.

    Raises FreezeError when PyInstaller is missing or fails."""
    dist = dist.resolve()
    build = (build or dist.parent / "build").resolve()
    target = dist / folder_name()
    stamp = dist / f".{target.name}.digest"
    with _locked(dist / ".freeze.lock"):
        want = source_digest()
        if reuse and (target / EXECUTABLE).is_file() and stamp.is_file() and stamp.read_text().strip() == want:
            return target
        _pyinstaller(dist, build, target, log=log)
        stamp.write_text(want + "\n")
    return target


def _pyinstaller(dist: Path, build: Path, target: Path, *, log: bool) -> None:
    import importlib.util

    if importlib.util.find_spec("PyInstaller") is None:
        raise FreezeError(f"PyInstaller is not installed in {sys.executable}: `./dev package` installs it, or "
                          f"`{sys.executable} -m pip install --require-hashes -r {PACKAGE_LOCK}`")
    staging = dist / f".freezing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": source_date_epoch(), "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
               "--distpath", str(staging), "--workpath", str(build / "pyinstaller"), str(SPEC)]
    if log:
        print(f"installers: freezing the endpoint into {target} (PyInstaller: some 10 to 30 s)", file=sys.stderr)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=not log, text=True)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "" if log else "\n" + (done.stderr or "")[-3000:]
        raise FreezeError(f"PyInstaller failed (exit {done.returncode}): {' '.join(command)}{tail}")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging / target.name, target)
    shutil.rmtree(staging, ignore_errors=True)


def _archive(folder: Path) -> Any:
    """The archive PyInstaller appended to a frozen folder's executable (its start-up scripts, the PYZ)."""
    from PyInstaller.archive.readers import CArchiveReader  # type: ignore[import-untyped]

    return CArchiveReader(str(folder / EXECUTABLE))


def bundled_modules(folder: Path) -> set[str]:
    """Every module name in a frozen folder: those in the executable's archive, and the extension modules
    and package folders under ``_internal/`` (the standard library's extensions by their own names)."""
    names: set[str] = set()
    package = _archive(folder)
    for entry in package.toc:
        if entry.endswith(".pyz"):
            names.update(package.open_embedded_archive(entry).toc)
    internal = folder / "_internal"
    for path in internal.rglob("*"):
        rel = path.relative_to(internal)
        if path.suffix in (".so", ".pyd"):
            module = rel.name.split(".")[0]  # pydantic_core.cpython-311-x86_64-linux-gnu.so: pydantic_core
            names.add(module if "lib-dynload" in rel.parts else ".".join([*rel.parts[:-1], module]))
        elif path.is_dir() and not rel.name.endswith(".dist-info"):
            names.add(".".join(rel.parts))
    return names


def startup_scripts(folder: Path) -> list[str]:
    """The scripts a frozen folder's executable runs at every start, in order (PyInstaller's bootstrap,
    its runtime hooks, then the entry point)."""
    package = _archive(folder)
    return [name for name, entry in package.toc.items() if entry[-1] == "s"]


def forbidden_in(folder: Path) -> list[str]:
    """The modules of ``NOT_THE_ENDPOINT`` (or their submodules) that a frozen folder holds."""
    names = bundled_modules(folder)
    return sorted(n for n in names for bad in NOT_THE_ENDPOINT if n == bad or n.startswith(bad + "."))


def folder_size(folder: Path) -> int:
    """Bytes on disk of the files in ``folder`` (their sizes, not their blocks)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
