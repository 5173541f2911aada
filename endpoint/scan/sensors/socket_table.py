"""The socket table (psutil's, on every system): open connections by 5-tuple, to attribute an event
to a pid, and the connections it shows as ``via="socket"`` records when capture sees nothing."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil

from endpoint.scan.evidence import NetworkRecord
from endpoint.scan.sensors.endpoint_table import ProviderFor
from endpoint.scan.sensors.packet_events import TCP, UDP


def plain_ip(ip: str) -> str:
    """``::ffff:1.2.3.4`` -> ``1.2.3.4``; other addresses in inet_ntop's canonical form."""
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    if ":" in ip:
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv6Address(ip.split("%", 1)[0]))
    return ip


def _accepted(proto: int, laddr: str, lport: int, listening: set[tuple[str, int]]) -> bool:
    """True for the server side of a TCP connection (its local port is a listening one): the remote end
    is a client that called this machine, not an endpoint this machine called."""
    if proto != TCP:
        return False
    return any((ip, lport) in listening for ip in (laddr, "0.0.0.0", "::"))


@dataclass(frozen=True, slots=True)
class Connection:
    """One socket with a remote end that this machine called, from the socket table."""

    proto: int  # 6 or 17
    laddr: str
    lport: int
    raddr: str
    rport: int
    pid: int | None


class SocketTable:
    """psutil's view of open sockets, indexed by 5-tuple for attribution; refreshed on demand."""

    def __init__(self) -> None:
        self._exact: dict[tuple[int, str, int, str, int], int] = {}
        self._local: dict[tuple[int, str, int], int] = {}
        self._port: dict[tuple[int, int], int] = {}
        self.connections: list[Connection] = []
        self.refreshed = 0.0  # time.monotonic() of the last read
        self.error = ""
        self._names: OrderedDict[int, str] = OrderedDict()

    def refresh(self) -> None:
        self.refreshed = time.monotonic()
        try:
            rows = psutil.net_connections(kind="inet")
        except (psutil.AccessDenied, PermissionError) as exc:
            self.error = f"the socket table cannot be read without root here ({exc})"
            rows = []
        except OSError as exc:
            self.error = f"the socket table cannot be read: {exc}"
            rows = []
        self._index(rows)

    def _index(self, rows: Iterable[Any]) -> None:
        exact: dict[tuple[int, str, int, str, int], int] = {}
        local: dict[tuple[int, str, int], int] = {}
        port: dict[tuple[int, int], int] = {}
        conns: list[Connection] = []
        rows = list(rows)
        listening = {
            (plain_ip(row.laddr.ip), row.laddr.port)
            for row in rows
            if row.status == psutil.CONN_LISTEN and row.laddr
        }
        for row in rows:
            proto = TCP if row.type == socket.SOCK_STREAM else UDP
            if not row.laddr:
                continue
            lip, lport = plain_ip(row.laddr.ip), row.laddr.port
            if row.raddr:
                rip, rport = plain_ip(row.raddr.ip), row.raddr.port
                if row.status != psutil.CONN_LISTEN and not _accepted(proto, lip, lport, listening):
                    conns.append(Connection(proto, lip, lport, rip, rport, row.pid))
                if row.pid is not None:
                    exact[(proto, lip, lport, rip, rport)] = row.pid
            if row.pid is not None and row.status != psutil.CONN_LISTEN:
                local.setdefault((proto, lip, lport), row.pid)
                port.setdefault((proto, lport), row.pid)
        self._exact, self._local, self._port, self.connections = exact, local, port, conns

    def pid_for(self, proto: int, laddr: str, lport: int, raddr: str, rport: int) -> int | None:
        """The pid whose socket has this local end (and remote end, if it is connected)."""
        pid = self._exact.get((proto, laddr, lport, raddr, rport))
        if pid is None:
            pid = self._local.get((proto, laddr, lport))
        if pid is None and proto == UDP:  # unconnected UDP sockets bound to 0.0.0.0 / ::
            pid = self._port.get((proto, lport))
        return pid

    def process_name(self, pid: int | None) -> str:
        if pid is None:
            return ""
        if pid not in self._names:
            try:
                self._names[pid] = psutil.Process(pid).name()
            except (psutil.Error, OSError):
                return ""
            if len(self._names) > 2048:
                self._names.popitem(last=False)
        return self._names[pid]


def socket_table_records(
    provider_for: ProviderFor,
    names: Mapping[str, str] | None = None,
    *,
    table: SocketTable | None = None,
    skip: Callable[[Connection], bool] | None = None,
) -> list[NetworkRecord]:
    """One ``via="socket"`` record per open connection whose remote address has a name (``names``:
    address -> host, from DNS answers or forward resolution) or whose address and port the catalog
    knows (a local runtime on 127.0.0.1:11434). Reads the socket table now.
    """
    names = names or {}
    if table is None:
        table = SocketTable()
        table.refresh()
    now = time.time()
    out: list[NetworkRecord] = []
    for conn in table.connections:
        if skip is not None and skip(conn):
            continue
        name = names.get(conn.raddr)
        host = name or conn.raddr
        provider = provider_for(host, conn.rport)
        if name is None and provider is None:
            continue
        out.append(
            NetworkRecord(
                host,
                conn.rport,
                "socket",
                now,
                pid=conn.pid,
                provider=provider,
                src=conn.laddr,
                sport=conn.lport,
                dst=conn.raddr,
                last_ts=now,
                process=table.process_name(conn.pid),
            )
        )
    return out
