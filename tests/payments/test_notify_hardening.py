"""Notifies that used to be lost or trusted too far: payments of another amount or from
another payer, a sign type other than the order's, and refunds made in the WeChat Pay
merchant platform (payments.notify, payments.services, payments.refunds)."""

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from orders.models import Order, Product
from payments.models import PaymentNotification, Refund
from payments.refunds import RefundAmountInvalid, refund_create, refund_submit
from payments.selectors import order_refund_totals
from tests.factories import (
    NOTIFY_SUCCESS,
    TRANSACTION_ID,
    make_order,
    make_shopper,
    notify_body,
    notify_fields,
    notify_refund,
    post_notify,
    post_refund_notify,
    reload,
)
from tests.wx import refund_notify_body, signed, wx_xml

pytestmark = pytest.mark.django_db

Outcome = PaymentNotification.Outcome
PAY = "/payment/order"
REFUND = "/secapi/pay/refund"
ORDER_QUERY = "/pay/orderquery"


def stock(products) -> int:
    return Product.objects.get(pk=products["tea"].pk).stock


def last_notification() -> PaymentNotification:
    return PaymentNotification.objects.order_by("-pk").first()


def reconcile() -> str:
    out = StringIO()
    call_command("reconcile_orders", stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.usefixtures("refund_certificate")
class TestPaymentThatDoesNotFit:
    def test_one_fen_for_a_4500_order_is_recorded_refundable_and_not_reconciled(
        self, placed, products, wxpay
    ):
        assert stock(products) == 9

        response = post_notify(notify_body(placed, total_fee=1, cash_fee=1))

        assert response.content == NOTIFY_SUCCESS
        order = reload(placed)
        assert (order.status, order.transaction_id, order.paid_fee) == (
            Order.Status.CLOSED,
            TRANSACTION_ID,
            1,
        )
        assert order.paid_at is not None
        assert order.has_payment
        assert order.needs_attention
        assert "amount 1" in order.attention_reason
        assert last_notification().outcome == Outcome.FLAGGED
        assert stock(products) == 10  # not sold as priced: the tea is back on sale
        assert order_refund_totals(order=order).refundable == 1

        with pytest.raises(RefundAmountInvalid):
            refund_create(order=order, refund_fee=2, reason="wrong amount")
        made = refund_create(order=order, refund_fee=1, reason="wrong")
        refund = refund_submit(refund=made.refund)
        [call] = wxpay.calls(REFUND)
        assert (call["total_fee"], call["refund_fee"]) == ("1", "1")  # what WeChat charged

        assert notify_refund(refund).content == NOTIFY_SUCCESS
        assert reload(order).status == Order.Status.REFUNDED

    def test_reconcile_does_not_ask_about_it_again(self, placed, wxpay):
        post_notify(notify_body(placed, total_fee=1, cash_fee=1))

        reconcile()

        assert wxpay.calls(ORDER_QUERY) == []
        assert reload(placed).status == Order.Status.CLOSED

    def test_another_payer_is_recorded_refundable_in_full(self, placed, products, wxpay):
        response = post_notify(notify_body(placed, openid="o-someone-else"))

        assert response.content == NOTIFY_SUCCESS
        order = reload(placed)
        assert (order.status, order.transaction_id, order.paid_fee) == (
            Order.Status.CLOSED,
            TRANSACTION_ID,
            4500,
        )
        assert "payer openid" in order.attention_reason
        assert order_refund_totals(order=order).refundable == 4500
        assert stock(products) == 10

    def test_a_duplicate_of_it_is_a_duplicate(self, placed, products, wxpay):
        body = notify_body(placed, total_fee=1, cash_fee=1)
        post_notify(body)

        assert post_notify(body).content == NOTIFY_SUCCESS

        assert last_notification().outcome == Outcome.DUPLICATE
        assert stock(products) == 10  # given back once

    @pytest.mark.parametrize("total_fee", [0, 2**31])
    def test_an_amount_no_payment_can_have_is_refused(self, order, total_fee):
        body = notify_body(order, total_fee=total_fee, cash_fee=total_fee)

        assert b"FAIL" in post_notify(body).content

        assert (reload(order).status, reload(order).transaction_id) == ("unpaid", None)
        assert last_notification().outcome == Outcome.MALFORMED

    def test_every_recorded_payment_keeps_what_was_charged(self, order, products):
        post_notify(notify_body(order))
        assert reload(order).paid_fee == 4500

        closed = make_order(make_shopper(), products, n=1, status="closed")
        post_notify(notify_body(closed, transaction_id="4200000000000000000000000002"))
        assert (reload(closed).paid_fee, reload(closed).needs_attention) == (4500, True)


class TestSignType:
    def test_md5_order_refuses_a_notify_declaring_hmac(self, order):
        body = wx_xml(
            signed(notify_fields(order, sign_type="HMAC-SHA256"), sign_type="HMAC-SHA256")
        )

        assert b"FAIL" in post_notify(body).content

        assert reload(order).status == Order.Status.UNPAID
        row = last_notification()
        assert (row.outcome, row.replied) == (Outcome.REJECTED, "FAIL")

    def test_hmac_order_refuses_a_notify_downgraded_to_md5(self, order):
        Order.objects.filter(pk=order.pk).update(sign_type="HMAC-SHA256")
        body = wx_xml(signed(notify_fields(order, sign_type="MD5"), sign_type="MD5"))

        assert b"FAIL" in post_notify(body).content

        assert reload(order).status == Order.Status.UNPAID
        row = last_notification()
        assert (row.outcome, row.replied) == (Outcome.REJECTED, "FAIL")

    def test_hmac_order_accepts_its_own_algorithm_without_sign_type(self, order):
        Order.objects.filter(pk=order.pk).update(sign_type="HMAC-SHA256")

        assert post_notify(notify_body(order, sign_type="HMAC-SHA256")).content == NOTIFY_SUCCESS
        assert reload(order).status == Order.Status.PAID

    def test_hmac_order_accepts_its_own_algorithm_declared(self, order):
        Order.objects.filter(pk=order.pk).update(sign_type="HMAC-SHA256")
        body = wx_xml(
            signed(notify_fields(order, sign_type="HMAC-SHA256"), sign_type="HMAC-SHA256")
        )

        assert post_notify(body).content == NOTIFY_SUCCESS
        assert reload(order).status == Order.Status.PAID

    def test_unknown_order_is_still_verified_with_the_declared_type(self, order):
        body = wx_xml(
            signed(
                notify_fields(
                    order, sign_type="HMAC-SHA256", out_trade_no="20260101000000ffffffffffffffffff"
                ),
                sign_type="HMAC-SHA256",
            )
        )

        assert b"FAIL" in post_notify(body).content
        row = last_notification()
        assert (row.outcome, row.signature_valid) == (Outcome.UNKNOWN_ORDER, True)


EXTERNAL_REFUND_NO = "50300903352026112700000000001"


def external_refund_info(order: Order, **overrides) -> dict:
    """req_info of a refund made in the merchant platform: its out_refund_no is WeChat's."""
    info = {
        "transaction_id": order.transaction_id or TRANSACTION_ID,
        "out_trade_no": order.out_trade_no,
        "refund_id": EXTERNAL_REFUND_NO,
        "out_refund_no": EXTERNAL_REFUND_NO,
        "total_fee": order.total_fee,
        "refund_fee": order.total_fee,
        "settlement_refund_fee": order.total_fee,
        "refund_status": "SUCCESS",
        "success_time": "2026-11-27 12:00:05",
        "refund_recv_accout": "支付用户零钱",
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_request_source": "VENDOR_PLATFORM",
    }
    info.update(overrides)
    return info


@pytest.mark.usefixtures("refund_certificate")
class TestRefundMadeOutsideTheShop:
    def test_it_is_recorded_applied_and_flagged(self, paid_by_notify):
        response = post_refund_notify(refund_notify_body(external_refund_info(paid_by_notify)))

        assert response.content == NOTIFY_SUCCESS
        [refund] = Refund.objects.filter(order=paid_by_notify)
        assert (refund.out_refund_no, refund.refund_id, refund.refund_fee, refund.status) == (
            EXTERNAL_REFUND_NO,
            EXTERNAL_REFUND_NO,
            4500,
            Refund.Status.SUCCESS,
        )
        assert refund.requested_by is None
        assert "outside the shop" in refund.reason
        order = reload(paid_by_notify)
        assert order.status == Order.Status.REFUNDED
        assert order.needs_attention
        assert f"Refund {EXTERNAL_REFUND_NO}" in order.attention_reason
        assert "made outside the shop" in order.attention_reason
        row = last_notification()
        assert (row.outcome, row.replied, row.refund, row.order) == (
            Outcome.FLAGGED,
            "SUCCESS",
            refund,
            order,
        )

    def test_a_partial_one_leaves_the_rest_refundable(self, paid_by_notify, wxpay):
        info = external_refund_info(paid_by_notify, refund_fee=1000, settlement_refund_fee=1000)

        assert post_refund_notify(refund_notify_body(info)).content == NOTIFY_SUCCESS

        order = reload(paid_by_notify)
        assert order.status == Order.Status.PAID
        assert order_refund_totals(order=order).refundable == 3500
        with pytest.raises(RefundAmountInvalid):
            refund_create(order=order, refund_fee=3501, reason="")

    def test_duplicates_record_it_once(self, paid_by_notify):
        body = refund_notify_body(external_refund_info(paid_by_notify))

        replies = [post_refund_notify(body).content for _ in range(3)]

        assert replies == [NOTIFY_SUCCESS] * 3
        assert Refund.objects.filter(order=paid_by_notify).count() == 1
        outcomes = list(
            PaymentNotification.objects.filter(kind="refund")
            .order_by("pk")
            .values_list("outcome", flat=True)
        )
        assert outcomes == [Outcome.FLAGGED, Outcome.DUPLICATE, Outcome.DUPLICATE]

    def test_abnormal_one_is_recorded_and_flagged(self, paid_by_notify):
        info = external_refund_info(paid_by_notify, refund_status="CHANGE", success_time="")

        assert post_refund_notify(refund_notify_body(info)).content == NOTIFY_SUCCESS

        assert Refund.objects.get(order=paid_by_notify).status == Refund.Status.ABNORMAL
        assert reload(paid_by_notify).status == Order.Status.PAID
        assert last_notification().outcome == Outcome.FLAGGED

    def test_one_naming_another_transaction_is_not_recorded(self, paid_by_notify):
        info = external_refund_info(paid_by_notify, transaction_id="4200000000000000000000000999")

        assert b"FAIL" in post_refund_notify(refund_notify_body(info)).content

        assert not Refund.objects.exists()
        assert last_notification().outcome == Outcome.REJECTED

    def test_one_for_an_order_the_shop_does_not_have_is_kept_in_the_ledger(self, paid_by_notify):
        info = external_refund_info(paid_by_notify, out_trade_no="20260101000000ffffffffffffffffff")

        assert b"FAIL" in post_refund_notify(refund_notify_body(info)).content

        assert not Refund.objects.exists()
        row = last_notification()
        assert (row.outcome, row.signature_valid, row.out_refund_no) == (
            Outcome.UNKNOWN_REFUND,
            True,
            EXTERNAL_REFUND_NO,
        )
        assert "20260101000000ffffffffffffffffff" in row.detail


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_copies_of_an_outside_refund_record_it_once(products):
    order = make_order(make_shopper(), products)
    assert post_notify(notify_body(order)).content == NOTIFY_SUCCESS
    body = refund_notify_body(external_refund_info(reload(order)))
    barrier = threading.Barrier(8)
    replies: list[bytes] = []

    def deliver():
        try:
            barrier.wait()
            replies.append(post_refund_notify(body).content)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert replies == [NOTIFY_SUCCESS] * 8
    assert Refund.objects.filter(order=order).count() == 1
    outcomes = sorted(
        PaymentNotification.objects.filter(kind="refund").values_list("outcome", flat=True)
    )
    assert outcomes == [Outcome.DUPLICATE] * 7 + [Outcome.FLAGGED]
    assert reload(order).status == Order.Status.REFUNDED
