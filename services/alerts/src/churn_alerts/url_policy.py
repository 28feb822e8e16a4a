"""Where a channel may post: http(s) only and, outside development mode, never to an address
in the IANA special-purpose registries (loopback, private, shared, link-local, documentation,
translation prefixes that embed such an address …), so a webhook cannot reach our own network
or a cloud metadata service.

The policy is applied twice:

* when a channel is created (:func:`channel_url_problem`), on the URL's host as text: it is
  normalised the way the HTTP client will see it (UTS-46 mapping, so ``127。0。0。1`` is
  ``127.0.0.1``), legacy IPv4 notations (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are refused
  rather than guessed, and names that only ever resolve locally (``localhost``, ``*.local``,
  single-label names …) are refused;
* when a delivery is sent (:mod:`churn_alerts.webhook_transport`), on every address the host
  resolves to at that moment, and the connection is made to the checked address.

The first gives an early, clear answer; only the second is a security boundary, since DNS can
change at any time after a channel was accepted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefusedError(Exception):
    """A URL, host or address that the policy does not let a webhook reach."""


@dataclass(frozen=True, slots=True)
class SpecialRange:
    """One block of a special-purpose registry and where it is defined (``name`` reads as
    "``<address>`` is ``<name>`` address")."""

    network: IPNetwork
    name: str
    reference: str


def _block(cidr: str, name: str, reference: str) -> SpecialRange:
    return SpecialRange(ipaddress.ip_network(cidr), name, reference)


#: The IANA IPv4 Special-Purpose Address Registry
#: (https://www.iana.org/assignments/iana-ipv4-special-registry/), every entry, whether or not
#: the registry calls it globally reachable (no webhook has a reason to target AS112 or AMT
#: relays), plus the multicast block of the IPv4 Multicast Address Space Registry. More specific
#: entries (0.0.0.0/32, the 192.0.0.0/24 assignments, 192.88.99.2/32) lie inside listed blocks.
IPV4_SPECIAL: tuple[SpecialRange, ...] = (
    _block("0.0.0.0/8", 'a "this network"', "RFC 791"),
    _block("10.0.0.0/8", "a private-use", "RFC 1918"),
    _block("100.64.0.0/10", "a shared (carrier-grade NAT)", "RFC 6598"),
    _block("127.0.0.0/8", "a loopback", "RFC 1122"),
    _block("169.254.0.0/16", "a link-local", "RFC 3927"),
    _block("172.16.0.0/12", "a private-use", "RFC 1918"),
    _block("192.0.0.0/24", "an IETF protocol assignment", "RFC 6890"),
    _block("192.0.2.0/24", "a documentation (TEST-NET-1)", "RFC 5737"),
    _block("192.31.196.0/24", "an AS112", "RFC 7535"),
    _block("192.52.193.0/24", "an AMT", "RFC 7450"),
    _block("192.88.99.0/24", "a deprecated 6to4 relay anycast", "RFC 7526"),
    _block("192.168.0.0/16", "a private-use", "RFC 1918"),
    _block("192.175.48.0/24", "an AS112 direct delegation", "RFC 7534"),
    _block("198.18.0.0/15", "a benchmarking", "RFC 2544"),
    _block("198.51.100.0/24", "a documentation (TEST-NET-2)", "RFC 5737"),
    _block("203.0.113.0/24", "a documentation (TEST-NET-3)", "RFC 5737"),
    _block("224.0.0.0/4", "a multicast", "RFC 5771"),
    _block("255.255.255.255/32", "a limited broadcast", "RFC 919"),
    _block("240.0.0.0/4", "a reserved", "RFC 1112"),
)

#: Prefixes whose addresses carry an IPv4 address that the packets end up at: judged by that
#: embedded address (IPv4-mapped, the well-known NAT64 prefix, 6to4).
IPV6_EMBEDDING_IPV4: tuple[SpecialRange, ...] = (
    _block("::ffff:0:0/96", "IPv4-mapped", "RFC 4291"),
    _block("64:ff9b::/96", "NAT64 (well-known prefix)", "RFC 6052"),
    _block("2002::/16", "6to4", "RFC 3056"),
)

#: The IANA IPv6 Special-Purpose Address Registry
#: (https://www.iana.org/assignments/iana-ipv6-special-registry/) except the prefixes above,
#: plus blocks of the IPv6 Address Space Registry that are not global unicast. 2001::/23 covers
#: Teredo (2001::/32, whose embedded IPv4 is obfuscated), ORCHIDv2, benchmarking and the
#: anycast assignments. The local-use NAT64 prefix 64:ff9b:1::/48 is refused outright: where its
#: IPv4 sits depends on the operator's prefix length, and it only ever leads into a local network.
IPV6_SPECIAL: tuple[SpecialRange, ...] = (
    _block("::/128", "an unspecified", "RFC 4291"),
    _block("::1/128", "a loopback", "RFC 4291"),
    _block("::/96", "a deprecated IPv4-compatible", "RFC 4291"),
    _block("64:ff9b:1::/48", "a local-use IPv4/IPv6 translation", "RFC 8215"),
    _block("100::/64", "a discard-only", "RFC 6666"),
    _block("100:0:0:1::/64", "a dummy IPv6 prefix", "RFC 9780"),
    _block("2001::/23", "an IETF protocol assignment", "RFC 2928"),
    _block("2001:db8::/32", "a documentation", "RFC 3849"),
    _block("2620:4f:8000::/48", "an AS112 direct delegation", "RFC 7534"),
    _block("3fff::/20", "a documentation", "RFC 9637"),
    _block("5f00::/16", "a segment routing (SRv6) SID", "RFC 9602"),
    _block("fc00::/7", "a unique-local", "RFC 4193"),
    _block("fe80::/10", "a link-local", "RFC 4291"),
    _block("fec0::/10", "a deprecated site-local", "RFC 3879"),
    _block("ff00::/8", "a multicast", "RFC 4291"),
)

#: Everything outside 2000::/3 is either listed above or not yet allocated for unicast
#: (IANA IPv6 Address Space Registry), so it is refused as well.
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

#: Names that resolve only on the local machine or network: RFC 6761 (localhost), RFC 6762
#: (.local, mDNS), RFC 8375 (.home.arpa), ICANN's private-use .internal, and the common
#: ``localdomain`` of /etc/hosts files.
_LOCAL_NAMES = ("localhost", "local", "home.arpa", "internal", "localdomain")

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
#: A last label that is a number makes the host an IPv4 address to WHATWG URL parsers and to
#: ``inet_aton``-style resolvers, whatever notation it is written in.
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, well-known-NAT64 or 6to4 address leads to."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in IPV6_EMBEDDING_IPV4[1].network:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _special_range(ip: IPAddress) -> str | None:
    """What ``ip`` is, e.g. ``"a loopback address (RFC 1122, 127.0.0.0/8)"``, if it is special."""
    if isinstance(ip, ipaddress.IPv6Address):
        for embedding in IPV6_EMBEDDING_IPV4:
            if ip in embedding.network:
                inner = embedded_ipv4(ip)
                what = _special_range(inner) if inner is not None else "nothing"
                if what is None:
                    return None
                return f"{embedding.name} ({embedding.reference}) and leads to {inner}, {what}"
        table = IPV6_SPECIAL
    else:
        table = IPV4_SPECIAL
    for block in table:
        if ip in block.network:
            return f"{block.name} address ({block.reference}, {block.network})"
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _IPV6_GLOBAL_UNICAST:
        return "outside the global unicast space 2000::/3"
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why a webhook may not connect to ``ip``, or ``None`` for a globally reachable unicast
    address."""
    what = _special_range(ip)
    return None if what is None else f"{ip} is {what}"


def check_address(ip: IPAddress, *, host: str) -> None:
    """Raise :class:`DestinationRefusedError` unless ``ip``, an address of ``host``, may be
    reached."""
    what = _special_range(ip)
    if what is None:
        return
    if host == str(ip):
        raise DestinationRefusedError(f"{ip} is {what}")
    raise DestinationRefusedError(f"{host} resolves to {ip}, {what}")


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` denotes when it is a canonical IP literal (brackets allowed)."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def normalise_host(host: str) -> str:
    """``host`` as an HTTP client and a resolver will see it: an IP literal in its canonical
    form, or an ASCII name, lowercase, without a trailing dot.

    Names go through UTS-46 mapping (full-width letters and the ideographic, full-width and
    half-width full stops become their ASCII counterparts), then each non-ASCII label becomes
    its ``xn--`` form. Raises :class:`DestinationRefusedError` for what is not a host name.
    """
    ip = ip_literal(host)
    if ip is not None:
        return str(ip)
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise DestinationRefusedError(f"{host!r} is not a valid host name ({exc})") from exc
    mapped = mapped.rstrip(".")
    ip = ip_literal(mapped)
    if ip is not None:
        return str(ip)
    labels: list[str] = []
    for label in mapped.split("."):
        try:
            ascii_label = label if label.isascii() else idna.alabel(label).decode("ascii")
            if ascii_label.startswith("xn--"):
                idna.ulabel(ascii_label)  # a malformed Punycode label is refused too
        except idna.IDNAError as exc:
            raise DestinationRefusedError(f"{host!r} is not a valid host name ({exc})") from exc
        if not _LABEL.match(ascii_label):
            raise DestinationRefusedError(f"{host!r} is not a valid host name")
        labels.append(ascii_label)
    return ".".join(labels)


def host_problem(host: str) -> str | None:
    """Why ``host`` (normalised) may not be a webhook's host, judged without resolving it."""
    ip = ip_literal(host)
    if ip is not None:
        return address_problem(ip)
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        return f"{host!r} is an IPv4 address in a non-standard notation; write a.b.c.d"
    for suffix in _LOCAL_NAMES:
        if host == suffix or host.endswith("." + suffix):
            return f"{host!r} is a local name ({suffix})"
    if len(labels) == 1:
        return f"{host!r} has no domain: single-label names resolve through the local search list"
    return None


def check_host(host: str, *, allow_internal: bool) -> str:
    """``host`` normalised, or :class:`DestinationRefusedError` if the policy refuses it before
    any resolution. ``allow_internal`` (development mode) accepts every well-formed host."""
    normalised = normalise_host(host)
    if not allow_internal:
        reason = host_problem(normalised)
        if reason:
            raise DestinationRefusedError(reason)
    return normalised


def channel_url_problem(url: str, *, allow_internal: bool) -> str | None:
    """Why ``url`` may not be used for a channel, or ``None`` when it is acceptable.

    The URL is parsed by the HTTP client that will post to it, and the host it will be sent to
    must be the host as written once both are normalised, so that no difference between
    parsers can carry a host past the check.
    """
    text = url.strip()
    try:
        parsed = httpx.URL(text)
        urlsplit(text).port  # noqa: B018 - raises ValueError for a port out of range
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return f"it is not a valid URL ({exc})"
    if parsed.scheme not in ("http", "https"):
        return "only http and https URLs are supported"
    if not parsed.raw_host:
        return "the URL has no host"
    authority = _authority(text)
    if "\\" in authority:
        return "a backslash in the host part is read differently by different URL parsers"
    as_sent = parsed.raw_host.decode("ascii")
    try:
        host = normalise_host(as_sent)
        written = _host_of(authority)
        if normalise_host(written) != host:
            return f"the host {written!r} is ambiguous (it would be sent as {as_sent!r})"
    except DestinationRefusedError as exc:
        return str(exc)
    if allow_internal:
        return None
    reason = host_problem(host)
    return f"{reason}; allowed only in development mode" if reason else None


def _authority(url: str) -> str:
    """The authority part of ``url`` as written, before any decoding or encoding."""
    rest = url.split("://", 1)[-1]
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _host_of(authority: str) -> str:
    hostport = authority.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        return hostport[: hostport.find("]") + 1] if "]" in hostport else hostport
    return hostport.rsplit(":", 1)[0] if ":" in hostport else hostport
