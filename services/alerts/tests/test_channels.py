"""Slack and Discord message formatting and URL rules (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from churn_alerts.channels import channel_message, display_url, kind_url_problem

ALERT: dict[str, Any] = {
    "id": "a-1",
    "customer_id": "C-<42> & co",
    "kind": "high_risk",
    "churn_probability": 0.873,
    "previous_probability": 0.41,
    "risk_level": "high",
    "model_version": "m-7",
    "drivers": [
        {
            "feature": "days_since_last_order",
            "value": 120.0,
            "contribution": 1.2,
            "direction": "increases_risk",
        },
        {
            "feature": "payment_failures_90d",
            "value": 3.0,
            "contribution": 0.8,
            "direction": "increases_risk",
        },
        {
            "feature": "email_open_rate",
            "value": 0.25,
            "contribution": -0.2,
            "direction": "decreases_risk",
        },
        {"feature": "returns", "value": 1.0, "contribution": 0.1, "direction": "increases_risk"},
    ],
    "status": "open",
    "created_at": "2026-11-30T12:00:00Z",
}


def _slack_text(message: dict[str, Any]) -> str:
    parts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e["text"] for e in block.get("elements", [])]
    return "\n".join(parts)


def test_slack_message_has_headline_figures_and_top_three_drivers():
    message = channel_message("slack", ALERT)
    text = _slack_text(message)
    assert message["text"] == "High churn risk: customer C-&lt;42&gt; &amp; co at 87% (high risk)"
    for expected in ("41%", "m-7", "a-1"):
        assert expected in text
    assert "days_since_last_order = 120 (raises risk)" in text
    assert "email_open_rate = 0.25 (lowers risk)" in text
    assert "returns" not in text  # only the top three drivers
    assert "<42>" not in text  # Slack control characters are escaped


def test_discord_message_never_pings_and_escapes_markdown():
    alert = {**ALERT, "customer_id": "@everyone *bold*", "kind": "risk_increase"}
    message = channel_message("discord", alert)
    assert message["allowed_mentions"] == {"parse": []}
    assert message["content"].startswith("Churn risk rising: customer @everyone \\*bold\\*")
    embed = message["embeds"][0]
    assert embed["color"] == 0xD93025
    assert embed["timestamp"] == "2026-11-30T12:00:00Z"
    drivers = next(f for f in embed["fields"] if f["name"] == "Top drivers")
    assert drivers["value"].count("•") == 3
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    assert len(embed["title"]) <= 256


def test_discord_limits_hold_for_huge_values():
    alert = {**ALERT, "customer_id": "x" * 5000, "model_version": "v" * 5000}
    message = channel_message("discord", alert)
    assert len(message["content"]) <= 2000
    assert len(message["embeds"][0]["title"]) <= 256
    assert all(len(f["value"]) <= 1024 for f in message["embeds"][0]["fields"])


def test_webhook_message_is_the_alert_itself():
    assert channel_message("webhook", ALERT) == {"event": "churn_alert", **ALERT}


def test_alert_without_drivers_or_previous_score():
    alert = {**ALERT, "drivers": [], "previous_probability": None}
    assert "n/a" in _slack_text(channel_message("slack", alert))
    fields = channel_message("discord", alert)["embeds"][0]["fields"]
    assert [f["name"] for f in fields] == ["Churn probability", "Previous score", "Model"]


@pytest.mark.parametrize(
    ("kind", "url", "ok"),
    [
        ("slack", "https://hooks.slack.com/services/T0/B0/XYZsecret123", True),
        ("slack", "http://hooks.slack.com/services/T0/B0/XYZ", False),
        ("slack", "https://hooks.slack.com.evil.example/services/T0", False),
        ("slack", "https://example.com/services/T0/B0/XYZ", False),
        ("discord", "https://discord.com/api/webhooks/1/abc", True),
        ("discord", "https://discordapp.com/api/webhooks/1/abc", True),
        ("discord", "https://discord.com/channels/1/2", False),
        ("webhook", "https://example.com/anything", True),
    ],
)
def test_official_hosts_outside_dev_mode(kind, url, ok):
    assert (kind_url_problem(kind, url, allow_internal=False) is None) is ok
    assert kind_url_problem(kind, url, allow_internal=True) is None


def test_credentials_in_urls_are_masked():
    assert (
        display_url("slack", "https://hooks.slack.com/services/T0/B0/XYZsecret123")
        == "https://hooks.slack.com/services/T0/B0/…t123"
    )
    assert display_url("discord", "https://discord.com/api/webhooks/1/ab") == (
        "https://discord.com/api/webhooks/1/…"
    )
    assert (
        display_url("webhook", "https://example.com/h?token=1") == "https://example.com/h?token=1"
    )


def test_masking_is_idempotent():
    once = display_url("slack", "https://hooks.slack.com/services/T0/B0/XYZsecret123")
    assert display_url("slack", once) == once
