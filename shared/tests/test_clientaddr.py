"""The caller's address behind trusted proxies: ``X-Forwarded-For`` only from a trusted peer."""

from __future__ import annotations

import pytest

from churn_shared.clientaddr import (
    client_address,
    client_address_from,
    forwarded_chain,
    parse_networks,
)

GATEWAY = parse_networks(["10.0.0.0/8", "::1"])


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    chain = forwarded_chain("198.51.100.7", ["1.2.3.4"], GATEWAY)
    assert chain == ["198.51.100.7"]
    assert client_address(chain, GATEWAY) == "198.51.100.7"


def test_a_trusted_peer_passes_on_the_nearest_untrusted_address() -> None:
    chain = forwarded_chain("10.0.0.2", ["6.6.6.6, 203.0.113.9", "10.0.0.9"], GATEWAY)
    assert chain == ["6.6.6.6", "203.0.113.9", "10.0.0.9", "10.0.0.2"]
    assert client_address(chain, GATEWAY) == "203.0.113.9"


def test_a_chain_of_trusted_proxies_only_gives_its_first_address() -> None:
    assert client_address_from("10.0.0.2", ["10.0.0.3"], GATEWAY) == "10.0.0.3"


def test_without_a_peer_the_address_is_unknown() -> None:
    assert client_address_from(None, ["1.2.3.4"], GATEWAY) == "unknown"


def test_garbage_in_the_header_is_not_trusted() -> None:
    assert client_address_from("::1", ["not-an-ip"], GATEWAY) == "not-an-ip"


def test_malformed_networks_are_refused() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        parse_networks(["10.0.0.0/33"])
