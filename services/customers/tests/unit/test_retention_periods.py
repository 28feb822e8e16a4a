"""Retention periods: numbering and labels (months, ISO weeks across year ends)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from churn_customers.retention import period_label, period_number


@pytest.mark.parametrize(
    ("day", "month", "week"),
    [
        (date(2010, 12, 1), "2010-12", "2010-W48"),
        (date(2010, 12, 6), "2010-12", "2010-W49"),
        (date(2011, 1, 2), "2011-01", "2010-W52"),  # a Sunday: still 2010's last ISO week
        (date(2011, 1, 3), "2011-01", "2011-W01"),
        (date(2015, 12, 31), "2015-12", "2015-W53"),  # a 53-week ISO year
        (date(2024, 12, 30), "2024-12", "2025-W01"),  # a Monday: ISO year 2025 begins
    ],
)
def test_labels(day: date, month: str, week: str) -> None:
    assert period_label(period_number(day, "month"), "month") == month
    assert period_label(period_number(day, "week"), "week") == week


def test_periods_are_consecutive_numbers() -> None:
    """Offsets are differences of numbers: a month or a week later is exactly one more."""
    december, january = date(2010, 12, 1), date(2011, 1, 31)
    assert period_number(january, "month") - period_number(december, "month") == 1
    day = date(2009, 12, 28)  # a Monday
    for weeks in range(800):
        monday = day + timedelta(weeks=weeks)
        number = period_number(monday, "week")
        assert number == period_number(day, "week") + weeks
        # Monday to Sunday is one week, with the ISO label of that week.
        assert period_number(monday + timedelta(days=6), "week") == number
        year, week, _ = monday.isocalendar()
        assert period_label(number, "week") == f"{year}-W{week:02d}"


def test_a_moment_is_numbered_by_its_utc_day() -> None:
    assert period_number(datetime(2011, 1, 2, 23, 59, tzinfo=UTC), "week") == period_number(
        date(2011, 1, 2), "week"
    )
