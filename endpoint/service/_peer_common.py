"""Who is at the other end of the local socket: what the per-OS readers share, and which one this OS uses.

Each OS's kernel says it its own way (``_peer_linux``: ``SO_PEERCRED``; ``_peer_macos``:
``LOCAL_PEERCRED``); each module has ``peer_uid(conn)``, the peer's effective uid when it connected,
``OSError`` when the kernel does not say. Windows has no local socket.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from endpoint.scan.platforms import normalize_platform

PeerUid = Callable[[socket.socket], int]


def peer_uid_function(platform: str | None = None) -> PeerUid:
    """This OS's ``peer_uid``; ``NotImplementedError`` where the local socket is not supported."""
    plat = normalize_platform(platform)
    if plat == "linux":
        from endpoint.service._peer_linux import peer_uid
    elif plat == "macos":
        from endpoint.service._peer_macos import peer_uid
    else:
        raise NotImplementedError(f"the daemon's local socket is not supported on {plat}")
    return peer_uid
