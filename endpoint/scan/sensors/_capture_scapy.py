"""macOS, Windows and BSD capture: scapy's listening sockets on libpcap (Npcap on Windows), one per
interface, with one filter for both the ClientHello starts and their rests."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Sequence
from typing import Any

from endpoint.scan.sensors._capture_common import CaptureUnavailable

NO_SCAPY = "scapy is not installed, so no packet can be captured (install agentroster[network])"


class ScapyCapture:
    """scapy's listening sockets, one per interface (macOS, Windows, BSD): libpcap filters there."""

    def __init__(self, expr: str, interfaces: Sequence[str]) -> None:
        try:
            from scapy.config import conf
        except ImportError as exc:
            raise CaptureUnavailable(NO_SCAPY) from exc
        self._conf = conf
        self._socks: list[Any] = []
        try:
            for name in interfaces:
                listener = conf.L2listen(iface=name, filter=expr)
                self._socks.append(listener)
                ins = getattr(listener, "ins", None)
                if isinstance(ins, socket.socket):  # a packet socket: room for bursts, as on Linux
                    with contextlib.suppress(OSError):
                        ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except PermissionError as exc:
            self.close()
            raise CaptureUnavailable("not running as root / Administrator: packet capture is denied") from exc
        except Exception as exc:  # scapy's Scapy_Exception, a missing Npcap / BPF device
            self.close()
            raise CaptureUnavailable(f"packet capture is not available: {exc}") from exc

    def sockets(self) -> list[Any]:
        return list(self._socks)

    def read(self) -> list[tuple[bytes, int, float]]:
        out: list[tuple[bytes, int, float]] = []
        for _ in range(1024):  # one packet per ready socket per round: drain what has queued up
            ready = self._conf.L2listen.select(self._socks, 0)
            if not ready:
                break
            for sock in ready:
                cls, data, ts = sock.recv_raw()
                if data is not None and cls is not None:
                    out.append((data, self._conf.l2types.layer2num.get(cls, -1), float(ts or time.time())))
        return out

    def close(self) -> None:
        for sock in self._socks:
            with contextlib.suppress(Exception):
                sock.close()
        self._socks = []
