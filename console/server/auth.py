"""Tokens and secrets: how they are made, stored (salted HMAC-SHA256, never in clear), and checked.

A token reads ``<prefix><key id>.<secret>``: ``ard_`` for a device key, ``ara_`` for an admin or viewer
token. The key id finds the row; the secret is checked against the row's hash in constant time. The
secrets are 256 random bits, so one HMAC is enough (a slow password hash would buy nothing and cost
every request). The enroll secret has no key id: it is checked against the one active secret.

The store-side operations (issue, list, revoke, rotate) live here too, shared by the admin routes
and ``agentroster server`` commands.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import update
from sqlmodel import Session, col, select

from console.server.models import (
    CONFLICT_MARK,
    ApiToken,
    Device,
    EnrollSecret,
    FingerprintKey,
    claimed_identifier,
)

DEVICE_PREFIX = "ard_"
API_PREFIX = "ara_"
ENROLL_PREFIX = "are_"
_KEY_ID_BYTES = 8
_SECRET_BYTES = 32

TokenKind = Literal["device", "api"]


@dataclass(frozen=True, slots=True)
class Issued:
    """A newly made token: the value to show once, and what to store."""

    token: str
    key_id: str
    salt: str
    hash: str


@dataclass(frozen=True, slots=True)
class Presented:
    """A token as a caller presented it, split into its parts."""

    kind: TokenKind
    key_id: str
    secret: str


def digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def matches(salt: str, stored_hash: str, secret: str) -> bool:
    if not salt or not stored_hash:
        return False
    return hmac.compare_digest(digest(salt, secret), stored_hash)


def issue(prefix: str) -> Issued:
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    salt = secrets.token_hex(16)
    return Issued(f"{prefix}{key_id}.{secret}", key_id, salt, digest(salt, secret))


def parse(token: str) -> Presented | None:
    """The parts of a well-formed token, or None (the caller answers 401 without a database look-up)."""
    for prefix, kind in ((DEVICE_PREFIX, "device"), (API_PREFIX, "api")):
        if token.startswith(prefix):
            key_id, dot, secret = token[len(prefix):].partition(".")
            if dot and len(key_id) == 2 * _KEY_ID_BYTES and 0 < len(secret) <= 128:
                return Presented(kind, key_id, secret)  # type: ignore[arg-type]
    return None


def bearer(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer ...`` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


# -- admin and viewer tokens ------------------------------------------------------------------------


def create_api_token(session: Session, role: str, name: str = "") -> tuple[ApiToken, str]:
    made = issue(API_PREFIX)
    row = ApiToken(id=made.key_id, name=name, role=role, salt=made.salt, hash=made.hash, created_at=time.time())
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, made.token


def find_api_token(session: Session, presented: Presented) -> ApiToken | None:
    row = session.get(ApiToken, presented.key_id)
    if row is None or row.revoked_at is not None or not matches(row.salt, row.hash, presented.secret):
        return None
    return row


def list_api_tokens(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(col(ApiToken.created_at))))


def revoke_api_token(session: Session, token_id: str) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = time.time()
    session.add(row)
    session.commit()
    return True


# -- the enroll secret ------------------------------------------------------------------------------


def rotate_enroll_secret(session: Session) -> str:
    """A new enroll secret (returned once); every previous one stops working now."""
    now = time.time()
    session.exec(update(EnrollSecret).where(col(EnrollSecret.retired_at).is_(None)).values(retired_at=now))
    value = ENROLL_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    salt = secrets.token_hex(16)
    session.add(EnrollSecret(salt=salt, hash=digest(salt, value), created_at=now))
    session.commit()
    return value


def enroll_secret_state(session: Session) -> Literal["ok", "none"]:
    found = session.exec(select(EnrollSecret.id).where(col(EnrollSecret.retired_at).is_(None))).first()
    return "ok" if found is not None else "none"


def check_enroll_secret(session: Session, value: str) -> bool:
    active = session.exec(select(EnrollSecret).where(col(EnrollSecret.retired_at).is_(None))).all()
    # every active row is compared, so the time taken does not say which one matched
    return any([matches(row.salt, row.hash, value) for row in active])  # noqa: C419


# -- devices ----------------------------------------------------------------------------------------


def fingerprint_key(session: Session) -> str | None:
    """The organisation's fingerprint key (made by the migration at setup), or None on a store without one."""
    return session.exec(select(FingerprintKey.value).order_by(col(FingerprintKey.id).desc())).first()


def accept_identity(session: Session, device_id: str) -> tuple[Device, str | None] | None:
    """An admin accepts a device flagged as an identity conflict: it takes the identity it claimed, and the
    device that held it is revoked (its key stops working; its rows stay as they were). Returns the
    accepted device and the revoked key's id; None when ``device_id`` is no live conflicting device."""
    row = session.get(Device, device_id)
    if row is None or row.revoked_at is not None or row.identity_conflict is None:
        return None
    identifier = claimed_identifier(row.host_identifier)
    holder = session.exec(select(Device).where(Device.host_identifier == identifier)).first()
    revoked_key = holder.key_id if holder is not None else None
    if holder is not None:
        holder.revoked_at = holder.revoked_at or time.time()
        holder.key_id, holder.key_salt, holder.key_hash = None, "", ""
        holder.host_identifier = f"{identifier}{CONFLICT_MARK}{holder.id}"  # frees the identity (a unique column)
        session.add(holder)
        session.flush()
    row.host_identifier, row.identity_conflict = identifier, None
    session.add(row)
    session.commit()
    return row, revoked_key


def revoke_device(session: Session, device_id: str) -> bool:
    """Revoke a device: its key stops working now, and it cannot enroll again."""
    row = session.get(Device, device_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = time.time()
    row.key_id, row.key_salt, row.key_hash = None, "", ""
    session.add(row)
    session.commit()
    return True


def list_devices(session: Session) -> list[Device]:
    return list(session.exec(select(Device).order_by(col(Device.hostname), col(Device.id))))
