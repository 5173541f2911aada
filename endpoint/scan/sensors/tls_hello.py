"""TLS ClientHello parsing: the server name (SNI) a handshake asks for, from a record that may be split
across segments. Every length is distrusted: a hostile hello is ``HELLO_BAD``, never an exception."""

from __future__ import annotations

from endpoint.scan.sensors.packet_events import hostname

# Bounds that keep one hostile packet cheap (well under 1 ms each).
MAX_HELLO_BYTES = 32 * 1024  # a ClientHello larger than this is not buffered across segments
MAX_TLS_RECORD = 16384 + 2048  # RFC 8446 5.1/5.2: plaintext <= 2^14, ciphertext <= 2^14 + 256
MAX_EXTENSIONS = 128  # real ClientHellos carry fewer than 30


HELLO_DONE = 0  # parsed to the end, or far enough to find the SNI
HELLO_MORE = 1  # valid so far; the rest is in later segments
HELLO_BAD = 2  # not a ClientHello


def _handshake_bytes(data: bytes) -> tuple[bytes, bool] | None:
    """Concatenate the payloads of the leading TLS handshake records; (bytes, complete records?)."""
    out = bytearray()
    pos = 0
    n = len(data)
    while pos + 5 <= n and data[pos] == 0x16:
        if data[pos + 1] != 3:
            return None
        rlen = (data[pos + 3] << 8) | data[pos + 4]
        if rlen == 0 or rlen > MAX_TLS_RECORD:
            return None
        out += data[pos + 5 : pos + 5 + rlen]
        pos += 5 + rlen
        if pos > n:
            return bytes(out), False
        if len(out) >= 4 and len(out) >= 4 + ((out[1] << 16) | (out[2] << 8) | out[3]):
            break
    if pos == 0:
        return None
    return bytes(out), True


def _sni_from_extensions(hs: bytes, pos: int, end: int) -> tuple[int, str | None]:
    """Walk the extensions in hs[pos:end]; (status, sni). Stops at the server_name extension."""
    avail = min(end, len(hs))
    for _ in range(MAX_EXTENSIONS):
        if pos >= end:
            return HELLO_DONE, None
        if pos + 4 > avail:
            return HELLO_MORE, None
        etype = (hs[pos] << 8) | hs[pos + 1]
        elen = (hs[pos + 2] << 8) | hs[pos + 3]
        pos += 4
        if pos + elen > end:
            return HELLO_BAD, None
        if etype == 0:
            if pos + elen > avail:
                return HELLO_MORE, None
            return HELLO_DONE, _sni_from_server_name(hs[pos : pos + elen])
        pos += elen
    return HELLO_BAD, None


def _sni_from_server_name(ext: bytes) -> str | None:
    """The first host_name entry of a server_name extension (RFC 6066 section 3)."""
    if len(ext) < 2:
        return None
    end = min(len(ext), 2 + ((ext[0] << 8) | ext[1]))
    pos = 2
    while pos + 3 <= end:
        ntype = ext[pos]
        nlen = (ext[pos + 1] << 8) | ext[pos + 2]
        pos += 3
        if pos + nlen > end:
            return None
        if ntype == 0:
            return hostname(ext[pos : pos + nlen])
        pos += nlen
    return None


def parse_client_hello(data: bytes) -> tuple[int, str | None]:
    """Parse the TLS records at the start of ``data``; (HELLO_DONE | HELLO_MORE | HELLO_BAD, sni).

    HELLO_MORE means the bytes so far are a valid beginning; the SNI may be in the rest.
    """
    got = _handshake_bytes(data)
    if got is None:
        return HELLO_BAD, None
    hs, _ = got
    if len(hs) < 4:
        return HELLO_MORE, None
    if hs[0] != 1:
        return HELLO_BAD, None
    end = 4 + ((hs[1] << 16) | (hs[2] << 8) | hs[3])
    if end > MAX_HELLO_BYTES:
        return HELLO_BAD, None
    pos = 4 + 2 + 32  # legacy_version, random
    for width in (1, 2, 1):  # session id, cipher suites, compression methods
        if pos + width > min(end, len(hs)):
            return (HELLO_MORE if len(hs) < end else HELLO_BAD), None
        vlen = hs[pos] if width == 1 else (hs[pos] << 8) | hs[pos + 1]
        pos += width + vlen
    if pos == end:
        return HELLO_DONE, None  # no extensions at all
    if pos + 2 > min(end, len(hs)):
        return (HELLO_MORE if len(hs) < end else HELLO_BAD), None
    ext_end = pos + 2 + ((hs[pos] << 8) | hs[pos + 1])
    if ext_end > end:
        return HELLO_BAD, None
    status, sni = _sni_from_extensions(hs, pos + 2, ext_end)
    if status == HELLO_MORE and len(hs) >= end:
        return HELLO_BAD, None
    return status, sni
