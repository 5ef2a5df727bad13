"""Refunds through the simulator: partial and full, results by refund notify
(docs/protocol/wechat-pay-v2.md §7)."""

import time

import pytest

from orders.models import Order
from payments.models import PaymentNotification, Refund
from payments.refunds import refund_create, refund_submit

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_refund(refund: Refund, timeout: float = 10) -> Refund:
    deadline = time.monotonic() + timeout
    while (refund := Refund.objects.get(pk=refund.pk)).status in ("pending", "processing"):
        assert time.monotonic() < deadline, f"refund still {refund.status}"
        time.sleep(0.1)
    return refund


def test_partial_then_full_refund_settled_by_refund_notifies(
    phone, tea, fresh_sim, refund_settings
):
    placed = phone.order([{"product_id": tea.pk, "quantity": 1}])
    phone.request_payment(placed["payment"])
    phone.wait_for_status(placed["out_trade_no"])
    order = Order.objects.get(out_trade_no=placed["out_trade_no"])

    first = refund_submit(
        refund=refund_create(order=order, refund_fee=1500, reason="damaged").refund
    )
    assert first.status == "processing"
    assert wait_for_refund(first).status == "success"
    assert Order.objects.get(pk=order.pk).status == "paid"

    second = refund_submit(
        refund=refund_create(order=order, refund_fee=3000, reason="returned").refund
    )
    assert wait_for_refund(second).status == "success"

    assert phone.wait_for_status(placed["out_trade_no"], "refunded")["status"] == "refunded"
    trade = fresh_sim.control("GET", f"/sim/trades/{placed['out_trade_no']}").json()
    assert trade["refunded_fee"] == 4500
    refund_notifies = PaymentNotification.objects.filter(kind="refund")
    assert sorted(refund_notifies.values_list("outcome", flat=True)) == ["refund_recorded"] * 2
