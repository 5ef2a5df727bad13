"""POST /payment/v3/refundnotify: WeChat's verdict on a refund, API v3 (docs/protocol/
wechat-pay-v3.md §8.5), recorded once through the same steps as v2's (docs/INVARIANTS.md §9)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import threading
import time
from datetime import datetime

import pytest
from django.db import connection

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
from wechat.pay_v3 import BEIJING

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pay_v3")]

Outcome = PaymentNotification.Outcome
Status = Refund.Status
OUTSIDE_REFUND_NO = "50300903352026112700000000001"


def now() -> int:
    return int(time.time())


def paid_v3_order(products, wechat_key) -> Order:
    """A ¥45.00 order placed with API v3 and paid through its notify."""
    order = make_order(make_shopper(), products, pay_version="v3")
    headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())
    assert post_v3(V3_NOTIFY_URL, headers, body).status_code == 204
    return reload(order)


def asked(order: Order, fee: int, out_refund_no: str = "R20251127000000001") -> Refund:
    """A refund the shop asked WeChat for, accepted and waiting for its verdict."""
    return Refund.objects.create(
        order=order, out_refund_no=out_refund_no, refund_fee=fee, status=Status.PROCESSING
    )


def verdict(key, refund: Refund, status: str = "SUCCESS", **changes):
    """WeChat's refund notify for ``refund`` (``changes`` to its resource), posted."""
    headers, body = signed_refund_notify(
        key, shop_refund(refund, status, **changes), timestamp=now()
    )
    return post_v3(V3_REFUND_NOTIFY_URL, headers, body)


def refund_rows() -> list[PaymentNotification]:
    return list(PaymentNotification.objects.filter(kind="refund").order_by("pk"))


def outside(order: Order, fee: int) -> Refund:
    """A refund made in the merchant platform, unknown to the shop (not saved)."""
    return Refund(order=order, out_refund_no=OUTSIDE_REFUND_NO, refund_fee=fee)


class TestVerdicts:
    def test_success_of_the_whole_amount_refunds_the_order(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)
        refund = asked(order, 4500)

        response = verdict(wechat_key, refund)

        assert (response.status_code, response.content) == (204, b"")
        refund = reload(refund)
        assert (refund.status, refund.refund_id, refund.recv_account) == (
            Status.SUCCESS,
            "50000000382019052709732678859",
            "支付用户零钱",
        )
        assert refund.succeeded_at == datetime(2025, 1, 2, 10, 0, 5, tzinfo=BEIJING)
        assert reload(order).status == Order.Status.REFUNDED
        [row] = refund_rows()
        assert (row.api_version, row.outcome, row.replied, row.refund, row.order) == (
            "v3",
            Outcome.REFUND_RECORDED,
            "SUCCESS",
            refund,
            order,
        )
        assert (row.out_refund_no, row.out_trade_no, row.transaction_id) == (
            refund.out_refund_no,
            order.out_trade_no,
            order.transaction_id,
        )
        assert "Wechatpay-Signature" in row.headers

    def test_a_partial_success_leaves_the_order_paid(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)

        assert verdict(wechat_key, asked(order, 1000)).status_code == 204
        assert reload(order).status == Order.Status.PAID

    def test_a_duplicate_is_answered_204_and_recorded_once(self, products, wechat_key):
        refund = asked(paid_v3_order(products, wechat_key), 4500)

        replies = [verdict(wechat_key, refund).status_code for _ in range(3)]

        assert replies == [204, 204, 204]
        assert [row.outcome for row in refund_rows()] == [
            Outcome.REFUND_RECORDED,
            Outcome.DUPLICATE,
            Outcome.DUPLICATE,
        ]

    def test_closed_gives_nothing_back(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)
        refund = asked(order, 4500)

        assert verdict(wechat_key, refund, "CLOSED", success_time=None).status_code == 204

        assert reload(refund).status == Status.CLOSED
        assert reload(order).status == Order.Status.PAID
        assert refund_rows()[0].outcome == Outcome.REFUND_RECORDED

    def test_abnormal_is_recorded_and_flagged(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)
        refund = asked(order, 4500)

        assert verdict(wechat_key, refund, "ABNORMAL", success_time=None).status_code == 204

        assert reload(refund).status == Status.ABNORMAL
        assert reload(order).needs_attention
        row = refund_rows()[0]
        assert (row.outcome, row.detail) == (
            Outcome.FLAGGED,
            "Refund abnormal (ABNORMAL); order flagged.",
        )

    def test_another_amount_is_not_applied_and_flags_the_order(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)
        refund = asked(order, 1000)

        response = verdict(
            wechat_key, refund, amount={"total": 4500, "refund": 4500, "payer_total": 4500}
        )

        assert response.status_code == 204  # recorded: a retry would change nothing
        assert reload(refund).status == Status.PROCESSING
        assert reload(order).needs_attention
        assert refund_rows()[0].outcome == Outcome.FLAGGED


class TestRefused:
    def test_a_refund_named_with_another_order_is_400(self, products, wechat_key):
        refund = asked(paid_v3_order(products, wechat_key), 4500)

        response = verdict(wechat_key, refund, out_trade_no="T99999")

        assert (response.status_code, response.json()["message"]) == (400, "rejected")
        assert reload(refund).status == Status.PROCESSING

    def test_another_merchant_is_400(self, products, wechat_key):
        refund = asked(paid_v3_order(products, wechat_key), 4500)

        response = verdict(wechat_key, refund, mchid="1900000002")

        assert (response.status_code, response.json()["message"]) == (400, "rejected")
        row = refund_rows()[0]
        assert (row.signature_valid, row.detail) == (True, "mchid '1900000002' is not ours.")
        assert reload(refund).status == Status.PROCESSING

    @pytest.mark.parametrize("status", ["PROCESSING", "REFUNDCLOSE", ""])
    def test_a_status_that_is_no_verdict_is_400(self, products, wechat_key, status):
        refund = asked(paid_v3_order(products, wechat_key), 4500)

        response = verdict(wechat_key, refund, status)

        assert (response.status_code, response.json()["message"]) == (400, "malformed")
        assert reload(refund).status == Status.PROCESSING

    def test_an_event_that_contradicts_its_refund_status_is_400(self, products, wechat_key):
        refund = asked(paid_v3_order(products, wechat_key), 4500)
        headers, body = signed_refund_notify(
            wechat_key,
            shop_refund(refund, "SUCCESS"),
            timestamp=now(),
            event_type="REFUND.CLOSED",
        )

        response = post_v3(V3_REFUND_NOTIFY_URL, headers, body)

        assert (response.status_code, response.json()["message"]) == (400, "malformed")

    def test_no_refund_amount_is_400(self, products, wechat_key):
        refund = asked(paid_v3_order(products, wechat_key), 4500)

        response = verdict(wechat_key, refund, amount={"total": 4500})

        assert (response.status_code, response.json()["message"]) == (400, "malformed")

    def test_a_payment_notify_sent_to_the_refund_url_is_400(self, products, wechat_key):
        order = make_order(make_shopper(), products, pay_version="v3")
        headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())

        response = post_v3(V3_REFUND_NOTIFY_URL, headers, body)

        assert (response.status_code, response.json()["message"]) == (400, "malformed")
        assert reload(order).status == Order.Status.UNPAID

    def test_a_forged_verdict_is_401(self, products, wechat_key, platform):
        refund = asked(paid_v3_order(products, wechat_key), 4500)

        response = verdict(platform.key, refund)

        assert (response.status_code, response.json()["message"]) == (401, "rejected")
        assert reload(refund).status == Status.PROCESSING


class TestRefundMadeOutsideTheShop:
    def test_it_is_recorded_applied_and_flagged(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)

        response = verdict(wechat_key, outside(order, 4500), refund_id=OUTSIDE_REFUND_NO)

        assert response.status_code == 204
        [refund] = Refund.objects.filter(order=order)
        assert (refund.out_refund_no, refund.refund_fee, refund.status) == (
            OUTSIDE_REFUND_NO,
            4500,
            Status.SUCCESS,
        )
        order = reload(order)
        assert order.status == Order.Status.REFUNDED
        assert order.needs_attention
        assert "made outside the shop" in order.attention_reason
        row = refund_rows()[0]
        assert (row.outcome, row.refund, row.order) == (Outcome.FLAGGED, refund, order)

    def test_its_duplicates_record_it_once(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)

        replies = [verdict(wechat_key, outside(order, 1000)).status_code for _ in range(3)]

        assert replies == [204, 204, 204]
        assert Refund.objects.filter(order=order).count() == 1
        assert [row.outcome for row in refund_rows()] == [
            Outcome.FLAGGED,
            Outcome.DUPLICATE,
            Outcome.DUPLICATE,
        ]

    def test_one_naming_another_transaction_is_400(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)

        response = verdict(
            wechat_key, outside(order, 4500), transaction_id="4200000000000000000000000999"
        )

        assert (response.status_code, response.json()["message"]) == (400, "rejected")
        assert not Refund.objects.exists()

    def test_one_of_an_order_the_shop_does_not_have_is_400_and_kept(self, products, wechat_key):
        order = paid_v3_order(products, wechat_key)

        response = verdict(wechat_key, outside(order, 4500), out_trade_no="T404")

        assert (response.status_code, response.json()["message"]) == (400, "unknown_refund")
        assert not Refund.objects.exists()
        row = refund_rows()[0]
        assert (row.signature_valid, row.out_refund_no) == (True, OUTSIDE_REFUND_NO)


def test_a_v3_refund_row_reprocessed_is_a_duplicate(products, wechat_key):
    refund = asked(paid_v3_order(products, wechat_key), 4500)
    verdict(wechat_key, refund)
    [original] = refund_rows()

    row = notification_reprocess(notification=original)

    assert (row.kind, row.api_version, row.outcome, row.refund) == (
        "refund",
        "v3",
        Outcome.DUPLICATE,
        refund,
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_copies_of_an_outside_refund_record_it_once(products, wechat_key):
    order = paid_v3_order(products, wechat_key)
    headers, body = signed_refund_notify(
        wechat_key, shop_refund(outside(order, 4500)), timestamp=now()
    )
    barrier = threading.Barrier(8)
    replies: list[int] = []

    def deliver():
        try:
            barrier.wait()
            replies.append(post_v3(V3_REFUND_NOTIFY_URL, headers, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert replies == [204] * 8
    assert Refund.objects.filter(order=order).count() == 1
    assert sorted(row.outcome for row in refund_rows()) == [Outcome.DUPLICATE] * 7 + [
        Outcome.FLAGGED
    ]
    assert reload(order).status == Order.Status.REFUNDED
