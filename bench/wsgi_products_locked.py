"""Our shop as it took stock before issue #16, for the flash-sale bench only: every order
locks all its products (``SELECT … FOR UPDATE`` in primary-key order), unlimited stock
included, until it commits. Production takes no lock on a product with unlimited stock
(orders/services.py).

The lock is taken where the stock check now starts, just after the caps are counted; the
code before #16 took it a statement earlier, so this "before" holds the lock a little
less long than the old code did.
"""

from shopsite.wsgi import application  # first: sets Django up

__all__ = ["application"]


def _lock_products_as_before() -> None:
    from orders import services
    from orders.models import Product

    refuse_short = services._stock_refuse_short

    def lock_then_refuse_short(*, products, lines) -> None:
        locked = Product.objects.select_for_update().filter(pk__in=list(lines)).order_by("pk")
        list(locked.values_list("pk", flat=True))
        refuse_short(products=products, lines=lines)

    services._stock_refuse_short = lock_then_refuse_short


_lock_products_as_before()
