"""DNS message parsing: the question and the A / AAAA / CNAME answers, with compression pointers and
label counts kept to a budget. A hostile message yields None, never an exception."""

from __future__ import annotations

import socket

from endpoint.scan.sensors.packet_events import RR_A, RR_AAAA, RR_CNAME, DnsAnswer, DnsMessage, Flow, hostname

MAX_DNS_RECORDS = 64  # answers parsed per DNS message
MAX_DNS_STEPS = 1024  # labels and compression pointers read per DNS message, all names together



class _DnsReader:
    """Reads the names of one DNS message, with a budget of label steps and a cache of suffixes.

    Every compression pointer must point before the start of the run that led to it, so a chain of
    pointers strictly descends and cannot loop (RFC 1035 4.1.4 pointers only ever point backwards).
    A suffix read once (the question name, typically) is not read again; and the whole message gets
    MAX_DNS_STEPS labels and pointers, so no message costs more than a fraction of a millisecond.
    """

    __slots__ = ("msg", "steps", "_suffix", "_names")

    def __init__(self, msg: bytes) -> None:
        self.msg = msg
        self.steps = MAX_DNS_STEPS
        self._suffix: dict[int, bytes | None] = {}  # offset -> the name from there (None: not a hostname)
        self._names: dict[bytes, str | None] = {}  # raw name -> hostname(raw)

    def name(self, off: int, limit: int = -1) -> tuple[str | None, int] | None:
        """The name at ``off``: (name, or None if it is not a hostname; offset after it), or None if
        malformed. Labels must end before ``limit`` (the end of the record data it sits in)."""
        got = self._raw(off, len(self.msg) if limit < 0 else min(limit, len(self.msg)))
        if got is None:
            return None
        raw, after = got
        if not raw:
            return (None if raw is None else ""), after
        if raw not in self._names:
            self._names[raw] = hostname(raw)
        return self._names[raw], after

    def _raw(self, off: int, n: int) -> tuple[bytes | None, int] | None:
        msg = self.msg
        labels: list[bytes] = []
        jumps: list[tuple[int, int]] = [(off, 0)]  # (run start, index of its first label)
        after = -1
        run_start = off
        size = 0
        clean = True
        while True:
            self.steps -= 1
            if off >= n or self.steps < 0:
                return None
            ln = msg[off]
            if ln == 0:
                break
            if ln >= 0xC0:
                if off + 1 >= n:
                    return None
                ptr = ((ln & 0x3F) << 8) | msg[off + 1]
                if after < 0:
                    after = off + 2
                if ptr >= run_start:
                    return None
                off = run_start = ptr
                if ptr in self._suffix:
                    cached = self._suffix[ptr]
                    if cached is None:
                        clean = False
                    else:
                        labels.append(cached)
                        size += len(cached) + 1
                    break
                jumps.append((ptr, len(labels)))
                continue
            if ln > 63 or off + 1 + ln > n:
                return None
            label = msg[off + 1 : off + 1 + ln]
            clean = clean and b"." not in label
            labels.append(label)
            size += ln + 1
            if size > 255:
                return None
            off += 1 + ln
        if after < 0:
            after = off + 1
        for start, first in jumps:
            self._suffix[start] = b".".join(labels[first:]) if clean else None
        return (b".".join(labels) if clean else None), after


def _dns_answer(reader: _DnsReader, pos: int) -> tuple[DnsAnswer | None, int] | None:
    """One resource record at ``pos``: (the answer if A/AAAA/CNAME, offset of the next record)."""
    msg = reader.msg
    got = reader.name(pos)
    if got is None:
        return None
    name, pos = got
    if pos + 10 > len(msg):
        return None
    rtype = (msg[pos] << 8) | msg[pos + 1]
    rdlen = (msg[pos + 8] << 8) | msg[pos + 9]
    rdata = pos + 10
    nxt = rdata + rdlen
    if nxt > len(msg):
        return None
    if not name:
        return None, nxt
    if rtype == RR_A and rdlen == 4:
        return DnsAnswer(name, rtype, socket.inet_ntop(socket.AF_INET, msg[rdata:nxt])), nxt
    if rtype == RR_AAAA and rdlen == 16:
        return DnsAnswer(name, rtype, socket.inet_ntop(socket.AF_INET6, msg[rdata:nxt])), nxt
    if rtype == RR_CNAME:
        target = reader.name(rdata, nxt)
        if target is not None and target[0]:
            return DnsAnswer(name, rtype, target[0]), nxt
    return None, nxt


def parse_dns(msg: bytes, ts: float, flow: Flow) -> DnsMessage | None:
    """A DNS message (RFC 1035 4.1): the first question and up to MAX_DNS_RECORDS answers."""
    if len(msg) < 12:
        return None
    flags = (msg[2] << 8) | msg[3]
    qdcount = (msg[4] << 8) | msg[5]
    ancount = (msg[6] << 8) | msg[7]
    if (flags >> 11) & 0xF != 0 or qdcount == 0:
        return None  # not a standard query; or no question to name
    reader = _DnsReader(msg)
    got = reader.name(12)
    if got is None or not got[0] or got[1] + 4 > len(msg):
        return None
    qname, pos = got
    assert qname is not None
    qtype = (msg[pos] << 8) | msg[pos + 1]
    pos += 4
    response = bool(flags >> 15)
    answers: list[DnsAnswer] = []
    if response:
        for _ in range(1, min(qdcount, 8)):  # skip further questions, rare but legal
            more = reader.name(pos)
            if more is None:
                break
            pos = more[1] + 4
        for _ in range(min(ancount, MAX_DNS_RECORDS)):
            rr = _dns_answer(reader, pos)
            if rr is None:
                break
            if rr[0] is not None:
                answers.append(rr[0])
            pos = rr[1]
    return DnsMessage(ts, flow, (msg[0] << 8) | msg[1], response, qname, qtype, tuple(answers))
