import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from time import monotonic
from typing import TypeVar

from django.core.cache import cache
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from core.throttling import CACHE_ERRORS
from orders.models import FulfilmentStatus, Order, Product

logger = logging.getLogger(__name__)


def order_list_for_user(*, user: User) -> QuerySet[Order]:
    """The user's own orders, newest first, items and shipments fetched in one more query
    each."""
    return (
        Order.objects.filter(user=user)
        .prefetch_related("items", "shipments")
        .order_by("-created_at", "-pk")
    )


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


@dataclass(frozen=True)
class OrdersToWatch:
    attention: int  # flagged for staff
    to_ship: int  # paid and not shipped yet
    oldest_to_ship_paid_at: datetime | None


def orders_to_watch() -> OrdersToWatch:
    """Flagged orders, and paid orders waiting to ship with the oldest one's payment time,
    in one query. Each condition is a partial index (order_attention, order_to_ship), which
    PostgreSQL can combine (BitmapOr) rather than read the whole table."""
    to_ship = Q(status=Order.Status.PAID, fulfilment_status=FulfilmentStatus.UNFULFILLED)
    row = Order.objects.filter(Q(needs_attention=True) | to_ship).aggregate(
        attention=Count("pk", filter=Q(needs_attention=True)),
        to_ship=Count("pk", filter=to_ship),
        oldest=Min("paid_at", filter=to_ship),
    )
    return OrdersToWatch(
        attention=row["attention"], to_ship=row["to_ship"], oldest_to_ship_paid_at=row["oldest"]
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


# -- the catalogue (docs/INVARIANTS.md §8) ------------------------------------------------------


def product_list_active() -> QuerySet[Product]:
    """Products on sale, in the order staff created them."""
    return Product.objects.filter(active=True).order_by("pk")


def product_get_active(*, product_id: int) -> Product | None:
    """One product on sale; None for an unknown or inactive one (or an id beyond the column,
    which Django answers with an empty result)."""
    return product_list_active().filter(pk=product_id).first()


# The catalogue's answers are kept in the shared cache under a version that staff changes
# replace (catalogue_cache_invalidate), so every server stops using the old copies at once
# without having to find and delete them; they expire on their own. A new version is a
# fresh random value, never a counter: a version evicted and started again could otherwise
# bring back copies from before a change.
CATALOGUE_VERSION_KEY = "catalogue:version"

_Built = TypeVar("_Built")

CACHE_WARNING_INTERVAL_SECONDS = 60.0
_cache_warning_lock = threading.Lock()
_last_cache_warning: float | None = None


def _warn_cache_unavailable(exc: Exception) -> None:
    """Once a minute per process at most: an outage must not flood the log."""
    global _last_cache_warning
    now = monotonic()
    with _cache_warning_lock:
        if (
            _last_cache_warning is not None
            and now - _last_cache_warning < CACHE_WARNING_INTERVAL_SECONDS
        ):
            return
        _last_cache_warning = now
    logger.warning(
        "catalogue served from the database: cache unavailable (%s: %s) "
        "(this warning repeats at most every %.0f s)",
        type(exc).__name__,
        exc,
        CACHE_WARNING_INTERVAL_SECONDS,
    )


def _catalogue_version() -> str:
    version = cache.get(CATALOGUE_VERSION_KEY)
    if version is None:
        cache.add(CATALOGUE_VERSION_KEY, uuid.uuid4().hex, timeout=None)
        version = cache.get(CATALOGUE_VERSION_KEY)
    return version


def catalogue_cached(*, key: str, seconds: int, build: Callable[[], _Built]) -> _Built:
    """What ``build()`` answers for ``key`` (e.g. the absolute URL of a catalogue page), from
    the shared cache when it is there, kept ``seconds``. Whatever ``build`` raises (a 404)
    is not kept. A cache that is down costs one failed call and is then left alone for
    this answer: the catalogue is served from the database instead."""
    if seconds <= 0:
        return build()
    try:
        digest = hashlib.sha256(key.encode()).hexdigest()
        versioned = f"catalogue:{_catalogue_version()}:{digest}"
        kept = cache.get(versioned)
    except CACHE_ERRORS as exc:
        _warn_cache_unavailable(exc)
        return build()
    if kept is not None:
        return kept
    value = build()
    try:
        cache.set(versioned, value, timeout=seconds)
    except CACHE_ERRORS as exc:
        _warn_cache_unavailable(exc)
    return value


def catalogue_cache_invalidate() -> None:
    """Staff changed the catalogue: no server answers from the copies kept before. Call it
    after the change commits (``transaction.on_commit``), or a request in between could
    keep the old rows under the new version. Orders do not call it: stock moves with
    every order, and the short CATALOGUE_CACHE_SECONDS bounds how old it may be shown.
    With the cache down there is nothing to invalidate now; copies it still holds when it
    comes back expire within CATALOGUE_CACHE_SECONDS."""
    try:
        cache.set(CATALOGUE_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except CACHE_ERRORS as exc:
        _warn_cache_unavailable(exc)
