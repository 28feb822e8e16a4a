"""Domain errors of the alerts service; each carries its HTTP status."""

from __future__ import annotations

from churn_shared.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServiceUnavailableError,
    UnprocessableError,
)


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


class InvalidTransitionError(ConflictError):
    """The alert is not in a state where the action makes sense (409)."""

    type_slug = "invalid-alert-transition"

    def __init__(self, alert_id: str, action: str, status: str) -> None:
        super().__init__(
            f"Alert {alert_id} is {status}: it cannot be {action} now.",
            alert_status=status,
            action=action,
        )


class UnknownAssigneeError(UnprocessableError):
    type_slug = "unknown-assignee"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"User {user_id} is not an active user of your tenant.")


class AssignmentForbiddenError(ForbiddenError):
    def __init__(self) -> None:
        super().__init__(
            "Only admins and owners can assign an alert to someone else; take it yourself"
            " with your own user id."
        )


class UserDirectoryUnavailableError(ServiceUnavailableError):
    type_slug = "user-directory-unavailable"

    def __init__(self) -> None:
        super().__init__("The assignee cannot be checked right now (the auth service is down).")


class DeliveryNotFoundError(NotFoundError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"Delivery {delivery_id} not found.")


class DeliveryNotReplayableError(ConflictError):
    type_slug = "delivery-not-replayable"

    def __init__(self, delivery_id: str, reason: str) -> None:
        super().__init__(f"Delivery {delivery_id} cannot be retried: {reason}.")
