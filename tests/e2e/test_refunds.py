"""Refunds through the simulator: partial and full, results by refund notify
(docs/protocol/wechat-pay-v2.md §7)."""

import time

import pytest

from orders.models import Order
from payments.models import PaymentNotification, Refund
from payments.refunds import refund_create, refund_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def refund_settings(pay_settings, shop, tmp_path):
    """This process sends refunds to the simulator; their notifies go to the server."""
    for name in ("cert", "key"):
        # requests insists the files exist; over plain HTTP it never reads them.
        (tmp_path / f"apiclient_{name}.pem").write_text("placeholder\n")
    pay_settings.WECHAT_CERT_PATH = str(tmp_path / "apiclient_cert.pem")
    pay_settings.WECHAT_KEY_PATH = str(tmp_path / "apiclient_key.pem")
    pay_settings.WECHAT_NOTIFY_URL = f"{shop.url}/payment/wxnotify"
    return pay_settings


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

    first = refund_submit(refund=refund_create(order=order, refund_fee=1500, reason="damaged"))
    assert first.status == "processing"
    assert wait_for_refund(first).status == "success"
    assert Order.objects.get(pk=order.pk).status == "paid"

    second = refund_submit(refund=refund_create(order=order, refund_fee=3000, reason="returned"))
    assert wait_for_refund(second).status == "success"

    assert phone.wait_for_status(placed["out_trade_no"], "refunded")["status"] == "refunded"
    trade = fresh_sim.control("GET", f"/sim/trades/{placed['out_trade_no']}").json()
    assert trade["refunded_fee"] == 4500
    refund_notifies = PaymentNotification.objects.filter(kind="refund")
    assert sorted(refund_notifies.values_list("outcome", flat=True)) == ["refund_recorded"] * 2
