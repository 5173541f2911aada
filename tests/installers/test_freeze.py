"""The frozen endpoint (installers.freeze) and the one entry point of the build (python -m installers).

The folder is frozen once per session by PyInstaller (tests/installers/conftest.py), copied to a place
of its own (as a package installs it, away from the repository and the venv), and run there with a
PATH that holds no Python and no PYTHONPATH/PYTHONHOME: it must find the same sightings as the venv's
`agentroster scan` on the same tmp home, hold nothing of the collector, the console or the dev tools,
report contract.__version__, run `daemon --once` against a real collector on 127.0.0.1, and say that
`server` and `console` are not in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import build_homes
from support import AGENTROSTER, TESTS

import contract
from installers import __main__ as entry
from installers import freeze

sys.path.append(str(TESTS / "console" / "server"))
import servers

FAKE_FINGERPRINT_KEY = "FAKE-fingerprint-key-0000"


@pytest.fixture(scope="module")
def installed(frozen_endpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The frozen folder copied under a tmp /opt: the executable in it."""
    target = tmp_path_factory.mktemp("opt") / "agentroster"
    shutil.copytree(frozen_endpoint, target, symlinks=True)
    return target / freeze.EXECUTABLE


@pytest.fixture(scope="module")
def no_python_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment as a service manager gives one: no Python on the PATH, no Python variables."""
    base = tmp_path_factory.mktemp("env")
    (base / "bin").mkdir()
    (base / "home").mkdir()
    env = {"PATH": str(base / "bin"), "HOME": str(base / "home"), "LANG": "C.UTF-8",
           "AGENTROSTER_CACHE_DIR": str(base / "cache"), "AGENTROSTER_FINGERPRINT_KEY": FAKE_FINGERPRINT_KEY}
    assert shutil.which("python3", path=env["PATH"]) is None and shutil.which("python", path=env["PATH"]) is None
    return env


def run(argv: list[str | Path], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, env=env,
                          cwd=env["HOME"], **kw)


def _venv_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HOME=str(tmp_path), AGENTROSTER_CACHE_DIR=str(tmp_path / "venv-cache"),
               AGENTROSTER_FINGERPRINT_KEY=FAKE_FINGERPRINT_KEY)
    return env


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    """What a scan found, without when it ran (first and last seen are the scan's clock)."""
    sightings = [{k: v for k, v in s.items() if k not in ("first_seen", "last_seen")} for s in document["sightings"]]
    return {"sightings": sorted(sightings, key=lambda s: s["id"]),
            "errors": sorted(document["errors"], key=lambda e: (e["where"], e["error"]))}


def test_the_frozen_scan_finds_what_the_venv_scan_finds_with_no_python_on_the_path(
        installed: Path, no_python_env: dict[str, str], tmp_path: Path) -> None:
    manifest = build_homes(tmp_path / "machine", homes=4, seed=11)
    frozen = run([installed, "scan", "--json", "--root", manifest.root], no_python_env)
    assert frozen.returncode == 0, frozen.stderr
    venv = run([AGENTROSTER, "scan", "--json", "--root", manifest.root], _venv_env(tmp_path))
    assert venv.returncode == 0, venv.stderr
    frozen_doc, venv_doc = json.loads(frozen.stdout), json.loads(venv.stdout)
    assert frozen_doc["schema"] == "agentroster.scan/1"
    assert len(frozen_doc["sightings"]) >= len(manifest.clients) > 0
    assert any(c["fingerprint"] for s in frozen_doc["sightings"] for c in s["credentials"])  # the key was read
    assert _comparable(frozen_doc) == _comparable(venv_doc)
    # the second start reads the signatures cache the first one wrote (its key needs the deriving code's sources)
    assert list(Path(no_python_env["AGENTROSTER_CACHE_DIR"]).glob("signatures-*.json"))


def test_the_frozen_folder_is_the_endpoint_and_nothing_else(frozen_endpoint: Path) -> None:
    names = freeze.bundled_modules(frozen_endpoint)
    for needed in ("endpoint.cli", "endpoint.scan.run", "endpoint.service.daemon", "endpoint.service.status",
                   "endpoint.service.registration.cli", "signatures.loader", "contract.validation", "pydantic",
                   "pydantic_core", "yaml", "psutil", "watchdog.observers", "httpx", "sqlite3"):
        assert needed in names, f"{needed} is missing from the frozen endpoint"
    assert freeze.forbidden_in(frozen_endpoint) == []
    scripts = freeze.startup_scripts(frozen_endpoint)
    assert scripts[-1] == "entry" and not freeze.SKIPPED_RUNTIME_HOOKS & set(scripts), scripts
    internal = frozen_endpoint / "_internal"
    assert sorted(p.name for p in (internal / "signatures" / "packs").glob("*.yaml")) == sorted(
        p.name for p in (freeze.ROOT / "signatures" / "packs").glob("*.yaml"))
    assert (internal / "contract" / "schema" / "scan-1.json").is_file()
    if sys.platform.startswith("linux"):
        assert "scapy" not in names  # Linux captures without it
        assert not list(internal.glob("libpcap.so*"))  # the system's, a dependency of the .deb and .rpm


def test_the_frozen_folder_is_named_and_reports_the_one_version(
        frozen_endpoint: Path, installed: Path, no_python_env: dict[str, str]) -> None:
    assert frozen_endpoint.name == f"agentroster-endpoint-{contract.__version__}-{freeze.os_name()}-{freeze.arch()}"
    done = run([installed, "--version"], no_python_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"agentroster {contract.__version__}"


def test_the_frozen_schema_and_signature_checks_answer_as_the_venv(
        installed: Path, no_python_env: dict[str, str], tmp_path: Path) -> None:
    frozen = run([installed, "schema"], no_python_env)
    assert frozen.returncode == 0, frozen.stderr
    assert json.loads(frozen.stdout) == json.loads((freeze.ROOT / "contract" / "schema" / "scan-1.json").read_text())
    checked = run([installed, "signatures", "check"], no_python_env)
    assert (checked.returncode, checked.stdout.strip()) == (0, "signatures: ok"), checked.stdout + checked.stderr
    listed = run([installed, "signatures", "list"], no_python_env)
    venv = run([AGENTROSTER, "signatures", "list"], _venv_env(tmp_path))
    assert listed.returncode == 0 and listed.stdout == venv.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="live capture needs root (CAP_NET_RAW) on Linux; CI runs as root")
def test_the_frozen_capture_compiles_its_filter_with_the_systems_libpcap(
        installed: Path, no_python_env: dict[str, str], tmp_path: Path) -> None:
    # the folder holds no libpcap (test above): ctypes must find the system's, with nothing on the PATH
    done = run([installed, "scan", "--json", "--root", tmp_path, "--no-processes", "--sniff", "0.3"], no_python_env)
    assert done.returncode == 0, done.stderr
    errors = json.loads(done.stdout)["errors"]
    assert [e for e in errors if e["where"] == "network" or "pcap" in e["error"]] == []


@pytest.mark.parametrize("command", ["server", "console"])
def test_the_collector_and_the_console_say_they_are_not_in_the_endpoint_build(
        installed: Path, no_python_env: dict[str, str], command: str) -> None:
    done = run([installed, command, "run"], no_python_env)
    assert done.returncode == 2
    assert f"agentroster {command}: not part of the endpoint build" in done.stderr
    assert f"pip install agentroster[{command}]" in done.stderr
    helped = run([installed, command, "--help"], no_python_env)
    assert f"agentroster {command}: not part of the endpoint build" in helped.stdout


def test_the_frozen_daemon_enrolls_and_reports_once_to_a_real_collector(
        installed: Path, no_python_env: dict[str, str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'collector.sqlite3'}"
    tokens = servers.provision(url)
    collector = servers.CollectorProcess(url, log=tmp_path / "server.log").start()
    try:
        secret = tmp_path / "enroll-secret"
        secret.write_text(tokens["enroll_secret"])
        secret.chmod(0o600)
        machine = build_homes(tmp_path / "machine", homes=1, seed=3)
        data = tmp_path / "data"
        env = {**no_python_env, "AGENTROSTER_SENSORS": "files"}
        done = run([installed, "daemon", "--once", "--collector", collector.base_url, "--enroll-secret-file", secret,
                    "--data-dir", data, "--root", machine.root], env)
        assert done.returncode == 0, done.stderr[-3000:]
        status = run([installed, "status", "--json", "--data-dir", data], env)
        doc = json.loads(status.stdout)
        assert doc["enrolled"] is True and doc["device"]["agentroster_version"] == contract.__version__, doc
        agents = httpx.get(collector.base_url + "/api/v1/agents", params={"device": doc["device_id"], "limit": 500},
                           headers={"authorization": f"Bearer {tokens['admin']}"}, timeout=30)
        assert agents.status_code == 200, agents.text
        scanned = json.loads(run([installed, "scan", "--json", "--no-processes", "--root", machine.root], env).stdout)
        assert scanned["sightings"]
        # the collector keys an agent by device (its own id): compare what each sighting is and whose
        got, want = agents.json()["data"], scanned["sightings"]
        assert sorted((s["name"], s["user"]) for s in got) == sorted((s["name"], s["user"]) for s in want)
    finally:
        collector.stop()


# -- the entry point ---------------------------------------------------------------------------------


def test_a_windows_or_macos_package_without_its_payload_says_where_to_get_one(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert entry.main(["msi", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs the endpoint frozen on Windows" in err and "--payload DIR" in err
    assert not list(tmp_path.iterdir())  # nothing frozen, nothing written


def test_a_payload_of_another_os_is_refused_unless_asked_and_then_said(
        frozen_endpoint: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert entry.payload_os(frozen_endpoint) == freeze.os_name()
    other = "macos" if freeze.os_name() != "macos" else "msi"
    assert entry.main([other, "--payload", str(frozen_endpoint), "--out", str(tmp_path)]) == 2
    assert "--foreign-payload" in capsys.readouterr().err
    # asked: the other OS's wrapper gets the folder and the one version, and the warning is said
    assert entry.main([other, "--payload", str(frozen_endpoint), "--foreign-payload", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr()
    assert "NOT a" in printed.err and "do not deploy it" in printed.err
    built = [Path(line) for line in printed.out.split()]
    assert built and all(path.exists() and tmp_path in path.parents for path in built)


def test_a_payload_that_is_not_a_frozen_folder_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert entry.main(["deb", "--payload", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no agentroster or agentroster.exe in it" in capsys.readouterr().err
    windows = tmp_path / "windows"
    windows.mkdir()
    (windows / "agentroster.exe").write_bytes(b"MZ\x90\x00" + bytes(60))
    assert entry.payload_os(windows) == "windows"


def test_a_python_without_pyinstaller_is_told_how_to_install_it(tmp_path: Path) -> None:
    # python -S: this venv's interpreter without its site-packages, as a Python without the build lock
    done = subprocess.run([sys.executable, "-S", "-m", "installers", "freeze", "--out", str(tmp_path / "dist")],
                          cwd=freeze.ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "PyInstaller is not installed" in done.stderr and "requirements/package.lock" in done.stderr
    assert not list((tmp_path / "dist").glob("agentroster-endpoint-*"))


def test_a_format_whose_wrapper_is_missing_says_it_is_not_available_yet(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], frozen_endpoint: Path,
        tmp_path: Path) -> None:
    # The four wrappers exist in this checkout: point one format at a module that does not, as a
    # checkout before its wrapper landed would be.
    monkeypatch.setitem(entry.FORMATS, "deb", ("installers.nowhere.deb", "linux"))
    assert entry.main(["deb", "--payload", str(frozen_endpoint), "--out", str(tmp_path)]) == 2
    assert "not available yet (installers/nowhere/deb.py is not in this checkout)" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the frozen companion

#: the Python modules of Qt for Python the companion may hold: the three it imports, and their binding core
COMPANION_QT_MODULES = {"PySide6", "PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "shiboken6",
                        "shiboken6.Shiboken"}


@pytest.fixture(scope="module")
def companion(frozen_companion: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The frozen companion folder copied under a tmp /opt, away from the repository and the venv."""
    target = tmp_path_factory.mktemp("opt-companion") / "companion"
    shutil.copytree(frozen_companion, target, symlinks=True)
    return target


def test_the_frozen_companion_starts_offscreen_and_exits_with_no_python_on_the_path(
        companion: Path, no_python_env: dict[str, str]) -> None:
    env = {k: v for k, v in no_python_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = run([freeze.COMPANION.executable_in(companion), "--self-check"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"agentroster-companion {contract.__version__} self-check: ok (Qt 6.")
    assert "platform offscreen" in done.stdout
    version = run([freeze.COMPANION.executable_in(companion), "--version"], env)
    assert (version.returncode, version.stdout) == (0, f"agentroster-companion {contract.__version__}\n")


def test_the_frozen_companion_says_what_is_missing_when_its_folder_is_incomplete(
        companion: Path, no_python_env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "companion"
    shutil.copytree(companion, broken, symlinks=True)
    for plugin in (broken / "_internal").rglob("libqoffscreen*"):  # the platform the check starts on
        plugin.unlink()
    done = run([freeze.COMPANION.executable_in(broken), "--self-check"], no_python_env)
    assert done.returncode != 0
    assert "offscreen" in done.stderr


def test_the_companion_folder_holds_qt_core_gui_and_widgets_and_nothing_of_the_collector(companion: Path) -> None:
    names = freeze.bundled_modules(companion, freeze.COMPANION)
    python_qt = {n for n in names if n.split(".")[0] in ("PySide6", "shiboken6") and n != "PySide6.Qt" and not n.startswith("PySide6.Qt.")}
    assert python_qt == COMPANION_QT_MODULES
    assert {"endpoint.companion.app", "endpoint.companion.cli", "endpoint.service.localsock"} <= names
    not_here = [m for m in freeze.NOT_THE_ENDPOINT if m not in ("PySide6", "shiboken6")] + ["scapy"]
    assert sorted(n for n in names for bad in not_here if n == bad or n.startswith(bad + ".")) == []
    internal = companion / "_internal"
    plugins = {p.parent.name + "/" + p.name.split(".")[0] for p in internal.rglob("*") if "plugins" in p.parts
               and p.is_file()}
    # the platforms a desktop session uses, and the offscreen one the self-check starts on; no kiosk
    # platforms, image formats or GTK theme (which would bundle the build machine's cairo and pango)
    assert {"platforms/libqxcb", "platforms/libqwayland", "platforms/libqoffscreen"} <= plugins
    assert not [p for p in plugins if p.split("/")[0] in freeze.COMPANION_DROPPED_PLUGINS]
    assert not {"platforms/libqvnc", "platforms/libqeglfs", "platformthemes/libqgtk3"} & plugins
    assert not list(internal.rglob("libQt6Network*")) and not list(internal.rglob("libcairo*"))
    assert not list(internal.rglob("translations"))
    dangling = [p for p in companion.rglob("*") if p.is_symlink() and not p.exists()]
    assert dangling == []


def test_the_companion_and_the_endpoint_are_two_folders_that_share_no_file(
        frozen_endpoint: Path, frozen_companion: Path) -> None:
    assert frozen_companion.parent == frozen_endpoint.parent
    assert frozen_companion.name == f"agentroster-companion-{contract.__version__}-{freeze.os_name()}-{freeze.arch()}"
    assert not frozen_companion.is_relative_to(frozen_endpoint) and not frozen_endpoint.is_relative_to(frozen_companion)
    # no link from one into the other: the daemon (root) and a user's companion never read one file
    for folder, other in ((frozen_companion, frozen_endpoint), (frozen_endpoint, frozen_companion)):
        for path in folder.rglob("*"):
            if path.is_symlink():
                assert not path.resolve().is_relative_to(other.resolve()), path
    # and the endpoint still holds no Qt
    assert freeze.forbidden_in(frozen_endpoint) == []


def test_pyinstaller_works_in_a_private_folder_never_one_beside_out(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # PyInstaller itself is replaced (a stand-in that records where it was told to work): what is
    # checked is the folder the build hands it, and a real freeze takes half a minute
    seen: list[tuple[Path, int]] = []

    def record(dist: Path, build: Path, folder: Path, target: freeze.Target, *, log: bool) -> None:
        seen.append((build, build.stat().st_mode & 0o777))
        (folder / "_internal").mkdir(parents=True)
        target.executable_in(folder).write_text("#!/bin/sh\n")

    monkeypatch.setattr(freeze, "_pyinstaller", record)
    out = tmp_path / "x"
    assert entry.main(["freeze", "--out", str(out)]) == 0
    assert [b.name for b, _ in seen] and len(seen) == 2  # the endpoint, then the companion
    for build, mode in seen:
        assert not build.is_relative_to(tmp_path) and mode == 0o700 and not build.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no x/../build for another user to plant


def test_the_companion_options_are_refused_when_they_contradict_or_name_no_companion(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert entry.main(["deb", "--companion", str(tmp_path / "empty"), "--no-companion", "--out", str(tmp_path)]) == 2
    assert entry.main(["deb", "--companion", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
