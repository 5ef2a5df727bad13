"""The orders app's admin: products (registered) and the base of the order page
(``OrderAdmin``, registered with its payment parts by ``payments.admin``)."""

from orders.admin.order import OrderAdmin
from orders.admin.product import ProductAdmin

__all__ = ["OrderAdmin", "ProductAdmin"]
