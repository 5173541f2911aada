"""The Linux capture's filters compiled by libpcap through ctypes: the same instructions as scapy's own
compile (scapy is the reference here, and captures on the other systems), libpcap's message for an
expression it refuses, a program the kernel takes, and no scapy loaded for it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from scapy.arch.common import compile_filter as scapy_compile
from scapy.data import DLT_RAW as SCAPY_DLT_RAW
from support import REPO

from endpoint.scan.sensors import bpf
from endpoint.scan.sensors.capture_filters import hello_filter, rest_filter

SO_ATTACH_FILTER = 26


@pytest.mark.parametrize("expr", [hello_filter(), rest_filter(), rest_filter((443, 8443)), "udp port 53", "tcp"])
def test_the_instructions_are_libpcaps_as_scapy_gets_them(expr):
    reference = scapy_compile(expr, linktype=SCAPY_DLT_RAW)
    expected = [(i.code, i.jt, i.jf, i.k & 0xFFFFFFFF) for i in reference.bf_insns[: reference.bf_len]]
    assert bpf.DLT_RAW == SCAPY_DLT_RAW
    assert bpf.compile_filter(expr) == expected


def test_the_plain_compile_is_longer_and_still_a_program():
    plain, optimized = bpf.compile_filter(hello_filter(), optimize=False), bpf.compile_filter(hello_filter())
    assert len(plain) > len(optimized)
    assert plain[-1][0] == optimized[-1][0] == 0x06  # both end in a return


def test_an_expression_libpcap_refuses_says_why():
    with pytest.raises(bpf.FilterError, match="syntax error|parse error|unknown"):
        bpf.compile_filter("tcp port and and")


def test_the_kernel_takes_the_program():
    program = bpf.Program(bpf.compile_filter(rest_filter()))
    assert len(program.fprog) == 16  # struct sock_fprog on a 64-bit machine
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # any socket takes a classic filter
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program.fprog)


def test_compiling_the_capture_filters_loads_no_scapy():
    code = ("import sys; from endpoint.scan.sensors import network; "
            "from endpoint.scan.sensors._capture_linux import kernel_program; "
            "from endpoint.scan.sensors.capture_filters import hello_filter, rest_filter; "
            "kernel_program(hello_filter()); kernel_program(rest_filter()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
