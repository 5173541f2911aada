"""Where the console keeps an admin's token between runs: the OS keyring when the optional ``keyring``
package and a real backend exist, else a JSON file only its owner can read (0600, in a 0700 directory).

Tokens are stored per collector URL. No Qt here; a token is never logged or printed.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

import platformdirs

SERVICE = "agentroster-console"


def config_dir() -> Path:
    """The console's per-user config directory on this OS (roaming on Windows: it follows the admin)."""
    return Path(platformdirs.user_config_dir("agentroster", appauthor=False, roaming=True)) / "console"


def data_dir() -> Path:
    """The console's per-user data directory (the embedded collector's SQLite lives here)."""
    return Path(platformdirs.user_data_dir("agentroster", appauthor=False)) / "console"


class Store(Protocol):
    where: str

    def get(self, server: str) -> str | None: ...
    def set(self, server: str, token: str) -> None: ...
    def delete(self, server: str) -> None: ...


class FileStore:
    """Tokens in ``credentials.json``, created 0600 in a 0700 directory, replaced atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "credentials.json"
        self.where = f"file {self.path}"

    def _read(self) -> dict[str, str]:
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, server: str) -> str | None:
        return self._read().get(server)

    def set(self, server: str, token: str) -> None:
        data = self._read()
        data[server] = token
        self._write(data)

    def delete(self, server: str) -> None:
        data = self._read()
        if data.pop(server, None) is not None:
            self._write(data)


class KeyringStore:
    """Tokens in the OS keyring (Keychain, Credential Manager, Secret Service)."""

    def __init__(self, keyring: Any) -> None:
        self.keyring = keyring
        self.where = f"keyring {type(keyring.get_keyring()).__name__}"

    def get(self, server: str) -> str | None:
        value = self.keyring.get_password(SERVICE, server)
        return str(value) if value else None

    def set(self, server: str, token: str) -> None:
        self.keyring.set_password(SERVICE, server, token)

    def delete(self, server: str) -> None:
        with contextlib.suppress(Exception):
            self.keyring.delete_password(SERVICE, server)


def store(path: Path | None = None) -> Store:
    """The keyring when one really works here, else the 0600 file."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return FileStore(path)
    try:
        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return FileStore(path)
    except Exception:  # a broken keyring set-up means: use the file
        return FileStore(path)
    return KeyringStore(keyring)
