"""Domain errors of the alerts service; each carries its HTTP status."""

from __future__ import annotations

from churn_shared.errors import NotFoundError, UnprocessableError


class AlertNotFoundError(NotFoundError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(f"Alert {alert_id} not found.")


class ChannelNotFoundError(NotFoundError):
    def __init__(self, channel_id: str) -> None:
        super().__init__(f"Alert channel {channel_id} not found.")


class InvalidChannelUrlError(UnprocessableError):
    type_slug = "invalid-channel-url"

    def __init__(self, reason: str) -> None:
        super().__init__(f"The channel URL is not acceptable: {reason}")
