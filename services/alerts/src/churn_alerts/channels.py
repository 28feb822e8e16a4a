"""What each kind of channel receives, and where it may post.

* ``webhook``: the alert as JSON (``{"event": "churn_alert", ...}``), signed with the channel's
  secret (``X-Churn-Signature``) so the receiver can check it came from us.
* ``slack``: a Slack incoming-webhook message (``text`` fallback plus Block Kit blocks).
* ``discord``: a Discord webhook message (``content`` plus one embed), with mentions disabled
  so a customer id can never ping ``@everyone``.
* ``email``: a plain-text and an HTML part (:class:`EmailContent`), sent over SMTP to the
  channel's recipients; the SMTP server is the operator's (environment), never the tenant's.

Slack and Discord URLs must point at their official webhook hosts outside development mode;
the generic SSRF rules of :mod:`churn_alerts.url_policy` apply to every kind.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

ChannelKind = Literal["webhook", "slack", "discord", "email"]
CHANNEL_KINDS: tuple[ChannelKind, ...] = ("webhook", "slack", "discord", "email")
#: Kinds that post to a URL (``email`` sends to recipients through the operator's SMTP server).
URL_KINDS: tuple[ChannelKind, ...] = ("webhook", "slack", "discord")
MAX_RECIPIENTS = 20

#: An address as the channel API accepts it: ``local@domain`` with a dot-atom local part and a
#: hostname domain; nothing that could end a header or add one (no CR, LF, comma, quotes,
#: angle brackets, spaces or controls).
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a recipient address we send to, or ``None``."""
    if len(address) > 254 or not _ADDRESS.fullmatch(address):
        return f"{address[:80]!r} is not a plain e-mail address (local@domain)"
    if len(address.partition("@")[0]) > 64:
        return f"{address[:80]!r} has a local part longer than 64 characters"
    return None


def mailto_url(recipients: Sequence[str]) -> str:
    """How an e-mail channel's destination is shown (RFC 6068)."""
    return "mailto:" + ",".join(recipients)


_OFFICIAL_HOSTS: dict[str, tuple[tuple[str, ...], str]] = {
    "slack": (("hooks.slack.com",), "/services/"),
    "discord": (
        ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"),
        "/api/webhooks/",
    ),
}

_KIND_LABELS = {"high_risk": "High churn risk", "risk_increase": "Churn risk rising"}
_RISK_COLOURS = {"high": 0xD93025, "medium": 0xF29900, "low": 0x1E8E3E}
_MAX_DRIVERS = 3


def kind_url_problem(kind: str, url: str, *, allow_internal: bool) -> str | None:
    """Why ``url`` is not a ``kind`` webhook URL, or ``None``. Development mode accepts any URL
    (the generic policy still applies), so a local receiver can stand in for Slack/Discord."""
    rule = _OFFICIAL_HOSTS.get(kind)
    if rule is None or allow_internal:
        return None
    hosts, path_prefix = rule
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme != "https" or host not in hosts or not parts.path.startswith(path_prefix):
        return f"a {kind} channel needs an https://{hosts[0]}{path_prefix}... webhook URL"
    return None


def display_url(kind: str, url: str) -> str:
    """Slack and Discord webhook URLs carry their credential in the path: show only its end."""
    head, _, secret = url.rstrip("/").rpartition("/")
    if kind not in _OFFICIAL_HOSTS or secret.startswith("…"):  # not secret, or masked already
        return url
    return f"{head}/…{secret[-4:]}" if len(secret) > 8 else f"{head}/…"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _number(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return f"{value:.0f}" if isinstance(value, float) else str(value)


def _headline(alert: Mapping[str, Any]) -> str:
    label = _KIND_LABELS.get(str(alert["kind"]), str(alert["kind"]))
    return (
        f"{label}: customer {alert['customer_id']} at {_percent(alert['churn_probability'])}"
        f" ({alert['risk_level']} risk)"
    )


def _driver_lines(alert: Mapping[str, Any]) -> list[str]:
    lines = []
    for d in list(alert.get("drivers") or [])[:_MAX_DRIVERS]:
        arrow = "raises" if d.get("direction") == "increases_risk" else "lowers"
        lines.append(f"{d.get('feature')} = {_number(d.get('value'))} ({arrow} risk)")
    return lines


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    headline = _slack_escape(_headline(alert))
    fields = [
        f"*Churn probability*\n{_percent(alert['churn_probability'])}",
        f"*Previous score*\n{_percent(alert.get('previous_probability'))}",
        f"*Risk level*\n{alert['risk_level']}",
        f"*Model*\n{_slack_escape(str(alert['model_version']))}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    drivers = _driver_lines(alert)
    if drivers:
        text = "*Top drivers*\n" + "\n".join(f"• {_slack_escape(line)}" for line in drivers)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"alert {alert['id']} · {alert['created_at']}"}
            ],
        }
    )
    return {"text": headline, "blocks": blocks}


def _discord_escape(text: str) -> str:
    for char in ("\\", "*", "_", "~", "`", "|", ">"):
        text = text.replace(char, "\\" + char)
    return text


def discord_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    headline = _discord_escape(_headline(alert))
    fields = [
        {
            "name": "Churn probability",
            "value": _percent(alert["churn_probability"]),
            "inline": True,
        },
        {
            "name": "Previous score",
            "value": _percent(alert.get("previous_probability")),
            "inline": True,
        },
        {
            "name": "Model",
            "value": _discord_escape(str(alert["model_version"]))[:1024],
            "inline": True,
        },
    ]
    drivers = _driver_lines(alert)
    if drivers:
        value = "\n".join(f"• {_discord_escape(line)}" for line in drivers)[:1024]
        fields.append({"name": "Top drivers", "value": value, "inline": False})
    embed = {
        "title": headline[:256],
        "color": _RISK_COLOURS.get(str(alert["risk_level"]), 0x5F6368),
        "fields": fields,
        "timestamp": str(alert["created_at"]),
        "footer": {"text": f"alert {alert['id']}"},
    }
    return {"content": headline[:2000], "embeds": [embed], "allowed_mentions": {"parse": []}}


def webhook_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": "churn_alert", **alert}


FORMATTERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "webhook": webhook_message,
    "slack": slack_message,
    "discord": discord_message,
}


def channel_message(kind: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body a channel of ``kind`` receives for ``alert`` (the alert's API shape)."""
    return FORMATTERS[kind](alert)


# --- e-mail ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str


def _one_line(text: str) -> str:
    """No line breaks or controls in a subject (the mail library would fold them; a header must
    never be ended by data)."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)[:200]


def _link_html(alert: Mapping[str, Any]) -> str:
    customer = html.escape(str(alert["customer_id"]))
    url = alert.get("url")
    return f'<a href="{html.escape(str(url))}">{customer}</a>' if url else customer


def email_alert(alert: Mapping[str, Any]) -> EmailContent:
    headline = _headline(alert)
    lines = [
        headline,
        "",
        f"Churn probability: {_percent(alert['churn_probability'])}",
        f"Previous score: {_percent(alert.get('previous_probability'))}",
        f"Risk level: {alert['risk_level']}",
        f"Model: {alert['model_version']}",
    ]
    drivers = _driver_lines(alert)
    if drivers:
        lines += ["", "Top drivers:", *(f"- {d}" for d in drivers)]
    if alert.get("url"):
        lines += ["", f"Open: {alert['url']}"]
    lines += ["", f"alert {alert['id']} · {alert['created_at']}"]
    items = "".join(f"<li>{html.escape(d)}</li>" for d in drivers)
    rows = [
        ("Churn probability", _percent(alert["churn_probability"])),
        ("Previous score", _percent(alert.get("previous_probability"))),
        ("Risk level", str(alert["risk_level"])),
        ("Model", str(alert["model_version"])),
    ]
    table = "".join(
        f"<tr><th align=left>{name}</th><td>{html.escape(value)}</td></tr>" for name, value in rows
    )
    body = f"<h2>{html.escape(headline)}</h2><table>{table}</table>"
    if items:
        body += f"<h3>Top drivers</h3><ul>{items}</ul>"
    if alert.get("url"):
        body += f'<p><a href="{html.escape(str(alert["url"]))}">Open the alert</a></p>'
    footer = f"alert {alert['id']} · {alert['created_at']}"
    body += f"<p><small>{html.escape(footer)}</small></p>"
    return EmailContent(_one_line(headline), "\n".join(lines) + "\n", _html_page(body))


def _html_page(body: str) -> str:
    return f'<!doctype html><html><head><meta charset="utf-8"></head><body>{body}</body></html>'


# --- digests -----------------------------------------------------------------------------------
#
# A digest (``churn_alerts.service.DigestService``) is one message listing the alerts a channel
# got since its previous digest, grouped by risk level (high first). Its mapping:
# ``digest_id``, ``period_start``, ``period_end``, ``alert_count`` (all alerts of the digest) and
# ``groups``: ``[{"risk_level", "count", "alerts": [alert API shape + "url"]}]``; ``url`` is the
# alert in the console (``None`` without ``console_base_url``).

RISK_ORDER: tuple[str, ...] = ("high", "medium", "low")
_RISK_LABELS = {"high": "High risk", "medium": "Medium risk", "low": "Low risk"}
#: Alerts listed per risk level in chat messages (the webhook lists every alert it carries).
CHAT_LISTED_PER_GROUP = 15


def group_by_risk(alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Alerts grouped by risk level, high first, the most probable first inside a group."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for alert in alerts:
        groups.setdefault(str(alert["risk_level"]), []).append(alert)
    order = [r for r in RISK_ORDER if r in groups] + sorted(set(groups) - set(RISK_ORDER))
    return [
        {
            "risk_level": risk,
            "count": len(groups[risk]),
            "alerts": sorted(
                groups[risk], key=lambda a: (-float(a["churn_probability"]), str(a["id"]))
            ),
        }
        for risk in order
    ]


def _digest_title(digest: Mapping[str, Any]) -> str:
    count = int(digest["alert_count"])
    return f"Churn alert digest: {count} new alert{'s' if count != 1 else ''}"


def _period(digest: Mapping[str, Any]) -> str:
    return f"{digest['period_start']} to {digest['period_end']}"


def _digest_line(alert: Mapping[str, Any]) -> str:
    label = _KIND_LABELS.get(str(alert["kind"]), str(alert["kind"]))
    return f"{label} at {_percent(alert['churn_probability'])}"


def _more(group: Mapping[str, Any], listed: int) -> int:
    return int(group["count"]) - listed


def webhook_digest(digest: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": "churn_alert_digest", **digest}


def slack_digest(digest: Mapping[str, Any]) -> dict[str, Any]:
    title = _slack_escape(_digest_title(digest))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _slack_escape(_period(digest))}],
        },
    ]
    for group in digest["groups"]:
        lines = []
        listed = group["alerts"][:CHAT_LISTED_PER_GROUP]
        for alert in listed:
            customer = _slack_escape(str(alert["customer_id"]))
            link = f"<{alert['url']}|{customer}>" if alert.get("url") else customer
            lines.append(f"• {link}: {_slack_escape(_digest_line(alert))}")
        if (more := _more(group, len(listed))) > 0:
            lines.append(f"… and {more} more")
        label = _RISK_LABELS.get(str(group["risk_level"]), str(group["risk_level"]))
        text = f"*{label} ({group['count']})*\n" + "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    return {"text": title, "blocks": blocks}


def discord_digest(digest: Mapping[str, Any]) -> dict[str, Any]:
    title = _discord_escape(_digest_title(digest))
    embeds = []
    for group in digest["groups"][:10]:
        lines = []
        listed = group["alerts"][:CHAT_LISTED_PER_GROUP]
        for alert in listed:
            customer = _discord_escape(str(alert["customer_id"]))
            link = f"[{customer}]({alert['url']})" if alert.get("url") else customer
            lines.append(f"• {link}: {_discord_escape(_digest_line(alert))}")
        if (more := _more(group, len(listed))) > 0:
            lines.append(f"… and {more} more")
        label = _RISK_LABELS.get(str(group["risk_level"]), str(group["risk_level"]))
        embeds.append(
            {
                "title": f"{label} ({group['count']})",
                "color": _RISK_COLOURS.get(str(group["risk_level"]), 0x5F6368),
                "description": "\n".join(lines)[:4096],
            }
        )
    content = f"**{title}**\n{_discord_escape(_period(digest))}"
    return {"content": content[:2000], "embeds": embeds, "allowed_mentions": {"parse": []}}


def email_digest(digest: Mapping[str, Any]) -> EmailContent:
    title = _digest_title(digest)
    lines = [title, _period(digest)]
    parts = [f"<h2>{html.escape(title)}</h2><p>{html.escape(_period(digest))}</p>"]
    for group in digest["groups"]:
        label = _RISK_LABELS.get(str(group["risk_level"]), str(group["risk_level"]))
        lines += ["", f"{label} ({group['count']})"]
        items = []
        for alert in group["alerts"]:
            link = f" {alert['url']}" if alert.get("url") else ""
            lines.append(f"- {alert['customer_id']}: {_digest_line(alert)}{link}")
            items.append(f"<li>{_link_html(alert)}: {html.escape(_digest_line(alert))}</li>")
        if (more := _more(group, len(group["alerts"]))) > 0:
            lines.append(f"… and {more} more")
            items.append(f"<li>… and {more} more</li>")
        parts.append(f"<h3>{html.escape(label)} ({group['count']})</h3><ul>{''.join(items)}</ul>")
    return EmailContent(_one_line(title), "\n".join(lines) + "\n", _html_page("".join(parts)))


DIGEST_FORMATTERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "webhook": webhook_digest,
    "slack": slack_digest,
    "discord": discord_digest,
}


def digest_message(kind: str, digest: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body a channel of ``kind`` receives for a digest."""
    return DIGEST_FORMATTERS[kind](digest)
