"""Linux capture: AF_PACKET sockets with the filters attached in the kernel (no libpcap at run time,
only to compile the filters)."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Sequence

from endpoint.scan.sensors import bpf
from endpoint.scan.sensors._capture_common import CaptureUnavailable, compile_filter
from endpoint.scan.sensors.packets import LINKTYPE_RAW

PARK_S = 0.5  # the sockets parking candidates for such a rest are replaced this often when unread
REST_RCVBUF = 4 << 20  # bytes those sockets may queue: PARK_S of bulk data to a TLS port, and more
_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_ARPHRD_LOOPBACK = 772
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33


class LinuxCapture:
    """AF_PACKET datagram sockets: every interface, link headers removed, filters in the kernel.

    ``SOCK_DGRAM`` hands over each packet from its IP header on whatever the interface (Ethernet,
    loopback, a VPN tunnel), so one filter compiled for raw IP fits all; loopback packets arrive
    twice (out and in) and the outgoing copy is dropped.

    The hello sockets carry what the sensor reads. The rest sockets (``rest_expr``) collect candidates
    for the rest of a split ClientHello -- which no stateless filter can tell from other data to a TLS
    port -- without waking anyone: they are read only while a ClientHello start waits for its rest,
    and otherwise replaced by fresh ones every ``PARK_S`` (closing a socket drops its queue in one
    call), so bulk data to a TLS port costs the sensor nothing per packet.
    """

    def __init__(self, expr: str, interfaces: Sequence[str] | None, rest_expr: str = "") -> None:
        self._names: list[str | None] = list(interfaces) if interfaces else [None]
        self._socks: list[socket.socket] = []
        self.rest: list[socket.socket] = []
        self.rest_opened = time.monotonic()
        self._rest_prog: bpf.Program | None = None
        try:
            hello = kernel_program(expr)
            self._rest_prog = kernel_program(rest_expr) if rest_expr else None
            self._socks = [self._open(hello, name) for name in self._names]
            self.rest = self._open_rest()
        except PermissionError as exc:
            self.close()
            raise CaptureUnavailable(_no_permission()) from exc
        except OSError as exc:
            self.close()
            raise CaptureUnavailable(f"cannot open a packet socket: {exc.strerror or exc}") from exc

    @staticmethod
    def _open(program: bpf.Program, interface: str | None, rcvbuf: int = 1 << 20) -> socket.socket:
        proto = 0 if interface else socket.htons(_ETH_P_ALL)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program.fprog)  # the kernel copies it
            if interface:
                sock.bind((interface, _ETH_P_ALL))
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, rcvbuf)  # past rmem_max (root)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:  # packets queued before the filter was attached
                    sock.recv(65535)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open_rest(self) -> list[socket.socket]:
        if self._rest_prog is None:
            return []
        self.rest_opened = time.monotonic()
        return [self._open(self._rest_prog, name, REST_RCVBUF) for name in self._names]

    def sockets(self) -> list[socket.socket]:
        return list(self._socks)

    def read(self) -> list[tuple[bytes, int, float]]:
        return self._read(self._socks)

    def read_rest(self, socks: Sequence[socket.socket] | None = None) -> list[tuple[bytes, int, float]]:
        return self._read(self.rest if socks is None else socks)

    def renew_rest(self) -> list[socket.socket]:
        """Open fresh rest sockets; returns the old ones, still open: a caller that finds a ClientHello
        start in the hello sockets after this reads the old ones before it closes them."""
        old = self.rest
        try:
            self.rest = self._open_rest()
        except OSError:
            return []  # keep the old ones; try again next time
        return old

    @staticmethod
    def close_sockets(socks: Sequence[socket.socket]) -> None:
        for sock in socks:
            sock.close()

    @staticmethod
    def _read(socks: Sequence[socket.socket]) -> list[tuple[bytes, int, float]]:
        out: list[tuple[bytes, int, float]] = []
        for sock in socks:
            for _ in range(1024):
                try:
                    data, addr = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if addr[2] == _PACKET_OUTGOING and addr[3] == _ARPHRD_LOOPBACK:
                    continue
                out.append((data, LINKTYPE_RAW, time.time()))
        return out

    def close(self) -> None:
        self.close_sockets(self._socks + self.rest)
        self._socks, self.rest = [], []


def kernel_program(expr: str) -> bpf.Program:
    """``expr`` as a program this kernel accepts: libpcap's optimizer can emit code that reads scratch
    memory on a path that never wrote it, which Linux refuses (EINVAL); then the plain compile is used."""
    program = bpf.Program(compile_filter(expr))
    probe = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)  # protocol 0: receives nothing
    try:
        probe.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program.fprog)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        program = bpf.Program(compile_filter(expr, optimize=False))
    finally:
        probe.close()
    return program


def _no_permission() -> str:
    if os.geteuid() != 0:
        return "not running as root: opening a packet socket needs CAP_NET_RAW (run the daemon as root)"
    return (
        "running as root but without CAP_NET_RAW (dropped by a container or a service unit): opening a "
        "packet socket needs it (grant cap_net_raw to the agentroster daemon)"
    )
