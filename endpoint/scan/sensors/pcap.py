"""Reads a pcap or pcapng capture file and reports the calls in it as ``NetworkRecord``s.

The file is memory-mapped and walked record by record; each frame goes to ``PacketParser`` as an
offset into the map, so bulk packets cost a few header reads and no copy. ``read_pcap(path)`` checks
the format at once and raises ``PcapError`` for a file that is not a capture; a capture whose tail
is cut short (a capture still being written, a partial download) is read up to the cut, and the
reader's ``errors`` and ``truncated`` say so after iteration.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Iterator
from types import TracebackType

from endpoint.errors import EndpointError
from endpoint.scan.evidence import NetworkRecord, ScanError
from endpoint.scan.faults import FailureTally
from endpoint.scan.sensors.endpoint_table import EndpointTable, ProviderFor
from endpoint.scan.sensors.packet_events import Buffer, Event
from endpoint.scan.sensors.packets import SUPPORTED_LINKTYPES, PacketParser

# First four bytes of each format, and what they say: (byte order, seconds per timestamp unit,
# extra bytes per record header).
_PCAP_MAGICS: dict[bytes, tuple[str, float, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6, 0),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6, 0),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9, 0),  # nanosecond timestamps
    b"\xa1\xb2\x3c\x4d": (">", 1e-9, 0),
    b"\x34\xcd\xb2\xa1": ("<", 1e-6, 8),  # Kuznetsov's modified pcap: 8 more bytes per record
    b"\xa1\xb2\xcd\x34": (">", 1e-6, 8),
}
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BYTE_ORDER = 0x1A2B3C4D
_PCAPNG_IDB = 1
_PCAPNG_PB = 2  # obsolete packet block
_PCAPNG_SPB = 3
_PCAPNG_EPB = 6
_MAX_FRAME = 1 << 20  # a record longer than this is a corrupt header, not a packet (snaplen <= 256 KiB)
_GZIP = b"\x1f\x8b"


class PcapError(EndpointError, ValueError):
    """The file cannot be read as a pcap or pcapng capture; the message says why."""

    code = "pcap_unreadable"


class PcapReader:
    """An iterator over the records of one capture; see ``read_pcap``.

    After iteration: ``packets`` (frames read), ``truncated`` (the file ended inside a record),
    ``errors`` (one line per problem: truncation, a corrupt record header, an unsupported link
    type with how many frames it skipped), ``malformed`` (frames that looked like DNS, TLS or HTTP
    but did not parse), ``faults()`` (packets that broke the code: one ``internal`` error for the
    capture, the other packets read as usual).
    """

    def __init__(self, path: str | os.PathLike[str], provider_for: ProviderFor | None = None) -> None:
        self.path = os.fspath(path)
        self.errors: list[str] = []
        self.truncated = False
        self.packets = 0
        self.malformed = 0
        self.format = ""
        self._provider_for = provider_for
        self._parser = PacketParser()
        self._skipped: dict[int, int] = {}
        self._failed = FailureTally(f"network capture {self.path}")
        self._map, self._size = _open_map(self.path)
        self._check_magic()
        self._records: Iterator[NetworkRecord] | None = None

    def _check_magic(self) -> None:
        head = self._map[:4]
        if head in _PCAP_MAGICS:
            self.format = "pcap"
            if self._size < 24:
                self.close()
                raise PcapError(f"{self.path}: pcap file header cut short ({self._size} of 24 bytes)")
        elif head == _PCAPNG_SHB.to_bytes(4, "little"):
            self.format = "pcapng"
        else:
            self.close()
            if head[:2] == _GZIP:
                raise PcapError(f"{self.path}: a gzip-compressed file; decompress it first (gunzip)")
            raise PcapError(f"{self.path}: not a pcap or pcapng capture (it starts with 0x{head.hex()})")

    def __iter__(self) -> PcapReader:
        return self

    def __next__(self) -> NetworkRecord:
        if self._records is None:
            self._records = self._aggregate()
        return next(self._records)

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file; iteration that has not finished ends."""
        if not self._map.closed:
            self._map.close()

    def faults(self) -> list[ScanError]:
        """After iteration: the packets whose processing raised, as one ``internal`` error (or none)."""
        return self._failed.errors()

    def _aggregate(self) -> Iterator[NetworkRecord]:
        table = EndpointTable(self._provider_for)
        for event in self.events():
            try:
                table.add(event)
            except Exception as exc:  # one packet that breaks the code is one count, never a dead capture
                self._failed.add(exc)
        yield from table.records()

    def events(self) -> Iterator[Event]:
        """The events of the capture in file order (one pass; ``__next__`` uses the same pass)."""
        try:
            if self.format == "pcap":
                yield from self._pcap_events()
            else:
                yield from self._pcapng_events()
        finally:
            self.malformed = self._parser.malformed
            for linktype, count in sorted(self._skipped.items()):
                self.errors.append(f"link type {linktype} is not supported: {count} frames skipped")
            self._skipped.clear()
            self.close()

    def _cut(self, pos: int, what: str) -> None:
        self.truncated = True
        self.errors.append(
            f"truncated: the file ends inside {what} at byte {pos}; the {self.packets} packets before it were read"
        )

    def _pcap_events(self) -> Iterator[Event]:
        buf, size = self._map, self._size
        order, scale, extra = _PCAP_MAGICS[buf[:4]]
        linktype = struct.unpack_from(order + "I", buf, 20)[0] & 0x0FFFFFFF  # upper bits: FCS length
        if linktype not in SUPPORTED_LINKTYPES:
            self.errors.append(f"link type {linktype} is not supported: no packet read")
            return
        unpack = struct.Struct(order + "IIII").unpack_from
        feed = self._parser.feed
        pos, count = 24, 0
        try:
            while pos + 16 <= size:
                sec, frac, incl, _ = unpack(buf, pos)
                start = pos + 16 + extra
                end = start + incl
                if incl > _MAX_FRAME:
                    self.errors.append(f"corrupt record header at byte {pos}: length {incl}; reading stopped")
                    return
                if end > size:
                    self.packets = count
                    self._cut(pos, "a packet record")
                    return
                try:
                    event = feed(buf, linktype, sec + frac * scale, start, end)
                except Exception as exc:  # one packet that breaks the parser is one count, never a dead capture
                    self._failed.add(exc)
                    event = None
                pos = end
                count += 1
                if event is not None:
                    yield event
            if pos != size:
                self.packets = count
                self._cut(pos, "a record header")
        finally:
            self.packets = count

    def _pcapng_events(self) -> Iterator[Event]:
        buf, size = self._map, self._size
        section = _Section(buf, 0)
        pos, count = 0, 0
        try:
            while pos + 12 <= size:
                btype, blen = section.u32x2(buf, pos)
                if btype == _PCAPNG_SHB:
                    section = _Section(buf, pos)
                    blen = section.u32x2(buf, pos)[1]
                if blen < 12 or blen % 4 or blen > _MAX_FRAME + 64:
                    self.errors.append(f"corrupt pcapng block at byte {pos}: length {blen}; reading stopped")
                    return
                if pos + blen > size:
                    self._cut(pos, "a pcapng block")
                    return
                frame = section.frame(buf, btype, pos, blen, self)
                pos += blen
                if frame is None:
                    continue
                count += 1
                self.packets = count
                linktype, ts, start, end = frame
                if linktype not in SUPPORTED_LINKTYPES:
                    self._skipped[linktype] = self._skipped.get(linktype, 0) + 1
                    continue
                try:
                    event = self._parser.feed(buf, linktype, ts, start, end)
                except Exception as exc:  # as in _pcap_events
                    self._failed.add(exc)
                    event = None
                if event is not None:
                    yield event
            if pos != size:
                self._cut(pos, "a block header")
        finally:
            self.packets = count


class _Section:
    """One pcapng section: its byte order and interfaces (link type, seconds per tick, offset)."""

    def __init__(self, buf: Buffer, pos: int) -> None:
        order = "<"
        if len(buf) >= pos + 12 and struct.unpack_from(">I", buf, pos + 8)[0] == _PCAPNG_BYTE_ORDER:
            order = ">"
        self.u32x2 = struct.Struct(order + "II").unpack_from
        self._epb = struct.Struct(order + "IIIII").unpack_from
        self._pb = struct.Struct(order + "HHIIII").unpack_from
        self._u32 = struct.Struct(order + "I").unpack_from
        self._u16x2 = struct.Struct(order + "HH").unpack_from
        self._order = order
        self.interfaces: list[tuple[int, float, int]] = []

    def frame(
        self, buf: Buffer, btype: int, pos: int, blen: int, reader: PcapReader
    ) -> tuple[int, float, int, int] | None:
        """(link type, timestamp, start, end) of the frame in a packet block; None for other blocks."""
        body_end = pos + blen - 4
        if btype == _PCAPNG_EPB and blen >= 32:
            iface, hi, lo, cap, _ = self._epb(buf, pos + 8)
            start = pos + 28
        elif btype == _PCAPNG_SPB and blen >= 16:
            iface, hi, lo = 0, 0, 0
            start = pos + 12
            cap = min(self._u32(buf, pos + 8)[0], body_end - start)
        elif btype == _PCAPNG_PB and blen >= 32:
            iface, _, hi, lo, cap, _ = self._pb(buf, pos + 8)
            start = pos + 28
        else:
            if btype == _PCAPNG_IDB and blen >= 20:
                self.interfaces.append(self._interface(buf, pos, body_end))
            return None
        if iface >= len(self.interfaces) or start + cap > body_end:
            reader.errors.append(f"bad packet block at byte {pos} (interface {iface}, length {cap}); skipped")
            return None
        linktype, tick, offset = self.interfaces[iface]
        return linktype, ((hi << 32) | lo) * tick + offset, start, start + cap

    def _interface(self, buf: Buffer, pos: int, body_end: int) -> tuple[int, float, int]:
        linktype = self._u16x2(buf, pos + 8)[0]
        tick, offset = 1e-6, 0
        opt = pos + 16
        while opt + 4 <= body_end:
            code, olen = self._u16x2(buf, opt)
            value = opt + 4
            if code == 0 or value + olen > body_end:
                break
            if code == 9 and olen >= 1:  # if_tsresol: 10^-n, or 2^-n when the top bit is set
                res = buf[value]
                tick = 2.0 ** -(res & 0x7F) if res & 0x80 else 10.0**-res
            elif code == 14 and olen == 8:  # if_tsoffset: seconds added to every timestamp
                offset = struct.unpack_from(self._order + "q", buf, value)[0]
            opt = value + ((olen + 3) & ~3)
        return linktype, tick, offset


def _open_map(path: str) -> tuple[mmap.mmap, int]:
    """Map a regular, non-empty file read-only; PcapError for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise PcapError(f"{path}: cannot open: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PcapError(f"{path}: not a regular file")
        if info.st_size < 4:
            raise PcapError(f"{path}: {'empty' if info.st_size == 0 else 'too short to be a'} capture file")
        try:
            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ), info.st_size
        except OSError as exc:
            raise PcapError(f"{path}: cannot map: {exc.strerror}") from exc
    finally:
        os.close(fd)


def read_pcap(path: str | os.PathLike[str], *, provider_for: ProviderFor | None = None) -> PcapReader:
    """Open a pcap or pcapng file; iterate the result for one aggregated record per (client address,
    host, port, via). Raises ``PcapError`` now if the file is not a capture; problems found while
    reading (a truncated tail, unsupported link types) land in the reader's ``errors``.
    """
    return PcapReader(path, provider_for)
