"""POST /payment/wxnotify: every path of a payment notify (docs/INVARIANTS.md §4, §6.1, §6.2)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import logging
import threading
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.test import Client
from django.utils import timezone

from orders.models import Order
from payments.models import PaymentNotification
from payments.services import PaymentFields, PaymentResult, payment_apply
from tests.factories import (
    NOTIFY_SUCCESS,
    NOTIFY_URL,
    TRANSACTION_ID,
    make_order,
    make_shopper,
    notify_body,
    notify_fields,
    post_notify,
)
from tests.wx import BILLION_LAUGHS, signed, wx_xml
from wechat.pay_v2 import BEIJING

Outcome = PaymentNotification.Outcome


def reload(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def only_notification() -> PaymentNotification:
    return PaymentNotification.objects.get()


@pytest.mark.django_db
class TestHappyPath:
    def test_valid_notify_marks_the_order_paid_and_answers_success(self, order):
        response = post_notify(notify_body(order))

        assert response.status_code == 200
        assert response.content == NOTIFY_SUCCESS
        order = reload(order)
        assert order.status == Order.Status.PAID
        assert order.transaction_id == TRANSACTION_ID
        assert order.paid_at == datetime(2026, 11, 27, 10, 30, 15, tzinfo=BEIJING)
        assert not order.needs_attention

    def test_the_notification_is_kept_with_its_outcome(self, order):
        body = notify_body(order)

        post_notify(body)

        row = only_notification()
        assert row.raw_body == body.decode()
        assert row.remote_addr == "127.0.0.1"
        assert (row.outcome, row.signature_valid, row.replied) == (Outcome.PAID, True, "SUCCESS")
        assert (row.out_trade_no, row.transaction_id, row.order) == (
            order.out_trade_no,
            TRANSACTION_ID,
            order,
        )
        assert row.processed_at is not None

    def test_coupon_and_unknown_fields_are_part_of_the_signature(self, order):
        body = notify_body(
            order,
            cash_fee=order.total_fee - 500,
            coupon_fee=500,
            coupon_count=1,
            coupon_id_0="10000",
            coupon_fee_0=500,
            attach="gift-wrap",
            some_future_field="x",
        )

        assert post_notify(body).content == NOTIFY_SUCCESS
        assert reload(order).status == Order.Status.PAID

    def test_hmac_order_is_verified_with_hmac_even_without_sign_type(self, order):
        Order.objects.filter(pk=order.pk).update(sign_type="HMAC-SHA256")
        # As real WeChat does (docs/protocol/wechat-pay-v2.md §5.3): HMAC-signed, no sign_type
        # field.
        body = notify_body(order, sign_type="HMAC-SHA256")

        assert post_notify(body).content == NOTIFY_SUCCESS
        assert reload(order).status == Order.Status.PAID

    def test_notify_with_explicit_hmac_sign_type_is_accepted(self, order):
        # Declared or not, the algorithm must be the order's own (see test_notify_hardening).
        Order.objects.filter(pk=order.pk).update(sign_type="HMAC-SHA256")
        body = wx_xml(
            signed(notify_fields(order, sign_type="HMAC-SHA256"), sign_type="HMAC-SHA256")
        )

        assert post_notify(body).content == NOTIFY_SUCCESS

    def test_result_code_fail_is_acknowledged_and_the_order_stays_unpaid(self, order):
        response = post_notify(notify_body(order, result_code="FAIL", err_code="NOTENOUGH"))

        assert response.content == NOTIFY_SUCCESS
        assert reload(order).status == Order.Status.UNPAID
        assert only_notification().outcome == Outcome.NOT_PAID


@pytest.mark.django_db
class TestDuplicates:
    def test_duplicate_notify_is_acknowledged_once(self, order):
        body = notify_body(order)

        responses = [post_notify(body) for _ in range(3)]

        assert all(r.content == NOTIFY_SUCCESS for r in responses)
        outcomes = list(
            PaymentNotification.objects.order_by("pk").values_list("outcome", flat=True)
        )
        assert outcomes == [Outcome.PAID, Outcome.DUPLICATE, Outcome.DUPLICATE]
        assert reload(order).transaction_id == TRANSACTION_ID

    def test_a_second_transaction_for_a_paid_order_is_flagged(self, order):
        post_notify(notify_body(order))

        response = post_notify(notify_body(order, transaction_id="4200000000000000000000000999"))

        assert response.content == NOTIFY_SUCCESS
        order = reload(order)
        assert order.transaction_id == TRANSACTION_ID
        assert order.needs_attention
        assert "4200000000000000000000000999" in order.attention_reason


@pytest.mark.django_db
class TestRejected:
    def test_forged_signature_is_fail_and_recorded(self, order):
        body = notify_body(order, key="0" * 32)

        response = post_notify(body)

        assert b"FAIL" in response.content
        assert reload(order).status == Order.Status.UNPAID
        row = only_notification()
        assert (row.outcome, row.signature_valid, row.replied) == (Outcome.REJECTED, False, "FAIL")

    def test_tampered_amount_breaks_the_signature(self, order):
        fields = signed(notify_fields(order))
        fields["total_fee"] = 1

        assert b"FAIL" in post_notify(wx_xml(fields)).content
        assert reload(order).status == Order.Status.UNPAID

    def test_md5_signature_on_an_hmac_order_without_sign_type_is_rejected(self, order):
        Order.objects.filter(pk=order.pk).update(sign_type="HMAC-SHA256")

        assert b"FAIL" in post_notify(notify_body(order, sign_type="MD5")).content
        assert reload(order).status == Order.Status.UNPAID

    def test_missing_sign_is_rejected(self, order):
        assert b"FAIL" in post_notify(wx_xml(notify_fields(order))).content

    @pytest.mark.parametrize(
        "override", [{"appid": "wx0000000000000000"}, {"mch_id": "1900000000"}]
    )
    def test_right_key_but_other_appid_or_merchant_is_rejected(self, order, override):
        response = post_notify(notify_body(order, **override))

        assert b"FAIL" in response.content
        assert reload(order).status == Order.Status.UNPAID
        row = only_notification()
        assert (row.outcome, row.signature_valid) == (Outcome.REJECTED, True)

    def test_a_notify_replayed_for_another_order_is_rejected(self, order, products):
        other = make_order(make_shopper(), products, n=1)
        fields = signed(notify_fields(order))
        fields["out_trade_no"] = other.out_trade_no  # the signature covers out_trade_no

        assert b"FAIL" in post_notify(wx_xml(fields)).content
        assert reload(other).status == Order.Status.UNPAID
        assert reload(order).status == Order.Status.UNPAID

    def test_unknown_order_is_fail_and_recorded(self, order):
        body = notify_body(order, out_trade_no="20260101000000ffffffffffffffffff")

        assert b"FAIL" in post_notify(body).content
        row = only_notification()
        assert (row.outcome, row.out_trade_no) == (
            Outcome.UNKNOWN_ORDER,
            "20260101000000ffffffffffffffffff",
        )

    def test_return_code_fail_is_not_applied(self, order):
        body = wx_xml({"return_code": "FAIL", "return_msg": "whatever"})

        assert b"FAIL" in post_notify(body).content
        assert only_notification().outcome == Outcome.REJECTED

    @pytest.mark.parametrize(
        "override", [{"total_fee": "12.5"}, {"time_end": "yesterday"}, {"transaction_id": ""}]
    )
    def test_signed_but_unusable_fields_are_fail(self, order, override):
        assert b"FAIL" in post_notify(notify_body(order, **override)).content
        assert reload(order).status == Order.Status.UNPAID
        assert only_notification().outcome == Outcome.MALFORMED


@pytest.mark.django_db
class TestFlagged:
    def test_amount_mismatch_is_recorded_flagged_and_not_paid(self, order):
        response = post_notify(notify_body(order, total_fee=1, cash_fee=1))

        assert response.content == NOTIFY_SUCCESS  # recorded: retrying would change nothing
        order = reload(order)
        # Not sold as priced, yet WeChat has the money: closed with its transaction, to refund.
        assert (order.status, order.transaction_id, order.paid_fee) == (
            Order.Status.CLOSED,
            TRANSACTION_ID,
            1,
        )
        assert order.needs_attention
        assert "amount 1" in order.attention_reason
        assert only_notification().outcome == Outcome.FLAGGED

    def test_payer_other_than_the_orders_openid_is_flagged(self, order):
        post_notify(notify_body(order, openid="o-someone-else"))

        order = reload(order)
        assert (order.status, order.transaction_id) == (Order.Status.CLOSED, TRANSACTION_ID)
        assert order.needs_attention

    def test_payment_after_close_is_flagged_not_paid(self, order):
        Order.objects.filter(pk=order.pk).update(status="closed", closed_at=timezone.now())

        response = post_notify(notify_body(order))

        assert response.content == NOTIFY_SUCCESS
        order = reload(order)
        assert order.status == Order.Status.CLOSED
        assert order.needs_attention
        assert order.transaction_id == TRANSACTION_ID
        assert "closing" in order.attention_reason

    def test_repeated_flagged_notifies_record_the_reason_once(self, order):
        body = notify_body(order, total_fee=1)
        post_notify(body)
        post_notify(body)

        assert reload(order).attention_reason.count("amount 1") == 1

    def test_late_payment_of_an_expired_but_unclosed_order_is_paid(self, order):
        # WeChat took the money: the order was still open here, so it is paid.
        Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(hours=1))

        assert post_notify(notify_body(order)).content == NOTIFY_SUCCESS
        assert reload(order).status == Order.Status.PAID


HOSTILE_BODIES = [
    b"",
    b"not xml",
    b"<xml><return_code>NOTIFY_SUCCESS</return_code>",  # truncated
    BILLION_LAUGHS,
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><a>&a;</a></xml>',
    b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>',
    b'<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><xml/>',
    b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><a>1</a></xml>',
    b"<!DOCTYPE xml><xml><a>1</a></xml>",
    b"<xml><a>1</a><a>2</a></xml>",
    b"<xml><a><b>1</b></a></xml>",
    b'<xml a="1"><b>1</b></xml>',
    b"<notxml><a>1</a></notxml>",
    "<xml><a>caf\u00e9</a></xml>".encode("latin-1"),
    b"\xff\xfe<\x00x\x00",
]


@pytest.mark.django_db
class TestHostileBodies:
    @pytest.mark.parametrize("body", HOSTILE_BODIES)
    def test_malformed_or_hostile_body_is_fail_and_kept(self, body):
        response = post_notify(body)

        assert response.status_code == 200
        assert b"<return_code><![CDATA[FAIL]]></return_code>" in response.content
        row = only_notification()
        assert row.outcome == Outcome.MALFORMED
        assert row.raw_body == body.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")

    @pytest.mark.parametrize("body", HOSTILE_BODIES)
    def test_hostile_refund_notify_is_fail_and_kept(self, body):
        response = Client().post("/payment/refundnotify", data=body, content_type="text/xml")

        assert b"<return_code><![CDATA[FAIL]]></return_code>" in response.content
        row = only_notification()
        assert (row.kind, row.replied) == ("refund", "FAIL")

    def test_non_utf8_bytes_are_kept_escaped(self):
        post_notify(b"<xml><a>\xff</a></xml>")

        assert only_notification().raw_body == "<xml><a>\\xff</a></xml>"

    @pytest.mark.parametrize("size", [64 * 1024 + 1, 5 * 1024 * 1024])
    def test_oversized_body_is_fail_and_only_its_start_kept(self, order, size):
        body = notify_body(order)[:-6] + b"<pad>" + b"x" * size + b"</pad></xml>"

        response = post_notify(body)

        assert b"FAIL" in response.content
        row = only_notification()
        assert (row.outcome, row.body_truncated, len(row.raw_body)) == (
            Outcome.MALFORMED,
            True,
            4096,
        )
        assert reload(order).status == Order.Status.UNPAID

    def test_get_is_405(self):
        assert Client().get(NOTIFY_URL).status_code == 405


@pytest.mark.django_db
def test_database_failure_while_processing_is_fail_and_the_body_is_kept(order):
    def fail_order_updates(execute, sql, params, many, context):
        if 'UPDATE "orders_order"' in sql:  # alone, or inside the ledger's statement
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    body = notify_body(order)
    with connection.execute_wrapper(fail_order_updates):
        response = post_notify(body)

    assert b"FAIL" in response.content
    assert reload(order).status == Order.Status.UNPAID
    row = only_notification()
    assert (row.outcome, row.raw_body) == (Outcome.ERROR, body.decode())

    # WeChat retries once the database is back: paid, exactly once.
    assert post_notify(body).content == NOTIFY_SUCCESS
    assert reload(order).status == Order.Status.PAID


@pytest.mark.django_db
def test_notify_that_cannot_even_be_recorded_is_fail_and_logged(order, caplog):
    def fail_everything(execute, sql, params, many, context):
        raise OperationalError("could not connect to server")

    body = notify_body(order)
    with connection.execute_wrapper(fail_everything):
        response = post_notify(body)

    assert response.status_code == 200
    assert b"<return_code><![CDATA[FAIL]]></return_code>" in response.content
    assert order.out_trade_no in caplog.text  # the evidence survives in the log
    assert settings.WECHAT_MCH_KEY not in caplog.text


@pytest.mark.django_db
def test_notify_query_count_is_bounded(order, django_assert_max_num_queries):
    # Was 6 (the row alone, then BEGIN, lock, UPDATE, row's UPDATE, COMMIT). Now, in the test's
    # transaction: a savepoint around the one statement that pays and records on PostgreSQL,
    # or around the UPDATE and the INSERT elsewhere (test_notify_commits.py counts them).
    with django_assert_max_num_queries(4):
        assert post_notify(notify_body(order)).content == NOTIFY_SUCCESS


@pytest.mark.django_db
def test_no_secret_is_logged_while_processing_notifies(order, caplog):
    with caplog.at_level(logging.DEBUG):
        post_notify(notify_body(order))
        post_notify(notify_body(order, key="0" * 32))

    assert settings.WECHAT_MCH_KEY not in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_notifies_pay_exactly_once(products):
    order = make_order(make_shopper(), products)
    body = notify_body(order)
    barrier = threading.Barrier(20)
    replies: list[bytes] = []

    def deliver():
        try:
            barrier.wait()
            replies.append(post_notify(body).content)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert replies == [NOTIFY_SUCCESS] * 20
    outcomes = sorted(PaymentNotification.objects.values_list("outcome", flat=True))
    assert outcomes == [Outcome.DUPLICATE] * 19 + [Outcome.PAID]
    order = reload(order)
    assert (order.status, order.transaction_id) == (Order.Status.PAID, TRANSACTION_ID)


@pytest.mark.django_db
def test_payment_apply_answers_what_it_did_for_the_ledger(order):
    payment = PaymentFields(
        transaction_id=TRANSACTION_ID, total_fee=4500, openid=order.openid, paid_at=timezone.now()
    )

    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        first = payment_apply(order=locked, payment=payment)
        again = payment_apply(order=locked, payment=payment)

    assert first == PaymentResult(Outcome.PAID, "Order marked paid.")
    assert again == PaymentResult(Outcome.DUPLICATE, "Already recorded.")
