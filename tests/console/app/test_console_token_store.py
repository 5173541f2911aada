"""Where the console keeps tokens (a 0600 file where no keyring is), the embedded collector a laptop
can try the product on, and the ``agentroster console`` command's lazy import of Qt."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from console.app import api, embedded, token_store

pytestmark = pytest.mark.timeout(180)


def test_the_token_file_is_owner_only_and_per_server(tmp_path: Path) -> None:
    store = token_store.FileStore(tmp_path / "conf" / "credentials.json")
    store.set("https://a.example", "ara_FAKE_a")
    store.set("https://b.example", "ara_FAKE_b")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert store.get("https://a.example") == "ara_FAKE_a"
    store.delete("https://a.example")
    assert store.get("https://a.example") is None and store.get("https://b.example") == "ara_FAKE_b"


def test_a_damaged_token_file_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    store = token_store.FileStore(path)
    assert store.get("https://a.example") is None
    store.set("https://a.example", "ara_FAKE")
    assert store.get("https://a.example") == "ara_FAKE"


def test_without_keyring_the_store_is_the_file(tmp_path: Path) -> None:
    try:
        import keyring  # noqa: F401
    except ImportError:
        assert isinstance(token_store.store(tmp_path / "c.json"), token_store.FileStore)
    else:
        pytest.skip("keyring is installed here: the store depends on its backend")


def test_the_embedded_collector_starts_with_an_admin_token_and_keeps_it(tmp_path: Path) -> None:
    store = token_store.FileStore(tmp_path / "credentials.json")
    first = embedded.EmbeddedCollector(tmp_path / "data", store).start()
    try:
        assert first.url.startswith("http://127.0.0.1:")
        client = api.Client(first.url, first.token)
        assert client.role() == "admin" and client.overview().sightings == 0
        client.close()
        token = first.token
    finally:
        first.stop()
    assert first.proc is None
    assert (tmp_path / "data" / "collector.sqlite3").exists()
    second = embedded.EmbeddedCollector(tmp_path / "data", store).start()
    try:
        assert second.token == token  # the stored token still works: no new one made
    finally:
        second.stop()


def test_the_console_command_line_does_not_import_qt_until_it_runs() -> None:
    code = ("import sys; from endpoint import cli; cli._parser('console'); "
            "print('console.app.cli' in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('PySide6', 'console.app.api', 'console.app.views'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True []"


def test_console_help_is_there() -> None:
    out = subprocess.run([sys.executable, "-m", "endpoint.cli", "console", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--server URL" in out.stdout


def test_the_console_command_runs_an_embedded_collector_and_stops_it_on_term(tmp_path: Path) -> None:
    import os
    import signal
    import time

    import psutil

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    env.pop("AGENTROSTER_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "endpoint.cli", "console"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    collector_proc = None
    try:
        deadline = time.monotonic() + 90
        store = tmp_path / "config" / "agentroster" / "console" / "credentials.json"
        while time.monotonic() < deadline and not store.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        assert store.exists(), "the embedded collector's admin token was never stored"
        children = psutil.Process(proc.pid).children(recursive=True)
        collector_proc = next(c for c in children if "server" in c.cmdline())
        assert (tmp_path / "data" / "agentroster" / "console" / "collector" / "collector.sqlite3").exists()
        time.sleep(1.0)  # the window is up and loading
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        collector_proc.wait(timeout=30)
        assert not collector_proc.is_running()
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if collector_proc is not None and collector_proc.is_running():
            collector_proc.kill()
