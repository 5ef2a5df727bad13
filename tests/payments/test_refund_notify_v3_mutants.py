"""POST /payment/v3/refundnotify at its edges (mutation testing of payments/notify.py): what
a refused refund notify's ledger row says, the columns' bounds on WeChat's numbers, the
address a row keeps, and a row reprocessed hours later, verified as at its reception."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from orders.models import Order
from payments.models import PaymentNotification, Refund
from payments.notify import notification_reprocess
from tests.factories import make_order, make_shopper, reload
from tests.wx_v3 import (
    V3_NOTIFY_URL,
    V3_REFUND_NOTIFY_URL,
    post_v3,
    shop_refund,
    shop_transaction,
    signed_notify,
    signed_refund_notify,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pay_v3")]

Outcome = PaymentNotification.Outcome


def now() -> int:
    return int(time.time())


def asked_refund(products, wechat_key, fee: int = 4500) -> Refund:
    """A refund of a ¥45.00 order paid with API v3, asked of WeChat and waiting for its
    verdict."""
    order = make_order(make_shopper(), products, pay_version="v3")
    headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())
    assert post_v3(V3_NOTIFY_URL, headers, body).status_code == 204
    return Refund.objects.create(
        order=reload(order),
        out_refund_no="R20251127000000001",
        refund_fee=fee,
        status=Refund.Status.PROCESSING,
    )


def post_refund_notify(key, resource: dict, **options):
    headers, body = signed_refund_notify(key, resource, timestamp=now(), **options)
    return post_v3(V3_REFUND_NOTIFY_URL, headers, body)


def refund_row() -> PaymentNotification:
    return PaymentNotification.objects.filter(kind="refund").latest("pk")


class TestWhatARefusedRowSays:
    def test_a_payment_notify_at_the_refund_url_names_its_event_cut_to_40(
        self, products, wechat_key
    ):
        order = make_order(make_shopper(), products, pay_version="v3")
        event_type = "TRANSACTION." + "S" * 40
        headers, body = signed_notify(
            wechat_key, shop_transaction(order), timestamp=now(), event_type=event_type
        )

        response = post_v3(V3_REFUND_NOTIFY_URL, headers, body)

        assert response.status_code == 400
        assert refund_row().detail == f"Not a refund notify ({event_type[:40]!r})."

    def test_an_event_that_contradicts_its_status_says_so(self, products, wechat_key):
        refund = asked_refund(products, wechat_key)

        post_refund_notify(wechat_key, shop_refund(refund, "SUCCESS"), event_type="REFUND.CLOSED")

        row = refund_row()
        assert (row.outcome, row.detail) == (
            Outcome.MALFORMED,
            "event_type and refund_status disagree.",
        )

    def test_an_unknown_status_is_named_cut_to_20(self, products, wechat_key):
        refund = asked_refund(products, wechat_key)
        status = "PROCESSING_FOR_A_LONG_TIME"

        post_refund_notify(wechat_key, shop_refund(refund, status))

        row = refund_row()
        assert (row.outcome, row.detail) == (
            Outcome.MALFORMED,
            f"refund_status {status[:20]!r} unknown.",
        )
        assert reload(refund).status == Refund.Status.PROCESSING

    def test_no_refund_amount_says_so(self, products, wechat_key):
        refund = asked_refund(products, wechat_key)

        post_refund_notify(wechat_key, shop_refund(refund, amount={"total": 4500}))

        assert (refund_row().outcome, refund_row().detail) == (
            Outcome.MALFORMED,
            "amount.refund missing.",
        )


def test_numbers_longer_than_their_columns_are_kept_cut_to_64(products, wechat_key):
    """An authentic notify naming numbers too long for any refund or order of ours: refused,
    its row keeping what fits of each (64 characters, the columns' size)."""
    refund = asked_refund(products, wechat_key)
    numbers = {"out_refund_no": "R" * 70, "out_trade_no": "T" * 70, "transaction_id": "4" * 70}

    response = post_refund_notify(wechat_key, shop_refund(refund, **numbers))

    assert response.status_code == 400
    row = refund_row()
    assert (row.out_refund_no, row.out_trade_no, row.transaction_id) == (
        "R" * 64,
        "T" * 64,
        "4" * 64,
    )
    assert reload(refund).status == Refund.Status.PROCESSING


def test_a_v3_refund_row_reprocessed_hours_later_is_verified_as_received(
    products, wechat_key, monkeypatch
):
    """Staff reprocess a refund notify whose processing failed: its signature is checked
    against the time it was received, not the time of the reprocess (§3.6's 5 minutes
    long gone)."""
    refund = asked_refund(products, wechat_key)

    def fail_refund_updates(execute, sql, params, many, context):
        if 'UPDATE "payments_refund"' in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_refund_updates):
        post_refund_notify(wechat_key, shop_refund(refund))
    original = refund_row()
    assert original.outcome == Outcome.ERROR
    hours_later = timezone.now() + timedelta(hours=5)
    monkeypatch.setattr(timezone, "now", lambda: hours_later)

    row = notification_reprocess(notification=original)

    assert (row.outcome, row.signature_valid, row.reprocess_of) == (
        Outcome.REFUND_RECORDED,
        True,
        original,
    )
    assert reload(refund).status == Refund.Status.SUCCESS
    assert reload(refund.order).status == Order.Status.REFUNDED


def test_a_v3_refund_row_keeps_the_address_it_came_from(products, wechat_key):
    refund = asked_refund(products, wechat_key)
    headers, body = signed_refund_notify(wechat_key, shop_refund(refund), timestamp=now())

    post_v3(V3_REFUND_NOTIFY_URL, headers, body)  # the test client's REMOTE_ADDR

    assert (refund_row().outcome, refund_row().remote_addr) == (
        Outcome.REFUND_RECORDED,
        "127.0.0.1",
    )
