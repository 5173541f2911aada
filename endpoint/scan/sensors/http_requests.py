"""HTTP request heads: the method and the host a plain-HTTP request (or a CONNECT to a proxy) names."""

from __future__ import annotations

from endpoint.scan.sensors.packet_events import Flow, HttpRequest, split_host_port

HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ", b"CONNECT ")
MAX_HTTP_HEAD = 4096  # bytes of an HTTP request searched for the request line and Host header



def parse_http_request(head: bytes, ts: float, flow: Flow) -> HttpRequest | None:
    """The target host of an HTTP/1.x request head (request line plus headers)."""
    line_end = head.find(b"\r\n")
    line = head[: line_end if line_end >= 0 else len(head)]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None
    method, target = parts[0], parts[1]
    if method == b"CONNECT":
        got = split_host_port(target, 443)
        return HttpRequest(ts, flow, "CONNECT", got[0], got[1], True) if got else None
    lowered = target[:8].lower()
    if lowered.startswith((b"http://", b"https://")):
        scheme_end = target.find(b"//") + 2
        authority = target[scheme_end:]
        for stop in (b"/", b"?", b"#"):
            authority = authority.split(stop, 1)[0]
        authority = authority.rsplit(b"@", 1)[-1]
        got = split_host_port(authority, 443 if lowered.startswith(b"https") else 80)
        return HttpRequest(ts, flow, method.decode("ascii"), got[0], got[1], True) if got else None
    host = _host_header(head)
    if host is None:
        return None
    got = split_host_port(host, flow.dport)
    return HttpRequest(ts, flow, method.decode("ascii"), got[0], got[1], False) if got else None


def _host_header(head: bytes) -> bytes | None:
    at = head.find(b"\r\nHost:")
    if at < 0:
        at = head.lower().find(b"\r\nhost:")
        if at < 0:
            return None
    start = at + 7
    stop = head.find(b"\r\n", start)
    return head[start : stop if stop >= 0 else len(head)]
