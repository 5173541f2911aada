"""An embedded collector for trying the whole product on one laptop: ``agentroster server`` as a child
process on 127.0.0.1 (a free port), SQLite in the console's data dir, and an admin token made for the
local user on first start (kept like any other token, see ``token_store``). No Qt here.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from console.app import token_store
from console.app.errors import EmbeddedCollectorFailed

READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "endpoint.cli", "server", *args]


class EmbeddedCollector:
    """Start with ``start()``; ``url`` and ``token`` are then ready for the console; ``stop()`` at exit."""

    def __init__(self, data_dir: Path | None = None, store: token_store.Store | None = None) -> None:
        self.data_dir = data_dir or token_store.data_dir() / "collector"
        self.store = store or token_store.store()
        self.port = 0
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "collector.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> str:
        """Where its token is stored: the data dir (the port changes with every start)."""
        return f"embedded:{self.data_dir}"

    def start(self) -> EmbeddedCollector:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.port = free_port()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it until it exits
        try:
            self.proc = subprocess.Popen(
                _command("--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port)),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        self._wait_ready()
        token = self.store.get(self.key)
        if not token or not self._accepts(token):
            token = self._create_admin_token()
            self.store.set(self.key, token)
        self.token = token
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise EmbeddedCollectorFailed(f"the embedded collector exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise EmbeddedCollectorFailed(f"the embedded collector did not start within {READY_TIMEOUT_S:.0f} s; see {self.log_path}")

    def _accepts(self, token: str) -> bool:
        try:
            answer = httpx.get(self.url + "/api/v1/policy", headers={"authorization": f"Bearer {token}"}, timeout=5)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def _create_admin_token(self) -> str:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "local"
        done = subprocess.run(_command("token", "create", "--role", "admin", "--name", f"{user} (embedded console)",
                                       "--data-dir", str(self.data_dir)),
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        token = done.stdout.decode().strip().splitlines()[-1:] if done.returncode == 0 else []
        if not token or not token[0].startswith("ara_"):
            raise EmbeddedCollectorFailed("could not make an admin token for the embedded collector: "
                                + done.stderr.decode(errors="replace").strip()[-300:])
        return token[0]

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM) if hasattr(os, "killpg") else self.proc.terminate()
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.proc = None
