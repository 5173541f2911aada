"""The uid of the process at the other end of a Unix-domain socket, from the macOS kernel
(``getsockopt(SOL_LOCAL, LOCAL_PEERCRED)``, the call behind ``getpeereid``): a ``struct xucred``.

    struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; };

Only ``XUCRED_VERSION`` (0) is understood; anything else is an ``OSError``, so the socket refuses the
client rather than guess who it is.
"""

from __future__ import annotations

import socket
import struct

SOL_LOCAL = 0  # <sys/un.h>
LOCAL_PEERCRED = 0x001
XUCRED_VERSION = 0
XUCRED = struct.Struct("=IIh2x16I")  # as the C compiler lays it out: 2 bytes of padding before the groups


def uid_of_xucred(raw: bytes) -> int:
    """The effective uid in a ``struct xucred`` as the kernel wrote it."""
    if len(raw) < XUCRED.size:
        raise OSError(f"LOCAL_PEERCRED answered {len(raw)} bytes, not a struct xucred ({XUCRED.size})")
    version, uid, _ngroups, *_groups = XUCRED.unpack_from(raw)
    if version != XUCRED_VERSION:
        raise OSError(f"LOCAL_PEERCRED answered struct xucred version {version}, not {XUCRED_VERSION}")
    return int(uid)


def peer_uid(conn: socket.socket) -> int:
    """The peer's effective uid when it connected; ``OSError`` if the kernel does not say."""
    return uid_of_xucred(conn.getsockopt(SOL_LOCAL, LOCAL_PEERCRED, XUCRED.size))
