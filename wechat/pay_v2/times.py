"""Time formats of the v2 API: always Beijing time, UTC+8 (§10)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# A fixed offset is exact: China has not observed daylight saving time since 1991.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

_WX_TIME = "%Y%m%d%H%M%S"
_WX_DATETIME = "%Y-%m-%d %H:%M:%S"
# strptime alone accepts unpadded fields ("2014111108000"); insist on the exact shape.
_WX_TIME_SHAPE = re.compile(r"[0-9]{14}")
_WX_DATETIME_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def format_wx_time(dt: datetime) -> str:
    """``yyyyMMddHHmmss`` in Beijing time, for ``time_start``/``time_expire`` (§3.1).

    Naive datetimes are refused: guessing their zone is how orders expire 8 hours off.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("format_wx_time needs an aware datetime")
    return dt.astimezone(BEIJING).strftime(_WX_TIME)


def _parse(value: str, shape: re.Pattern[str], fmt: str) -> datetime:
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise ValueError(f"not a WeChat time in format {fmt}: {value!r:.40}")
    return datetime.strptime(value, fmt).replace(tzinfo=BEIJING)


def parse_wx_time(value: str) -> datetime:
    """Parse ``yyyyMMddHHmmss`` Beijing time (e.g. ``time_end``, §5.1) to an aware datetime."""
    return _parse(value, _WX_TIME_SHAPE, _WX_TIME)


def parse_wx_datetime(value: str) -> datetime:
    """Parse ``yyyy-MM-dd HH:mm:ss`` Beijing time (refund ``success_time``, §10)."""
    return _parse(value, _WX_DATETIME_SHAPE, _WX_DATETIME)
