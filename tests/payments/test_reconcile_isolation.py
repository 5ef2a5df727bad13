"""reconcile_orders survives one bad order or refund: the others are still done, the bad
one is logged with its traceback and counted, and the run exits non-zero at the end.

Before, anything but a WxPayError (a database error, bad stored data, missing settings)
aborted the whole run, so one poisoned row stopped every later order and refund for good.
"""

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.models import Order
from payments.models import Refund
from payments.refunds import refund_create
from payments.selectors import order_refund_totals
from tests.factories import make_order, make_paid_order

pytestmark = pytest.mark.django_db


def reconcile(*args) -> tuple[str, str, CommandError | None]:
    out, err = StringIO(), StringIO()
    try:
        call_command("reconcile_orders", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def answer_orderquery_per_order(wxpay, answers: dict[str, dict]) -> None:
    """WeChat's orderquery answer chosen by the out_trade_no asked about."""

    def choose(fields: dict) -> None:
        if "out_trade_no" in fields:
            wxpay.path_fields["/pay/orderquery"] = answers.get(
                fields["out_trade_no"], {"trade_state": "NOTPAY"}
            )

    wxpay.observers.append(choose)


def test_an_order_whose_payment_cannot_be_stored_fails_alone(shopper, products, wxpay, caplog):
    already_paid = make_paid_order(shopper, products, n=60)
    first, middle, last = (
        make_order(shopper, products, n=n, prepay_id=f"wx{n}") for n in (25, 20, 15)
    )
    # WeChat reports for the middle order a transaction we recorded on another order:
    # storing it breaks the unique transaction_id (an IntegrityError, not a WxPayError).
    answer_orderquery_per_order(
        wxpay,
        {
            middle.out_trade_no: {
                "trade_state": "SUCCESS",
                "out_trade_no": middle.out_trade_no,
                "transaction_id": already_paid.transaction_id,
                "total_fee": str(middle.total_fee),
                "openid": middle.openid,
                "time_end": "20261127103015",
                "trade_type": "JSAPI",
            }
        },
    )

    with caplog.at_level(logging.ERROR):
        out, err, failure = reconcile()

    asked = [call["out_trade_no"] for call in wxpay.calls("/pay/orderquery")]
    assert asked == [first.out_trade_no, middle.out_trade_no, last.out_trade_no]
    assert "reconcile_orders: 3 orders looked at" in out
    assert "       2  waiting" in out
    assert "       1  failed (IntegrityError)" in out
    assert failure is not None and "1 failed" in str(failure)
    assert failure.returncode != 0
    assert middle.out_trade_no in err
    assert Order.objects.get(pk=middle.pk).status == "unpaid"
    logged = [r for r in caplog.records if r.exc_info and middle.out_trade_no in r.getMessage()]
    assert logged, "the failure is logged with its traceback"


def test_an_order_with_bad_stored_data_fails_alone(shopper, products, wxpay):
    wxpay.path_fields["/pay/orderquery"] = {"trade_state": "NOTPAY"}
    first = make_order(shopper, products, n=25, prepay_id="wx25")
    # A sign type no client can be built for: WxPayConfig raises ValueError.
    make_order(shopper, products, n=20, prepay_id="wx20", sign_type="RSA")
    last = make_order(shopper, products, n=10, prepay_id="wx10")

    out, _, failure = reconcile()

    asked = [call["out_trade_no"] for call in wxpay.calls("/pay/orderquery")]
    assert asked == [first.out_trade_no, last.out_trade_no]
    assert "       1  failed (ValueError)" in out
    assert "       2  waiting" in out
    assert failure is not None


def test_wechat_errors_alone_still_exit_zero(shopper, products, wxpay):
    make_order(shopper, products, n=25, prepay_id="wx25")
    wxpay.path_errors["/pay/orderquery"] = "SYSTEMERROR"

    out, _, failure = reconcile()

    assert "WeChat error (SystemBusy)" in out
    assert failure is None


def test_a_refund_reason_with_an_escape_sequence_does_not_block_later_refunds(
    paid_an_hour_ago, wxpay
):
    poisoned = refund_create(order=paid_an_hour_ago, refund_fee=100, reason="broken").refund
    # Stored before such reasons were refused on the way in.
    Refund.objects.filter(pk=poisoned.pk).update(reason="broken\x1b[31m")
    later = refund_create(order=paid_an_hour_ago, refund_fee=200, reason="late").refund

    out, _, _ = reconcile("--min-age-minutes", "0")

    assert [c["out_refund_no"] for c in wxpay.calls("/secapi/pay/refund")] == [later.out_refund_no]
    assert Refund.objects.get(pk=later.pk).status == "processing"
    poisoned.refresh_from_db()
    # It can never be sent as stored: refused for good (its amount is refundable again),
    # not retried on every run.
    assert poisoned.status == "failed"
    assert "WxPayRequestInvalid" in poisoned.last_error
    assert "reconcile_orders: 2 refunds looked at" in out
    assert (
        order_refund_totals(order=paid_an_hour_ago).refundable == paid_an_hour_ago.total_fee - 200
    )


def test_a_refund_that_raises_fails_alone(paid_an_hour_ago, wxpay, caplog):
    first, middle, last = (
        refund_create(order=paid_an_hour_ago, refund_fee=100, reason=f"r{n}").refund
        for n in range(3)
    )

    def vanish_middle(fields: dict) -> None:
        # Staff delete the middle refund while the run is sending the first.
        if fields.get("out_refund_no") == first.out_refund_no:
            Refund.objects.filter(pk=middle.pk).delete()

    wxpay.observers.append(vanish_middle)

    with caplog.at_level(logging.ERROR):
        out, _, failure = reconcile("--min-age-minutes", "0")

    sent = [c["out_refund_no"] for c in wxpay.calls("/secapi/pay/refund")]
    assert sent == [first.out_refund_no, last.out_refund_no]
    assert "       1  failed (DoesNotExist)" in out
    assert "       2  refund sent again (processing)" in out
    assert failure is not None and failure.returncode != 0
    assert any(r.exc_info and middle.out_refund_no in r.getMessage() for r in caplog.records)
