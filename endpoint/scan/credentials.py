"""Credentials: recognised by kind, reduced to a keyed fingerprint, and never kept.

A value found in a process environment, a command line or a config file lives only inside the call
that found it: what leaves is ``Credential(kind, fingerprint, source, where)``. The fingerprint is an
HMAC under the organisation's key, so the collector can tell a corporate key (whose fingerprint the
org registered) from a personal one without ever holding either. The key is the one the collector
handed the daemon at enrollment (kept root-only in the daemon's data dir), or
``AGENTROSTER_FINGERPRINT_KEY`` for tests and development; with neither there is no fingerprint at all
(a public key would let anyone test guesses against it), and the scan says so.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol

from endpoint.scan import safeio
from endpoint.scan.evidence import Credential
from signatures.redaction import GENERIC, Redactor, is_secret_name

FINGERPRINT_KEY_ENV = "AGENTROSTER_FINGERPRINT_KEY"
NO_FINGERPRINT_KEY = "no_fingerprint_key"  # the errors[] code of a scan made without the org's key

class _Kind(Protocol):
    @property
    def id(self) -> str: ...  # read-only, so that a NamedTuple (``signatures.runtime.CredentialKind``) fits


Classifier = Callable[[str | None, str], _Kind | None]  # Library.credential_kind


_file_key: tuple[str, tuple[int, int, int], bytes | None] | None = None  # path, (dev, ino, mtime), key
_data_dir: str | None = None  # the daemon's own data dir, when it is not the default


def use_data_dir(data_dir: str | os.PathLike[str]) -> None:
    """Where ``fingerprint_key()`` finds the org's key in this process (the daemon's ``data_dir`` setting)."""
    global _data_dir
    _data_dir = os.fspath(data_dir)


def fingerprint_key(data_dir: str | os.PathLike[str] | None = None) -> bytes | None:
    """The organisation's key: ``AGENTROSTER_FINGERPRINT_KEY``, else the one kept (root-only) in the
    daemon's data dir (``data_dir``, else ``AGENTROSTER_DATA_DIR`` or the OS's default); None without."""
    value = os.environ.get(FINGERPRINT_KEY_ENV)
    if value:
        return value.encode()
    if data_dir is None:
        from endpoint.scan.platforms import default_data_dir

        data_dir = _data_dir or os.environ.get("AGENTROSTER_DATA_DIR") or default_data_dir()
    path = fingerprint_key_path(Path(data_dir))
    try:
        st = os.stat(path)
    except OSError:
        return None
    global _file_key
    stamp = (st.st_dev, st.st_ino, st.st_mtime_ns)
    if _file_key is None or _file_key[:2] != (str(path), stamp):  # read once per file version, not per secret
        text = safeio.read_private(path)
        _file_key = (str(path), stamp, text.encode() if text else None)
    return _file_key[2]


def fingerprint(value: str, *, key: bytes | None = None) -> str | None:
    """The keyed fingerprint of a secret: stable per org key, useless to anyone without it; None when
    there is no org key (``key``, else ``fingerprint_key()``)."""
    key = key or fingerprint_key()
    if not key:
        return None
    return "hmac-sha256:" + hmac_sha256(key, value.encode("utf-8", "surrogatepass"))[:32]


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` in hex."""
    return hashlib.sha256(data).hexdigest()


def hmac_sha256(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of ``message`` under ``key``, in hex."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _make(kind: _Kind, value: str, source: Literal["env", "config", "cmdline"], where: str,
          key: bytes | None) -> Credential:
    return Credential(kind=kind.id, fingerprint=fingerprint(value, key=key), source=source, where=where)


def from_env(env: Mapping[str, str], classify: Classifier, *, where: str,
             key: bytes | None = None) -> list[Credential]:
    """Credentials held in environment variables; ``where`` is e.g. ``pid 42 env``."""
    found = []
    for name, value in env.items():
        if len(value) < 8 or name in _PLAIN_ENV or name.startswith(("XDG_", "LC_")) or not _could_be_secret(value):
            continue
        kind = classify(name, value)
        if kind is not None:
            found.append(_make(kind, value, "env", f"{where} {name}", key))
    return found


# Variables every process has and none holds a secret: not worth classifying on each of 1,000 processes.
_PLAIN_ENV = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "PWD", "OLDPWD", "SHELL", "TERM", "USER", "LOGNAME",
                        "DISPLAY", "LS_COLORS", "MAIL", "SHLVL", "HOSTNAME", "EDITOR", "PAGER", "TZ", "COLORTERM",
                        "TERM_PROGRAM", "SSH_TTY", "SSH_CONNECTION", "SSH_CLIENT", "MANPATH", "INFOPATH",
                        "PYTHONPATH", "NODE_PATH", "VIRTUAL_ENV", "JOURNAL_STREAM", "INVOCATION_ID",
                        "DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY", "SYSTEMD_EXEC_PID", "MOTD_SHOWN"})


def _could_be_secret(value: str) -> bool:
    """Cheap shape test before the classifier: secrets have no spaces and are not paths or lists of them."""
    return " " not in value and not value.startswith("/") and ":/" not in value and len(value) <= 4096


def from_leaves(leaves: Iterable[tuple[str, str | None, object]], classify: Classifier, *, where: str,
                key: bytes | None = None) -> list[Credential]:
    """Credentials among a parsed document's leaves ``(pointer, key, value)``."""
    found = []
    for pointer, name, value in leaves:
        if not isinstance(value, str) or len(value) < 8:
            continue
        kind = classify(name, value)
        if kind is None and "/headers/" in pointer and name and is_secret_name(name):
            # an MCP server's header map: "Authorization": "Bearer <key>", "x-api-key": "<key>"
            scheme, _, token = value.partition(" ")
            value = token.strip() if token and scheme.lower() in ("bearer", "token", "basic") else value
            kind = classify(None, value) or (_Generic() if len(value) >= 8 and " " not in value else None)
        if kind is not None:
            found.append(_make(kind, value, "config", f"{where}#{pointer}", key))
    return found


@functools.lru_cache(maxsize=1)
def redactor() -> Redactor:
    """The scrubber built from the shipped library's credential kinds (loaded once per process)."""
    import signatures

    return Redactor.from_kinds(signatures.load().credential_kinds)


def redact_argv(argv: Sequence[str], classify: Classifier, *, where: str,
                key: bytes | None = None) -> tuple[list[str], list[Credential]]:
    """The command line with every secret replaced by ``[REDACTED:kind]``, and those secrets.

    What is hidden is decided by ``signatures.redaction`` (key shapes anywhere, secret names and flags, headers,
    URL userinfo and query values…); each hidden value is fingerprinted where ``classify`` knows its kind, or
    as ``generic`` when only the name or flag that held it says secret.
    """
    found: list[Credential] = []

    def fingerprinted(name: str | None, value: str, guess: str) -> str:
        kind = classify(name.lstrip("-") if name else None, value)
        if kind is None and guess == GENERIC and len(value) >= 8:
            kind = _Generic()  # (a shape the classifier refuses is a placeholder: hidden, not fingerprinted)
        if kind is None:
            return guess
        found.append(_make(kind, value, "cmdline", f"{where} argv", key))
        return kind.id

    return redactor().argv(argv, fingerprinted), found


class _Generic:
    """A secret recognised only by the flag that carries it."""

    id = "generic"


FINGERPRINT_KEY_FILE = "fingerprint.key"  # in the daemon's data dir, root-only


def fingerprint_key_path(data_dir: Path) -> Path:
    """Where the daemon keeps the organisation's fingerprint key."""
    return Path(data_dir) / FINGERPRINT_KEY_FILE


def save_fingerprint_key(data_dir: Path, value: str) -> None:
    """Keep the organisation's fingerprint key from enrollment, readable by root only."""
    safeio.write_private(fingerprint_key_path(data_dir), value)
