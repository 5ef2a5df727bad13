"""POST /payment/order with items: server-side pricing, snapshots, stock and tampering."""

import re
import threading

import pytest
from django.db import connection

from orders.models import Order, OrderItem, Product
from orders.services import OrderLine, OutOfStock, order_create
from tests.factories import DELIVERY, delivery_address, make_shopper

pytestmark = pytest.mark.django_db

PAY = "/payment/order"


def order_items(api, items, **extra):
    return api.post(PAY, {"items": items, "address": delivery_address(), **extra}, format="json")


def test_order_is_priced_on_the_server_and_snapshotted(api, products, wxpay):
    tea, cup = products["tea"], products["cup"]

    response = order_items(
        api, [{"product_id": tea.pk, "quantity": 2}, {"product_id": cup.pk, "quantity": 3}]
    )

    assert response.status_code == 201
    assert response.json()["total_fee"] == 2 * 4500 + 3 * 1200
    order = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
    assert order.total_fee == 12600
    assert order.status == Order.Status.UNPAID
    assert [(i.product_name, i.unit_price, i.quantity) for i in order.items.all()] == [
        ("Oolong tea 250g", 4500, 2),
        ("Tea cup", 1200, 3),
    ]
    # A later price change does not touch the order.
    Product.objects.filter(pk=tea.pk).update(price=9999, name="Renamed")
    item = OrderItem.objects.get(order=order, product=tea)
    assert (item.product_name, item.unit_price) == ("Oolong tea 250g", 4500)


def test_order_is_bound_to_the_buyers_own_openid(api, shopper, products, wxpay):
    response = order_items(api, [{"product_id": products["cup"].pk, "quantity": 1}])

    order = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
    assert order.user == shopper
    assert order.openid == shopper.openid
    assert wxpay.calls()[0]["openid"] == shopper.openid


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"openid": "o-somebody-else"}, "openid"),
        ({"price": 1}, "price"),
    ],
)
def test_fields_the_server_decides_are_refused_not_silently_ignored(
    api, products, wxpay, payload, field
):
    response = order_items(api, [{"product_id": products["cup"].pk, "quantity": 1}], **payload)

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Order.objects.exists()
    assert wxpay.requests_seen == []


def test_unknown_field_in_an_item_is_refused(api, products, wxpay):
    response = order_items(api, [{"product_id": products["cup"].pk, "quantity": 1, "price": 1}])

    assert response.status_code == 400
    assert "price" in response.json()["detail"]


def test_out_trade_no_is_32_safe_characters_and_unique(api, products, wxpay):
    numbers = {
        order_items(api, [{"product_id": products["cup"].pk, "quantity": 1}]).json()["out_trade_no"]
        for _ in range(5)
    }

    assert len(numbers) == 5
    for number in numbers:
        assert re.fullmatch(r"\d{14}[0-9a-f]{18}", number)


def test_matching_client_total_fee_is_accepted(api, products, wxpay):
    response = order_items(api, [{"product_id": products["tea"].pk, "quantity": 1}], total_fee=4500)

    assert response.status_code == 201


def test_tampered_total_fee_is_409_and_nothing_happens(api, products, wxpay):
    tea = products["tea"]

    response = order_items(api, [{"product_id": tea.pk, "quantity": 2}], total_fee=1)

    assert response.status_code == 409
    assert response.json()["total_fee"] == 9000
    assert "total_fee" in response.json()["detail"]
    assert not Order.objects.exists()
    assert Product.objects.get(pk=tea.pk).stock == 10
    assert wxpay.requests_seen == []


def test_stock_is_reserved_at_creation(api, products, wxpay):
    tea = products["tea"]

    order_items(api, [{"product_id": tea.pk, "quantity": 4}])

    assert Product.objects.get(pk=tea.pk).stock == 6


def test_same_product_twice_is_one_line_and_one_reservation(api, products, wxpay):
    tea = products["tea"]

    response = order_items(
        api, [{"product_id": tea.pk, "quantity": 4}, {"product_id": tea.pk, "quantity": 6}]
    )

    assert response.status_code == 201
    assert Product.objects.get(pk=tea.pk).stock == 0
    assert OrderItem.objects.get().quantity == 10


def test_short_stock_is_409_and_leaves_nothing_behind(api, products, wxpay):
    tea, cup = products["tea"], products["cup"]

    response = order_items(
        api, [{"product_id": cup.pk, "quantity": 1}, {"product_id": tea.pk, "quantity": 11}]
    )

    assert response.status_code == 409
    assert "stock" in response.json()["detail"]
    assert not Order.objects.exists()
    assert not OrderItem.objects.exists()
    assert Product.objects.get(pk=tea.pk).stock == 10
    assert wxpay.requests_seen == []


@pytest.mark.parametrize("which", ["gone", "missing"])
def test_unknown_or_inactive_product_is_400(api, products, wxpay, which):
    product_id = products["gone"].pk if which == "gone" else 999_999

    response = order_items(api, [{"product_id": product_id, "quantity": 1}])

    assert response.status_code == 400
    assert str(product_id) in response.json()["detail"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"items": []},
        {"items": "tea"},
        {"items": [{"product_id": 1}]},
        {"items": [{"product_id": 1, "quantity": 0}]},
        {"items": [{"product_id": 1, "quantity": -3}]},
        {"items": [{"product_id": 1, "quantity": 10**12}]},
        {"items": [{"product_id": 1, "quantity": 1.5}]},
        {"items": [{"product_id": "tea", "quantity": 1}]},
        {"items": [{"product_id": 1, "quantity": True}]},
        {"items": [None]},
        {"items": [{"product_id": 1, "quantity": 1}] * 51},
        {"items": [{"product_id": 1, "quantity": 1}], "total_fee": 0},
        {"items": [{"product_id": 1, "quantity": 1}], "total_fee": "12.5"},
        {"items": [{"product_id": 1, "quantity": 1}], "out_trade_no": "x" * 12},
        {},
        {"out_trade_no": "中文订单号"},
        [],
        "hello",
    ],
)
def test_bad_order_input_is_400_with_detail(api, products, wxpay, payload):
    response = api.post(PAY, payload, format="json")

    assert response.status_code == 400
    assert response.json()["detail"]
    assert not Order.objects.exists()


def test_order_total_beyond_wechat_int_is_400(api, wxpay):
    big = Product.objects.create(name="Gold bar", price=2_000_000_000, stock=None)

    response = order_items(api, [{"product_id": big.pk, "quantity": 2}])

    assert response.status_code == 400


def test_ordering_needs_a_token(anon, products):
    response = anon.post(PAY, {"items": [{"product_id": 1, "quantity": 1}]}, format="json")

    assert response.status_code == 401


def test_order_creation_query_count_is_bounded(api, products, wxpay, django_assert_max_num_queries):
    items = [
        {"product_id": products["tea"].pk, "quantity": 1},
        {"product_id": products["cup"].pk, "quantity": 1},
    ]
    # 10: the shopper's row lock and the count of their unpaid orders are the last two.
    with django_assert_max_num_queries(10):
        assert order_items(api, items).status_code == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_never_oversell():
    """20 shoppers race for 5 units: exactly 5 orders, stock 0, never negative."""
    product = Product.objects.create(name="Limited", price=100, stock=5)
    shoppers = [make_shopper() for _ in range(20)]
    barrier = threading.Barrier(len(shoppers))
    results: list[str] = []

    def buy(user):
        try:
            barrier.wait()
            order_create(
                user=user,
                lines=[OrderLine(product.pk, 1)],
                client_ip="127.0.0.1",
                address=DELIVERY,
            )
            results.append("ok")
        except OutOfStock:
            results.append("short")
        finally:
            connection.close()

    threads = [threading.Thread(target=buy, args=(user,)) for user in shoppers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == ["ok"] * 5 + ["short"] * 15
    assert Product.objects.get(pk=product.pk).stock == 0
    assert Order.objects.count() == 5
