"""What the admin index shows a shop owner: revenue, orders needing attention, paid orders
waiting to ship, the latest notifications and a 14-day revenue chart drawn on the server as
SVG (no script, no CDN).

Four queries whatever the amount of data: revenue by day, the orders to watch (attention
and to ship, in one), the latest notifications, the latest statement (WeChat's bill).
Days are Beijing days, as WeChat Pay's and the shopper's are.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import User
from core.money import yuan
from core.times import shop_timezone, shop_today
from orders.models import FulfilmentStatus, Order
from orders.selectors import SOLD, DayRevenue, order_revenue_by_day, orders_to_watch
from payments.badges import outcome_badge
from payments.models import PaymentNotification
from payments.selectors import notifications_latest
from payments.statements import statement_latest

CHART_DAYS = 14
WEEK_DAYS = 7
LATEST_NOTIFICATIONS = 10
# WeChat expects shipping within 48 hours of payment (docs/protocol/
# miniprogram-server-api.md §2.2): an order waiting longer turns the tile red.
SHIP_WITHIN = timedelta(hours=48)

# The chart's drawing box (SVG user units; the SVG scales to the column's width).
CHART_WIDTH, CHART_HEIGHT = 560, 170
PLOT_TOP, PLOT_BOTTOM = 8, 146  # room below for the day labels
BAR_SHARE = 0.7  # of each day's slot; the rest is the gap between bars


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    slot_x: int  # the whole day's column, which carries the tooltip
    slot_width: int
    label_x: int
    label: str  # "11-27"
    tooltip: str  # "2026-11-27: ¥45.00, 1 paid order"
    today: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    label_y: int
    bars: list[Bar]
    peak: str  # the highest day's revenue, written at the top left
    summary: str  # for screen readers


@dataclass(frozen=True)
class Period:
    revenue: str  # ¥
    orders: int
    url: str  # the orders that make it up


@dataclass(frozen=True)
class ToShip:
    count: int  # paid orders not shipped yet
    oldest: str  # how long the oldest has waited since payment ("3 days"); "" if none
    late: bool  # the oldest waited longer than SHIP_WITHIN
    url: str


@dataclass(frozen=True)
class NotificationRow:
    url: str
    received_at: datetime
    kind: str
    reference: str  # order or refund number
    outcome: SafeString
    reprocess: bool


@dataclass(frozen=True)
class Dashboard:
    today: Period
    week: Period
    attention_count: int
    attention_url: str
    to_ship: ToShip
    chart: Chart
    notifications: list[NotificationRow] | None  # None: not the user's to see
    # WeChat's latest trade bill (§10); None when not the user's to see or none imported.
    statement: "LatestStatement | None" = None


@dataclass(frozen=True)
class LatestStatement:
    day: date
    status: str  # as staff read it
    open_mismatches: int
    url: str  # its lines


def dashboard_for(user: User, *, today: date | None = None) -> Dashboard | None:
    """The dashboard for this staff member; None without the permission to see orders."""
    if not user.has_perm("orders.view_order"):
        return None
    today = today or shop_today()
    days = order_revenue_by_day(
        first=today - timedelta(days=CHART_DAYS - 1), last=today, tz=shop_timezone()
    )
    show_notifications = user.has_perm("payments.view_paymentnotification")
    watch = orders_to_watch()
    return Dashboard(
        today=_period(days[-1:]),
        week=_period(days[-WEEK_DAYS:]),
        attention_count=watch.attention,
        attention_url=_orders_url(needs_attention__exact="1"),
        to_ship=_to_ship(watch.to_ship, watch.oldest_to_ship_paid_at),
        chart=revenue_chart(days, today=today),
        notifications=_notifications() if show_notifications else None,
        statement=_statement() if user.has_perm("payments.view_statement") else None,
    )


def _statement() -> LatestStatement | None:
    latest = statement_latest()
    if latest is None:
        return None
    lines = reverse("admin:payments_statementline_changelist")
    return LatestStatement(
        day=latest.bill_date,
        status=latest.get_status_display(),
        open_mismatches=latest.open_mismatches,
        url=f"{lines}?{urlencode({'statement__id__exact': latest.pk, 'resolved': 'open'})}",
    )


def _period(days: list[DayRevenue]) -> Period:
    return Period(
        revenue=yuan(sum(d.total_fee for d in days)),
        orders=sum(d.orders for d in days),
        url=_orders_url(
            status__in=",".join(SOLD),
            paid_at__gte=_midnight(days[0].day),
            paid_at__lt=_midnight(days[-1].day + timedelta(days=1)),
        ),
    )


def _to_ship(count: int, oldest_paid_at: datetime | None) -> ToShip:
    now = timezone.now()
    waited = now - oldest_paid_at if oldest_paid_at else timedelta(0)
    return ToShip(
        count=count,
        # "3 days", "5 hours": the largest unit only, in the staff member's language.
        oldest=timesince(oldest_paid_at, now, depth=1) if oldest_paid_at else "",
        late=waited > SHIP_WITHIN,
        url=_orders_url(
            status__exact=Order.Status.PAID,
            fulfilment_status__exact=FulfilmentStatus.UNFULFILLED,
        ),
    )


def _midnight(day: date) -> str:
    # With its offset: a bare date would be read in the server's time zone, and warned about.
    return datetime.combine(day, time.min, tzinfo=shop_timezone()).isoformat()


def _orders_url(**filters: str) -> str:
    return f"{reverse('admin:orders_order_changelist')}?{urlencode(filters)}"


def revenue_chart(days: list[DayRevenue], *, today: date) -> Chart:
    """Bar geometry for the days given, in whole SVG units (no float in the template)."""
    peak = max((d.total_fee for d in days), default=0)
    slot = CHART_WIDTH / max(len(days), 1)
    plot_height = PLOT_BOTTOM - PLOT_TOP
    bars = []
    for n, day in enumerate(days):
        # Each day with sales gets at least 2 units, so a small one is still seen.
        height = round(plot_height * day.total_fee / peak) if peak else 0
        height = max(height, 2) if day.total_fee else 0
        bar_width = round(slot * BAR_SHARE)
        bars.append(
            Bar(
                x=round(n * slot + (slot - bar_width) / 2),
                y=PLOT_BOTTOM - height,
                width=bar_width,
                height=height,
                slot_x=round(n * slot),
                slot_width=round(slot),
                label_x=round(n * slot + slot / 2),
                label=day.day.strftime("%m-%d"),
                tooltip=_tooltip(day),
                today=day.day == today,
            )
        )
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        plot_top=PLOT_TOP,
        plot_bottom=PLOT_BOTTOM,
        label_y=CHART_HEIGHT - 6,
        bars=bars,
        peak=yuan(peak),
        summary=_("Paid revenue of the last %(days)d days: %(total)s")
        % {"days": len(days), "total": yuan(sum(d.total_fee for d in days))},
    )


def _tooltip(day: DayRevenue) -> str:
    orders = ngettext("%(count)d paid order", "%(count)d paid orders", day.orders) % {
        "count": day.orders
    }
    return f"{date_format(day.day, 'DATE_FORMAT')}: {yuan(day.total_fee)}, {orders}"


def _notifications() -> list[NotificationRow]:
    return [
        NotificationRow(
            url=reverse("admin:payments_paymentnotification_change", args=[row.pk]),
            received_at=row.received_at,
            kind=_("Refund") if row.kind == PaymentNotification.Kind.REFUND else _("Payment"),
            reference=row.out_refund_no or row.out_trade_no or "—",
            outcome=outcome_badge(row),
            reprocess=row.reprocess_of_id is not None,
        )
        for row in notifications_latest(limit=LATEST_NOTIFICATIONS)
    ]
