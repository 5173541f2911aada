"""The uid of the process at the other end of a Unix-domain socket, from the Linux kernel (SO_PEERCRED)."""

from __future__ import annotations

import socket
import struct

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(conn: socket.socket) -> int:
    """The peer's effective uid when it connected; ``OSError`` if the kernel does not say."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    _pid, uid, _gid = _UCRED.unpack(raw)
    return int(uid)
