"""A v2 payment notify that fits its order is paid at once (orders.services.order_pay_if_fits),
whatever the order's sign type, and says so in the log (mutation testing of
payments/notify.py and orders/services.py)."""

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Order
from tests.factories import NOTIFY_SUCCESS, make_order, make_shopper, notify_body, post_notify

pytestmark = pytest.mark.django_db


def statements_to_pay(order: Order, transaction_id: str) -> int:
    body = notify_body(order, sign_type=order.sign_type, transaction_id=transaction_id)
    with CaptureQueriesContext(connection) as queries:
        assert post_notify(body).content == NOTIFY_SUCCESS
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    return len(queries)


def test_an_hmac_sha256_notify_is_paid_at_once_as_an_md5_one(products):
    """Its signature verified with the algorithm it declares, before the order is read:
    no locking read of the order, as many statements as for an MD5 order."""
    md5 = make_order(make_shopper(), products, sign_type="MD5")
    hmac = make_order(make_shopper(), products, sign_type="HMAC-SHA256")

    assert statements_to_pay(hmac, "4200000000000000000000000001") == statements_to_pay(
        md5, "4200000000000000000000000002"
    )


def test_an_order_paid_at_once_is_one_log_line_naming_it(products, caplog):
    order = make_order(make_shopper(), products)

    with caplog.at_level(logging.INFO, logger="orders.services"):
        post_notify(notify_body(order))

    assert [r.getMessage() for r in caplog.records if r.name == "orders.services"] == [
        f"order paid out_trade_no={order.out_trade_no}"
    ]
