"""When messages may leave, in the tenant's local time: quiet hours and digest times.

Pure functions over aware datetimes; the tenant's IANA time zone (``Europe/Berlin``) turns
local wall-clock times into instants, daylight-saving changes included:

* a local time that does not exist (the hour skipped in spring) is the instant the clocks
  jumped to; one that exists twice (autumn) is its first occurrence;
* quiet hours are a window ``[start, end)`` of local time, crossing midnight when
  ``start > end`` (22:00 to 07:00).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DeliveryMode = Literal["immediate", "hourly", "daily"]
DELIVERY_MODES: tuple[DeliveryMode, ...] = ("immediate", "hourly", "daily")

_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$")
#: Every UTC offset in the IANA database is a multiple of 15 minutes.
_OFFSET_STEP = timedelta(minutes=15)


class UnknownTimeZoneError(ValueError):
    pass


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; :class:`UnknownTimeZoneError` when there is none."""
    if not _ZONE_NAME.match(name):
        raise UnknownTimeZoneError(f"{name!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZoneError(f"{name!r} is not an IANA time zone") from exc


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of the local wall-clock time ``at`` on ``day`` in ``tz``."""
    wall = datetime.combine(day, at.replace(tzinfo=None), tzinfo=tz)
    instant = wall.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != wall.replace(tzinfo=None):
        # In a gap: the time was skipped; take the first instant after the jump.
        before = (wall - timedelta(hours=3)).astimezone(UTC)
        while before.astimezone(tz).replace(tzinfo=None) < wall.replace(tzinfo=None):
            before += _OFFSET_STEP
        return before
    return instant


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local ``[start, end)`` in ``timezone``, during which outbound messages wait."""

    start: time
    end: time
    timezone: str = "UTC"

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(zone(self.timezone)).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def until(self, now: datetime) -> datetime | None:
        """When the window that ``now`` is in ends, or ``None`` when ``now`` is outside it."""
        if not self.contains(now):
            return None
        tz = zone(self.timezone)
        today = now.astimezone(tz).date()
        for offset in (0, 1, 2):
            end = local_instant(today + timedelta(days=offset), self.end, tz)
            if end > now:
                return end
        raise AssertionError("a quiet window ends within two days")  # pragma: no cover


def next_digest_at(mode: DeliveryMode, now: datetime, timezone: str, hour: int) -> datetime:
    """The next digest time strictly after ``now``: the top of the next local hour
    (``hourly``) or ``hour``:00 local (``daily``)."""
    tz = zone(timezone)
    if mode == "daily":
        today = now.astimezone(tz).date()
        for offset in (0, 1, 2):
            at = local_instant(today + timedelta(days=offset), time(hour), tz)
            if at > now:
                return at
        raise AssertionError("a daily digest falls within two days")  # pragma: no cover
    if mode != "hourly":
        raise ValueError(f"no digest in {mode} mode")
    # The top of a local hour is a whole UTC quarter-hour: step through them.
    t = now.astimezone(UTC).replace(second=0, microsecond=0)
    t -= timedelta(minutes=t.minute % 15)
    for _ in range(5):
        t += _OFFSET_STEP
        if t > now and t.astimezone(tz).minute == 0:
            return t
    raise AssertionError("a local hour starts within 75 minutes")  # pragma: no cover
