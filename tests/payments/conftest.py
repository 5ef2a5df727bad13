"""Fixtures of the payments tests; the shared ones (shopper, api, products, paid, wxpay, …)
are in tests/conftest.py, the builders they use in tests/factories.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order
from tests.factories import (
    NOTIFY_SUCCESS,
    delivery_address,
    make_order,
    make_paid_order,
    make_shopper,
    notify_body,
    post_notify,
    reload,
)

PAY = "/payment/order"


@pytest.fixture
def order(products) -> Order:
    """An unpaid ¥45.00 order of one tea, of a shopper of its own."""
    return make_order(make_shopper(), products)


@pytest.fixture
def paid_by_notify(order) -> Order:
    """``order``, paid through a notify."""
    assert post_notify(notify_body(order)).content == NOTIFY_SUCCESS
    return reload(order)


@pytest.fixture
def paid_an_hour_ago(shopper, products, wxpay, refund_certificate) -> Order:
    """``shopper``'s order of an hour ago, paid, with refunds possible."""
    return make_paid_order(shopper, products, n=60)


@pytest.fixture
def new_order(api, products, wxpay):
    """Places a new order through the API: ``new_order(quantity=1)`` → the answer's JSON."""

    def create(quantity=1):
        response = api.post(
            PAY,
            {
                "items": [{"product_id": products["tea"].pk, "quantity": quantity}],
                "address": delivery_address(),
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        return response.json()

    return create


@pytest.fixture
def place(api, products, wxpay):
    """An unpaid order for 3 teas (stock taken) with a prepay_id, placed through the API,
    optionally made to look ``minutes_ago`` old: ``place(minutes_ago=0, quantity=3)``."""

    def create(minutes_ago: int = 0, quantity: int = 3) -> Order:
        response = api.post(
            PAY,
            {
                "items": [{"product_id": products["tea"].pk, "quantity": quantity}],
                "address": delivery_address(),
            },
            format="json",
        )
        assert response.status_code == 201
        order = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
        if minutes_ago:
            past = timezone.now() - timedelta(minutes=minutes_ago)
            Order.objects.filter(pk=order.pk).update(
                created_at=past, expires_at=past + timedelta(minutes=30)
            )
        wxpay.requests_seen.clear()
        return Order.objects.get(pk=order.pk)

    return create


@pytest.fixture
def placed(place) -> Order:
    """An unpaid ¥45.00 order placed through the API (1 tea taken from stock), 10 minutes old."""
    return place(minutes_ago=10, quantity=1)


@pytest.fixture
def waiting_orders(shopper, products, wxpay):
    """Five unpaid orders ten minutes old, which WeChat says are not paid yet."""
    wxpay.path_fields["/pay/orderquery"] = {"trade_state": "NOTPAY"}
    return [make_order(shopper, products, n=10 + i, prepay_id=f"wx{i}") for i in range(5)]


@pytest.fixture
def wxbill(http_mock):
    """``/pay/downloadbill`` behind ``responses``: checks the request's signature and serves
    ``wxbill.body`` (a bill from ``tests.factories.trade_bill``, or ``NO_BILL``); set
    ``wxbill.status`` for an HTTP failure. ``wxbill.requests`` holds what was asked."""
    import types

    import responses
    from django.conf import settings

    from tests.factories import NO_BILL
    from tests.wx import wx_parse, wx_sign

    fake = types.SimpleNamespace(body=NO_BILL, status=200, requests=[])

    def answer(request):
        fields = wx_parse(request.body)
        sign_type = fields.get("sign_type", "MD5")
        assert fields["sign"] == wx_sign(fields, settings.WECHAT_MCH_KEY, sign_type), "bad sign"
        fake.requests.append(fields)
        if fake.status != 200:
            return (fake.status, {}, "<html>upstream error</html>")
        return (200, {"Content-Type": "text/plain"}, fake.body)

    http_mock.add_callback(
        responses.POST, settings.WECHAT_PAY_API_BASE + "/pay/downloadbill", callback=answer
    )
    return fake
