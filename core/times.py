"""The shop's time. Django's ``TIME_ZONE`` is Asia/Shanghai: Beijing time, the zone every
WeChat time is in and the one shop owners count their days in. Code above the wire
protocols takes the zone from Django, never from a protocol package."""

from datetime import date, datetime, tzinfo

from django.utils import timezone


def shop_timezone() -> tzinfo:
    return timezone.get_default_timezone()


def shop_today() -> date:
    return timezone.localdate()


def compact_timestamp(moment: datetime) -> str:
    """``20261127114501``: the shop's local time, sortable, for numbers and file names."""
    return timezone.localtime(moment).strftime("%Y%m%d%H%M%S")
