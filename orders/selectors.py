from django.db.models import QuerySet

from accounts.models import User
from orders.models import Order


def order_list_for_user(*, user: User) -> QuerySet[Order]:
    """The user's own orders, newest first, items fetched in one more query."""
    return Order.objects.filter(user=user).prefetch_related("items").order_by("-created_at", "-pk")


def order_get_for_user(*, user: User, out_trade_no: str) -> Order | None:
    """Someone else's order is indistinguishable from a missing one (DESIGN §6.5)."""
    return order_list_for_user(user=user).filter(out_trade_no=out_trade_no).first()
