from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from orders.models import Order


def order_list_for_user(*, user: User) -> QuerySet[Order]:
    """The user's own orders, newest first, items fetched in one more query."""
    return Order.objects.filter(user=user).prefetch_related("items").order_by("-created_at", "-pk")


def order_get_for_user(*, user: User, out_trade_no: str) -> Order | None:
    """Someone else's order is indistinguishable from a missing one (docs/INVARIANTS.md §6.5)."""
    return order_list_for_user(user=user).filter(out_trade_no=out_trade_no).first()


def orders_to_reconcile(*, older_than: timedelta, limit: int) -> QuerySet[Order]:
    """Unpaid orders old enough that a notify should have come, and closed orders that
    WeChat still has to be told about; oldest first, claimable now."""
    now = timezone.now()
    return (
        Order.objects.filter(created_at__lte=now - older_than)
        .filter(
            Q(status=Order.Status.UNPAID)
            | Q(status=Order.Status.CLOSED, close_pending_at_wechat=True)
        )
        .filter(Q(reconcile_claimed_until__isnull=True) | Q(reconcile_claimed_until__lt=now))
        .order_by("created_at", "pk")[:limit]
    )


# What counts as a sale: orders WeChat took money for and we recorded as paid (refunded
# ones included: refunds are money going back, not a sale that never was). An order paid
# after it was closed is flagged for staff instead, and not counted until dealt with.
SOLD = (Order.Status.PAID, Order.Status.REFUNDED)


@dataclass(frozen=True)
class DayRevenue:
    day: date
    total_fee: int  # fen
    orders: int


def _day_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def order_revenue_by_day(*, first: date, last: date, tz: tzinfo) -> list[DayRevenue]:
    """Paid revenue and paid orders of each day from ``first`` to ``last`` (days in ``tz``,
    by ``paid_at``), days without sales included; one query."""
    rows = (
        Order.objects.filter(
            status__in=SOLD,
            paid_at__gte=_day_start(first, tz),
            paid_at__lt=_day_start(last + timedelta(days=1), tz),
        )
        .annotate(day=TruncDate("paid_at", tzinfo=tz))
        .values("day")
        .annotate(total_fee=Sum("total_fee"), orders=Count("pk"))
        .order_by("day")
    )
    by_day = {row["day"]: row for row in rows}
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [
        DayRevenue(
            day=day,
            total_fee=by_day.get(day, {}).get("total_fee") or 0,
            orders=by_day.get(day, {}).get("orders") or 0,
        )
        for day in days
    ]


def orders_created_between(*, first: date, last: date, tz: tzinfo) -> QuerySet[Order]:
    """Orders created from ``first`` to ``last`` inclusive (days in ``tz``), oldest first."""
    return Order.objects.filter(
        created_at__gte=_day_start(first, tz),
        created_at__lt=_day_start(last + timedelta(days=1), tz),
    ).order_by("created_at", "pk")


def orders_with_items(orders: QuerySet[Order], *, chunk_size: int = 500) -> Iterator[Order]:
    """Stream orders with their items: one query for each chunk of orders and its items,
    never the whole table in memory."""
    return orders.prefetch_related("items").iterator(chunk_size=chunk_size)
