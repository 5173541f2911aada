"""Real servers for the collector's tests and bench: a throw-away PostgreSQL cluster, and the collector
itself as an ``agentroster server`` subprocess on a free loopback port.

PostgreSQL refuses to run as root, so as root the cluster runs as ``nobody`` (``runuser``); its data
directory and unix socket sit in a fresh directory under /tmp that only that user can enter.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

AGENTROSTER = str(Path(sys.executable).with_name("agentroster"))
PG_USER = "nobody"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PostgresCluster:
    """initdb + pg_ctl in a temporary directory; ``url(db)`` for a database in it (unix socket, trust)."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
        self.dir = Path(tempfile.mkdtemp(prefix="agentroster-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", PG_USER, "--"] if self.as_root else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120, cwd=self.dir)

    def start(self) -> PostgresCluster:
        if self.as_root:
            shutil.chown(self.dir, PG_USER)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = f"-k {self.dir} -c listen_addresses='' -p {self.port} -c max_connections=200 " \
                  "-c synchronous_commit=off -c shared_buffers=256MB" + os.environ.get("AGENTROSTER_PG_EXTRA", "")
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.dir}&port={self.port}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host=str(self.dir), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# Every test client is 127.0.0.1, and a test session enrolls and refuses far more than one address would:
# the per-address limits are lifted here, and the tests of those limits set their own (a later flag wins).
UNLIMITED_PER_ADDRESS = ("--enroll-burst", "1000000", "--auth-failure-burst", "1000000")


class CollectorProcess:
    """``agentroster server`` on 127.0.0.1 in its own process group; stop() and start() again at will."""

    def __init__(self, database_url: str, *, workers: int = 1, extra: tuple[str, ...] = (),
                 log: Path | None = None) -> None:
        self.database_url = database_url
        self.workers = workers
        self.extra = extra
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> CollectorProcess:
        argv = [AGENTROSTER, "server", "--database-url", self.database_url, "--port", str(self.port),
                "--workers", str(self.workers), *UNLIMITED_PER_ADDRESS, *self.extra]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"agentroster server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("agentroster server did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self.proc = None


def provision(database_url: str) -> dict[str, str]:
    """Migrate the store and make an admin token, a viewer token and an enroll secret, as an admin would."""
    from console.server import auth
    from console.server.db import Database, migrate

    db = Database(database_url, pool_size=1)
    try:
        migrate(db)
        with db.write_session() as session:
            _, admin = auth.create_api_token(session, "admin", "test admin")
            _, viewer = auth.create_api_token(session, "viewer", "test viewer")
            secret = auth.rotate_enroll_secret(session)
    finally:
        db.dispose()
    return {"admin": admin, "viewer": viewer, "enroll_secret": secret}
