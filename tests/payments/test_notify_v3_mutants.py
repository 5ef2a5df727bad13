"""POST /payment/v3/wxnotify at its edges (mutation testing of payments/notify.py): what a
ledger row says of a v3 payment notify that is no payment, unusable, or not ours (each
value of WeChat's cut to a length that names it without filling the row), what staff are
told when the APIv3 key is wrong, and a reprocess that has to fetch a certificate first."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import logging
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order
from payments.models import PaymentNotification, Refund
from payments.notify import notification_receive_v3, notification_reprocess
from tests.factories import make_order, make_shopper, reload
from tests.wx_v3 import (
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    V3_NOTIFY_URL,
    FakeCertificates,
    post_v3,
    shop_refund,
    shop_transaction,
    signed_headers,
    signed_notify,
    signed_refund_notify,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pay_v3")]

Outcome = PaymentNotification.Outcome


@pytest.fixture
def order(products) -> Order:
    """An unpaid ¥45.00 order placed with API v3."""
    return make_order(make_shopper(), products, pay_version="v3")


def now() -> int:
    return int(time.time())


def pay(order: Order, key, **changes) -> PaymentNotification:
    """WeChat's payment notify for ``order`` (``changes`` to its transaction), posted: the
    ledger row it left."""
    headers, body = signed_notify(key, shop_transaction(order, **changes), timestamp=now())
    post_v3(V3_NOTIFY_URL, headers, body)
    return PaymentNotification.objects.latest("pk")


def test_a_refund_notify_at_the_payment_url_names_its_event_cut_to_40(order, wechat_key):
    event_type = "REFUND." + "S" * 40
    refund = Refund(order=order, out_refund_no="R20251127000000001", refund_fee=4500)
    headers, body = signed_refund_notify(
        wechat_key, shop_refund(refund), timestamp=now(), event_type=event_type
    )

    assert post_v3(V3_NOTIFY_URL, headers, body).status_code == 400
    row = PaymentNotification.objects.get()
    assert (row.outcome, row.detail) == (
        Outcome.MALFORMED,
        f"Not a payment notify ({event_type[:40]!r}).",
    )


def test_a_trade_state_that_took_no_money_is_named_cut_to_20(order, wechat_key):
    state = "NOTPAY_FOR_MANY_MORE_MINUTES"

    row = pay(order, wechat_key, trade_state=state)

    assert (row.outcome, row.detail) == (Outcome.NOT_PAID, f"trade_state {state[:20]!r}.")
    assert reload(order).status == Order.Status.UNPAID


def test_a_payment_without_its_amount_says_what_is_missing(order, wechat_key):
    row = pay(order, wechat_key, amount={"currency": "CNY"})

    assert (row.outcome, row.detail) == (
        Outcome.MALFORMED,
        "amount.total or success_time missing.",
    )
    assert reload(order).status == Order.Status.UNPAID


@pytest.mark.parametrize(("field", "detail"), [("mchid", "mchid"), ("appid", "appid")])
def test_another_merchant_or_app_is_named_cut_to_32(order, wechat_key, field, detail):
    other = "9" * 40

    row = pay(order, wechat_key, **{field: other})

    assert (row.outcome, row.signature_valid, row.detail) == (
        Outcome.REJECTED,
        True,
        f"{detail} {other[:32]!r} is not ours.",
    )
    assert reload(order).status == Order.Status.UNPAID


def test_a_signed_body_that_is_not_json_is_unreadable(order, wechat_key):
    body = b"not json"

    post_v3(V3_NOTIFY_URL, signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=now()), body)

    row = PaymentNotification.objects.get()
    assert (row.outcome, row.signature_valid, row.detail) == (
        Outcome.MALFORMED,
        True,
        "Unreadable: notify body is not JSON",
    )


def test_a_resource_under_another_apiv3_key_tells_staff_which_setting_to_check(
    order, wechat_key, caplog
):
    headers, body = signed_notify(
        wechat_key, shop_transaction(order), timestamp=now(), apiv3_key="0" * 32
    )

    with caplog.at_level(logging.ERROR, logger="payments.notify"):
        post_v3(V3_NOTIFY_URL, headers, body)

    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "v3 notify: resource did not decrypt; is WECHAT_API_V3_KEY the merchant platform's "
        "current APIv3 key?"
    ]
    assert PaymentNotification.objects.get().outcome == Outcome.MALFORMED


def test_a_row_under_a_certificate_fetched_for_its_reprocess_is_verified_as_received(
    order, platform, http_mock
):
    """A notify stored an hour ago (its processing failed), signed under a platform
    certificate the shop does not hold now (§3.5): reprocessed, the certificate is fetched
    and the notify verified once more, still as at its reception (§3.6's window is long
    gone)."""
    FakeCertificates(
        http_mock, (platform.key, PLATFORM_SERIAL), [(platform.certificate, PLATFORM_SERIAL)]
    )
    an_hour_ago = timezone.now() - timedelta(hours=1)
    headers, body = signed_notify(
        platform.key,
        shop_transaction(order),
        timestamp=int(an_hour_ago.timestamp()),
        serial=PLATFORM_SERIAL,
    )
    original = PaymentNotification.objects.create(
        api_version="v3", headers=headers, raw_body=body.decode(), outcome=Outcome.ERROR
    )
    PaymentNotification.objects.filter(pk=original.pk).update(received_at=an_hour_ago)
    original.refresh_from_db()

    row = notification_reprocess(notification=original)

    assert (row.outcome, row.signature_valid) == (Outcome.PAID, True)
    assert reload(order).status == Order.Status.PAID


def test_a_row_keeps_eight_other_wechatpay_headers_each_name_cut_to_64(order, wechat_key):
    """Besides the signature's, a v3 row keeps the first 8 other ``Wechatpay-*`` headers
    (their names cut to 64 characters), and no header of any other family."""
    headers, body = signed_notify(wechat_key, shop_transaction(order), timestamp=now())
    long_name = "Wechatpay-" + "N" * 70
    others = {long_name: "first"} | {f"Wechatpay-Extra-{i}": f"value {i}" for i in range(9)}

    row = notification_receive_v3(
        body=body, headers=headers | others | {"X-Other": "not kept"}, remote_addr=None
    )

    signature = {name: value for name, value in headers.items() if name.startswith("Wechatpay-")}
    kept = {long_name[:64]: "first"} | {f"Wechatpay-Extra-{i}": f"value {i}" for i in range(7)}
    assert row.headers == signature | kept
    assert row.outcome == Outcome.PAID


def test_a_payer_no_column_can_hold_says_so(order, wechat_key):
    row = pay(order, wechat_key, payer={"openid": "oUpF8u\x00MuAJO"})  # JSON carries a NUL

    assert (row.outcome, row.detail) == (
        Outcome.MALFORMED,
        "transaction_id or openid is not storable text.",
    )
    assert reload(order).status == Order.Status.UNPAID


def test_numbers_longer_than_their_columns_are_kept_cut_to_64(order, wechat_key):
    row = pay(order, wechat_key, out_trade_no="T" * 70, transaction_id="4" * 70)

    assert (row.out_trade_no, row.transaction_id) == ("T" * 64, "4" * 64)
    assert reload(order).status == Order.Status.UNPAID


def test_a_v3_notify_says_so_in_its_log_line(order, wechat_key, caplog):
    with caplog.at_level(logging.INFO, logger="payments.notify"):
        row = pay(order, wechat_key)

    [line] = [r.getMessage() for r in caplog.records if r.name == "payments.notify"]
    assert line == (
        f"notify id={row.pk} kind=payment out_trade_no={order.out_trade_no} "
        "outcome=paid replied=SUCCESS api=v3"
    )


def test_the_ledger_keeps_the_moment_of_reception_not_of_its_write(order, wechat_key, monkeypatch):
    """The row is written after processing; received_at is still when the notify arrived
    (a v3 reprocess verifies at that moment), not when the row was written."""
    start, ticks = timezone.now(), iter(range(10_000))
    monkeypatch.setattr(timezone, "now", lambda: start + timedelta(seconds=next(ticks)))

    row = pay(order, wechat_key, out_trade_no="NOT-OURS")

    assert row.outcome == PaymentNotification.Outcome.UNKNOWN_ORDER
    assert row.received_at < row.processed_at
