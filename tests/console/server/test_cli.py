"""``agentroster server``: cheap to load, admin commands that print a secret once and store it hashed,
and the server itself over HTTPS."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time

import httpx
import pytest
import servers

HEAVY = ("fastapi", "sqlmodel", "sqlalchemy", "uvicorn", "pydantic", "starlette", "alembic")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([servers.AGENTROSTER, "server", *args], capture_output=True, text=True, timeout=60)


def test_the_cli_hook_imports_nothing_heavy() -> None:
    code = f"import sys, console.server.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_server_command_lists_its_actions() -> None:
    out = run("--help").stdout
    for action in ("run", "token", "secret", "device"):
        assert action in out


def test_a_created_token_is_printed_once_and_stored_hashed(tmp_path) -> None:
    made = run("token", "create", "--role", "viewer", "--name", "soc", "--data-dir", str(tmp_path))
    token = made.stdout.strip()
    assert made.returncode == 0 and token.startswith("ara_")
    secret = token.split(".", 1)[1].encode()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert secret not in stored
    listed = run("token", "list", "--data-dir", str(tmp_path)).stdout
    assert "soc" in listed and "viewer" in listed and token not in listed


def test_a_revoked_token_is_listed_as_revoked(tmp_path) -> None:
    run("token", "create", "--role", "admin", "--data-dir", str(tmp_path))
    token_id = run("token", "list", "--data-dir", str(tmp_path)).stdout.splitlines()[1].split()[0]
    assert run("token", "revoke", token_id, "--data-dir", str(tmp_path)).returncode == 0
    assert "revoked" in run("token", "list", "--data-dir", str(tmp_path)).stdout
    assert run("token", "revoke", token_id, "--data-dir", str(tmp_path)).returncode == 1


def test_the_collectors_data_dir_comes_from_its_own_variable_not_the_daemons(tmp_path) -> None:
    mine, daemons = tmp_path / "collector", tmp_path / "daemon"
    env = {**os.environ, "AGENTROSTER_SERVER_DATA_DIR": str(mine), "AGENTROSTER_DATA_DIR": str(daemons)}
    made = subprocess.run([servers.AGENTROSTER, "server", "token", "create", "--role", "viewer"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (mine / "collector.sqlite3").is_file()
    assert not daemons.exists()


def test_rotating_the_secret_prints_a_new_one_each_time(tmp_path) -> None:
    first = run("secret", "rotate", "--data-dir", str(tmp_path)).stdout.strip()
    second = run("secret", "rotate", "--data-dir", str(tmp_path)).stdout.strip()
    assert first.startswith("are_") and second.startswith("are_") and first != second
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert first.encode() not in stored and second.encode() not in stored


def test_devices_are_listed_and_revoked(tmp_path) -> None:
    from console.server.db import Database, migrate
    from console.server.models import Device

    db = Database(f"sqlite:///{tmp_path}/collector.sqlite3")
    migrate(db)
    with db.write_session() as session:
        session.add(Device(id="d1", host_identifier="host:laptop", hostname="laptop", enrolled_at=time.time()))
        session.commit()
    db.dispose()
    assert "host:laptop" in run("device", "list", "--data-dir", str(tmp_path)).stdout
    assert run("device", "revoke", "d1", "--data-dir", str(tmp_path)).returncode == 0
    assert "revoked" in run("device", "list", "--data-dir", str(tmp_path)).stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_the_server_serves_https_with_a_certificate(tmp_path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    process = servers.CollectorProcess(f"sqlite:///{tmp_path}/c.sqlite3",
                                       extra=("--tls-cert", str(cert), "--tls-key", str(key)))
    process.proc = subprocess.Popen([servers.AGENTROSTER, "server", "--data-dir", str(tmp_path / "data"),
                                     "--port", str(process.port), *process.extra], start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"https://127.0.0.1:{process.port}/healthz", verify=trust, timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert answer.status_code == 200
    finally:
        process.stop()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "2048"])
def test_a_report_cap_out_of_range_is_refused_before_serving(tmp_path, value) -> None:
    done = run("--data-dir", str(tmp_path), "--max-report-mib", value, "--port", "0")
    assert done.returncode != 0
    assert "--max-report-mib must be more than 0 and at most 1024" in done.stderr


def test_every_admin_command_says_which_store_it_uses(tmp_path) -> None:
    for args in (("token", "create", "--role", "viewer"), ("token", "list"), ("secret", "rotate"),
                 ("device", "list")):
        done = run(*args, "--data-dir", str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert f"store: {tmp_path / 'collector.sqlite3'} (SQLite)" in done.stderr


def test_a_database_url_is_named_without_its_password() -> None:
    from console.server.cli import store_name

    named = store_name("postgresql+psycopg://app:FAKE-db-password@db.example.org:5432/agentroster")
    assert "FAKE-db-password" not in named and "db.example.org" in named and "app" in named
