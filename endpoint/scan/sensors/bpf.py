"""Classic BPF programs compiled by libpcap, called through ctypes, for the Linux capture sockets.

Compiling needs no root (a "dead" pcap handle of a link type, no interface), and this way loads nothing
but libpcap itself: scapy, which captures on macOS, Windows and the BSDs, costs a daemon about 30 MB of
memory to import, for two calls. ``compile_filter`` answers the instructions as plain tuples;
``Program`` holds them as the ``sock_fprog`` that ``SO_ATTACH_FILTER`` takes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Sequence
from typing import Any

from endpoint.errors import EndpointError

DLT_RAW = 14 if sys.platform.startswith("openbsd") else 12  # packets from their IP header on
_SNAPLEN = 65535
_NETMASK_UNKNOWN = 0xFFFFFFFF
Instruction = tuple[int, int, int, int]  # code, jt, jf, k


class BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(BpfInsn))]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(BpfInsn))]


class LibpcapMissing(EndpointError, OSError):
    """libpcap is not installed (or not loadable)."""

    code = "libpcap_missing"


class FilterError(EndpointError, ValueError):
    """libpcap did not compile the expression; the message is libpcap's."""

    code = "capture_filter_rejected"


_lock = threading.Lock()  # pcap_compile is not thread-safe before libpcap 1.8
_lib: Any = None


def _libpcap() -> Any:
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("pcap")
        if not name:
            raise LibpcapMissing("libpcap is not installed")
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise LibpcapMissing(f"libpcap could not be loaded ({exc})") from None
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.restype = None
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def compile_filter(expr: str, *, linktype: int = DLT_RAW, optimize: bool = True) -> list[Instruction]:
    """``expr`` (tcpdump's filter language) as BPF instructions for ``linktype``.

    Raises ``LibpcapMissing`` without libpcap, ``FilterError`` for an expression libpcap refuses."""
    with _lock:
        lib = _libpcap()
        handle = lib.pcap_open_dead(linktype, _SNAPLEN)
        if not handle:
            raise LibpcapMissing("libpcap could not open a handle to compile with")
        program = _BpfProgram()
        try:
            if lib.pcap_compile(handle, ctypes.byref(program), expr.encode(), int(optimize), _NETMASK_UNKNOWN) == -1:
                raise FilterError((lib.pcap_geterr(handle) or b"").decode(errors="replace"))
            try:
                return [(i.code, i.jt, i.jf, i.k) for i in program.bf_insns[:program.bf_len]]
            finally:
                lib.pcap_freecode(ctypes.byref(program))
        finally:
            lib.pcap_close(handle)


class Program:
    """Instructions as the ``sock_fprog`` that SO_ATTACH_FILTER takes: ``fprog`` points into ``insns``,
    which lives as long as this object does (the kernel copies the program when it is attached)."""

    __slots__ = ("insns", "fprog")

    def __init__(self, instructions: Sequence[Instruction]) -> None:
        self.insns = (BpfInsn * len(instructions))(*(BpfInsn(*i) for i in instructions))
        self.fprog = bytes(_SockFprog(len(instructions), ctypes.cast(self.insns, ctypes.POINTER(BpfInsn))))
