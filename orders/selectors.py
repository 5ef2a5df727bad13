from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from orders.models import Order


def order_list_for_user(*, user: User) -> QuerySet[Order]:
    """The user's own orders, newest first, items fetched in one more query."""
    return Order.objects.filter(user=user).prefetch_related("items").order_by("-created_at", "-pk")


def order_get_for_user(*, user: User, out_trade_no: str) -> Order | None:
    """Someone else's order is indistinguishable from a missing one (DESIGN §6.5)."""
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
