"""``agentroster server`` serves plain HTTP only on loopback unless ``--insecure-http`` is given: the
refusal comes before the store is opened or the port bound."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import servers

from console.loopback import is_loopback_host, plain_http_elsewhere


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "collector.example.org", "localhost.evil.example"])
def test_plain_http_on_a_non_loopback_address_is_refused_before_serving(tmp_path: Path, host: str) -> None:
    port = servers.free_port()
    done = subprocess.run([servers.AGENTROSTER, "server", "run", "--host", host, "--port", str(port),
                           "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"refusing to serve plain HTTP on {host}" in done.stderr and "--insecure-http" in done.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())  # no store made
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens


def test_insecure_http_serves_on_every_address_with_a_warning(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = servers.CollectorProcess(f"sqlite:///{tmp_path}/c.sqlite3", log=log,
                                       extra=("--host", "0.0.0.0", "--insecure-http")).start()
    try:
        assert httpx.get(process.base_url + "/healthz", timeout=5).status_code == 200
    finally:
        process.stop()
    assert "warning: serving plain HTTP on 0.0.0.0 (--insecure-http)" in log.read_text()


def test_plain_http_on_localhost_needs_no_option(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = servers.CollectorProcess(f"sqlite:///{tmp_path}/c.sqlite3", log=log,
                                       extra=("--host", "localhost")).start()
    try:
        assert httpx.get(process.base_url + "/healthz", timeout=5).status_code == 200
    finally:
        process.stop()
    assert "plain HTTP" not in log.read_text()


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LocalHost.", True), ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
    ("::ffff:10.0.0.1", False), ("localhost.example.org", False), ("127.0.0.1.nip.io", False), ("", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(("url", "refused"), [
    ("http://127.0.0.1:8443", False), ("http://localhost:8443/", False), ("http://[::1]:8443", False),
    ("https://collector.example.org:8443", False), ("http://collector.example.org:8443", True),
    ("HTTP://10.0.0.5", True), ("http://user@192.0.2.1/", True), ("http://127.0.0.1.nip.io", True),
])
def test_plain_http_elsewhere(url: str, refused: bool) -> None:
    assert plain_http_elsewhere(url) is refused
