"""Times of the v3 API: RFC 3339 with an offset (§1.2), shown in Beijing time, UTC+8."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

# A fixed offset is exact: China has not observed daylight saving time since 1991.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

# fromisoformat alone accepts much more than RFC 3339 (week dates, no offset, "20250101T…");
# insist on the exact shape. Fractions and "Z" are parsed too (§1.2).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def format_rfc3339(dt: datetime) -> str:
    """``2025-01-01T08:30:00+08:00``: whole seconds, Beijing time (``time_expire``, §4.1).

    Naive datetimes are refused: guessing their zone is how orders expire 8 hours off.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("format_rfc3339 needs an aware datetime")
    return dt.astimezone(BEIJING).isoformat(timespec="seconds")


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 time (``success_time``, ``create_time``…) to an aware datetime in
    Beijing time. Digits past microseconds are dropped."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(f"not an RFC 3339 time with offset: {value!r:.40}")
    try:
        # Once the shape is RFC 3339's, Python 3.11's fromisoformat reads it all: "Z", and
        # fractions of any length, digits past microseconds dropped.
        return datetime.fromisoformat(value.upper()).astimezone(BEIJING)
    except ValueError:  # e.g. month 13
        raise ValueError(f"not an RFC 3339 time with offset: {value!r:.40}") from None


def format_bill_date(day: date) -> str:
    """``yyyy-MM-dd``, a Beijing calendar day (§9.1)."""
    if isinstance(day, datetime) or not isinstance(day, date):
        raise ValueError("bill_date must be a date (a Beijing calendar day), not a datetime")
    return day.isoformat()
