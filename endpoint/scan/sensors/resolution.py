"""Forward resolution of the catalog's hosts: the addresses that name connections no DNS answer on
the wire named (the socket-table fallback, CDNs that rotate)."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from endpoint.scan.sensors.socket_table import plain_ip

RESOLVE_TIMEOUT_S = 5.0  # all forward resolutions together

Resolver = Callable[[str], Sequence[str]]


def resolve_hosts(hosts: Iterable[str], resolve: Resolver | None = None) -> dict[str, str]:
    """Forward-resolve catalog hosts; address -> host. Wildcard hosts are skipped; IP literals map to
    themselves. Resolution is bounded in time as a whole; hosts that do not answer are left out.
    """
    resolve = resolve or _getaddrinfo
    names: dict[str, str] = {}
    todo: list[str] = []
    for host in dict.fromkeys(h.strip().lower().rstrip(".") for h in hosts):
        if not host or "*" in host:
            continue
        try:
            names[plain_ip(str(ipaddress.ip_address(host)))] = host
        except ValueError:
            todo.append(host)
    if not todo:
        return names
    pool = ThreadPoolExecutor(max_workers=min(8, len(todo)), thread_name_prefix="agentroster-resolve")
    futures = {host: pool.submit(resolve, host) for host in todo}
    deadline = time.monotonic() + RESOLVE_TIMEOUT_S
    for host, future in futures.items():
        try:
            for address in future.result(timeout=max(0.0, deadline - time.monotonic())):
                names.setdefault(plain_ip(address), host)
        except (OSError, FutureTimeout, UnicodeError, ValueError):
            continue
    pool.shutdown(wait=False, cancel_futures=True)
    return names


def _getaddrinfo(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})
