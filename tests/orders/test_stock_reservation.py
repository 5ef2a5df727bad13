"""How an order takes stock: unlimited products are only read, limited ones are reserved
with one conditional UPDATE each, in primary-key order, and a refusal says what is left.

Statements are read with ``CaptureQueriesContext``; what happens between the order's read
of its products and its reservation (another order, staff changing the stock) is played
with ``connection.execute_wrapper`` on the order's own connection, so these run on SQLite
and PostgreSQL alike. Real concurrency: test_stock_concurrency.py (PostgreSQL).
"""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Order, OrderItem, Product
from orders.services import OrderLine, OutOfStock, ProductUnavailable, order_create
from tests.factories import DELIVERY, make_shopper

pytestmark = pytest.mark.django_db

PRODUCT_TABLE = '"orders_product"'
STOCK_UPDATE = re.compile(r'^UPDATE "orders_product" SET "stock" = .*"stock" >= ', re.DOTALL)
UPDATED_ID = re.compile(r'"orders_product"\."id" = (\d+)')


def buy(*lines: tuple[Product, int], user=None):
    return order_create(
        user=user or make_shopper(),
        lines=[OrderLine(product_id=product.pk, quantity=quantity) for product, quantity in lines],
        client_ip="127.0.0.1",
        address=DELIVERY,
    ).order


def product_statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if PRODUCT_TABLE in q["sql"]]


def before_stock_update(run):
    """An ``execute_wrapper`` that runs ``run(cursor)`` just before the order's first
    stock UPDATE, as if another transaction had committed in that moment."""
    done = []

    def wrapper(execute, sql, params, many, context):
        if not done and sql.startswith(f"UPDATE {PRODUCT_TABLE}"):
            done.append(sql)
            run(context["cursor"])
        return execute(sql, params, many, context)

    return wrapper


def test_an_unlimited_product_is_read_and_never_locked_or_written(products):
    cup = products["cup"]

    with CaptureQueriesContext(connection) as captured:
        buy((cup, 3))

    statements = product_statements(captured)
    assert len(statements) == 1
    assert statements[0].startswith("SELECT")
    assert "FOR UPDATE" not in statements[0]
    assert Product.objects.get(pk=cup.pk).stock is None


def test_a_limited_product_is_reserved_by_one_conditional_update_without_a_row_lock(products):
    tea, cup = products["tea"], products["cup"]

    with CaptureQueriesContext(connection) as captured:
        order = buy((tea, 3), (cup, 1))

    statements = product_statements(captured)
    assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE"]
    assert not any("FOR UPDATE" in s for s in statements)
    assert STOCK_UPDATE.match(statements[1])
    assert Product.objects.get(pk=tea.pk).stock == 7
    reserved = dict(order.items.values_list("product_id", "stock_reserved"))
    assert reserved == {tea.pk: True, cup.pk: False}


def test_the_reservation_ends_the_transaction_so_the_row_lock_is_held_only_until_commit(
    products,
):
    # Every buyer of a flash sale queues on the product's row from its UPDATE to its
    # COMMIT: nothing else of the order may run in between.
    with CaptureQueriesContext(connection) as captured:
        buy((products["tea"], 1), (products["cup"], 2))

    statements = [q["sql"] for q in captured.captured_queries]
    first_update = next(i for i, s in enumerate(statements) if STOCK_UPDATE.match(s))
    after = statements[first_update + 1 :]
    assert after
    assert all(s.startswith(("RELEASE SAVEPOINT", "COMMIT")) for s in after), after


def test_limited_products_are_reserved_in_primary_key_order_whatever_the_cart_order(products):
    first = Product.objects.create(name="Jar A", price=100, stock=10)
    second = Product.objects.create(name="Jar B", price=100, stock=10)

    with CaptureQueriesContext(connection) as captured:
        order = buy((second, 1), (products["cup"], 1), (first, 2))

    updated = [
        int(UPDATED_ID.search(s)[1]) for s in product_statements(captured) if s.startswith("UPDATE")
    ]
    assert updated == [first.pk, second.pk]
    # The cart's order is still the order's own (the body names the first product).
    assert order.body.startswith("Jar B")
    assert (Product.objects.get(pk=first.pk).stock, Product.objects.get(pk=second.pk).stock) == (
        8,
        9,
    )


def test_a_refusal_names_the_stock_left_when_it_was_refused_not_when_it_was_read(products):
    tea = products["tea"]  # 10 when the order reads it; another order takes 8 meanwhile
    taken_meanwhile = before_stock_update(
        lambda cursor: cursor.execute(
            'UPDATE "orders_product" SET "stock" = 2 WHERE "id" = %s', [tea.pk]
        )
    )

    with connection.execute_wrapper(taken_meanwhile), pytest.raises(OutOfStock) as refused:
        buy((tea, 5))

    assert str(refused.value) == "Not enough stock for 'Oolong tea 250g': 2 left."
    assert (refused.value.product_id, refused.value.wanted) == (tea.pk, 5)
    assert Order.objects.count() == 0


def test_a_product_made_unlimited_while_ordering_is_sold_without_reserving(products):
    tea = products["tea"]
    unlimited_meanwhile = before_stock_update(
        lambda cursor: cursor.execute(
            'UPDATE "orders_product" SET "stock" = NULL WHERE "id" = %s', [tea.pk]
        )
    )

    with connection.execute_wrapper(unlimited_meanwhile):
        order = buy((tea, 4))

    item = OrderItem.objects.get(order=order)
    # Nothing was taken, so closing the order must give nothing back.
    assert (item.quantity, item.stock_reserved) == (4, False)
    assert Product.objects.get(pk=tea.pk).stock is None


def test_a_sold_out_product_is_refused_without_writing_it(products):
    tea = products["tea"]
    Product.objects.filter(pk=tea.pk).update(stock=1)

    with CaptureQueriesContext(connection) as captured, pytest.raises(OutOfStock) as refused:
        buy((tea, 2))

    assert str(refused.value) == "Not enough stock for 'Oolong tea 250g': 1 left."
    assert [s.split()[0] for s in product_statements(captured)] == ["SELECT"]
    assert Product.objects.get(pk=tea.pk).stock == 1


def test_a_short_second_product_leaves_no_order_and_the_first_product_untouched(products):
    first = Product.objects.create(name="Jar A", price=100, stock=10)
    second = Product.objects.create(name="Jar B", price=100, stock=1)

    with pytest.raises(OutOfStock) as refused:
        buy((first, 4), (second, 1), (first, 1), (second, 1))  # merged: 5 and 2

    assert refused.value.product_id == second.pk
    assert (Product.objects.get(pk=first.pk).stock, Product.objects.get(pk=second.pk).stock) == (
        10,
        1,
    )
    assert (Order.objects.count(), OrderItem.objects.count()) == (0, 0)


def test_a_product_deleted_while_ordering_is_unavailable_not_an_error(products):
    jar = Product.objects.create(name="Jar", price=100, stock=3)  # nobody ordered it yet
    deleted_meanwhile = before_stock_update(
        lambda cursor: cursor.execute('DELETE FROM "orders_product" WHERE "id" = %s', [jar.pk])
    )

    with connection.execute_wrapper(deleted_meanwhile), pytest.raises(ProductUnavailable):
        buy((jar, 1))

    assert Order.objects.count() == 0
