"""Credentials: recognised by kind, reduced to a keyed fingerprint, and never kept.

A value found in a process environment, a command line or a config file lives only inside the call
that found it: what leaves is ``Credential(kind, fingerprint, source, where)``. The fingerprint is an
HMAC under the organisation's key, so the collector can tell a corporate key (whose fingerprint the
org registered) from a personal one without ever holding either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, Protocol

from endpoint.evidence import Credential

DEFAULT_FINGERPRINT_KEY = b"agentroster/fingerprint/v1"
FINGERPRINT_KEY_ENV = "AGENTROSTER_FINGERPRINT_KEY"

# Flags whose next argument (or =value) is a secret even when its shape is unknown.
_SECRET_FLAG_WORDS = ("api-key", "api_key", "apikey", "token", "secret", "password", "passwd")


class _Kind(Protocol):
    @property
    def id(self) -> str: ...  # read-only, so that a NamedTuple (``signatures.runtime.CredentialKind``) fits


Classifier = Callable[[str | None, str], _Kind | None]  # Library.credential_kind


def fingerprint_key() -> bytes:
    value = os.environ.get(FINGERPRINT_KEY_ENV)
    return value.encode() if value else DEFAULT_FINGERPRINT_KEY


def fingerprint(value: str, *, key: bytes | None = None) -> str:
    """The keyed fingerprint of a secret: stable per org key, useless to anyone without it."""
    return "hmac-sha256:" + hmac_sha256(key or fingerprint_key(), value.encode("utf-8", "surrogatepass"))[:32]


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
        if kind is not None:
            found.append(_make(kind, value, "config", f"{where}#{pointer}", key))
    return found


def _is_secret_flag(arg: str) -> bool:
    flag = arg.split("=", 1)[0].lower()
    return flag.startswith("-") and any(word in flag for word in _SECRET_FLAG_WORDS)


def redact_argv(argv: Sequence[str], classify: Classifier, *, where: str,
                key: bytes | None = None) -> tuple[list[str], list[Credential]]:
    """The command line with every secret replaced by ``[REDACTED:kind]``, and those secrets."""
    out: list[str] = []
    found: list[Credential] = []
    secret_next = False
    for arg in argv:
        prefix, value, name = "", arg, None
        if secret_next:
            name = out[-1].lstrip("-") if out else None
        elif arg.startswith("-") and "=" in arg:
            flag, value = arg.split("=", 1)
            prefix, name = flag + "=", flag.lstrip("-")
        kind: _Kind | None = None
        if len(value) >= 8:
            kind = classify(name, value)
            if kind is None and (secret_next or (prefix and _is_secret_flag(prefix))):
                kind = _Generic()
        if kind is not None:
            found.append(_make(kind, value, "cmdline", f"{where} argv", key))
            out.append(f"{prefix}[REDACTED:{kind.id}]")
        else:
            out.append(arg)
        secret_next = not prefix and arg[:1] == "-" and _is_secret_flag(arg)  # most arguments are no flag
    return out, found


class _Generic:
    """A secret recognised only by the flag that carries it."""

    id = "generic"
