"""The money path at its edges: what mutation testing found no test for (docs/RELIABILITY.md,
"Mutation testing"). Each test pins one rule a changed line would break unnoticed."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import logging
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order
from orders.services import MAX_TOTAL_FEE
from payments.models import PaymentNotification, Refund
from payments.notify import NotReprocessable, notification_reprocess
from payments.refunds import refund_create
from payments.services import (
    PREPAY_REUSE_MARGIN,
    OrderNotPayable,
    PaymentFields,
    PaymentResult,
    payment_apply,
    payment_prepare,
)
from tests.factories import (
    NOTIFY_SUCCESS,
    REFUND_NOTIFY_URL,
    TRANSACTION_ID,
    make_order,
    make_refund,
    make_shopper,
    notify_body,
    notify_fields,
    post_notify,
    post_refund_notify,
    refund_info,
    reload,
)
from tests.wx import FakeWxPay, refund_notify_body, signed, wx_xml
from wechat.pay_v2 import BEIJING, MAX_BODY_BYTES

Outcome = PaymentNotification.Outcome
SECOND_TRANSACTION = "4200000483202001049999999999"
# What recording and applying one refund notify takes (the refund read with its order).
# 11 since the ledger row is written once, in the transaction that applies it (was 12).
REFUND_NOTIFY_QUERIES = 11


def ledger() -> list[PaymentNotification]:
    return list(PaymentNotification.objects.order_by("pk"))


# -- payment_apply: an order paid after it was closed already has its payment ------------


@pytest.mark.django_db
class TestPaidAfterClosing:
    @pytest.fixture
    def paid_after_closing(self, order) -> Order:
        Order.objects.filter(pk=order.pk).update(status="closed", closed_at=timezone.now())
        assert post_notify(notify_body(order)).content == NOTIFY_SUCCESS
        order = reload(order)
        assert (order.status, order.transaction_id) == (Order.Status.CLOSED, TRANSACTION_ID)
        return order

    def test_the_same_notify_again_is_a_duplicate(self, paid_after_closing):
        assert post_notify(notify_body(paid_after_closing)).content == NOTIFY_SUCCESS

        first, again = ledger()
        assert (first.outcome, again.outcome) == (Outcome.FLAGGED, Outcome.DUPLICATE)
        assert again.detail == "Already recorded."

    def test_a_second_payment_is_paid_twice_and_keeps_the_first(self, paid_after_closing):
        body = notify_body(paid_after_closing, transaction_id=SECOND_TRANSACTION)

        assert post_notify(body).content == NOTIFY_SUCCESS

        order = reload(paid_after_closing)
        assert order.transaction_id == TRANSACTION_ID
        assert f"Paid twice: second transaction {SECOND_TRANSACTION}." in order.attention_reason
        assert ledger()[-1].outcome == Outcome.FLAGGED
        assert ledger()[-1].detail == "A second payment for an order already paid."


# -- payment_apply and order_mark_paid: what the caller holds ------------------------------


@pytest.mark.django_db
def test_the_callers_order_says_paid_after_payment_apply(order):
    paid_at = datetime(2026, 11, 27, 10, 30, 15, tzinfo=BEIJING)
    payment = PaymentFields(
        transaction_id=TRANSACTION_ID, total_fee=4500, openid=order.openid, paid_at=paid_at
    )

    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        result = payment_apply(order=locked, payment=payment)

    assert result == PaymentResult(Outcome.PAID, "Order marked paid.")
    # The caller goes on with this object (the notify's ledger row, reconciliation).
    assert (locked.status, locked.transaction_id, locked.paid_at, locked.paid_fee) == (
        Order.Status.PAID,
        TRANSACTION_ID,
        paid_at,
        4500,
    )
    assert locked.has_payment


# -- payment_prepare ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_order_closed_while_wechat_answers_gets_no_signed_parameters(order, wxpay):
    # The shopper's close (or the reconciler's) lands while unifiedorder is on the wire.
    wxpay.observers.append(lambda fields: Order.objects.filter(pk=order.pk).update(status="closed"))

    with pytest.raises(OrderNotPayable) as refused:
        payment_prepare(order=order)

    assert refused.value.status_code == 409
    assert str(refused.value) == f"Order {order.out_trade_no} stopped being payable."
    assert len(wxpay.calls()) == 1
    assert reload(order).prepay_id == ""


@pytest.mark.django_db
def test_a_prepay_id_lives_two_hours_from_when_it_was_asked_for(order, wxpay):
    before = timezone.now()
    payment = payment_prepare(order=order)
    after = timezone.now()

    order = reload(order)
    assert payment["package"] == f"prepay_id={order.prepay_id}"
    # §3.2: a prepay_id is valid for 2 hours.
    assert before + timedelta(hours=2) <= order.prepay_expires_at <= after + timedelta(hours=2)


@pytest.mark.django_db
def test_an_order_is_paid_again_with_its_own_sign_type_and_address(products, wxpay, settings):
    order = make_order(
        make_shopper(), products, sign_type="HMAC-SHA256", spbill_create_ip="203.0.113.7"
    )
    settings.WECHAT_SIGN_TYPE = "MD5"  # changed since the order was placed

    payment = payment_prepare(order=order)

    [sent] = wxpay.calls()
    assert (sent["sign_type"], sent["spbill_create_ip"]) == ("HMAC-SHA256", "203.0.113.7")
    assert payment["signType"] == "HMAC-SHA256"


@pytest.mark.django_db
def test_a_prepay_id_with_exactly_the_margin_left_is_renewed(order, wxpay, monkeypatch):
    now = timezone.now()
    # Django's clock held still, so "five minutes left" is exact.
    monkeypatch.setattr(timezone, "now", lambda: now)
    Order.objects.filter(pk=order.pk).update(
        prepay_id="wx-old", prepay_expires_at=now + PREPAY_REUSE_MARGIN
    )

    payment = payment_prepare(order=reload(order))

    assert len(wxpay.calls()) == 1
    assert payment["package"] != "prepay_id=wx-old"
    assert reload(order).prepay_expires_at == now + timedelta(hours=2)


@pytest.mark.django_db
def test_a_prepay_id_with_more_than_the_margin_left_is_reused(order, wxpay, monkeypatch):
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    Order.objects.filter(pk=order.pk).update(
        prepay_id="wx-old", prepay_expires_at=now + PREPAY_REUSE_MARGIN + timedelta(seconds=1)
    )

    assert payment_prepare(order=reload(order))["package"] == "prepay_id=wx-old"
    assert wxpay.calls() == []


@pytest.mark.django_db
def test_wechat_pay_is_called_where_and_as_long_as_the_settings_say(order, http_mock, settings):
    settings.WECHAT_PAY_API_BASE = "https://pay-gateway.example.com"
    settings.WECHAT_TIMEOUT = (1.5, 4.0)
    FakeWxPay(http_mock).install()  # answers at the base it finds in the settings

    payment_prepare(order=order)

    [call] = http_mock.calls
    assert call.request.url == "https://pay-gateway.example.com/pay/unifiedorder"
    assert call.request.req_kwargs["timeout"] == (1.5, 4.0)


# -- payment_apply: what does not fit, in the words staff read ---------------------------


@pytest.mark.django_db
class TestWhatDidNotFit:
    def test_every_problem_is_named_in_the_reason(self, order):
        post_notify(notify_body(order, total_fee=1, cash_fee=1, openid="o-someone-else"))

        assert reload(order).attention_reason == (
            f"Payment {TRANSACTION_ID}: amount 1 ≠ order total 4500; payer openid differs "
            "from the order's. Recorded, order closed and its stock returned; refund it."
        )
        assert ledger()[-1].detail == (
            "amount 1 ≠ order total 4500; payer openid differs from the order's"
        )

    def test_a_closed_order_paid_wrongly_says_both(self, order):
        Order.objects.filter(pk=order.pk).update(status="closed", closed_at=timezone.now())

        post_notify(notify_body(order, total_fee=1, cash_fee=1))

        assert reload(order).attention_reason == (
            f"Payment {TRANSACTION_ID}: amount 1 ≠ order total 4500; paid after the order "
            "was closed. Recorded, order closed and its stock returned; refund it."
        )
        assert ledger()[-1].detail == "amount 1 ≠ order total 4500; paid after the order was closed"

    def test_an_open_order_paid_wrongly_does_not_say_closed(self, order):
        post_notify(notify_body(order, total_fee=1, cash_fee=1))

        assert "closed" not in ledger()[-1].detail

    def test_an_order_changed_behind_the_callers_back_is_an_error(self, order):
        stale = reload(order)
        Order.objects.filter(pk=order.pk).update(
            status="paid", transaction_id="42-other", paid_at=timezone.now(), paid_fee=4500
        )
        payment = PaymentFields(
            transaction_id=TRANSACTION_ID, total_fee=4500, openid=order.openid, paid_at=None
        )

        with pytest.raises(RuntimeError) as failed:
            payment_apply(order=stale, payment=payment)

        assert str(failed.value) == f"Order {order.out_trade_no} in unexpected state 'unpaid'."

    def test_a_payment_recorded_behind_the_callers_back_is_an_error(self, order):
        stale = reload(order)
        Order.objects.filter(pk=order.pk).update(
            status="closed", transaction_id="42-other", paid_at=timezone.now(), paid_fee=1
        )
        payment = PaymentFields(
            transaction_id=TRANSACTION_ID, total_fee=1, openid=order.openid, paid_at=None
        )

        with pytest.raises(RuntimeError) as failed:
            payment_apply(order=stale, payment=payment)

        assert str(failed.value) == f"Order {order.out_trade_no} in unexpected state 'unpaid'."
        assert reload(order).transaction_id == "42-other"


# -- refund notifies ---------------------------------------------------------------------


def refund_notify_without_success_time(refund: Refund, status: str, **overrides):
    """WeChat leaves success_time out of REFUNDCLOSE and CHANGE results (§7.3)."""
    info = refund_info(refund, status, **overrides)
    del info["success_time"]
    return post_refund_notify(refund_notify_body(info))


@pytest.mark.django_db
class TestRefundNotifyFields:
    @pytest.mark.parametrize(
        ("wechat_status", "status", "outcome"),
        [
            ("REFUNDCLOSE", Refund.Status.CLOSED, Outcome.REFUND_RECORDED),
            ("CHANGE", Refund.Status.ABNORMAL, Outcome.FLAGGED),
        ],
    )
    def test_a_result_without_success_time_is_recorded(
        self, paid_an_hour_ago, wechat_status, status, outcome
    ):
        refund = make_refund(paid_an_hour_ago, 1000)

        assert refund_notify_without_success_time(refund, wechat_status).content == NOTIFY_SUCCESS

        refund = reload(refund)
        assert (refund.status, refund.succeeded_at) == (status, None)
        assert ledger()[-1].outcome == outcome

    def test_the_refund_id_and_transaction_id_of_the_notify_are_kept(self, paid_an_hour_ago):
        # Recorded but never answered by WeChat: the notify is the first to name refund_id.
        refund = refund_create(order=paid_an_hour_ago, refund_fee=1000, reason="test").refund
        assert refund.refund_id == ""

        post_refund_notify(refund_notify_body(refund_info(refund, refund_id="50300999")))

        refund = reload(refund)
        assert (refund.status, refund.refund_id) == (Refund.Status.SUCCESS, "50300999")
        row = ledger()[-1]
        assert (row.outcome, row.transaction_id, row.out_refund_no) == (
            Outcome.REFUND_RECORDED,
            TRANSACTION_ID,
            refund.out_refund_no,
        )

    def test_an_outside_refund_keeps_wechats_refund_id(self, paid_an_hour_ago):
        outside = Refund(order=paid_an_hour_ago, out_refund_no="WX-OUTSIDE-1", refund_fee=500)
        info = refund_info(outside, refund_id="50300777")
        del info["success_time"]
        info["refund_status"] = "REFUNDCLOSE"

        assert post_refund_notify(refund_notify_body(info)).content == NOTIFY_SUCCESS

        recorded = Refund.objects.get(out_refund_no="WX-OUTSIDE-1")
        assert (recorded.refund_id, recorded.status) == ("50300777", Refund.Status.CLOSED)
        assert ledger()[-1].transaction_id == TRANSACTION_ID


# -- bounds, at the edge -----------------------------------------------------------------


@pytest.mark.django_db
class TestBounds:
    @pytest.mark.parametrize("length", [1, 32])
    def test_a_transaction_id_of_up_to_32_characters_is_paid(self, order, length):
        transaction_id = "4" * length

        assert post_notify(notify_body(order, transaction_id=transaction_id)).content == (
            NOTIFY_SUCCESS
        )

        assert reload(order).transaction_id == transaction_id
        assert ledger()[-1].outcome == Outcome.PAID

    def test_a_transaction_id_of_33_characters_is_refused(self, order):
        assert b"FAIL" in post_notify(notify_body(order, transaction_id="4" * 33)).content

        assert reload(order).status == Order.Status.UNPAID
        assert ledger()[-1].outcome == Outcome.MALFORMED

    @pytest.mark.parametrize("total_fee", [1, MAX_TOTAL_FEE])
    def test_the_smallest_and_largest_amounts_are_paid(self, products, total_fee):
        order = make_order(make_shopper(), products, total_fee=total_fee)

        post_notify(notify_body(order))

        order = reload(order)
        assert (order.status, order.paid_fee) == (Order.Status.PAID, total_fee)

    def test_a_body_of_exactly_64_kib_is_processed(self, order):
        # Fields WeChat adds later are signed like the rest (§2.1): pad with one.
        short = notify_body(order, attach="")
        body = notify_body(order, attach="x" * (MAX_BODY_BYTES - len(short)))
        assert len(body) == MAX_BODY_BYTES

        assert post_notify(body).content == NOTIFY_SUCCESS

        row = ledger()[-1]
        assert (row.outcome, row.body_truncated) == (Outcome.PAID, False)
        assert len(row.raw_body) == MAX_BODY_BYTES


# -- the ledger's detail: what staff read ------------------------------------------------


@pytest.mark.django_db
class TestLedgerDetail:
    def test_a_payment_says_what_it_did(self, order):
        post_notify(notify_body(order))
        post_notify(notify_body(order))

        paid, duplicate = PaymentNotification.objects.order_by("pk")
        assert (paid.detail, duplicate.detail) == ("Order marked paid.", "Already recorded.")

    def test_a_refusal_says_why(self, order):
        post_notify(notify_body(order, key="0" * 32))

        assert ledger()[-1].detail == "Bad signature (MD5)."

    def test_a_flagged_payment_says_what_did_not_fit(self, order):
        post_notify(notify_body(order, total_fee=1, cash_fee=1))

        assert ledger()[-1].detail == "amount 1 ≠ order total 4500"

    def test_a_payment_after_closing_says_so(self, order):
        Order.objects.filter(pk=order.pk).update(status="closed", closed_at=timezone.now())

        post_notify(notify_body(order))

        assert ledger()[-1].detail == "Paid after the order was closed."
        assert reload(order).attention_reason == (
            f"Paid after closing: transaction {TRANSACTION_ID}; refund or ship."
        )


# Every way a payment notify ends, as the ledger row tells staff (outcome, detail, reply).
PAYMENT_PATHS = {
    "return-code-fail": (
        lambda order: wx_xml({"return_code": "FAIL", "return_msg": "x"}),
        Outcome.REJECTED,
        "return_code is not SUCCESS (such notifies are unsigned).",
    ),
    "unknown-order": (
        lambda order: notify_body(order, out_trade_no="T-nobody-knows"),
        Outcome.UNKNOWN_ORDER,
        "No order with this out_trade_no.",
    ),
    "result-code-fail": (
        lambda order: notify_body(order, result_code="FAIL"),
        Outcome.NOT_PAID,
        "result_code 'FAIL'.",
    ),
    "declared-sign-type": (
        lambda order: wx_xml(
            signed(notify_fields(order, sign_type="HMAC-SHA256"), sign_type="HMAC-SHA256")
        ),
        Outcome.REJECTED,
        "sign_type 'HMAC-SHA256' is not the order's (MD5).",
    ),
    "other-appid": (
        lambda order: notify_body(order, appid="wx0000000000000000"),
        Outcome.REJECTED,
        "appid 'wx0000000000000000' is not ours.",
    ),
    "other-mch-id": (
        lambda order: notify_body(order, mch_id="1900000000"),
        Outcome.REJECTED,
        "mch_id '1900000000' is not ours.",
    ),
    "amount-not-a-number": (
        lambda order: notify_body(order, total_fee="12.5"),
        Outcome.MALFORMED,
        "total_fee or time_end is not valid.",
    ),
    "amount-zero": (
        lambda order: notify_body(order, total_fee=0),
        Outcome.MALFORMED,
        "total_fee is out of range.",
    ),
    "no-transaction-id": (
        lambda order: notify_body(order, transaction_id=""),
        Outcome.MALFORMED,
        "transaction_id is missing or too long.",
    ),
    "oversized": (
        lambda order: b"<xml>" + b"x" * MAX_BODY_BYTES + b"</xml>",
        Outcome.MALFORMED,
        f"Body over {MAX_BODY_BYTES} bytes.",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAYMENT_PATHS)
def test_every_payment_notify_path_tells_staff_what_happened(order, path):
    build, outcome, detail = PAYMENT_PATHS[path]

    response = post_notify(build(order))

    row = PaymentNotification.objects.get()
    assert (row.outcome, row.detail) == (outcome, detail)
    acknowledged = outcome == Outcome.NOT_PAID
    assert row.replied == ("SUCCESS" if acknowledged else "FAIL")
    assert (response.content == NOTIFY_SUCCESS) is acknowledged
    assert row.processed_at is not None


@pytest.mark.django_db(transaction=True)  # as in production: no transaction around the request
def test_a_failure_that_cannot_even_be_recorded_still_says_fail(order, caplog):
    def fail_writes(execute, sql, params, many, context):
        # The order cannot be paid, and the row that would say so cannot be written either.
        if 'UPDATE "orders_order"' in sql or 'INSERT INTO "payments_paymentnotification"' in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    body = notify_body(order)
    with connection.execute_wrapper(fail_writes):
        response = post_notify(body, REMOTE_ADDR="203.0.113.9")

    assert b"<return_code><![CDATA[FAIL]]></return_code>" in response.content
    assert not PaymentNotification.objects.exists()
    [record] = [r for r in caplog.records if "could not be recorded" in r.getMessage()]
    assert record.getMessage() == f"notify could not be recorded; body={body!r}"  # the evidence
    assert record.exc_info is not None
    # The processing failure that came first is in the same report.
    assert isinstance(record.exc_info[1].__context__, OperationalError)


@pytest.mark.django_db
def test_a_payment_notify_keeps_at_most_64_characters_of_each_number(order):
    post_notify(notify_body(order, out_trade_no="T" * 100, transaction_id="4" * 100))

    row = ledger()[-1]
    assert (row.out_trade_no, row.transaction_id) == ("T" * 64, "4" * 64)


@pytest.mark.django_db
def test_a_payment_notify_naming_nothing_is_recorded_as_naming_nothing(order):
    fields = notify_fields(order)
    del fields["out_trade_no"], fields["transaction_id"]

    post_notify(wx_xml(signed(fields)))

    row = ledger()[-1]
    assert (row.outcome, row.out_trade_no, row.transaction_id) == (Outcome.UNKNOWN_ORDER, "", "")


@pytest.mark.django_db
def test_a_failure_while_processing_is_logged_and_named_in_the_ledger(order, caplog):
    def fail_order_updates(execute, sql, params, many, context):
        if 'UPDATE "orders_order"' in sql:  # alone, or inside the ledger's statement
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_order_updates):
        post_notify(notify_body(order))

    row = ledger()[-1]
    assert (row.outcome, row.detail) == (Outcome.ERROR, "Processing failed: OperationalError")
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == f"notify {row.pk}: processing failed"
    assert record.exc_info is not None


@pytest.mark.django_db
@pytest.mark.parametrize("named", [True, False])
def test_every_notify_is_one_log_line(order, caplog, named):
    fields = notify_fields(order)
    if not named:
        del fields["out_trade_no"]

    with caplog.at_level(logging.INFO, logger="payments.notify"):
        post_notify(wx_xml(signed(fields)))

    row = ledger()[-1]
    [line] = [r.getMessage() for r in caplog.records if r.name == "payments.notify"]
    if named:
        assert line == (
            f"notify id={row.pk} kind=payment out_trade_no={order.out_trade_no} "
            "outcome=paid replied=SUCCESS"
        )
    else:
        assert line == (
            f"notify id={row.pk} kind=payment out_trade_no=- outcome=unknown_order replied=FAIL"
        )


@pytest.mark.django_db
def test_the_raw_body_is_written_once_and_never_rewritten(order):
    # One row per notify, written once with its outcome, in the commit that applied it (or
    # alone for a refusal): never updated afterwards.
    with CaptureQueriesContext(connection) as queries:
        post_notify(notify_body(order))
        post_notify(notify_body(order))
        post_notify(notify_body(order, key="0" * 32))

    ledger_writes = [
        q["sql"] for q in queries.captured_queries if '"payments_paymentnotification"' in q["sql"]
    ]
    assert ledger_writes
    assert all('INSERT INTO "payments_paymentnotification"' in sql for sql in ledger_writes)
    assert [row.raw_body for row in ledger()] == [
        notify_body(order).decode(),
        notify_body(order).decode(),
        notify_body(order, key="0" * 32).decode(),
    ]


@pytest.mark.django_db
def test_a_payment_notify_without_its_time_is_malformed(order):
    fields = notify_fields(order)
    del fields["time_end"]

    post_notify(wx_xml(signed(fields)))

    row = ledger()[-1]
    assert (row.outcome, row.detail) == (Outcome.MALFORMED, "total_fee or time_end is not valid.")


@pytest.mark.django_db
def test_a_payment_notify_without_its_transaction_id_pays_nothing(order):
    fields = notify_fields(order)
    del fields["transaction_id"]

    post_notify(wx_xml(signed(fields)))

    row = ledger()[-1]
    assert (row.outcome, row.detail) == (
        Outcome.MALFORMED,
        "transaction_id is missing or too long.",
    )
    assert reload(order).status == Order.Status.UNPAID


@pytest.mark.django_db
def test_nul_in_a_body_is_kept_escaped():
    post_notify(b"<xml><a>\x00</a></xml>")

    assert PaymentNotification.objects.get().raw_body == "<xml><a>\\x00</a></xml>"


@pytest.mark.django_db
def test_a_long_declared_sign_type_is_quoted_cut_short(order):
    declared = "HMAC-SHA256" + "-X" * 20
    post_notify(wx_xml(signed(notify_fields(order, sign_type=declared))))

    assert ledger()[-1].detail == f"sign_type {declared[:20]!r} is not the order's (MD5)."


@pytest.mark.django_db
def test_an_unreadable_body_says_why():
    post_notify(b"<xml><a>1</a><a>2</a></xml>")

    row = PaymentNotification.objects.get()
    assert (row.outcome, row.detail) == (
        Outcome.MALFORMED,
        "Unreadable XML: duplicate field <a>",
    )


def _outside(refund: Refund, **overrides) -> dict:
    """A refund of ``refund``'s order made in the merchant platform: not one of ours."""
    return refund_info(refund, **{"out_refund_no": "WX-OUTSIDE-2", "refund_fee": 500, **overrides})


# Every way a refund notify ends (the refund: 10.00 of a paid 45.00 order, processing).
REFUND_PATHS = {
    "return-code-fail": (
        lambda refund: refund_notify_body(refund_info(refund), return_code="FAIL"),
        Outcome.REJECTED,
        "return_code is not SUCCESS.",
    ),
    "other-key": (
        lambda refund: refund_notify_body(refund_info(refund), key="0" * 32),
        Outcome.REJECTED,
        "Not authentic: req_info has invalid padding (wrong key or damaged)",
    ),
    "unknown-status": (
        lambda refund: refund_notify_body(refund_info(refund, status="WAT")),
        Outcome.MALFORMED,
        "refund_status 'WAT' unknown.",
    ),
    "amount-not-a-number": (
        lambda refund: refund_notify_body(refund_info(refund, refund_fee="ten")),
        Outcome.MALFORMED,
        "refund_fee or success_time invalid.",
    ),
    "success-time-unreadable": (
        lambda refund: refund_notify_body(refund_info(refund, success_time="yesterday")),
        Outcome.MALFORMED,
        "refund_fee or success_time invalid.",
    ),
    "another-order": (
        lambda refund: refund_notify_body(refund_info(refund, out_trade_no="T9999")),
        Outcome.REJECTED,
        "out_trade_no is not the refund's order.",
    ),
    "success": (
        lambda refund: refund_notify_body(refund_info(refund)),
        Outcome.REFUND_RECORDED,
        "Refund success.",
    ),
    "another-amount": (
        lambda refund: refund_notify_body(refund_info(refund, refund_fee=999)),
        Outcome.FLAGGED,
        "Does not fit the refund on record; order flagged.",
    ),
    "abnormal": (
        lambda refund: refund_notify_body(refund_info(refund, "CHANGE", success_time="")),
        Outcome.FLAGGED,
        "Refund abnormal (CHANGE); order flagged.",
    ),
    "outside-the-shop": (
        lambda refund: refund_notify_body(_outside(refund)),
        Outcome.FLAGGED,
        "Refund made outside the shop recorded (success); order flagged.",
    ),
    "outside-another-transaction": (
        lambda refund: refund_notify_body(_outside(refund, transaction_id="4200000000000000999")),
        Outcome.REJECTED,
        "transaction_id is not the order's.",
    ),
    "neither-refund-nor-order-known": (
        lambda refund: refund_notify_body(
            refund_info(refund, out_refund_no="R-nobody-knows", out_trade_no="T-nobody-knows")
        ),
        Outcome.UNKNOWN_REFUND,
        "Authentic refund 'R-nobody-knows' of out_trade_no 'T-nobody-knows': neither the "
        "refund nor the order is in this shop. Not recorded; WeChat will send it again.",
    ),
    "outside-nothing-refunded": (
        lambda refund: refund_notify_body(_outside(refund, refund_fee=0)),
        Outcome.MALFORMED,
        "out_refund_no or refund_fee invalid.",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("path", REFUND_PATHS)
def test_every_refund_notify_path_tells_staff_what_happened(paid_an_hour_ago, path):
    build, outcome, detail = REFUND_PATHS[path]
    refund = make_refund(paid_an_hour_ago, 1000)

    response = post_refund_notify(build(refund))

    row = ledger()[-1]
    assert row.kind == PaymentNotification.Kind.REFUND
    assert (row.outcome, row.detail) == (outcome, detail)
    acknowledged = outcome in (Outcome.REFUND_RECORDED, Outcome.FLAGGED)
    assert row.replied == ("SUCCESS" if acknowledged else "FAIL")
    assert (response.content == NOTIFY_SUCCESS) is acknowledged


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("missing", "detail"),
    [
        ("refund_status", "refund_status '' unknown."),
        ("refund_fee", "refund_fee or success_time invalid."),
    ],
)
def test_a_refund_notify_missing_a_field_is_malformed(paid_an_hour_ago, missing, detail):
    info = refund_info(make_refund(paid_an_hour_ago, 1000))
    del info[missing]

    assert b"FAIL" in post_refund_notify(refund_notify_body(info)).content

    row = ledger()[-1]
    assert (row.outcome, row.detail) == (Outcome.MALFORMED, detail)


@pytest.mark.django_db
def test_a_refund_result_without_the_optional_fields_keeps_what_is_known(paid_an_hour_ago):
    refund = make_refund(paid_an_hour_ago, 1000)  # WeChat's answer gave it a refund_id
    known = refund.refund_id
    info = refund_info(refund)
    del info["refund_id"], info["refund_recv_accout"]

    assert post_refund_notify(refund_notify_body(info)).content == NOTIFY_SUCCESS

    refund = reload(refund)
    assert (refund.status, refund.refund_id, refund.recv_account) == (
        Refund.Status.SUCCESS,
        known,
        "",
    )


@pytest.mark.django_db
def test_a_refund_result_says_where_the_money_went(paid_an_hour_ago):
    refund = make_refund(paid_an_hour_ago, 1000)

    post_refund_notify(refund_notify_body(refund_info(refund)))

    assert reload(refund).recv_account == "支付用户零钱"


@pytest.mark.django_db
def test_a_refund_notify_without_its_refund_number_is_malformed(paid_an_hour_ago):
    info = refund_info(make_refund(paid_an_hour_ago, 1000))
    del info["out_refund_no"]

    assert b"FAIL" in post_refund_notify(refund_notify_body(info)).content

    row = ledger()[-1]
    assert (row.outcome, row.detail) == (Outcome.MALFORMED, "out_refund_no or refund_fee invalid.")


@pytest.mark.django_db
def test_a_refund_notify_without_req_info_is_not_authentic(paid_an_hour_ago):
    body = wx_xml(
        {
            "return_code": "SUCCESS",
            "appid": settings.WECHAT_APPID,
            "mch_id": settings.WECHAT_MCH_ID,
            "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        }
    )

    assert b"FAIL" in post_refund_notify(body).content

    row = ledger()[-1]
    assert (row.outcome, row.detail) == (Outcome.REJECTED, "Not authentic: req_info is missing")
    assert row.signature_valid is False


@pytest.mark.django_db
def test_the_ledger_keeps_at_most_64_characters_of_each_number(paid_an_hour_ago):
    refund = Refund(order=paid_an_hour_ago, out_refund_no="R" * 100, refund_fee=500)
    info = refund_info(refund, out_trade_no="T" * 100, transaction_id="4" * 100)

    post_refund_notify(refund_notify_body(info))

    row = ledger()[-1]
    assert (row.out_refund_no, row.out_trade_no, row.transaction_id) == (
        "R" * 64,
        "T" * 64,
        "4" * 64,
    )
    assert row.outcome == Outcome.UNKNOWN_REFUND


@pytest.mark.django_db
def test_a_refund_notify_naming_no_order_is_not_the_refunds(paid_an_hour_ago):
    info = refund_info(make_refund(paid_an_hour_ago, 1000))
    del info["out_trade_no"], info["transaction_id"]

    assert b"FAIL" in post_refund_notify(refund_notify_body(info)).content

    row = ledger()[-1]
    assert (row.outcome, row.out_trade_no, row.transaction_id) == (Outcome.REJECTED, "", "")


@pytest.mark.django_db
def test_a_refund_notify_is_recorded_with_its_sender(paid_an_hour_ago):
    refund = make_refund(paid_an_hour_ago, 1000)

    Client().post(
        REFUND_NOTIFY_URL,
        data=refund_notify_body(refund_info(refund)),
        content_type="text/xml",
        REMOTE_ADDR="203.0.113.5",
    )

    assert ledger()[-1].remote_addr == "203.0.113.5"


@pytest.mark.django_db
def test_a_refund_notify_reads_the_refund_and_its_order_at_once(
    paid_an_hour_ago, django_assert_max_num_queries
):
    refund = make_refund(paid_an_hour_ago, 1000)
    body = refund_notify_body(refund_info(refund))

    with django_assert_max_num_queries(REFUND_NOTIFY_QUERIES):
        assert post_refund_notify(body).content == NOTIFY_SUCCESS


@pytest.mark.django_db
def test_a_payment_notify_without_an_amount_is_malformed(order):
    fields = notify_fields(order)
    del fields["total_fee"]

    assert b"FAIL" in post_notify(wx_xml(signed(fields))).content

    row = ledger()[-1]
    assert (row.outcome, row.detail) == (Outcome.MALFORMED, "total_fee or time_end is not valid.")


@pytest.mark.django_db
def test_an_unknown_refund_status_is_quoted_cut_short(paid_an_hour_ago):
    info = refund_info(make_refund(paid_an_hour_ago, 1000), status="W" * 30)

    post_refund_notify(refund_notify_body(info))

    assert ledger()[-1].detail == f"refund_status {'W' * 20!r} unknown."


@pytest.mark.django_db
def test_an_outside_refund_of_one_fen_is_recorded(paid_an_hour_ago):
    info = refund_info(Refund(order=paid_an_hour_ago, out_refund_no="WX-OUTSIDE-3", refund_fee=1))

    assert post_refund_notify(refund_notify_body(info)).content == NOTIFY_SUCCESS

    assert Refund.objects.get(out_refund_no="WX-OUTSIDE-3").refund_fee == 1


@pytest.mark.django_db
def test_a_body_kept_only_in_part_cannot_be_reprocessed_and_says_so():
    cut = PaymentNotification.objects.create(raw_body="<xml>", body_truncated=True)

    with pytest.raises(NotReprocessable) as refused:
        notification_reprocess(notification=cut)

    assert str(refused.value) == f"Notification {cut.pk}: only its start was kept."


@pytest.mark.django_db
@pytest.mark.parametrize("outside", [False, True])
def test_a_refund_notify_sent_again_is_a_duplicate(paid_an_hour_ago, outside):
    refund = make_refund(paid_an_hour_ago, 1000)
    body = refund_notify_body(_outside(refund) if outside else refund_info(refund))
    post_refund_notify(body)

    assert post_refund_notify(body).content == NOTIFY_SUCCESS

    row = ledger()[-1]
    assert (row.outcome, row.detail, row.replied) == (
        Outcome.DUPLICATE,
        "Already recorded.",
        "SUCCESS",
    )
