"""The caller's address behind trusted reverse proxies (``X-Forwarded-For``), written once.

An incoming ``X-Forwarded-For`` chain is believed only when the direct peer is a trusted proxy
(an ingress for the gateway, the gateway for a service); the client is then the first address
of the chain, read from the right, that is not a trusted proxy. A client cannot pick its own
address by sending the header: an untrusted peer's header is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
Networks = Sequence[Network]

#: What the address is when the server does not know its peer (e.g. a Unix socket).
UNKNOWN_ADDRESS = "unknown"


def parse_networks(items: Iterable[str]) -> list[Network]:
    """Addresses or networks (``10.0.0.0/8``, ``::1``) → networks; ``ValueError`` if malformed."""
    return [ip_network(item, strict=False) for item in items]


def is_trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def forwarded_chain(peer: str | None, forwarded_for: Iterable[str], trusted: Networks) -> list[str]:
    """The ``X-Forwarded-For`` chain to pass on, ending with the direct peer.

    ``forwarded_for`` holds the values of every ``X-Forwarded-For`` header of the request; they
    are believed only when ``peer`` is a trusted proxy.
    """
    if peer is None:
        return []
    chain: list[str] = []
    if is_trusted(peer, trusted):
        for value in forwarded_for:
            chain.extend(part.strip() for part in value.split(",") if part.strip())
    chain.append(peer)
    return chain


def client_address(chain: Sequence[str], trusted: Networks) -> str:
    """The first address of the chain (from the right) that is not a trusted proxy."""
    for address in reversed(chain):
        if not is_trusted(address, trusted):
            return address
    return chain[0] if chain else UNKNOWN_ADDRESS


def client_address_from(peer: str | None, forwarded_for: Iterable[str], trusted: Networks) -> str:
    """:func:`client_address` of :func:`forwarded_chain` — when the chain itself is not needed."""
    return client_address(forwarded_chain(peer, forwarded_for, trusted), trusted)
