"""How values look in admin: coloured status badges, compact times.

White text on a saturated, mid-dark background reads the same in admin's light and dark
themes (each pair has a contrast of at least 4.5:1), so no theme-dependent CSS is needed.
"""

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

GREEN, AMBER, RED, BLUE, GREY, PURPLE = (
    "#1e7b34",
    "#8f5d00",
    "#b42318",
    "#1f5fa8",
    "#5f6b73",
    "#6941c6",
)

_STYLE = (
    "display:inline-block;padding:1px 8px;border-radius:9px;background:{};color:#fff;"
    "font-size:11px;font-weight:600;line-height:16px;white-space:nowrap"
)


def badge(label: str, colour: str, title: str = "") -> SafeString:
    return format_html('<span title="{}" style="' + _STYLE + '">{}</span>', title, colour, label)


def moment(value: datetime | None) -> str:
    """``2026-11-27 12:01``, local (Beijing) time: short enough for a list column, and
    read the same way in Chinese and English."""
    # A no-break space: the time stays on the date's line.
    return timezone.localtime(value).strftime("%Y-%m-%d\u00a0%H:%M") if value else "—"
