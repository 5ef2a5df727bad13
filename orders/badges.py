"""The order status badge (colours and badge from core.display)."""

from django.utils.safestring import SafeString

from core.display import AMBER, GREEN, GREY, PURPLE, badge
from orders.models import Order

ORDER_STATUS = {
    Order.Status.UNPAID: AMBER,
    Order.Status.PAID: GREEN,
    Order.Status.CLOSED: GREY,
    Order.Status.REFUNDED: PURPLE,
}


def order_status_badge(order: Order) -> SafeString:
    return badge(order.get_status_display(), ORDER_STATUS.get(order.status, GREY))
