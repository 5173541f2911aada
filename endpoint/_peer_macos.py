"""The uid of the process at the other end of a Unix-domain socket on macOS: not supported yet (it would
be ``getpeereid``, i.e. LOCAL_PEERCRED's ``struct xucred``)."""

from __future__ import annotations

import socket

NOT_SUPPORTED = ("the daemon's local socket is not supported on macOS yet (telling who connected needs "
                 "LOCAL_PEERCRED); use `sudo agentroster register`")


def peer_uid(conn: socket.socket) -> int:
    raise NotImplementedError(NOT_SUPPORTED)
