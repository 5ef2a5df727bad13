"""POST /payment/v3/wxnotify: a v3 payment notify recorded, verified, decrypted and applied
exactly once, answered 204 only after the commit (docs/INVARIANTS.md §6, §9)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import json
import logging
import threading
import time
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from orders.models import Order
from payments.models import PaymentNotification
from payments.notify import notification_reprocess
from tests.factories import get_ok, make_order, make_shopper, reload
from tests.wx_v3 import (
    APIV3_KEY,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    V3_NOTIFY_URL,
    FakeCertificates,
    post_v3,
    shop_transaction,
    signed_headers,
    signed_notify,
)
from wechat.pay_v3 import BEIJING

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pay_v3")]

Outcome = PaymentNotification.Outcome
TRANSACTION_ID = "4200002501202501018123456789"


def v3_order(products, **fields) -> Order:
    """An unpaid ¥45.00 order placed with API v3, of a shopper of its own."""
    return make_order(make_shopper(), products, pay_version="v3", **fields)


def now() -> int:
    return int(time.time())


def pay(order: Order, key, *, serial: str = PUBLIC_KEY_ID, timestamp=None, **changes):
    """WeChat's notify that ``order`` was paid (``changes`` to the transaction), posted."""
    headers, body = signed_notify(
        key, shop_transaction(order, **changes), timestamp=timestamp or now(), serial=serial
    )
    return post_v3(V3_NOTIFY_URL, headers, body)


def ledger() -> list[PaymentNotification]:
    return list(PaymentNotification.objects.order_by("pk"))


def failed(response, status: int, message: str) -> bool:
    return (response.status_code, response.json()) == (
        status,
        {"code": "FAIL", "message": message},
    )


class TestPaid:
    def test_a_signed_notify_pays_the_order_and_is_answered_204(self, products, wechat_key):
        order = v3_order(products)

        response = pay(order, wechat_key)

        assert (response.status_code, response.content) == (204, b"")
        order = reload(order)
        assert (order.status, order.transaction_id, order.paid_fee) == (
            Order.Status.PAID,
            TRANSACTION_ID,
            4500,
        )
        assert order.paid_at == datetime(2025, 1, 1, 8, 0, 30, tzinfo=BEIJING)
        assert not order.needs_attention

    def test_the_ledger_keeps_the_body_the_signature_headers_and_the_outcome(
        self, products, wechat_key
    ):
        order = v3_order(products)
        headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())

        post_v3(V3_NOTIFY_URL, {**headers, "Cookie": "sessionid=x", "X-Trace": "1"}, body)

        [row] = ledger()
        assert (row.api_version, row.kind, row.raw_body) == ("v3", "payment", body.decode())
        assert row.headers == {
            "Content-Type": "application/json",
            **{name: value for name, value in headers.items() if name.startswith("Wechatpay-")},
        }
        assert (row.signature_valid, row.outcome, row.replied, row.order) == (
            True,
            Outcome.PAID,
            "SUCCESS",
            order,
        )
        assert (row.out_trade_no, row.transaction_id, row.remote_addr) == (
            order.out_trade_no,
            TRANSACTION_ID,
            "127.0.0.1",
        )

    def test_a_notify_under_a_certificate_not_held_yet_brings_it_once(
        self, products, platform, http_mock
    ):
        # Public-key mode while WeChat moves this merchant (§3.5): some notifies come
        # signed with a platform certificate the shop has not downloaded.
        certificates = FakeCertificates(
            http_mock, (platform.key, PLATFORM_SERIAL), [(platform.certificate, PLATFORM_SERIAL)]
        )
        first, second = v3_order(products), v3_order(products, n=1)

        assert pay(first, platform.key, serial=PLATFORM_SERIAL).status_code == 204
        other_transaction = "4200002501202501010000000002"
        second_paid = pay(
            second, platform.key, serial=PLATFORM_SERIAL, transaction_id=other_transaction
        )
        assert second_paid.status_code == 204

        assert certificates.calls == 1
        assert reload(second).status == Order.Status.PAID

    def test_a_notify_for_a_v2_order_is_applied_all_the_same(self, products, wechat_key):
        # WeChat signed it: the money is taken, whichever API the order was placed with.
        order = make_order(make_shopper(), products)

        assert pay(order, wechat_key).status_code == 204
        assert reload(order).status == Order.Status.PAID


class TestDuplicates:
    def test_a_duplicate_is_answered_204_and_applied_once(self, products, wechat_key):
        order = v3_order(products)
        headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())

        replies = [post_v3(V3_NOTIFY_URL, headers, body).status_code for _ in range(3)]

        assert replies == [204, 204, 204]
        assert [row.outcome for row in ledger()] == [
            Outcome.PAID,
            Outcome.DUPLICATE,
            Outcome.DUPLICATE,
        ]
        assert reload(order).transaction_id == TRANSACTION_ID

    def test_a_retry_with_a_fresh_timestamp_and_nonce_is_a_duplicate(self, products, wechat_key):
        # Retries are new requests (§3.6): only the transaction_id says it is the same one.
        order = v3_order(products)
        pay(order, wechat_key, timestamp=now() - 60)

        _, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())
        headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=now(), nonce="b" * 32)

        assert post_v3(V3_NOTIFY_URL, headers, body).status_code == 204
        assert ledger()[-1].outcome == Outcome.DUPLICATE

    def test_a_second_transaction_for_a_paid_order_is_flagged(self, products, wechat_key):
        order = v3_order(products)
        pay(order, wechat_key)

        response = pay(order, wechat_key, transaction_id="4200002501202501019999999999")

        assert response.status_code == 204
        order = reload(order)
        assert order.transaction_id == TRANSACTION_ID
        assert order.needs_attention
        assert "4200002501202501019999999999" in order.attention_reason


class TestChecksAgainstTheOrder:
    def test_another_amount_is_recorded_and_flagged_not_paid(self, products, wechat_key):
        order = v3_order(products)

        response = pay(order, wechat_key, amount={"total": 1, "currency": "CNY"})

        assert response.status_code == 204  # recorded: a retry would change nothing
        order = reload(order)
        assert (order.status, order.transaction_id, order.paid_fee) == (
            Order.Status.CLOSED,
            TRANSACTION_ID,
            1,
        )
        assert order.needs_attention
        assert "amount 1" in order.attention_reason
        assert ledger()[0].outcome == Outcome.FLAGGED

    def test_another_payer_is_recorded_and_flagged_not_paid(self, products, wechat_key):
        order = v3_order(products)

        assert pay(order, wechat_key, payer={"openid": "o-someone-else"}).status_code == 204

        order = reload(order)
        assert (order.status, order.needs_attention) == (Order.Status.CLOSED, True)
        assert "openid" in order.attention_reason
        assert ledger()[0].outcome == Outcome.FLAGGED

    def test_a_state_other_than_success_is_acknowledged_and_changes_nothing(
        self, products, wechat_key
    ):
        order = v3_order(products)

        response = pay(order, wechat_key, trade_state="NOTPAY", transaction_id="")

        assert response.status_code == 204
        assert reload(order).status == Order.Status.UNPAID
        assert (ledger()[0].outcome, ledger()[0].detail) == (
            Outcome.NOT_PAID,
            "trade_state 'NOTPAY'.",
        )

    def test_an_unknown_order_is_400_and_kept(self, products, wechat_key):
        order = v3_order(products)
        order.out_trade_no = "20260101000000ffffffffffffffffff"

        response = pay(order, wechat_key)

        assert failed(response, 400, "unknown_order")
        [row] = ledger()
        assert (row.outcome, row.signature_valid, row.out_trade_no) == (
            Outcome.UNKNOWN_ORDER,
            True,
            "20260101000000ffffffffffffffffff",
        )

    @pytest.mark.parametrize(
        "changes", [{"appid": "wx0000000000000000"}, {"mchid": "1900000002"}]
    )
    def test_another_app_or_merchant_is_refused_as_not_ours(self, products, wechat_key, changes):
        order = v3_order(products)

        response = pay(order, wechat_key, **changes)

        assert failed(response, 400, "rejected")
        assert reload(order).status == Order.Status.UNPAID
        row = ledger()[0]
        assert (row.outcome, row.signature_valid) == (Outcome.REJECTED, True)
        assert "is not ours" in row.detail

    @pytest.mark.parametrize(
        "changes",
        [
            {"transaction_id": ""},
            {"transaction_id": "4" * 33},
            {"amount": {"total": 0, "currency": "CNY"}},
            {"amount": {"total": 2**31, "currency": "CNY"}},
            {"amount": {"currency": "CNY"}},
            {"success_time": None},
        ],
    )
    def test_signed_but_unusable_is_400_and_changes_nothing(self, products, wechat_key, changes):
        order = v3_order(products)

        assert failed(pay(order, wechat_key, **changes), 400, "malformed")
        assert reload(order).status == Order.Status.UNPAID
        assert ledger()[0].outcome == Outcome.MALFORMED

    def test_a_refund_notify_sent_to_the_payment_url_is_400(self, products, wechat_key):
        order = v3_order(products)
        resource = {"mchid": "10000100", "out_trade_no": order.out_trade_no, "refund_status": "X"}
        headers, body = signed_notify(
            wechat_key,
            resource,
            timestamp=now(),
            event_type="REFUND.SUCCESS",
            original_type="refund",
            associated_data="refund",
        )

        assert failed(post_v3(V3_NOTIFY_URL, headers, body), 400, "malformed")
        assert reload(order).status == Order.Status.UNPAID


class TestOurOwnFailure:
    def test_a_database_failure_is_500_and_the_retry_pays_once(self, products, wechat_key):
        order = v3_order(products)
        headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())

        def fail_order_updates(execute, sql, params, many, context):
            if 'UPDATE "orders_order"' in sql:  # alone, or inside the ledger's statement
                raise OperationalError("server closed the connection unexpectedly")
            return execute(sql, params, many, context)

        with connection.execute_wrapper(fail_order_updates):
            response = post_v3(V3_NOTIFY_URL, headers, body)

        assert failed(response, 500, "error")
        assert reload(order).status == Order.Status.UNPAID
        [row] = ledger()
        assert (row.outcome, row.raw_body) == (Outcome.ERROR, body.decode())
        # WeChat retries once the database is back: paid, exactly once.
        assert post_v3(V3_NOTIFY_URL, headers, body).status_code == 204
        assert reload(order).status == Order.Status.PAID

    def test_a_notify_that_cannot_even_be_recorded_is_500_and_logged(
        self, products, wechat_key, caplog
    ):
        order = v3_order(products)
        headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())

        def fail_everything(execute, sql, params, many, context):
            raise OperationalError("could not connect to server")

        with connection.execute_wrapper(fail_everything):
            response = post_v3(V3_NOTIFY_URL, headers, body)

        assert failed(response, 500, "error")
        assert "v3 notify could not be recorded" in caplog.text
        assert "EV-2025010108003100000000000001" in caplog.text  # the evidence survives

    def test_an_unconfigured_shop_is_500_so_wechat_retries(self, products, wechat_key, settings):
        settings.WECHAT_API_V3_KEY = ""
        order = v3_order(products)

        assert failed(pay(order, wechat_key), 500, "error")
        assert ledger()[0].outcome == Outcome.ERROR


class TestReprocess:
    def test_a_v3_row_reprocessed_hours_later_is_verified_as_received(
        self, products, wechat_key, monkeypatch
    ):
        order = v3_order(products)
        headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())

        def fail_order_updates(execute, sql, params, many, context):
            if 'UPDATE "orders_order"' in sql:  # alone, or inside the ledger's statement
                raise OperationalError("server closed the connection unexpectedly")
            return execute(sql, params, many, context)

        with connection.execute_wrapper(fail_order_updates):
            post_v3(V3_NOTIFY_URL, headers, body)
        [original] = ledger()
        hours_later = timezone.now() + timedelta(hours=5)
        monkeypatch.setattr(timezone, "now", lambda: hours_later)

        row = notification_reprocess(notification=original)

        assert (row.outcome, row.replied, row.reprocess_of) == (
            Outcome.PAID,
            "SUCCESS",
            original,
        )
        assert (row.api_version, row.headers, row.raw_body) == (
            "v3",
            original.headers,
            original.raw_body,
        )
        assert row.received_at == hours_later
        assert reload(order).status == Order.Status.PAID

    def test_a_paid_row_reprocessed_is_a_duplicate(self, products, wechat_key):
        order = v3_order(products)
        pay(order, wechat_key)
        [original] = ledger()

        again = notification_reprocess(notification=original)
        once_more = notification_reprocess(notification=again)

        assert [again.outcome, once_more.outcome] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
        assert once_more.reprocess_of == original

    def test_a_stale_notify_stays_refused_when_reprocessed(self, products, wechat_key):
        order = v3_order(products)
        pay(order, wechat_key, timestamp=now() - 600)
        [original] = ledger()

        row = notification_reprocess(notification=original)

        assert (original.outcome, row.outcome, row.signature_valid) == (
            Outcome.REJECTED,
            Outcome.REJECTED,
            False,
        )
        assert reload(order).status == Order.Status.UNPAID

    def test_a_forged_row_stays_refused(self, products, wechat_key):
        order = v3_order(products)
        headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())
        original = PaymentNotification.objects.create(
            api_version="v3",
            headers=headers,
            raw_body=body.decode().replace('"EV-', '"EV-X'),
            outcome=Outcome.ERROR,
        )

        assert notification_reprocess(notification=original).outcome == Outcome.REJECTED
        assert reload(order).status == Order.Status.UNPAID


@pytest.mark.parametrize("url", [V3_NOTIFY_URL, "/payment/v3/refundnotify"])
def test_get_is_405(url):
    assert Client().get(url).status_code == 405


def test_the_query_count_is_bounded(products, wechat_key, django_assert_max_num_queries):
    order = v3_order(products)
    # Was 6 (the row alone, then BEGIN, lock, UPDATE, row's UPDATE, COMMIT). Now, in the test's
    # transaction: a savepoint around the one statement that pays and records on PostgreSQL,
    # or around the UPDATE and the INSERT elsewhere (test_notify_commits.py counts them).
    with django_assert_max_num_queries(4):
        assert pay(order, wechat_key).status_code == 204


def test_no_key_is_logged_while_processing(products, wechat_key, caplog):
    order = v3_order(products)
    with caplog.at_level(logging.DEBUG):
        pay(order, wechat_key)
        pay(order, wechat_key, mchid="1900000002")

    assert APIV3_KEY not in caplog.text
    assert "BEGIN PRIVATE KEY" not in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_pay_exactly_once(products, wechat_key):
    order = v3_order(products)
    headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())
    barrier = threading.Barrier(20)
    replies: list[int] = []

    def deliver():
        try:
            barrier.wait()
            replies.append(post_v3(V3_NOTIFY_URL, headers, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert replies == [204] * 20
    outcomes = sorted(PaymentNotification.objects.values_list("outcome", flat=True))
    assert outcomes == [Outcome.DUPLICATE] * 19 + [Outcome.PAID]
    order = reload(order)
    assert (order.status, order.transaction_id) == (Order.Status.PAID, TRANSACTION_ID)


def test_the_answer_body_never_echoes_the_request(products, wechat_key):
    order = v3_order(products)
    order.out_trade_no = "<script>alert(1)</script>"

    response = pay(order, wechat_key)

    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"code": "FAIL", "message": "unknown_order"}


class TestAdmin:
    LEDGER = "/admin/payments/paymentnotification/"

    def test_the_ledger_shows_the_api_and_filters_by_it(self, products, wechat_key, boss_client):
        pay(v3_order(products), wechat_key)
        v2_row = PaymentNotification.objects.create(raw_body="<xml/>", outcome=Outcome.MALFORMED)

        v3_only = get_ok(boss_client, f"{self.LEDGER}?api_version__exact=v3")
        everything = get_ok(boss_client, self.LEDGER)

        v3_row = PaymentNotification.objects.get(api_version="v3")
        assert f"{self.LEDGER}{v3_row.pk}/change/" in v3_only
        assert f"{self.LEDGER}{v2_row.pk}/change/" not in v3_only
        assert "API v3" in everything and "API v2" in everything

    def test_a_v3_row_shows_its_signature_headers_read_only(
        self, products, wechat_key, boss_client
    ):
        order = v3_order(products)
        headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())
        post_v3(V3_NOTIFY_URL, headers, body)
        row = PaymentNotification.objects.get()

        page = get_ok(boss_client, f"{self.LEDGER}{row.pk}/change/")

        assert headers["Wechatpay-Signature"] in page
        assert headers["Wechatpay-Serial"] in page
        assert 'name="headers"' not in page  # evidence: nothing to edit
        assert APIV3_KEY not in page


def test_the_api_schema_lets_a_v3_order_answer_signtype_rsa():
    # POST /payment/order answers signType "RSA" for an order placed with API v3 (§5.1).
    out = StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out
    )

    schema = json.loads(out.getvalue())
    sign_types = schema["components"]["schemas"]["SignTypeEnum"]["enum"]
    assert sign_types == ["MD5", "HMAC-SHA256", "RSA"]
