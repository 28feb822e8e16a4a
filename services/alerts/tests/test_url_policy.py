"""Which webhook URLs are accepted, in and out of development mode."""

from __future__ import annotations

import ipaddress

import pytest

from churn_alerts.signing import signature_header, verify_signature_header
from churn_alerts.url_policy import (
    IPV4_SPECIAL,
    IPV6_SPECIAL,
    address_problem,
    channel_url_problem,
    normalise_host,
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://api.localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/hook",
        "http://240.0.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
    ],
)
def test_internal_addresses_are_refused_outside_dev_mode(url):
    assert channel_url_problem(url, allow_internal=False) is not None


#: Hosts the policy let through before it normalised hosts and used the IANA registries.
DISGUISED_OR_MISSED = [
    # Unicode full stops, which the HTTP client maps to "." after the check used to run.
    "http://127\u30020\u30020\u30021:8080/hook",
    "http://127\uff0e0\uff0e0\uff0e1:8080/hook",
    "http://127\uff610\uff610\uff611:8080/hook",
    # Shared address space (RFC 6598), home of cloud metadata at 100.100.100.200.
    "http://100.64.0.1/hook",
    "http://100.100.100.200/latest/meta-data",
    "http://[::ffff:100.100.100.200]/latest/meta-data",
    # Other special-purpose blocks that Python's ipaddress flags do not cover.
    "http://192.88.99.1/hook",
    "http://192.31.196.1/hook",
    "http://192.52.193.1/hook",
    "http://192.175.48.1/hook",
    "http://[2002:7f00:1::]/hook",
    "http://[3fff::1]/hook",
    "http://[fec0::1]/hook",
    "http://[2620:4f:8000::1]/hook",
    # Names that only resolve locally.
    "http://intranet/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://printer.local/hook",
    "http://router.home.arpa/hook",
    "http://localhost.localdomain/hook",
    # IPv4 in a legacy notation is refused, not guessed, even for a public address.
    "http://0x5d.0xb8.0xd8.0x22/hook",
    "http://1.2.3.4.5/hook",
    # What is not a host name at all.
    "http://a%2eb.example.com/hook",
]


@pytest.mark.parametrize("url", DISGUISED_OR_MISSED)
def test_disguised_and_special_purpose_hosts_are_refused_outside_dev_mode(url):
    problem = channel_url_problem(url, allow_internal=False)
    assert problem is not None
    assert "development mode" in problem or "not a valid host name" in problem


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127\u30020\u30020\u30021/hook", "127.0.0.1 is a loopback address"),
        ("http://100.100.100.200/", "100.100.100.200 is a shared (carrier-grade NAT) address"),
        ("http://[::ffff:127.0.0.1]/", "leads to 127.0.0.1, a loopback address"),
        ("http://[64:ff9b::a9fe:a9fe]/", "leads to 169.254.169.254, a link-local address"),
        ("http://[2002:a00:1::]/", "leads to 10.0.0.1, a private-use address"),
        ("http://[64:ff9b:1::a00:1]/", "local-use IPv4/IPv6 translation"),
        ("http://2130706433/", "non-standard notation"),
        ("http://0x7f.1/", "non-standard notation"),
        ("http://0177.0.0.1/", "not a valid URL"),
        ("http://localhost./hook", "is a local name"),
    ],
)
def test_refusals_say_why(url, expected):
    problem = channel_url_problem(url, allow_internal=False)
    assert problem is not None
    assert expected in problem


def _ends(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    return [str(network.network_address), str(network.broadcast_address)]


@pytest.mark.parametrize(
    "address",
    [a for block in (*IPV4_SPECIAL, *IPV6_SPECIAL) for a in _ends(block.network)],
)
def test_both_ends_of_every_registry_block_are_refused(address):
    assert address_problem(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("prefix", ["::ffff:", "64:ff9b::"])
@pytest.mark.parametrize("block", IPV4_SPECIAL, ids=lambda b: str(b.network))
def test_ipv6_forms_embedding_a_special_ipv4_are_refused(prefix, block):
    inner = block.network.network_address
    assert address_problem(ipaddress.ip_address(f"{prefix}{inner}")) is not None
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(inner) << 80))
    assert address_problem(sixtofour) is not None


@pytest.mark.parametrize(
    "address", ["::ffff:93.184.216.34", "64:ff9b::5db8:d822", "2002:5db8:d822::1"]
)
def test_ipv6_forms_embedding_a_public_ipv4_are_accepted(address):
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "normalised"),
    [
        ("127\u30020\u30020\u30021", "127.0.0.1"),
        ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "localhost"),
        ("Hooks.Example.COM.", "hooks.example.com"),
        ("b\u00fccher.de", "xn--bcher-kva.de"),
        ("[::FFFF:127.0.0.1]", "::ffff:7f00:1"),
        ("under_score.example.com", "under_score.example.com"),
    ],
)
def test_hosts_are_normalised_with_uts46(host, normalised):
    assert normalise_host(host) == normalised


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook"])
def test_internal_addresses_are_accepted_in_dev_mode(url):
    assert channel_url_problem(url, allow_internal=True) is None


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "example.com", ""])
def test_only_http_and_https(url):
    assert channel_url_problem(url, allow_internal=True) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/churn",
        "http://93.184.216.34/x",
        "https://b\u00fccher.de/hook",
        "http://[2606:4700::1111]/hook",
        "http://[::ffff:93.184.216.34]/hook",
        "https://user:pass@hooks.example.com/churn",
    ],
)
def test_public_urls_are_accepted(url):
    assert channel_url_problem(url, allow_internal=False) is None


def test_signature_round_trip_and_tamper():
    header = signature_header("s3cret", 1_700_000_000, b'{"a":1}')
    assert verify_signature_header("s3cret", header, b'{"a":1}', now=1_700_000_010)
    assert not verify_signature_header("s3cret", header, b'{"a":2}', now=1_700_000_010)
    assert not verify_signature_header("other", header, b'{"a":1}', now=1_700_000_010)
    assert not verify_signature_header("s3cret", header, b'{"a":1}', now=1_700_001_000)
