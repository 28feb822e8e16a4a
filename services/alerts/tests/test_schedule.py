"""Quiet hours and digest times in the tenant's local time, daylight-saving changes included."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from churn_alerts.schedule import QuietHours, UnknownTimeZoneError, next_digest_at, zone

BERLIN_NIGHT = QuietHours(time(22, 0), time(7, 0), "Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        # 23:30 in Berlin (CET, UTC+1) -> 07:00 the next morning
        (utc(2026, 12, 1, 22, 30), utc(2026, 12, 2, 6, 0)),
        # 05:00 in Berlin -> 07:00 the same morning
        (utc(2026, 12, 2, 4, 0), utc(2026, 12, 2, 6, 0)),
        # 22:00 sharp is inside, 07:00 sharp is not
        (utc(2026, 12, 1, 21, 0), utc(2026, 12, 2, 6, 0)),
        (utc(2026, 12, 2, 6, 0), None),
        (utc(2026, 12, 2, 12, 0), None),
        # summer time (CEST, UTC+2)
        (utc(2026, 7, 1, 21, 0), utc(2026, 7, 2, 5, 0)),
        # the night the clocks go back (25 October 2026): 07:00 CET is 06:00 UTC
        (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 6, 0)),
    ],
)
def test_quiet_hours_across_midnight(now, until):
    assert BERLIN_NIGHT.until(now) == until
    assert BERLIN_NIGHT.contains(now) is (until is not None)


def test_quiet_hours_inside_one_day():
    lunch = QuietHours(time(12, 0), time(13, 30), "UTC")
    assert lunch.until(utc(2026, 12, 1, 12, 45)) == utc(2026, 12, 1, 13, 30)
    assert lunch.until(utc(2026, 12, 1, 13, 30)) is None


def test_an_end_skipped_by_the_clocks_is_the_moment_they_jump():
    # 29 March 2026 in Berlin: 02:00 CET becomes 03:00 CEST (01:00 UTC)
    night = QuietHours(time(23, 0), time(2, 30), "Europe/Berlin")
    assert night.until(utc(2026, 3, 28, 23, 0)) == utc(2026, 3, 29, 1, 0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 12, 1, 10, 20), utc(2026, 12, 1, 11, 0)),
        (utc(2026, 12, 1, 11, 0), utc(2026, 12, 1, 12, 0)),
    ],
)
def test_hourly_digests_at_the_top_of_the_local_hour(now, expected):
    assert next_digest_at("hourly", now, "Europe/Berlin", 8) == expected


def test_hourly_digests_follow_half_hour_zones():
    # India is UTC+5:30: its hours start at half past in UTC
    assert next_digest_at("hourly", utc(2026, 12, 1, 10, 0), "Asia/Kolkata", 8) == utc(
        2026, 12, 1, 10, 30
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 08:00 Berlin is 07:00 UTC in winter, 06:00 UTC in summer
        (utc(2026, 12, 1, 6, 59), utc(2026, 12, 1, 7, 0)),
        (utc(2026, 12, 1, 7, 0), utc(2026, 12, 2, 7, 0)),
        (utc(2026, 7, 1, 5, 0), utc(2026, 7, 1, 6, 0)),
        # across the change to summer time: the next 08:00 is in CEST
        (utc(2026, 3, 28, 7, 30), utc(2026, 3, 29, 6, 0)),
    ],
)
def test_daily_digests_at_the_local_hour(now, expected):
    assert next_digest_at("daily", now, "Europe/Berlin", 8) == expected


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "", "Europe/Berlin/../x"])
def test_unknown_zones_are_refused(name):
    with pytest.raises(UnknownTimeZoneError):
        zone(name)
