"""Closing and reconciling at their edges: what mutation testing found no test for
(docs/RELIABILITY.md, "Mutation testing"). Each test pins one rule a changed line would
break unnoticed; staff read the flag reasons, so those are pinned word for word."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from orders.models import Order
from orders.services import MAX_TOTAL_FEE
from payments.lifecycle import (
    REFUND_QUERY_AFTER,
    WECHAT_CLOSE_MIN_AGE,
    OrderNotClosable,
    ReconcileAction,
    Reconciled,
    order_close,
    order_reconcile,
    refund_reconcile,
)
from payments.models import Refund
from tests.factories import (
    TRANSACTION_ID,
    make_order,
    make_refund,
    make_shopper,
    orderquery_paid,
    reload,
)
from wechat.pay_v2 import BEIJING

pytestmark = pytest.mark.django_db

QUERY = "/pay/orderquery"


def waiting_order(products, **fields) -> Order:
    """An unpaid order sent to WeChat (prepay_id) 10 minutes ago, still open."""
    return make_order(make_shopper(), products, n=10, prepay_id="wx-prepay", **fields)


def did_not_fit(problem: str, state: str = "SUCCESS") -> str:
    return f"WeChat's answer did not fit: {problem} (orderquery {state}); nothing applied."


class TestWhatOrderqueryMaySay:
    @pytest.mark.parametrize("length", [1, 32])
    def test_a_transaction_id_of_1_to_32_characters_is_recorded(self, products, wxpay, length):
        order = waiting_order(products)
        wxpay.path_fields[QUERY] = orderquery_paid(order, transaction_id="4" * length)

        assert order_reconcile(order=order) == (
            Reconciled(ReconcileAction.PAYMENT_RECORDED, "paid"),
        )
        assert reload(order).transaction_id == "4" * length

    @pytest.mark.parametrize(
        ("fields", "problem"),
        [
            ({"transaction_id": "4" * 33}, "transaction_id missing or over 32 characters"),
            ({"transaction_id": ""}, "transaction_id missing or over 32 characters"),
            ({"total_fee": "0"}, "total_fee missing or out of range"),
            ({"total_fee": str(MAX_TOTAL_FEE + 1)}, "total_fee missing or out of range"),
        ],
    )
    def test_an_answer_that_cannot_be_applied_is_flagged_saying_why(
        self, products, wxpay, fields, problem
    ):
        order = waiting_order(products)
        wxpay.path_fields[QUERY] = orderquery_paid(order, **fields)

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.ANSWER_DID_NOT_FIT),)
        order = reload(order)
        assert (order.status, order.attention_reason) == (Order.Status.UNPAID, did_not_fit(problem))

    def test_the_largest_amount_is_recorded(self, products, wxpay):
        order = waiting_order(products, total_fee=MAX_TOTAL_FEE)
        wxpay.path_fields[QUERY] = orderquery_paid(order)

        order_reconcile(order=order)

        assert reload(order).paid_fee == MAX_TOTAL_FEE

    def test_an_answer_naming_another_order_is_quoted_cut_short(self, products, wxpay):
        order = waiting_order(products)
        other, state = "T" * 40, "S" * 40
        wxpay.path_fields[QUERY] = orderquery_paid(order, out_trade_no=other, trade_state=state)

        order_reconcile(order=order)

        assert reload(order).attention_reason == did_not_fit(
            f"out_trade_no {'T' * 32!r} is not the order's", "S" * 32
        )

    def test_a_payment_without_its_time_is_dated_now(self, products, wxpay):
        order = waiting_order(products)
        answer = orderquery_paid(order)
        del answer["time_end"]
        wxpay.path_fields[QUERY] = answer
        before = timezone.now()

        order_reconcile(order=order)

        assert reload(order).paid_at >= before

    def test_a_refund_started_at_wechat_is_flagged(self, products, wxpay):
        order = waiting_order(products)
        wxpay.path_fields[QUERY] = orderquery_paid(order, trade_state="REFUND")

        order_reconcile(order=order)

        order = reload(order)
        assert order.status == Order.Status.PAID
        assert order.attention_reason == "WeChat reports a refund started on this order."


class TestClosedOrders:
    def test_a_closed_order_with_nothing_pending_has_nothing_to_do(self, products, wxpay):
        order = waiting_order(products, status="closed", closed_at=timezone.now())

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.NOTHING_TO_DO),)
        assert wxpay.requests_seen == []

    def test_a_close_pending_in_wechats_first_minutes_waits(self, products, wxpay):
        order = make_order(
            make_shopper(),
            products,
            prepay_id="wx-prepay",
            status="closed",
            closed_at=timezone.now(),
            close_pending_at_wechat=True,
        )

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.WAITING),)
        assert wxpay.requests_seen == []

    def test_a_close_pending_that_wechat_says_was_paid_records_it(self, products, wxpay):
        order = waiting_order(
            products, status="closed", closed_at=timezone.now(), close_pending_at_wechat=True
        )
        wxpay.path_errors["/pay/closeorder"] = "ORDERPAID"
        wxpay.path_fields[QUERY] = orderquery_paid(order)

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.PAID_AFTER_CLOSE),)
        order = reload(order)
        assert (order.transaction_id, order.close_pending_at_wechat) == (TRANSACTION_ID, False)


class TestClosingAnOrderWeChatSaysIsPaid:
    """closeorder answers ORDERPAID: orderquery is asked, in the order's own sign type."""

    def close(self, order: Order, wxpay, **answer):
        wxpay.path_errors["/pay/closeorder"] = "ORDERPAID"
        if answer:
            wxpay.path_fields[QUERY] = answer
        return order_close(order=order)

    def test_a_payment_that_fits_is_recorded(self, products, wxpay):
        order = waiting_order(products)

        result = self.close(order, wxpay, **orderquery_paid(order))

        assert result.closed is False
        assert reload(order).status == Order.Status.PAID

    def test_a_payment_that_does_not_fit_is_flagged_not_closed(self, products, wxpay):
        order = waiting_order(products)

        result = self.close(order, wxpay, **orderquery_paid(order, out_trade_no="T" * 40))

        assert result.closed is False
        order = reload(order)
        assert order.status == Order.Status.UNPAID
        assert order.attention_reason == did_not_fit(
            f"out_trade_no {'T' * 32!r} is not the order's"
        )

    def test_orderquery_failing_is_named_in_the_flag(self, products, wxpay):
        order = waiting_order(products)
        wxpay.path_errors[QUERY] = "SYSTEMERROR"

        self.close(order, wxpay)

        assert reload(order).attention_reason == (
            "WeChat says paid (closeorder ORDERPAID), orderquery failed (SystemBusy): not "
            "closed; reconcile_orders asks again."
        )

    def test_orderquery_knowing_no_such_order_is_named_in_the_flag(self, products, wxpay):
        order = waiting_order(products)
        wxpay.path_errors[QUERY] = "ORDERNOTEXIST"

        self.close(order, wxpay)

        assert reload(order).attention_reason == (
            "WeChat says paid (closeorder ORDERPAID), orderquery knows no such order: not "
            "closed; reconcile_orders asks again."
        )

    def test_an_unpaid_answer_is_quoted_cut_short(self, products, wxpay):
        order = waiting_order(products)

        self.close(order, wxpay, trade_state="N" * 40)

        assert reload(order).attention_reason == (
            f"WeChat says paid (closeorder ORDERPAID), orderquery says {'N' * 32}: not "
            "closed; reconcile_orders asks again."
        )

    def test_orderquery_is_asked_in_the_orders_sign_type(self, products, wxpay, settings):
        order = waiting_order(products, sign_type="HMAC-SHA256")
        settings.WECHAT_SIGN_TYPE = "MD5"

        self.close(order, wxpay, **orderquery_paid(order))

        [query] = wxpay.calls(QUERY)
        assert query["sign_type"] == "HMAC-SHA256"


class TestRefundReconcile:
    def answer(self, wxpay, refund: Refund, status: str, **fields) -> None:
        answer = {
            "out_trade_no": refund.order.out_trade_no,
            "refund_count": "1",
            "out_refund_no_0": refund.out_refund_no,
            "refund_id_0": "50300999",
            "refund_fee_0": str(refund.refund_fee),
            "refund_status_0": status,
            "refund_recv_accout_0": "支付用户零钱",
            "refund_success_time_0": "2026-11-27 12:00:05",
        }
        answer.update(fields)
        wxpay.path_fields["/pay/refundquery"] = answer

    def test_wechats_verdict_is_recorded_with_what_it_says(self, paid_an_hour_ago, wxpay):
        refund = Refund.objects.create(
            order=paid_an_hour_ago, out_refund_no="R-1", refund_fee=1000, status="processing"
        )
        self.answer(wxpay, refund, "SUCCESS")

        done = refund_reconcile(refund=refund, query_after=timedelta(0))

        assert done == Reconciled(ReconcileAction.REFUND_RECORDED, "success")
        refund = reload(refund)
        assert (refund.refund_id, refund.recv_account) == ("50300999", "支付用户零钱")
        assert refund.succeeded_at == datetime(2026, 11, 27, 12, 0, 5, tzinfo=BEIJING)

    def test_another_amount_is_a_conflict(self, paid_an_hour_ago, wxpay):
        refund = make_refund(paid_an_hour_ago, 1000)
        self.answer(wxpay, refund, "SUCCESS", refund_fee_0="999")

        done = refund_reconcile(refund=refund, query_after=timedelta(0))

        assert done == Reconciled(ReconcileAction.REFUND_CONFLICT, "success")
        assert reload(refund).status == Refund.Status.PROCESSING

    def test_a_refund_without_a_known_status_is_still_open(self, paid_an_hour_ago, wxpay):
        refund = make_refund(paid_an_hour_ago, 1000)
        self.answer(wxpay, refund, "")

        done = refund_reconcile(refund=refund, query_after=timedelta(0))

        assert done == Reconciled(ReconcileAction.REFUND_STILL_OPEN, "unknown")

    def test_a_refund_exactly_as_old_as_the_wait_is_asked_about(
        self, paid_an_hour_ago, wxpay, monkeypatch
    ):
        refund = make_refund(paid_an_hour_ago, 1000)
        now = refund.updated_at + REFUND_QUERY_AFTER
        monkeypatch.setattr(timezone, "now", lambda: now)  # Django's clock held still
        self.answer(wxpay, refund, "PROCESSING")

        done = refund_reconcile(refund=refund)

        assert done == Reconciled(ReconcileAction.REFUND_STILL_OPEN, "PROCESSING")

    def test_a_younger_refund_waits_for_its_notify(self, paid_an_hour_ago, wxpay, monkeypatch):
        refund = make_refund(paid_an_hour_ago, 1000)
        now = refund.updated_at + REFUND_QUERY_AFTER - timedelta(microseconds=1)
        monkeypatch.setattr(timezone, "now", lambda: now)

        assert refund_reconcile(refund=refund) == Reconciled(ReconcileAction.REFUND_WAITING)
        assert wxpay.calls("/pay/refundquery") == []


class TestReconcilingUnpaidOrders:
    def test_an_order_wechat_never_had_is_closed_once_expired(self, products, wxpay):
        order = waiting_order(products, expires_at=timezone.now() - timedelta(minutes=1))
        wxpay.path_errors[QUERY] = "ORDERNOTEXIST"
        wxpay.path_errors["/pay/closeorder"] = "ORDERNOTEXIST"

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.CLOSED_EXPIRED),)
        assert reload(order).status == Order.Status.CLOSED

    def test_an_order_expiring_this_instant_is_expired(self, products, wxpay, monkeypatch):
        order = waiting_order(products)
        monkeypatch.setattr(timezone, "now", lambda: order.expires_at)  # the clock held still
        wxpay.path_fields[QUERY] = {"trade_state": "NOTPAY"}

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.CLOSED_EXPIRED),)

    def test_an_order_closed_at_wechat_is_closed_here_saying_how(self, products, wxpay):
        order = waiting_order(products)
        wxpay.path_fields[QUERY] = {"trade_state": "CLOSED"}

        assert order_reconcile(order=order) == (
            Reconciled(ReconcileAction.CLOSED_TO_MATCH_WECHAT, "CLOSED"),
        )

    def test_an_order_never_sent_to_wechat_waits_until_it_expires(self, products, wxpay):
        order = make_order(make_shopper(), products)

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.WAITING),)
        assert wxpay.requests_seen == []

    def test_an_expired_order_paid_while_closing_is_recorded(self, products, wxpay):
        order = waiting_order(products, expires_at=timezone.now() - timedelta(minutes=1))
        wxpay.path_fields[QUERY] = {"trade_state": "NOTPAY"}
        wxpay.path_errors["/pay/closeorder"] = "ORDERPAID"

        def paid_when_asked_again(fields):
            # The shopper paid between the first orderquery and closeorder.
            if len(wxpay.calls(QUERY)) == 2:
                wxpay.path_fields[QUERY] = orderquery_paid(order)

        wxpay.observers.append(paid_when_asked_again)

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.PAID_WHILE_CLOSING),)
        assert reload(order).status == Order.Status.PAID


class TestClosingForTheShopper:
    def test_an_order_already_closed_answers_with_itself(self, products, wxpay):
        order = waiting_order(products, status="closed", closed_at=timezone.now())

        result = order_close(order=order)

        assert (result.order, result.closed) == (order, True)
        assert wxpay.requests_seen == []

    def test_wechat_may_close_exactly_five_minutes_after(self, products, wxpay, monkeypatch):
        order = waiting_order(products)
        monkeypatch.setattr(timezone, "now", lambda: order.created_at + WECHAT_CLOSE_MIN_AGE)

        assert order_close(order=order).closed is True

        assert len(wxpay.calls("/pay/closeorder")) == 1
        assert reload(order).close_pending_at_wechat is False

    def test_closeorder_is_signed_in_the_orders_sign_type(self, products, wxpay, settings):
        order = waiting_order(products, sign_type="HMAC-SHA256")
        settings.WECHAT_SIGN_TYPE = "MD5"

        order_close(order=order)

        [sent] = wxpay.calls("/pay/closeorder")
        assert sent["sign_type"] == "HMAC-SHA256"

    def test_an_order_paid_behind_the_callers_back_is_not_closed(self, products, wxpay):
        order = make_order(make_shopper(), products)  # never sent: closed here only
        Order.objects.filter(pk=order.pk).update(
            status="paid", transaction_id=TRANSACTION_ID, paid_at=timezone.now(), paid_fee=4500
        )

        with pytest.raises(OrderNotClosable) as refused:
            order_close(order=order)

        assert refused.value.extra() == {"status": "paid"}
        assert reload(order).status == Order.Status.PAID

    def test_an_order_closed_behind_the_callers_back_is_closed(self, products, wxpay):
        order = make_order(make_shopper(), products)
        Order.objects.filter(pk=order.pk).update(status="closed", closed_at=timezone.now())

        result = order_close(order=order)

        assert (result.closed, result.order.status) == (True, Order.Status.CLOSED)
