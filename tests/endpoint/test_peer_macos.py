"""The macOS peer-credential reader. The getsockopt itself runs only on macOS; here the kernel's answer
is built the way macOS lays out ``struct xucred`` and handed over by a stand-in socket (said plainly:
no macOS kernel runs on this machine), so what is tested is the call's arguments and the parsing."""

from __future__ import annotations

import struct

import pytest

from endpoint.service import _peer_macos


def xucred(uid: int, *, version: int = 0, groups: tuple[int, ...] = (20, 12, 61)) -> bytes:
    padded = list(groups) + [0] * (16 - len(groups))
    # u_int, uid_t, short, 2 bytes of alignment padding, gid_t[16]: 76 bytes
    return struct.pack("<IIhxx16I", version, uid, len(groups), *padded)


class KernelStandIn:
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.asked: list[tuple[int, int, int]] = []

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        self.asked.append((level, option, size))
        return self.answer[:size]


def test_the_peers_uid_comes_from_local_peercred():
    conn = KernelStandIn(xucred(501))
    assert _peer_macos.peer_uid(conn) == 501  # type: ignore[arg-type]
    assert conn.asked == [(0, 1, 76)]  # SOL_LOCAL, LOCAL_PEERCRED, sizeof(struct xucred)


def test_root_and_the_largest_uid_are_read_as_they_are():
    assert _peer_macos.uid_of_xucred(xucred(0)) == 0
    assert _peer_macos.uid_of_xucred(xucred(0xFFFFFFFE)) == 0xFFFFFFFE


@pytest.mark.parametrize("raw", [b"", xucred(501)[:40], xucred(501, version=1)])
def test_anything_but_a_whole_version_0_xucred_is_refused(raw):
    with pytest.raises(OSError, match="LOCAL_PEERCRED"):
        _peer_macos.uid_of_xucred(raw)
