"""Which URLs a channel may post to: http(s) only and, outside development mode, never to
loopback, private, link-local or reserved addresses (a webhook must not reach our own network)."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # Forms such as "127.1", "2130706433" or "0x7f.1" are IPv4 literals to most resolvers.
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _forbidden_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
    )
    for label, hit in checks:
        if hit:
            return f"{ip} is a {label} address"
    return None


def channel_url_problem(url: str, *, allow_internal: bool) -> str | None:
    """Why ``url`` may not be used for a channel, or ``None`` when it is acceptable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        return f"it is not a valid URL ({exc})"
    del port
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are supported"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "the URL has no host"
    if allow_internal:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host!r} is a loopback host, allowed only in development mode"
    ip = _ip_literal(host)
    if ip is not None:
        reason = _forbidden_address(ip)
        if reason:
            return f"{reason}, allowed only in development mode"
    return None
