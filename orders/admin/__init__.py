"""The shop's admin: products, and orders with their refunds, actions and CSV export."""

from orders.admin.order import OrderAdmin
from orders.admin.product import ProductAdmin

__all__ = ["OrderAdmin", "ProductAdmin"]
