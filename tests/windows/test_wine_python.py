"""The Windows Python the tests of Windows-only code run on: a real CPython for Windows under Wine, the
repository importable in it, named pipes working between two of its processes; and its provisioning,
which trusts nothing it downloads before the hash says so."""

from __future__ import annotations

import hashlib
import io
import json
import os
import selectors
import shutil
import subprocess
import tarfile
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import wine_python
from wine_python import (
    DATA_ZIP,
    MARKER,
    PYTHON_DIR,
    SDIST_NAME,
    SDIST_SHA256,
    ProvisionError,
    WinePython,
    extract_python,
    provision,
    provisioning_key,
    winpath,
)

ROOT = Path(__file__).resolve().parents[2]


def test_it_is_a_real_windows_python(win_python: WinePython, tmp_path: Path) -> None:
    seen = tmp_path / "é seen by Windows.txt"
    seen.write_text("from Linux\n", encoding="utf-8")
    done = win_python.run(
        ["-c",
         "import ctypes, json, os, platform, sys\n"
         "print(json.dumps({'platform': sys.platform, 'os': os.name, 'version': sys.version,\n"
         "    'pid': ctypes.windll.kernel32.GetCurrentProcessId(), 'getpid': os.getpid(),\n"
         "    'machine': platform.machine(), 'cwd': os.getcwd(), 'env': os.environ.get('AGENTROSTER_PROBE'),\n"
         "    'read': open(sys.argv[1], encoding='utf-8').read(), 'no_pyc': sys.dont_write_bytecode}))",
         winpath(seen)],
        timeout=120, env={"AGENTROSTER_PROBE": "from the test"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["platform"] == "win32" and facts["os"] == "nt"
    assert facts["version"].startswith("3.11.") and "MSC" in facts["version"]
    assert facts["machine"] == "AMD64"
    assert facts["pid"] == facts["getpid"] > 0  # kernel32 through ctypes, and the same process as Python's own
    assert facts["cwd"].lower() == winpath(tmp_path).lower()
    assert facts["env"] == "from the test"
    assert facts["read"] == "from Linux\n"
    assert facts["no_pyc"] is True


def test_the_endpoints_socket_and_registration_code_imports_and_validates(win_python: WinePython) -> None:
    done = win_python.run(
        "import json, sys\n"
        "import endpoint.service.localsock, endpoint.service.registration.socket_handler\n"
        "import endpoint.service.registration.cli\n"
        "from endpoint.scan.platforms import PLATFORM\n"
        "from endpoint.service.registration import policy\n"
        "from endpoint.service.registration.errors import InvalidRegistration\n"
        "ok = policy.validate({'sighting_id': 's1', 'owner': ' alice ', 'purpose': 'triage'})\n"
        "try:\n"
        "    policy.validate({'sighting_id': 's1', 'owner': 'a' * 300, 'purpose': 'triage'})\n"
        "    refused = None\n"
        "except InvalidRegistration as exc:\n"
        "    refused = str(exc)\n"
        "print(json.dumps({'platform': PLATFORM, 'ok': ok, 'refused': refused,\n"
        "                  'endpoint': endpoint.__file__, 'pydantic': sys.modules['pydantic'].__file__}))",
        timeout=120)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["platform"] == "windows"
    assert facts["ok"]["owner"] == "alice" and facts["ok"]["autonomy"] == "supervised"
    assert facts["refused"] is not None and "at most 256 characters" in facts["refused"]
    assert facts["endpoint"].lower().startswith(winpath(ROOT).lower() + "\\endpoint\\")
    assert facts["pydantic"].lower().startswith(winpath(win_python.site).lower())


def test_the_bcryptprimitives_shim_gives_random_bytes(win_python: WinePython) -> None:
    """Wine 8 lacks bcryptprimitives.dll: the forwarding one provisioning writes is the one loaded, and its
    ProcessPrng fills buffers with advapi32's random bytes."""
    done = win_python.run(
        "import ctypes, json, os\n"
        "from ctypes import wintypes\n"
        "dll = ctypes.WinDLL('bcryptprimitives.dll')\n"
        "path = ctypes.create_unicode_buffer(1024)\n"
        "ctypes.windll.kernel32.GetModuleFileNameW(wintypes.HMODULE(dll._handle), path, 1024)\n"
        "dll.ProcessPrng.argtypes = [ctypes.c_void_p, ctypes.c_size_t]\n"
        "buffers = [ctypes.create_string_buffer(64) for _ in range(2)]\n"
        "for b in buffers:\n"
        "    dll.ProcessPrng(b, 64)\n"
        "print(json.dumps({'path': path.value, 'bytes': [b.raw.hex() for b in buffers]}))",
        timeout=60)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["path"].lower() == winpath(win_python.python.parent / wine_python.SHIM_DLL).lower()
    first, second = facts["bytes"]
    assert first != second and first != "00" * 64 and second != "00" * 64


# Only ctypes over kernel32, as the endpoint's pipe transport does; 64-bit handles need the argtypes.
PIPE_PRELUDE = """
import ctypes, hashlib, json, os, sys
from ctypes import wintypes
k32 = ctypes.WinDLL("kernel32", use_last_error=True)
k32.CreateNamedPipeW.restype = wintypes.HANDLE
k32.CreateNamedPipeW.argtypes = [wintypes.LPCWSTR] + [wintypes.DWORD] * 6 + [wintypes.LPVOID]
k32.CreateFileW.restype = wintypes.HANDLE
k32.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
                            wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
k32.ConnectNamedPipe.argtypes = [wintypes.HANDLE, wintypes.LPVOID]
for name in ("ReadFile", "WriteFile"):
    getattr(k32, name).argtypes = [wintypes.HANDLE, wintypes.LPVOID, wintypes.DWORD,
                                   ctypes.POINTER(wintypes.DWORD), wintypes.LPVOID]
k32.FlushFileBuffers.argtypes = k32.DisconnectNamedPipe.argtypes = k32.CloseHandle.argtypes = [wintypes.HANDLE]
INVALID_HANDLE = wintypes.HANDLE(-1).value

def fail(call):
    raise OSError(ctypes.get_last_error(), call + " failed")

def write_all(handle, data):
    while data:
        done = wintypes.DWORD()
        if not k32.WriteFile(handle, data, len(data), ctypes.byref(done), None):
            fail("WriteFile")
        data = data[done.value:]

def read_line(handle):
    got, buffer = b"", ctypes.create_string_buffer(4096)
    while not got.endswith(b"\\n"):
        done = wintypes.DWORD()
        if not k32.ReadFile(handle, buffer, len(buffer), ctypes.byref(done), None) or done.value == 0:
            fail("ReadFile")
        got += buffer.raw[:done.value]
    return got
"""

PIPE_SERVER = PIPE_PRELUDE + """
pipe = k32.CreateNamedPipeW(sys.argv[1], 0x3, 0x0, 1, 65536, 65536, 0, None)  # duplex; bytes, waiting
if pipe == INVALID_HANDLE:
    fail("CreateNamedPipeW")
print("listening", os.getpid(), flush=True)
if not k32.ConnectNamedPipe(pipe, None) and ctypes.get_last_error() != 535:  # 535: it connected first
    fail("ConnectNamedPipe")
request = read_line(pipe)
write_all(pipe, json.dumps({"server_pid": os.getpid(), "sha256": hashlib.sha256(request).hexdigest(),
                            "size": len(request)}).encode() + b"\\n")
k32.FlushFileBuffers(pipe)
k32.DisconnectNamedPipe(pipe)
k32.CloseHandle(pipe)
"""

PIPE_CLIENT = PIPE_PRELUDE + """
pipe = k32.CreateFileW(sys.argv[1], 0xC0000000, 0, None, 3, 0, None)  # read and write; OPEN_EXISTING
if pipe == INVALID_HANDLE:
    fail("CreateFileW")
request = ("é" * 40000 + "\\n").encode()  # 80 KB: more than one buffer each way
write_all(pipe, request)
answer = json.loads(read_line(pipe))
k32.CloseHandle(pipe)
print(json.dumps({"client_pid": os.getpid(), "sent": hashlib.sha256(request).hexdigest(), "answer": answer}))
"""


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """One line of the process's stdout, or fail the test after ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"no line from the Windows process in {timeout} s")
    return process.stdout.readline()


def test_a_named_pipe_carries_bytes_between_two_windows_processes(win_python: WinePython) -> None:
    name = rf"\\.\pipe\agentroster-test-{uuid.uuid4().hex}"
    server = win_python.popen(["-c", PIPE_SERVER, name])
    first = read_line(server, timeout=60).split()
    assert first[:1] == ["listening"], server.communicate(timeout=10)
    client = win_python.run(["-c", PIPE_CLIENT, name], timeout=60)
    assert client.returncode == 0, client.stderr
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    facts = json.loads(client.stdout)
    assert facts["answer"] == {"server_pid": int(first[1]), "sha256": facts["sent"], "size": 80001}
    assert facts["client_pid"] != facts["answer"]["server_pid"]  # two Windows processes


# -- provisioning (no Wine needed) -----------------------------------------------------------------------------


def sdist_with(tmp_path: Path, members: dict[str, bytes]) -> Path:
    """An sdist shaped as the pinned one, its data.zip holding ``members``."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    sdist = tmp_path / SDIST_NAME
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo(DATA_ZIP)
        info.size = len(data.getvalue())
        tar.addfile(info, io.BytesIO(data.getvalue()))
    return sdist


WHOLE = {f"{PYTHON_DIR}/{name}": b"MZ" for name in ("python.exe", "python311.dll", "DLLs/_ctypes.pyd")}
WHOLE[f"{PYTHON_DIR}/Lib/os.py"] = b"# os\n"


@pytest.mark.parametrize("bad", ["cp311/../../escaped.txt", "/etc/cron.d/evil", "cp311\\..\\evil.dll",
                                 "C:/Windows/evil.dll", "elsewhere/file.txt", "cp311/Lib/../../../x"])
def test_a_member_outside_cp311_refuses_the_whole_archive(tmp_path: Path, bad: str) -> None:
    sdist = sdist_with(tmp_path, {**WHOLE, bad: b"hostile"})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ProvisionError, match="not a plain path under cp311/"):
        extract_python(sdist, dest)
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert not (tmp_path / "escaped.txt").exists()


def test_extraction_keeps_cp311_less_the_skipped_folders_and_needs_a_whole_python(tmp_path: Path) -> None:
    sdist = sdist_with(tmp_path, {**WHOLE, "cp311/Lib/site-packages/distutils-precedence.pth": b"import os",
                                  "cp311/tcl/tk.tcl": b"#"})
    dest = tmp_path / "out"
    extract_python(sdist, dest)
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == sorted(WHOLE)
    assert (dest / "cp311/Lib/site-packages").is_dir()
    with pytest.raises(ProvisionError, match="no cp311/python311.dll"):
        extract_python(sdist_with(tmp_path, {k: v for k, v in WHOLE.items() if "python311" not in k}),
                       tmp_path / "again")


def test_a_download_with_the_wrong_hash_is_an_error_and_nothing_is_extracted(tmp_path: Path) -> None:
    def tampered(dest: Path) -> None:  # a mirror or proxy answering other bytes (no network in this test)
        sdist_with(tmp_path, WHOLE).rename(dest)

    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(ProvisionError, match=f"not the pinned {SDIST_SHA256}"):
        provision(cache, download=tampered)
    assert sorted(p.name for p in cache.iterdir()) == [".lock"]  # the file removed, nothing extracted


def test_a_half_made_cache_is_made_again(win_python: WinePython, tmp_path: Path) -> None:
    """The session's cache lends its verified sdist (no second download); a folder of the current key
    without its marker, as a run killed while extracting leaves it, is replaced by a whole one."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(win_python.home.parent / SDIST_NAME, cache / SDIST_NAME)
    half = cache / provisioning_key()
    (half / PYTHON_DIR).mkdir(parents=True)
    (half / PYTHON_DIR / "python.exe").write_bytes(b"MZ cut short")

    def no_download(dest: Path) -> None:
        pytest.fail("the cached sdist has the pinned hash: it must not be downloaded again")

    home = provision(cache, download=no_download)
    assert home == half and (home / MARKER).is_file()
    python_exe = home / PYTHON_DIR / "python.exe"
    assert python_exe.read_bytes() == (win_python.home / PYTHON_DIR / "python.exe").read_bytes()
    assert (home / "site" / "pydantic_core").is_dir()
    assert (home / PYTHON_DIR / wine_python.SHIM_DLL).read_bytes()[:2] == b"MZ"
    assert hashlib.sha256((cache / SDIST_NAME).read_bytes()).hexdigest() == SDIST_SHA256
    began = os.stat(home / MARKER).st_mtime_ns
    time.sleep(0.01)
    assert provision(cache, download=no_download) == home  # whole now: kept as it is
    assert os.stat(home / MARKER).st_mtime_ns == began
