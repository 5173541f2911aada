"""What every capture backend shares: the error that says capture cannot run here, the libpcap
compilation of a filter, and the interfaces that are up. The backends are one module per kind of
system (``_capture_linux``; ``_capture_scapy`` for macOS, Windows and the BSDs); ``capture`` picks one.
"""

from __future__ import annotations

import psutil

from endpoint.errors import EndpointError
from endpoint.scan.sensors import bpf


class CaptureUnavailable(EndpointError):
    """Live capture cannot run here; the message says why, in words an admin can act on."""

    code = "capture_unavailable"


def compile_filter(expr: str, *, optimize: bool = True) -> list[bpf.Instruction]:
    """Compile ``expr`` for raw IP with libpcap (no root needed)."""
    try:
        return bpf.compile_filter(expr, optimize=optimize)
    except bpf.LibpcapMissing as exc:
        raise CaptureUnavailable(
            "libpcap is not installed, so the kernel packet filter cannot be compiled "
            f"(install libpcap: apt install libpcap0.8, dnf install libpcap; {exc})"
        ) from exc
    except bpf.FilterError as exc:
        raise CaptureUnavailable(f"the packet filter did not compile: {exc}") from exc




def up_interfaces() -> list[str]:
    """Names of the interfaces that are up, loopback included."""
    try:
        return sorted(name for name, st in psutil.net_if_stats().items() if st.isup)
    except OSError:
        return []
