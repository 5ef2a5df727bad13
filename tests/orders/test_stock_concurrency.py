"""Orders racing for the same products on PostgreSQL, one connection per thread: limited
stock sells exactly what there is and never goes below 0, products are reserved without
deadlocks whatever the carts' order, and unlimited products take no row lock at all
(docs/INVARIANTS.md §6.6)."""

import random
import threading
from collections import Counter

import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import F, Sum

from orders.models import Order, OrderItem, Product
from orders.services import OrderLine, OutOfStock, order_create
from tests.factories import DELIVERY, make_shopper

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(carts: list[list[tuple[int, int]]]) -> list[object]:
    """Each cart ordered by its own shopper in its own thread, all released at once; the
    outcome of each: its Order, or the exception it raised."""
    shoppers = [make_shopper() for _ in carts]
    barrier = threading.Barrier(len(carts))
    outcomes: list[object] = [None] * len(carts)

    def place(index: int) -> None:
        try:
            barrier.wait()
            outcomes[index] = order_create(
                user=shoppers[index],
                lines=[OrderLine(pid, quantity) for pid, quantity in carts[index]],
                client_ip="127.0.0.1",
                address=DELIVERY,
            ).order
        except Exception as exc:  # the test reads every outcome
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=place, args=(i,)) for i in range(len(carts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def kinds(outcomes: list[object]) -> Counter:
    return Counter(type(o).__name__ for o in outcomes)


def test_many_orders_for_one_limited_product_sell_exactly_its_stock():
    limited = Product.objects.create(name="Flash sale tea", price=100, stock=25)
    unlimited = Product.objects.create(name="Tea cup", price=50, stock=None)

    outcomes = race([[(limited.pk, 1), (unlimited.pk, 1)] for _ in range(40)])

    assert kinds(outcomes) == {"Order": 25, "OutOfStock": 15}
    assert Product.objects.get(pk=limited.pk).stock == 0
    assert Product.objects.get(pk=unlimited.pk).stock is None
    assert Order.objects.count() == 25
    sold = OrderItem.objects.filter(product=limited)
    assert sold.aggregate(units=Sum("quantity"))["units"] == 25
    assert not sold.filter(stock_reserved=False).exists()
    assert not OrderItem.objects.filter(product=unlimited, stock_reserved=True).exists()


def test_orders_of_several_units_never_take_more_than_there_is():
    limited = Product.objects.create(name="Flash sale tea", price=100, stock=30)
    wanted = [random.Random(16).randint(1, 3) for _ in range(30)]

    outcomes = race([[(limited.pk, quantity)] for quantity in wanted])

    left = Product.objects.get(pk=limited.pk).stock
    sold = sum(q for q, o in zip(wanted, outcomes, strict=True) if isinstance(o, Order))
    assert set(kinds(outcomes)) <= {"Order", "OutOfStock"}
    assert left >= 0
    assert sold == 30 - left
    # Stock only went down during the race: whoever was refused wanted more than is left.
    assert all(q > left for q, o in zip(wanted, outcomes, strict=True) if isinstance(o, OutOfStock))


def test_carts_listing_the_same_limited_products_in_opposite_orders_do_not_deadlock():
    first = Product.objects.create(name="Jar A", price=100, stock=1000)
    second = Product.objects.create(name="Jar B", price=100, stock=1000)
    carts = [[(first.pk, 1), (second.pk, 1)], [(second.pk, 1), (first.pk, 1)]] * 12

    for _ in range(3):
        outcomes = race(carts)
        # PostgreSQL breaks a deadlock by failing one of its transactions.
        assert kinds(outcomes) == {"Order": 24}, [o for o in outcomes if not isinstance(o, Order)]

    assert Product.objects.get(pk=first.pk).stock == Product.objects.get(pk=second.pk).stock == 928


def test_an_order_of_an_unlimited_product_does_not_wait_for_its_row_lock():
    unlimited = Product.objects.create(name="Tea cup", price=50, stock=None)
    held, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        # What staff saving the product in admin takes: the row, until their commit.
        try:
            with transaction.atomic():
                Product.objects.filter(pk=unlimited.pk).update(price=F("price"))
                held.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert held.wait(timeout=60)
        with connection.cursor() as cursor:
            # A lock wait becomes an error instead of a hung test.
            cursor.execute("SET lock_timeout = '5s'")
        try:
            order = order_create(
                user=make_shopper(),
                lines=[OrderLine(unlimited.pk, 2)],
                client_ip="127.0.0.1",
                address=DELIVERY,
            ).order
        except OperationalError as exc:
            pytest.fail(f"the order waited for the product's row lock: {exc}")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        release.set()
        holder.join()

    assert order.items.get().stock_reserved is False
