"""Live packet capture: the backend for this system, behind one call.

``open_capture`` opens the Linux backend (``_capture_linux``: AF_PACKET sockets, filters in the
kernel) or, on macOS, Windows and the BSDs, scapy's (``_capture_scapy``); either raises
``CaptureUnavailable`` saying why capture cannot run here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from endpoint.scan.sensors._capture_common import CaptureUnavailable, up_interfaces
from endpoint.scan.sensors._capture_linux import LinuxCapture
from endpoint.scan.sensors._capture_scapy import ScapyCapture

__all__ = ["Capture", "CaptureUnavailable", "LinuxCapture", "ScapyCapture", "open_capture", "up_interfaces"]

Capture = LinuxCapture | ScapyCapture


def open_capture(
    expr: str, interfaces: Sequence[str] | None, rest_expr: str = ""
) -> Capture:
    """A capture on ``interfaces`` (None: all, including ones that come up later on Linux) of what
    ``expr`` lets through, with ``rest_expr`` parked apart where the backend can (Linux) or in the
    same stream otherwise."""
    if sys.platform.startswith("linux"):
        return LinuxCapture(expr, interfaces, rest_expr)
    return ScapyCapture(f"({expr}) or ({rest_expr})" if rest_expr else expr, interfaces or up_interfaces())
