"""Whether a host name or address stays on this machine: the collector serves plain HTTP, and the console
sends a token over it, only to such a host (127.0.0.0/8, ::1, ``localhost``) unless told otherwise.

Standard library only: both ``agentroster server`` and ``agentroster console`` import it at start.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (an IPv4-mapped ``::ffff:127.x`` too); a name that
    only resolves to loopback today is not trusted, since DNS can change its mind."""
    name = host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def plain_http_elsewhere(url: str) -> bool:
    """True when ``url`` is ``http://`` to a host that is not this machine (a token would cross the network
    in clear)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "http":
        return False
    try:
        host = parts.hostname or ""
    except ValueError:
        return True
    return not is_loopback_host(host)
