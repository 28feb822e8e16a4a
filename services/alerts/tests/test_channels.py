"""Slack and Discord message formatting and URL rules (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from churn_alerts.channels import (
    CHAT_LISTED_PER_GROUP,
    channel_message,
    digest_message,
    display_url,
    group_by_risk,
    kind_url_problem,
)

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


def _digest(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "digest_id": "d-1",
        "period_start": "2026-12-01T12:00:00+00:00",
        "period_end": "2026-12-01T13:00:00+00:00",
        "alert_count": len(alerts),
        "groups": group_by_risk(alerts),
    }


def _alert(i: int, risk: str, p: float, customer: str | None = None) -> dict[str, Any]:
    return {
        **ALERT,
        "id": f"a-{i}",
        "customer_id": customer or f"c-{i}",
        "risk_level": risk,
        "churn_probability": p,
        "url": f"https://console.example.com/alerts/a-{i}",
    }


def test_digest_groups_high_first_most_probable_first():
    groups = group_by_risk(
        [_alert(1, "medium", 0.5), _alert(2, "high", 0.8), _alert(3, "high", 0.9)]
    )
    assert [(g["risk_level"], g["count"]) for g in groups] == [("high", 2), ("medium", 1)]
    assert [a["id"] for a in groups[0]["alerts"]] == ["a-3", "a-2"]


def test_discord_digest_has_one_embed_per_risk_level_with_links_and_no_mentions():
    message = digest_message(
        "discord", _digest([_alert(1, "high", 0.9, "@everyone"), _alert(2, "low", 0.3)])
    )
    assert message["allowed_mentions"] == {"parse": []}
    assert message["content"].startswith("**Churn alert digest: 2 new alerts**")
    assert [e["title"] for e in message["embeds"]] == ["High risk (1)", "Low risk (1)"]
    assert (
        "[@everyone](https://console.example.com/alerts/a-1)" in message["embeds"][0]["description"]
    )


def test_slack_digest_escapes_customers_and_caps_each_group():
    alerts = [_alert(i, "high", 0.9, "C-<42> & co") for i in range(CHAT_LISTED_PER_GROUP + 3)]
    message = digest_message("slack", _digest(alerts))
    section = message["blocks"][2]["text"]["text"]
    assert section.startswith(f"*High risk ({CHAT_LISTED_PER_GROUP + 3})*")
    assert "C-&lt;42&gt; &amp; co" in section
    assert "<42>" not in section
    assert section.endswith("… and 3 more")


def test_digest_without_console_links_names_the_customer():
    alert = {**_alert(1, "high", 0.9), "url": None}
    slack = digest_message("slack", _digest([alert]))
    assert "• c-1: High churn risk at 90%" in slack["blocks"][2]["text"]["text"]


def test_webhook_digest_carries_every_listed_alert():
    message = digest_message("webhook", _digest([_alert(1, "high", 0.9), _alert(2, "low", 0.2)]))
    assert message["event"] == "churn_alert_digest"
    assert message["alert_count"] == 2
    assert sum(len(g["alerts"]) for g in message["groups"]) == 2
