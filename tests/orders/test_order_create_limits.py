"""POST /payment/order against abuse and retries: caps on what one shopper's unpaid orders
hold, a per-shopper throttle, and the Idempotency-Key header.

Without them one WeChat account could reserve all finite stock every ORDER_TTL_MINUTES
(50 lines x 9999 units an order) and flood unifiedorder; and a checkout retried after a
lost answer made a second order holding the same stock again.
"""

import threading

import pytest
from django.db import connection
from rest_framework.throttling import ScopedRateThrottle

from orders.models import Order, Product
from tests.factories import client_for, delivery_address, make_shopper, notify_body, post_notify

pytestmark = pytest.mark.django_db

PAY = "/payment/order"


def order_items(api, items, key=None, **extra):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return api.post(
        PAY, {"items": items, "address": delivery_address(), **extra}, format="json", **headers
    )


def lines(product, quantity=1):
    return [{"product_id": product.pk, "quantity": quantity}]


def stock(product) -> int:
    return Product.objects.get(pk=product.pk).stock


# -- caps on unpaid orders ----------------------------------------------------------------------


def test_defaults(settings):
    assert settings.ORDER_MAX_UNPAID_PER_SHOPPER == 5
    assert settings.ORDER_MAX_UNPAID_UNITS_PER_SHOPPER == 200
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["order"] == "30/min"


def test_a_sixth_unpaid_order_is_409_and_reserves_nothing(api, jar, wxpay):
    for _ in range(5):
        assert order_items(api, lines(jar)).status_code == 201

    response = order_items(api, lines(jar))

    assert response.status_code == 409
    assert "5 unpaid orders" in response.json()["detail"]
    assert Order.objects.count() == 5
    assert stock(jar) == 995
    assert len(wxpay.calls()) == 5


def test_closing_or_paying_an_order_makes_room(api, jar, wxpay):
    placed = [order_items(api, lines(jar)).json()["out_trade_no"] for _ in range(5)]
    assert order_items(api, lines(jar)).status_code == 409

    assert api.post(f"/orders/{placed[0]}/close").status_code == 200
    assert order_items(api, lines(jar)).status_code == 201
    assert order_items(api, lines(jar)).status_code == 409
    paid = Order.objects.get(out_trade_no=placed[1])
    post_notify(notify_body(paid))

    assert order_items(api, lines(jar)).status_code == 201


def test_other_shoppers_unpaid_orders_do_not_count(api, jar, wxpay):
    other = client_for(make_shopper())
    for _ in range(5):
        assert order_items(other, lines(jar)).status_code == 201

    assert order_items(api, lines(jar)).status_code == 201


def test_units_beyond_the_cap_across_unpaid_orders_are_409(api, jar, wxpay):
    assert order_items(api, lines(jar, 150)).status_code == 201

    response = order_items(api, lines(jar, 51))

    assert response.status_code == 409
    assert "200 units" in response.json()["detail"]
    assert stock(jar) == 850
    assert order_items(api, lines(jar, 50)).status_code == 201  # exactly the cap
    assert stock(jar) == 800


def test_one_order_over_the_unit_cap_is_409(api, jar, wxpay):
    cup = Product.objects.create(name="Cup", price=100, stock=None)

    response = order_items(api, [*lines(jar, 150), *lines(cup, 51)])

    assert response.status_code == 409
    assert not Order.objects.exists()
    assert stock(jar) == 1000
    assert wxpay.requests_seen == []


def test_caps_come_from_the_settings(api, jar, wxpay, settings):
    settings.ORDER_MAX_UNPAID_PER_SHOPPER = 1
    settings.ORDER_MAX_UNPAID_UNITS_PER_SHOPPER = 1000

    assert order_items(api, lines(jar, 500)).status_code == 201
    assert order_items(api, lines(jar)).status_code == 409


# -- throttle -----------------------------------------------------------------------------------


def test_order_requests_are_throttled_per_shopper(api, jar, wxpay, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"order": "2/min"})
    first = order_items(api, lines(jar)).json()["out_trade_no"]
    assert api.post(PAY, {"out_trade_no": first}, format="json").status_code == 200

    response = order_items(api, lines(jar))

    assert response.status_code == 429
    assert response.json()["detail"]
    assert Order.objects.count() == 1
    assert order_items(client_for(make_shopper()), lines(jar)).status_code == 201


# -- Idempotency-Key ----------------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_same_order(api, jar, wxpay):
    first = order_items(api, lines(jar, 2), key="checkout-1")
    assert first.status_code == 201

    again = order_items(api, lines(jar, 2), key="checkout-1")

    assert again.status_code == 200
    assert again.json()["out_trade_no"] == first.json()["out_trade_no"]
    assert again.json()["total_fee"] == 200
    assert again.json()["payment"]["package"] == first.json()["payment"]["package"]
    assert len(wxpay.calls()) == 1  # the live prepay_id was reused
    assert Order.objects.get().idempotency_key == "checkout-1"
    assert stock(jar) == 998


def test_the_same_lines_written_differently_are_the_same_order(api, jar, wxpay):
    cup = Product.objects.create(name="Cup", price=50, stock=None)
    first = order_items(api, [*lines(jar, 2), *lines(cup)], key="k1")

    again = order_items(api, [*lines(cup), *lines(jar), *lines(jar)], key="k1")

    assert again.status_code == 200
    assert again.json()["out_trade_no"] == first.json()["out_trade_no"]


def test_a_retry_after_wechat_failed_makes_the_prepay_again(api, jar, wxpay):
    wxpay.http_status = 500
    first = order_items(api, lines(jar), key="k-502")
    assert first.status_code == 502
    wxpay.http_status = 200

    again = order_items(api, lines(jar), key="k-502")

    assert again.status_code == 200
    assert again.json()["out_trade_no"] == first.json()["out_trade_no"]
    assert Order.objects.get().prepay_id
    assert stock(jar) == 999


def test_the_same_key_with_other_items_is_409_and_changes_nothing(api, jar, wxpay):
    first = order_items(api, lines(jar, 2), key="k2").json()

    response = order_items(api, lines(jar, 3), key="k2")

    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["detail"]
    assert response.json()["out_trade_no"] == first["out_trade_no"]
    assert Order.objects.count() == 1
    assert stock(jar) == 998


def test_keys_belong_to_one_shopper(api, jar, wxpay):
    mine = order_items(api, lines(jar), key="k3").json()["out_trade_no"]

    theirs = order_items(client_for(make_shopper()), lines(jar), key="k3")

    assert theirs.status_code == 201
    assert theirs.json()["out_trade_no"] != mine


def test_a_retry_is_not_refused_by_the_caps(api, jar, wxpay):
    first = order_items(api, lines(jar), key="k4").json()["out_trade_no"]
    for _ in range(4):
        assert order_items(api, lines(jar)).status_code == 201

    again = order_items(api, lines(jar), key="k4")

    assert again.status_code == 200
    assert again.json()["out_trade_no"] == first


def test_a_retry_for_an_order_paid_meanwhile_is_409_with_its_status(api, jar, wxpay):
    first = order_items(api, lines(jar), key="k5").json()["out_trade_no"]
    post_notify(notify_body(Order.objects.get(out_trade_no=first)))

    again = order_items(api, lines(jar), key="k5")

    assert again.status_code == 409
    assert again.json()["status"] == "paid"
    assert again.json()["out_trade_no"] == first
    assert Order.objects.count() == 1


@pytest.mark.parametrize("key", ["A" * 64, "a-b_C9", "1"])
def test_good_keys_are_accepted(api, jar, wxpay, key):
    assert order_items(api, lines(jar), key=key).status_code == 201


@pytest.mark.parametrize("key", ["", "a" * 65, "has space", "ключ", "a/b", "a.b", "k\x1b"])
def test_bad_keys_are_400_and_nothing_is_made(api, jar, wxpay, key):
    response = order_items(api, lines(jar), key=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert not Order.objects.exists()
    assert wxpay.requests_seen == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_make_one_order(wxpay):
    """Six copies of one checkout at once (a phone retrying on a flaky network)."""
    product = Product.objects.create(name="Limited", price=100, stock=10)
    shopper = make_shopper()
    barrier = threading.Barrier(6)
    answers: list[tuple[int, str]] = []

    def checkout():
        try:
            api = client_for(shopper)
            barrier.wait()
            response = order_items(api, lines(product, 2), key="same-checkout")
            answers.append((response.status_code, response.json().get("out_trade_no")))
        finally:
            connection.close()

    threads = [threading.Thread(target=checkout) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(code for code, _ in answers) == [200] * 5 + [201]
    assert len({number for _, number in answers}) == 1
    assert Order.objects.count() == 1
    assert Product.objects.get(pk=product.pk).stock == 8
