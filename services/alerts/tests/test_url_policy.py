"""Which webhook URLs are accepted, in and out of development mode."""

from __future__ import annotations

import pytest

from churn_alerts.signing import signature_header, verify_signature_header
from churn_alerts.url_policy import channel_url_problem


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


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook"])
def test_internal_addresses_are_accepted_in_dev_mode(url):
    assert channel_url_problem(url, allow_internal=True) is None


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "example.com", ""])
def test_only_http_and_https(url):
    assert channel_url_problem(url, allow_internal=True) is not None


@pytest.mark.parametrize("url", ["https://hooks.example.com/churn", "http://93.184.216.34/x"])
def test_public_urls_are_accepted(url):
    assert channel_url_problem(url, allow_internal=False) is None


def test_signature_round_trip_and_tamper():
    header = signature_header("s3cret", 1_700_000_000, b'{"a":1}')
    assert verify_signature_header("s3cret", header, b'{"a":1}', now=1_700_000_010)
    assert not verify_signature_header("s3cret", header, b'{"a":2}', now=1_700_000_010)
    assert not verify_signature_header("other", header, b'{"a":1}', now=1_700_000_010)
    assert not verify_signature_header("s3cret", header, b'{"a":1}', now=1_700_001_000)
