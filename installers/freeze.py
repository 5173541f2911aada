"""Freezes the endpoint with PyInstaller into one self-contained folder, the payload every package wraps,
and the tray companion (``agentroster-companion``, with Qt) into a second folder of its own.

Only the endpoint goes in (scan, daemon, status, register, signatures, schema): the collector, the Qt
console and the development tools are excluded by name (``NOT_THE_ENDPOINT``), and so is anything
that the endpoint's dependencies only reach through optional plugins. The folder is ``--onedir``: a
onefile build would unpack itself into a temporary folder at every start.

The folder, ``dist/agentroster-endpoint-<version>-<os>-<arch>/``, holds the ``agentroster`` executable
(``agentroster.exe`` on Windows) and ``_internal/`` with Python, the libraries and the data files the
endpoint reads beside its modules (the signature packs, the provider catalog, the contract's schemas).
What goes in is decided here; ``freeze/agentroster.spec`` only hands it to PyInstaller.

The companion's folder, ``dist/agentroster-companion-<version>-<os>-<arch>/``, holds the
``agentroster-companion`` executable (on macOS, ``agentroster-companion.app``) and its own
``_internal/``: Qt's core, GUI and widgets modules with the plugins a desktop session loads, and the
endpoint code the companion runs (the socket client, the registration checks), nothing of the collector.
The two folders share no file: the daemon runs as root from its own, each user's companion from the
other, and neither writes into either (``freeze/companion.spec``, ``freeze/companion_entry.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = Path(__file__).with_name("freeze") / "agentroster.spec"
ENTRY = Path(__file__).with_name("freeze") / "entry.py"
PACKAGE_LOCK = ROOT / "requirements" / "package.lock"
COMPANION_SPEC = Path(__file__).with_name("freeze") / "companion.spec"
COMPANION_ENTRY = Path(__file__).with_name("freeze") / "companion_entry.py"
EXECUTABLE = "agentroster.exe" if sys.platform == "win32" else "agentroster"


@dataclass(frozen=True)
class Target:
    """One frozen folder: its name in ``agentroster-<name>-<version>-<os>-<arch>``, its spec, its executable."""

    name: str
    spec: Path
    executable_stem: str
    #: on macOS the folder holds this application bundle instead of the bare executable
    mac_app: str = ""
    mac_bundle_id: str = ""

    @property
    def executable(self) -> str:
        return self.executable_stem + (".exe" if sys.platform == "win32" else "")

    def executable_in(self, folder: Path) -> Path:
        """The executable inside a folder of this target frozen on this OS."""
        if self.mac_app and sys.platform == "darwin":
            return folder / self.mac_app / "Contents" / "MacOS" / self.executable_stem
        return folder / self.executable


ENDPOINT = Target("endpoint", SPEC, "agentroster")
#: the bundle id is the one the notifications profile allows (installers/macos/profiles.py)
COMPANION = Target("companion", COMPANION_SPEC, "agentroster-companion", mac_app="agentroster-companion.app",
                   mac_bundle_id="dev.agentroster.companion")

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

#: The Qt for Python modules the companion does not use. PySide6's hooks collect a module's Qt library,
#: plugins and translations only when the module is imported, but each is named so that nothing reached
#: through a plugin or an optional import drags one in (QtNetwork alone brings the TLS and network plugins).
NOT_THE_COMPANION: tuple[str, ...] = tuple(f"PySide6.{m}" for m in (
    "QtNetwork", "QtQml", "QtQuick", "QtQuickControls2", "QtQuickWidgets", "QtQuickTest", "QtOpenGL",
    "QtOpenGLWidgets", "QtSvg", "QtSvgWidgets", "QtPdf", "QtPdfWidgets", "QtDBus", "QtConcurrent", "QtSql",
    "QtTest", "QtXml", "QtPrintSupport", "QtHelp", "QtDesigner", "QtUiTools", "QtMultimedia",
    "QtMultimediaWidgets", "QtWebEngineCore", "QtWebEngineWidgets", "QtWebEngineQuick", "QtWebChannel",
    "QtWebSockets", "QtWebView", "Qt3DCore", "Qt3DRender", "Qt3DInput", "Qt3DLogic", "Qt3DAnimation",
    "Qt3DExtras", "QtCharts", "QtDataVisualization", "QtGraphs", "QtGraphsWidgets", "QtBluetooth",
    "QtPositioning", "QtLocation", "QtSerialPort", "QtSerialBus", "QtNfc", "QtRemoteObjects", "QtScxml",
    "QtSensors", "QtSpatialAudio", "QtStateMachine", "QtTextToSpeech", "QtHttpServer", "QtNetworkAuth",
    "QtAxContainer", "QtCanvasPainter",
)) + ("scapy",)

#: Qt plugin folders the companion's folder leaves out: image formats (its icon is drawn, it loads no
#: image) and icon engines (it takes no themed icon), OpenGL and EGL integrations (widgets draw in
#: software), and the ones for devices and protocols a tray app never meets. Kept: the platforms (xcb,
#: wayland, offscreen; cocoa; windows), the desktop-portal theme and the input methods (so that typing
#: works as in the user's other apps).
COMPANION_DROPPED_PLUGINS: tuple[str, ...] = (
    "imageformats", "egldeviceintegrations", "xcbglintegrations", "wayland-graphics-integration-client",
    "wayland-graphics-integration-server", "generic", "networkinformation", "tls", "sqldrivers",
    "multimedia", "qmltooling", "printsupport", "position", "sensors", "canbus", "texttospeech",
    "webview", "renderers", "sceneparsers", "assetimporters", "geometryloaders", "renderplugins",
    "iconengines",
    # one plugin of a folder: framebuffer, EGL, Vulkan and VNC "platforms" are for kiosks and embedded
    # screens, and the GTK theme would bundle the build machine's cairo and pango (the desktop portal
    # theme, through D-Bus, follows the desktop's light or dark look without them)
    "platforms/qeglfs", "platforms/qlinuxfb", "platforms/qminimalegl", "platforms/qvkkhrdisplay",
    "platforms/qvnc", "platformthemes/qgtk3",
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
    #: Qt plugin folders left out (the companion's: COMPANION_DROPPED_PLUGINS)
    dropped_plugins: tuple[str, ...] = field(default=())

    def keeps_runtime_hook(self, name: str) -> bool:
        """Whether PyInstaller's start-up script ``name`` runs at every start (see SKIPPED_RUNTIME_HOOKS)."""
        return name not in SKIPPED_RUNTIME_HOOKS

    def keeps_binary(self, name: str) -> bool:
        """Whether the shared library bundled as ``name`` stays in the folder (not the system's own)."""
        base = os.path.basename(name)
        return not any(base.startswith(lib) for lib in self.system_libraries) and not self._dropped_plugin(name)

    def keeps_data(self, name: str) -> bool:
        """Whether the data file bundled as ``name`` stays: not Qt's translations (the companion speaks
        English) nor a file of a plugin folder left out."""
        parts = Path(name).parts
        if "PySide6" in parts and "translations" in parts:
            return False
        return not self._dropped_plugin(name)

    def _dropped_plugin(self, name: str) -> bool:
        parts = Path(name).parts
        for i in range(len(parts) - 1):
            if parts[i] != "plugins":
                continue
            if parts[i + 1] in self.dropped_plugins:
                return True
            # "platforms/qvnc": libqvnc.so on Linux, libqvnc.dylib on macOS, qvnc.dll on Windows
            stem = parts[-1].removeprefix("lib").split(".")[0]
            return f"{parts[i + 1]}/{stem}" in self.dropped_plugins
        return False

    def prune(self, binaries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """The binaries that stay: without the plugins left out and, on Linux, without the shared
        libraries that only those plugins needed (PyInstaller collected them for the whole plugin folder).
        Kept: Python's extension modules, the kept plugins, libpython and every library they reach."""
        kept = [entry for entry in binaries if self.keeps_binary(entry[0])]
        if not self.dropped_plugins or not sys.platform.startswith("linux"):
            return kept
        by_name = {os.path.basename(dest): src for dest, src, _ in kept}
        reached: set[str] = set()
        todo = [os.path.basename(dest) for dest, _, kind in kept
                if kind == "EXTENSION" or "plugins" in Path(dest).parts or os.path.basename(dest).startswith("libpython")]
        while todo:
            name = todo.pop()
            if name in reached or name not in by_name:
                continue
            reached.add(name)
            todo += _needed(by_name[name])
        return [entry for entry in kept if os.path.basename(entry[0]) in reached]

    @staticmethod
    def prune_links(datas: list[tuple[str, str, str]], binaries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """The data entries without the links PyInstaller made to libraries that ``prune`` left out."""
        names = {os.path.basename(dest) for dest, _, _ in binaries}
        return [entry for entry in datas if entry[2] != "SYMLINK" or os.path.basename(entry[1]) in names]


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


def folder_name(ver: str | None = None, target: Target = ENDPOINT) -> str:
    return f"agentroster-{target.name}-{ver or version()}-{os_name()}-{arch()}"


def plan(target: Target = ENDPOINT) -> Plan:
    """What a freeze of ``target`` on this machine puts in its folder, and what it leaves out."""
    ver = version()  # first: it puts the repository on the path
    excludes = list(NOT_THE_ENDPOINT)
    if target is COMPANION:
        # the companion is the one place Qt goes; it captures nothing, so scapy stays out everywhere
        excludes = [m for m in excludes if m not in ("PySide6", "shiboken6")] + list(NOT_THE_COMPANION)
    elif sys.platform.startswith("linux") and not with_scapy():
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
    return Plan(version=ver, folder=folder_name(ver, target), excludes=excludes, datas=datas,
                # stripped: libpython alone is some 23 MB with its symbols, 5 MB without (binutils' strip)
                strip=sys.platform.startswith("linux") and shutil.which("strip") is not None,
                system_libraries=SYSTEM_LIBRARIES if sys.platform.startswith("linux") else (),
                dropped_plugins=COMPANION_DROPPED_PLUGINS if target is COMPANION else ())


def _needed(path: str) -> list[str]:
    """The DT_NEEDED names of an ELF shared library (``readelf -d``; binutils, which the strip needs too)."""
    done = subprocess.run(["readelf", "-d", "-W", path], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FreezeError(f"readelf -d {path} failed: {done.stderr.strip()} (install binutils)")
    return [line.rsplit("[", 1)[1].rstrip("]") for line in done.stdout.splitlines() if "(NEEDED)" in line]


def with_scapy() -> bool:
    """AGENTROSTER_FREEZE_SCAPY=1 keeps scapy in a Linux build (bench/frozen.py --scapy measures what the
    macOS and Windows builds carry that way)."""
    return os.environ.get("AGENTROSTER_FREEZE_SCAPY") == "1"


def source_digest(target: Target = ENDPOINT) -> str:
    """A digest of everything a freeze is made from: the endpoint's code and data, this module and the
    specs, both locks, the Python and the platform. The same digest: the same folder."""
    digest = hashlib.sha256(f"{sys.version}\0{folder_name(None, target)}\0{with_scapy()}\0".encode())
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


def freeze(dist: Path, build: Path | None = None, *, reuse: bool = True, log: bool = True,
           target: Target = ENDPOINT) -> Path:
    """The frozen folder of ``target`` (the endpoint unless told) in ``dist``, made now unless one made from
    the same sources is there. PyInstaller works in ``build``, by default a private temporary folder
    (never one beside ``dist`` that another user of the machine could have made first).

    Raises FreezeError when PyInstaller (or, for the companion, PySide6) is missing or fails."""
    dist = dist.resolve()
    folder = dist / folder_name(None, target)
    stamp = dist / f".{folder.name}.digest"
    with _locked(dist / ".freeze.lock"):
        want = source_digest(target)
        if (reuse and target.executable_in(folder).is_file() and stamp.is_file()
                and stamp.read_text().strip() == want):
            return folder
        if build is not None:
            _pyinstaller(dist, build.resolve(), folder, target, log=log)
        else:
            with tempfile.TemporaryDirectory(prefix="agentroster-freeze-") as private:  # mode 0700, ours
                _pyinstaller(dist, Path(private), folder, target, log=log)
        stamp.write_text(want + "\n")
    return folder


def freeze_companion(dist: Path, build: Path | None = None, *, reuse: bool = True, log: bool = True) -> Path:
    """The frozen companion's folder in ``dist`` (``freeze`` with the COMPANION target)."""
    return freeze(dist, build, reuse=reuse, log=log, target=COMPANION)


def _pyinstaller(dist: Path, build: Path, folder: Path, target: Target, *, log: bool) -> None:
    import importlib.util

    if importlib.util.find_spec("PyInstaller") is None:
        raise FreezeError(f"PyInstaller is not installed in {sys.executable}: `./dev package` installs it, or "
                          f"`{sys.executable} -m pip install --require-hashes -r {PACKAGE_LOCK}`")
    if target is COMPANION and importlib.util.find_spec("PySide6") is None:
        raise FreezeError(f"PySide6 is not installed in {sys.executable}, and the companion is made with it: "
                          f"`{sys.executable} -m pip install --require-hashes -r requirements/ci.lock` "
                          "(./dev does), or build without the companion (--no-companion)")
    staging = dist / f".freezing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": source_date_epoch(), "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
               "--distpath", str(staging), "--workpath", str(build / "pyinstaller"), str(target.spec)]
    if log:
        print(f"installers: freezing the {target.name} into {folder} (PyInstaller: some 10 to 60 s)", file=sys.stderr)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=not log, text=True)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "" if log else "\n" + (done.stderr or "")[-3000:]
        raise FreezeError(f"PyInstaller failed (exit {done.returncode}): {' '.join(command)}{tail}")
    shutil.rmtree(folder, ignore_errors=True)
    if target.mac_app and sys.platform == "darwin":
        # the application bundle is what ships; the bare folder PyInstaller also leaves is the same files
        folder.mkdir()
        os.replace(staging / target.mac_app, folder / target.mac_app)
    else:
        os.replace(staging / folder.name, folder)
    shutil.rmtree(staging, ignore_errors=True)


def _archive(folder: Path, target: Target = ENDPOINT) -> Any:
    """The archive PyInstaller appended to a frozen folder's executable (its start-up scripts, the PYZ)."""
    from PyInstaller.archive.readers import CArchiveReader  # type: ignore[import-untyped]

    return CArchiveReader(str(target.executable_in(folder)))


def bundled_modules(folder: Path, target: Target = ENDPOINT) -> set[str]:
    """Every module name in a frozen folder: those in the executable's archive, and the extension modules
    and package folders under ``_internal/`` (the standard library's extensions by their own names)."""
    names: set[str] = set()
    package = _archive(folder, target)
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
