"""Linux socket ownership: the pid behind one socket, asked of the kernel (sock_diag) and ``/proc``
instead of reading the whole socket table."""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import time
from collections import OrderedDict

from endpoint.scan.sensors.packet_events import TCP, UDP


class SocketOwners:
    """Linux: the pid behind one socket, found without reading the whole socket table.

    psutil's table maps every socket of every process (tens of milliseconds on a busy machine); one
    event needs one socket. Its inode and uid come from ``/proc/net/{tcp,udp}{,6}`` (this network
    namespace), its owner from the ``/proc/<pid>/fd`` links: of the processes that owned sockets
    lately, then of those started since, and only then -- at most once per FULL_PASS_S -- of all
    processes. Socket inodes seen on the way are remembered, so most lookups read one process.
    """

    MAX_KNOWN = 65536  # remembered inode -> pid entries
    FULL_PASS_S = 0.5  # at most one pass over every process per this (tens of ms on a busy machine)

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc
        self._known: dict[int, int] = {}
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._passed: set[int] = set()  # the pids of the last full pass
        self._passed_at = -self.FULL_PASS_S
        self._diag: bool | None = None  # whether the kernel answers sock_diag lookups; None: not asked yet
        self._unowned: OrderedDict[int, None] = OrderedDict()  # inodes a full pass found no process for
        self.lookups = 0  # processes whose descriptors were read, for the benchmark

    @staticmethod
    def available(proc: str = "/proc") -> bool:
        return sys.platform.startswith("linux") and os.path.exists(f"{proc}/net/tcp")

    def pid_for(self, proto: int, laddr: str, lport: int, raddr: str, rport: int) -> int | None:
        found = self._inode(proto, laddr, lport, raddr, rport)
        if found is None or found[0] == 0:  # inode 0: closed, lingering in TIME_WAIT or orphaned
            return None
        inode, uid = found
        pid = self._known.get(inode)
        if pid is not None and os.path.exists(f"{self._proc}/{pid}"):  # inodes are unique while in use
            self._touch(pid)
            return pid
        if inode in self._unowned:
            return None
        return self._search(inode, uid, (proto, laddr, lport, raddr, rport))

    # -- the socket's inode

    def _inode(self, proto: int, laddr: str, lport: int, raddr: str, rport: int) -> tuple[int, int] | None:
        """(inode, uid) of the socket: asked of the kernel by 5-tuple (sock_diag), else from /proc/net."""
        if self._diag is not False:
            try:
                return _diag_lookup(proto, laddr, lport, raddr, rport)
            except OSError as exc:
                if self._diag is None and exc.errno not in (errno.ENOENT,):
                    self._diag = False  # no sock_diag here (an old or locked-down kernel): read /proc/net
                else:
                    self._diag = True
                    return None
            else:
                self._diag = True
        return self._proc_inode(proto, laddr, lport, raddr, rport)

    def _proc_inode(self, proto: int, laddr: str, lport: int, raddr: str, rport: int) -> tuple[int, int] | None:
        """(inode, uid) of the socket with this local end (and remote end when connected), from the text
        tables of every socket in /proc/net (slow with many sockets: the fallback)."""
        local = _proc_addresses(laddr)
        remote = _proc_addresses(raddr)
        if not local:
            return None
        port = f":{lport:04X}"
        ends = {f"{r}:{rport:04X}" for r in remote}
        loose: tuple[int, int] | None = None
        for name in ("tcp", "tcp6") if proto == TCP else ("udp", "udp6"):
            try:
                with open(f"{self._proc}/net/{name}", encoding="ascii") as fh:
                    text = fh.read()
            except OSError:
                continue
            for line in text.splitlines()[1:]:
                if port + " " not in line:
                    continue
                fields = line.split()
                if len(fields) < 10 or not fields[1].endswith(port):
                    continue
                ip, rend = fields[1][:-5], fields[2]
                inode, uid = int(fields[9]), int(fields[7])
                if inode == 0 or fields[3] == "0A":  # a TIME_WAIT remnant; a listener
                    continue
                if ip in local and rend in ends:
                    return inode, uid
                if loose is None and proto == UDP and (ip in local or set(ip) == {"0"}):
                    loose = (inode, uid)  # an unconnected UDP socket bound to this port
        return loose

    # -- the owner of an inode

    def _links(self, pid: int) -> dict[int, int]:
        """The socket inodes ``pid`` holds (remembered on the way)."""
        held: dict[int, int] = {}
        base = f"{self._proc}/{pid}/fd"
        self.lookups += 1
        try:
            names = os.listdir(base)
        except OSError:
            return held
        for name in names:
            try:
                link = os.readlink(f"{base}/{name}")
            except OSError:
                continue
            if link.startswith("socket:["):
                held[int(link[8:-1])] = pid
        if len(self._known) + len(held) > self.MAX_KNOWN:
            self._known.clear()
        self._known.update(held)
        return held

    def _search(self, inode: int, uid: int, flow: tuple[int, str, int, str, int]) -> int | None:
        """Recent owners first, then processes started since the last full pass, then -- at most once
        per FULL_PASS_S, however many sockets are asked for, and only if the socket is still open --
        every process, that uid's first."""
        tried: set[int] = set()
        for pid in reversed(list(self._recent)):
            tried.add(pid)
            if inode in self._links(pid):
                return self._found(pid)
        if not self._still_open(inode, flow):
            return None  # closed meanwhile (a short-lived connection): no owner to look for
        try:
            pids = [int(n) for n in os.listdir(self._proc) if n.isdigit()]
        except OSError:
            return None
        new = sorted((pid for pid in pids if pid not in self._passed and pid not in tried), reverse=True)
        for pid in new:
            tried.add(pid)
            self._passed.add(pid)
            if inode in self._links(pid):
                return self._found(pid)
        now = time.monotonic()
        if now - self._passed_at < self.FULL_PASS_S:
            return None
        if not self._still_open(inode, flow):
            return None
        self._passed_at, self._passed = now, set(pids)
        same_uid: list[int] = []
        others: list[int] = []
        for pid in sorted(set(pids) - tried, reverse=True):
            try:
                owner = os.stat(f"{self._proc}/{pid}").st_uid
            except OSError:
                continue
            (same_uid if owner == uid else others).append(pid)
        found: int | None = None
        for pid in same_uid + others:  # a process may have changed its uid since it opened the socket
            if inode in self._links(pid) and found is None:
                found = pid  # read on to the end: every socket inode is remembered for later lookups
        if found is None:  # a kernel socket, or one held in another PID namespace: never look again
            self._unowned[inode] = None
            if len(self._unowned) > 4096:
                self._unowned.popitem(last=False)
            return None
        return self._found(found)

    def _still_open(self, inode: int, flow: tuple[int, str, int, str, int]) -> bool:
        again = self._inode(*flow)
        return again is not None and again[0] == inode

    def _found(self, pid: int) -> int:
        self._touch(pid)
        return pid

    def _touch(self, pid: int) -> None:
        self._recent.pop(pid, None)
        self._recent[pid] = None
        if len(self._recent) > 64:
            self._recent.popitem(last=False)


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 1
_TCP_LISTEN = 10
_DIAG_REQUEST = struct.Struct("=IHHII BBBBI HH16s16sI II")  # nlmsghdr, inet_diag_req_v2 with its sockid
_DIAG_ANSWER = struct.Struct("=IHHII BBBB HH16s16sI II IIIII")  # nlmsghdr, inet_diag_msg


def _diag_lookup(proto: int, laddr: str, lport: int, raddr: str, rport: int) -> tuple[int, int] | None:
    """(inode, uid) of one socket by its 5-tuple, asked of the kernel through NETLINK_SOCK_DIAG -- an
    exact lookup, not a dump of every socket. An IPv4 flow is also looked up as the IPv4-mapped IPv6
    address of a dual-stack socket. None when no socket has the flow; OSError when the kernel has no
    sock_diag for it (the caller falls back to /proc/net)."""
    attempts: list[tuple[int, bytes, bytes]] = []
    if ":" in laddr:
        attempts.append((socket.AF_INET6, socket.inet_pton(socket.AF_INET6, laddr), _packed(raddr, 16)))
    else:
        local = socket.inet_pton(socket.AF_INET, laddr)
        attempts.append((socket.AF_INET, local.ljust(16, b"\0"), _packed(raddr, 4).ljust(16, b"\0")))
        mapped = b"\0" * 10 + b"\xff\xff"
        attempts.append((socket.AF_INET6, mapped + local, mapped + _packed(raddr, 4)))
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        for family, local, remote in attempts:
            # UDP's lookup takes the two ends the other way round (udp_diag.c: "swapped for historical
            # reasons"): ask both ways and keep the answer whose local port is ours.
            ends = [(lport, rport, local, remote)]
            if proto == UDP:
                ends.append((rport, lport, remote, local))
            for sport, dport, src, dst in ends:
                found = _diag_query(nl, family, proto, sport, dport, src, dst)
                if found is not None and found[0] == lport and found[1] != _TCP_LISTEN:
                    return found[2], found[3]
    return None


def _diag_query(
    nl: socket.socket, family: int, proto: int, sport: int, dport: int, src: bytes, dst: bytes
) -> tuple[int, int, int, int] | None:
    """One sock_diag lookup: (local port, state, inode, uid) of the socket found, or None."""
    nl.send(_DIAG_REQUEST.pack(
        _DIAG_REQUEST.size, _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0,
        family, proto, 0, 0, 0xFFFFFFFF,
        socket.htons(sport), socket.htons(dport), src, dst, 0, 0xFFFFFFFF, 0xFFFFFFFF,
    ))
    answer = nl.recv(65536)
    if len(answer) < 20:
        return None
    mtype = struct.unpack_from("=H", answer, 4)[0]
    if mtype == _NLMSG_ERROR:
        code = -struct.unpack_from("=i", answer, 16)[0]
        if code in (errno.ENOENT, errno.EINVAL, errno.EAFNOSUPPORT):
            return None  # no such socket (or no such family here)
        raise OSError(code, os.strerror(code))
    if mtype != _SOCK_DIAG_BY_FAMILY or len(answer) < _DIAG_ANSWER.size:
        return None
    fields = _DIAG_ANSWER.unpack_from(answer)
    return socket.ntohs(fields[9]), fields[6], fields[-1], fields[-2]  # idiag_sport, state, inode, uid


def _packed(ip: str, size: int) -> bytes:
    """An address in network byte order; the unspecified address of ``size`` bytes when unparseable."""
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except OSError:
        return b"\0" * size


def _proc_addresses(ip: str) -> set[str]:
    """How ``/proc/net/*`` spells an address: 32-bit words in host byte order, in hex; an IPv4 address
    also as the IPv4-mapped IPv6 address of a dual-stack socket."""
    try:
        raw = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except OSError:
        return set()

    def words(data: bytes) -> str:
        return "".join(f"{int.from_bytes(data[i : i + 4], sys.byteorder):08X}" for i in range(0, len(data), 4))

    out = {words(raw)}
    if len(raw) == 4:
        out.add(words(b"\0" * 10 + b"\xff\xff" + raw))
    return out
