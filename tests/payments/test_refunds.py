"""Refunds end to end: services, POST /payment/refundnotify, reconciliation
(docs/protocol/wechat-pay-v2.md §7)."""

import logging
import threading
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from core.config import WeChatNotConfigured
from orders.models import Order
from payments.lifecycle import ReconcileAction, Reconciled, order_reconcile, refund_reconcile
from payments.models import PaymentNotification, Refund
from payments.refunds import (
    OrderAlreadyRefunded,
    RefundAmountInvalid,
    RefundApplied,
    RefundNotAllowed,
    refund_apply_result,
    refund_create,
    refund_notify_url,
    refund_submit,
)
from tests.factories import (
    NOTIFY_SUCCESS,
    REFUND_NOTIFY_URL,
    make_order,
    make_refund,
    make_shopper,
    notify_body,
    notify_refund,
    post_notify,
    post_refund_notify,
    refund_info,
    reload,
)
from tests.wx import refund_id_for, refund_notify_body
from wechat.pay_v2 import BEIJING

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("refund_certificate")]

REFUND = "/secapi/pay/refund"
Outcome = PaymentNotification.Outcome
Status = Refund.Status


def refund_rows() -> list[PaymentNotification]:
    return list(PaymentNotification.objects.filter(kind="refund").order_by("pk"))


class TestCreateAndSubmit:
    def test_partial_then_full_refund_leaves_the_order_refunded(self, paid, wxpay):
        first = make_refund(paid, 1500)
        assert first.status == Status.PROCESSING
        assert first.refund_id == refund_id_for(first.out_refund_no)
        assert notify_refund(first).content == NOTIFY_SUCCESS
        assert reload(paid).status == Order.Status.PAID

        second = make_refund(paid, 3000)
        assert notify_refund(second).content == NOTIFY_SUCCESS

        assert reload(paid).status == Order.Status.REFUNDED
        assert [r.status for r in paid.refunds.order_by("pk")] == [Status.SUCCESS] * 2
        assert reload(first).succeeded_at == datetime(2026, 11, 27, 12, 0, 5, tzinfo=BEIJING)
        assert reload(first).recv_account == "支付用户零钱"

    def test_the_refund_request_is_what_the_sheet_asks_for(self, paid, wxpay):
        created = make_refund(paid, 1500)

        [call] = wxpay.calls(REFUND)
        assert call["_cert"] == (settings.WECHAT_CERT_PATH, settings.WECHAT_KEY_PATH)
        assert (call["out_trade_no"], call["out_refund_no"]) == (
            paid.out_trade_no,
            created.out_refund_no,
        )
        assert (call["total_fee"], call["refund_fee"]) == ("4500", "1500")
        assert call["refund_desc"] == "test"
        assert call["notify_url"] == "https://shop.example.com/payment/refundnotify"
        assert created.out_refund_no.startswith("R") and len(created.out_refund_no) <= 32

    def test_over_refund_is_refused_without_calling_wechat(self, paid, wxpay):
        with pytest.raises(RefundAmountInvalid, match=r"¥45\.00"):
            refund_create(order=paid, refund_fee=4501, reason="")
        make_refund(paid, 3000)

        with pytest.raises(RefundAmountInvalid, match=r"¥15\.00"):
            refund_create(order=paid, refund_fee=1501, reason="")

        assert len(wxpay.calls(REFUND)) == 1
        assert paid.refunds.count() == 1

    @pytest.mark.parametrize("fee", [0, -5, True, 1.5])
    def test_amount_must_be_positive_integer_fen(self, paid, wxpay, fee):
        with pytest.raises(RefundAmountInvalid):
            refund_create(order=paid, refund_fee=fee, reason="")

    def test_order_paid_after_closing_can_be_refunded_in_full(self, products, wxpay):
        order = make_order(make_shopper(), products)
        Order.objects.filter(pk=order.pk).update(status="closed", closed_at=timezone.now())
        post_notify(notify_body(order))  # money taken for a closed order: flagged "refund or ship"

        done = make_refund(Order.objects.get(pk=order.pk), 4500)
        assert notify_refund(done).content == NOTIFY_SUCCESS

        assert reload(order).status == Order.Status.REFUNDED

    def test_closed_order_without_a_payment_is_refused(self, products, wxpay):
        order = make_order(make_shopper(), products, status="closed")

        with pytest.raises(RefundNotAllowed, match="closed"):
            refund_create(order=order, refund_fee=100, reason="")

    def test_unpaid_order_is_refused(self, products, wxpay):
        order = make_order(make_shopper(), products)

        with pytest.raises(RefundNotAllowed, match="unpaid"):
            refund_create(order=order, refund_fee=100, reason="")
        assert wxpay.requests_seen == []

    def test_fully_refunded_order_is_refused(self, paid, wxpay):
        notify_refund(make_refund(paid, 4500))

        with pytest.raises(OrderAlreadyRefunded):
            refund_create(order=paid, refund_fee=1, reason="")

    def test_retry_after_systemerror_reuses_the_refund_number(self, paid, wxpay):
        wxpay.path_error_queue[REFUND] = ["SYSTEMERROR"]

        created = make_refund(paid, 1500)
        assert created.status == Status.PENDING
        assert "SYSTEMERROR" in created.last_error

        again = refund_submit(refund=created)

        assert again.status == Status.PROCESSING
        assert again.last_error == ""
        numbers = [c["out_refund_no"] for c in wxpay.calls(REFUND)]
        assert numbers == [created.out_refund_no] * 2

    def test_no_answer_leaves_it_pending_and_its_amount_reserved(self, paid, wxpay):
        wxpay.http_status = 502

        created = make_refund(paid, 4000)

        assert created.status == Status.PENDING
        assert "WxPayUnavailable" in created.last_error
        with pytest.raises(RefundAmountInvalid):
            refund_create(order=paid, refund_fee=501, reason="")

    def test_definitive_refusal_fails_and_frees_the_amount(self, paid, wxpay):
        wxpay.path_error_queue[REFUND] = ["NOTENOUGH"]

        refused = make_refund(paid, 4500)

        assert refused.status == Status.FAILED
        assert "NOTENOUGH" in refused.last_error
        assert make_refund(paid, 4500).status == Status.PROCESSING
        assert refund_submit(refund=refused).status == Status.FAILED  # never sent again
        assert len(wxpay.calls(REFUND)) == 2

    def test_missing_certificate_setting_is_a_clear_error_and_nothing_is_recorded(
        self, paid, wxpay, settings
    ):
        settings.WECHAT_KEY_PATH = ""

        with pytest.raises(WeChatNotConfigured, match="WECHAT_KEY_PATH"):
            refund_create(order=paid, refund_fee=100, reason="")
        assert not Refund.objects.exists()
        assert wxpay.requests_seen == []

    def test_refund_notify_url_can_be_set_apart(self, settings):
        assert refund_notify_url() == "https://shop.example.com/payment/refundnotify"
        settings.WECHAT_NOTIFY_URL = "https://shop.example.com/api/payment/wxnotify?x=1"
        assert refund_notify_url() == "https://shop.example.com/api/payment/refundnotify"
        settings.WECHAT_REFUND_NOTIFY_URL = "https://other.example.com/r"
        assert refund_notify_url() == "https://other.example.com/r"


class TestRefundNotify:
    def test_success_is_applied_once_and_duplicates_acknowledged(self, paid, wxpay):
        created = make_refund(paid, 4500)
        body = refund_notify_body(refund_info(created))

        replies = [post_refund_notify(body).content for _ in range(3)]

        assert replies == [NOTIFY_SUCCESS] * 3
        rows = refund_rows()
        assert [r.outcome for r in rows] == [
            Outcome.REFUND_RECORDED,
            Outcome.DUPLICATE,
            Outcome.DUPLICATE,
        ]
        assert (rows[0].refund, rows[0].order, rows[0].signature_valid) == (
            created,
            paid,
            True,
        )
        assert rows[0].out_refund_no == created.out_refund_no
        assert reload(created).status == Status.SUCCESS
        assert reload(paid).status == Order.Status.REFUNDED

    def test_notify_before_the_submit_answer_is_kept(self, paid, wxpay):
        created = refund_create(order=paid, refund_fee=4500, reason="").refund
        notify_refund(created)

        assert refund_submit(refund=created).status == Status.SUCCESS
        assert wxpay.calls(REFUND) == []

    def test_refundclose_closes_it_and_frees_the_amount(self, paid, wxpay):
        created = make_refund(paid, 4500)

        assert notify_refund(created, "REFUNDCLOSE", success_time="").content == NOTIFY_SUCCESS

        assert reload(created).status == Status.CLOSED
        assert reload(paid).status == Order.Status.PAID
        assert make_refund(paid, 4500).status == Status.PROCESSING

    def test_change_is_abnormal_and_flags_the_order(self, paid, wxpay):
        created = make_refund(paid, 1000)

        assert notify_refund(created, "CHANGE", success_time="").content == NOTIFY_SUCCESS

        assert reload(created).status == Status.ABNORMAL
        order = reload(paid)
        assert (order.status, order.needs_attention) == (Order.Status.PAID, True)
        assert created.out_refund_no in order.attention_reason
        assert refund_rows()[0].outcome == Outcome.FLAGGED
        with pytest.raises(RefundAmountInvalid):  # settled by hand, not refunded again
            refund_create(order=paid, refund_fee=3501, reason="")

    def test_a_different_amount_is_flagged_not_applied(self, paid, wxpay):
        created = make_refund(paid, 1000)

        assert notify_refund(created, refund_fee=4500).content == NOTIFY_SUCCESS

        assert reload(created).status == Status.PROCESSING
        assert reload(paid).needs_attention
        assert refund_rows()[0].outcome == Outcome.FLAGGED

    def test_req_info_encrypted_with_another_key_is_fail_and_recorded(self, paid, wxpay):
        created = make_refund(paid, 4500)

        response = post_refund_notify(refund_notify_body(refund_info(created), key="0" * 32))

        assert b"<return_code><![CDATA[FAIL]]></return_code>" in response.content
        assert reload(created).status == Status.PROCESSING
        [row] = refund_rows()
        assert (row.outcome, row.signature_valid, row.replied) == (
            Outcome.REJECTED,
            False,
            "FAIL",
        )

    @pytest.mark.parametrize(
        "outer",
        [
            {"req_info": "not base64!"},
            {"req_info": "QUJDREVGR0hJSktMTU5PUA=="},
            {"req_info": ""},
            {"appid": "wx0000000000000000"},
            {"mch_id": "1900000000"},
            {"return_code": "FAIL"},
        ],
        ids=["garbage", "one-block", "empty", "appid", "mch_id", "return-fail"],
    )
    def test_forged_or_foreign_envelopes_are_fail_and_recorded(self, paid, wxpay, outer):
        created = make_refund(paid, 4500)

        response = post_refund_notify(refund_notify_body(refund_info(created), **outer))

        assert b"FAIL" in response.content
        assert reload(created).status == Status.PROCESSING
        [row] = refund_rows()
        assert (row.outcome, row.replied) == (Outcome.REJECTED, "FAIL")

    def test_unknown_refund_of_an_unknown_order_is_fail_and_recorded(self, paid, wxpay):
        # An unknown refund of a known order is one made outside the shop, and recorded
        # (test_notify_hardening.py); with neither known there is nothing to record it on.
        created = make_refund(paid, 4500)

        body = refund_notify_body(
            refund_info(created, out_refund_no="R-nobody-knows", out_trade_no="T-nobody-knows")
        )

        assert b"FAIL" in post_refund_notify(body).content
        [row] = refund_rows()
        assert (row.outcome, row.out_refund_no) == (Outcome.UNKNOWN_REFUND, "R-nobody-knows")

    def test_refund_of_another_order_is_fail_and_recorded(self, paid, wxpay):
        created = make_refund(paid, 4500)

        body = refund_notify_body(refund_info(created, out_trade_no="T9999"))

        assert b"FAIL" in post_refund_notify(body).content
        assert reload(created).status == Status.PROCESSING
        assert refund_rows()[0].outcome == Outcome.REJECTED

    @pytest.mark.parametrize(
        "body", [b"", b"<xml><a>1</a>", b"<!DOCTYPE x [<!ENTITY a 'b'>]><xml>&a;</xml>"]
    )
    def test_unreadable_bodies_are_fail_and_kept(self, body):
        assert b"FAIL" in post_refund_notify(body).content
        [row] = refund_rows()
        assert (row.outcome, row.raw_body) == (Outcome.MALFORMED, body.decode())

    def test_get_is_405(self):
        assert Client().get(REFUND_NOTIFY_URL).status_code == 405


class TestReconcile:
    def age(self, refund: Refund, minutes: int = 10) -> None:
        Refund.objects.filter(pk=refund.pk).update(
            updated_at=timezone.now() - timedelta(minutes=minutes)
        )

    def query_says(self, wxpay, refund: Refund, status: str, **fields) -> None:
        answer = {
            "out_trade_no": refund.order.out_trade_no,
            "refund_count": "1",
            "out_refund_no_0": refund.out_refund_no,
            "refund_id_0": refund_id_for(refund.out_refund_no),
            "refund_fee_0": str(refund.refund_fee),
            "refund_status_0": status,
            "refund_recv_accout_0": "支付用户零钱",
        }
        if status == "SUCCESS":
            answer["refund_success_time_0"] = "2026-11-27 12:00:05"
        answer.update(fields)
        wxpay.path_fields["/pay/refundquery"] = answer

    def reconcile(self) -> str:
        out = StringIO()
        call_command("reconcile_orders", stdout=out, stderr=StringIO())
        return out.getvalue()

    def test_processing_refund_whose_notify_never_came_is_settled_by_query(self, paid, wxpay):
        created = make_refund(paid, 4500)
        self.age(created)
        self.query_says(wxpay, created, "SUCCESS")

        output = self.reconcile()

        assert "1 refunds looked at" in output
        assert "refund result recorded (success)" in output
        assert reload(created).status == Status.SUCCESS
        assert reload(paid).status == Order.Status.REFUNDED
        [query] = wxpay.calls("/pay/refundquery")
        assert (query["out_refund_no"], query["_cert"]) == (created.out_refund_no, None)

    def test_recent_processing_refunds_are_left_to_their_notify(self, paid, wxpay):
        make_refund(paid, 4500)

        assert "0 refunds looked at" in self.reconcile()
        assert wxpay.calls("/pay/refundquery") == []

    def test_refund_still_processing_at_wechat_waits(self, paid, wxpay):
        created = make_refund(paid, 4500)
        self.age(created)
        self.query_says(wxpay, created, "PROCESSING")

        assert "refund still open at WeChat (PROCESSING)" in self.reconcile()
        assert reload(created).status == Status.PROCESSING

    def test_pending_refund_is_sent_again_with_the_same_number(self, paid, wxpay):
        wxpay.path_error_queue[REFUND] = ["SYSTEMERROR"]
        created = make_refund(paid, 4500)
        self.age(created)

        assert "refund sent again (processing)" in self.reconcile()

        assert [c["out_refund_no"] for c in wxpay.calls(REFUND)] == [created.out_refund_no] * 2
        assert reload(created).status == Status.PROCESSING

    def test_wechat_errors_are_counted(self, paid, wxpay):
        created = make_refund(paid, 4500)
        self.age(created)
        wxpay.path_errors["/pay/refundquery"] = "SYSTEMERROR"

        assert "refund: WeChat error (SystemBusy)" in self.reconcile()
        assert reload(created).status == Status.PROCESSING

    def test_asking_about_a_paid_order_settles_its_refunds_at_once(self, paid, wxpay):
        created = make_refund(paid, 1000)
        self.query_says(wxpay, created, "REFUNDCLOSE")

        assert order_reconcile(order=paid) == (
            Reconciled(ReconcileAction.REFUND_RECORDED, "closed"),
        )
        assert reload(created).status == Status.CLOSED
        assert refund_reconcile(refund=reload(created)) == Reconciled(ReconcileAction.NOTHING_TO_DO)

    def test_each_refund_of_a_paid_order_is_one_action(self, paid, wxpay):
        wxpay.path_error_queue[REFUND] = ["SYSTEMERROR"]
        make_refund(paid, 1000)  # left pending
        processing = make_refund(paid, 1000)
        self.query_says(wxpay, processing, "PROCESSING")

        assert order_reconcile(order=paid) == (
            Reconciled(ReconcileAction.REFUND_SENT_AGAIN, "processing"),
            Reconciled(ReconcileAction.REFUND_STILL_OPEN, "PROCESSING"),
        )

    def test_a_paid_order_without_open_refunds_has_nothing_to_do(self, paid, wxpay):
        assert order_reconcile(order=paid) == (Reconciled(ReconcileAction.NOTHING_TO_DO),)


def test_a_result_is_applied_once_and_a_conflicting_one_never(paid, wxpay):
    created = make_refund(paid, 1000)

    def apply(status, fee=1000):
        return refund_apply_result(refund=created, status=status, refund_fee=fee)

    assert apply(Status.SUCCESS) is RefundApplied.APPLIED
    assert apply(Status.SUCCESS) is RefundApplied.DUPLICATE
    assert apply(Status.CLOSED) is RefundApplied.CONFLICT
    assert reload(created).status == Status.SUCCESS


def test_no_secret_is_logged_while_refunding(paid, wxpay, caplog):
    with caplog.at_level(logging.DEBUG):
        created = make_refund(paid, 4500)
        notify_refund(created)
        post_refund_notify(refund_notify_body(refund_info(created), key="0" * 32))

    assert settings.WECHAT_MCH_KEY not in caplog.text
    assert created.out_refund_no in caplog.text


@pytest.mark.django_db(transaction=True)
def test_wechat_is_called_outside_any_transaction(paid, wxpay):
    in_transaction = []
    wxpay.observers.append(lambda fields: in_transaction.append(connection.in_atomic_block))

    make_refund(paid, 4500)

    assert in_transaction == [False]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_never_exceed_what_was_paid(paid):
    barrier = threading.Barrier(10)
    created, refused = [], []

    def refund_a_fifth():
        try:
            barrier.wait()
            order = Order.objects.get(pk=paid.pk)
            created.append(refund_create(order=order, refund_fee=900, reason="split").refund)
        except RefundAmountInvalid:
            refused.append(True)
        finally:
            connection.close()

    threads = [threading.Thread(target=refund_a_fifth) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (len(created), len(refused)) == (5, 5)
    assert sum(r.refund_fee for r in Refund.objects.filter(order=paid)) == 4500
