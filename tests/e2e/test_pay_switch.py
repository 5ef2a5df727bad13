"""Switching a running shop from WeChat Pay API v2 to v3 (docs/INVARIANTS.md §9): the server
restarted with ``WECHAT_PAY_VERSION=v3`` on the same database, its v2 settings kept. Each
order keeps the API it was placed with, so no order is stranded: v2 orders are refunded,
paid and notified through v2, new orders go through v3.
"""

import time

import pytest

from demo.miniprogram import MiniProgram
from orders.models import Order, Product
from payments.models import PaymentNotification, Refund

pytestmark = pytest.mark.django_db(transaction=True)

Outcome = PaymentNotification.Outcome


def buy(phone: MiniProgram, product: Product) -> dict:
    return phone.order([{"product_id": product.pk, "quantity": 1}])


def wait_for_refund(refund: Refund, timeout: float = 10) -> Refund:
    deadline = time.monotonic() + timeout
    while (refund := Refund.objects.get(pk=refund.pk)).status in ("pending", "processing"):
        assert time.monotonic() < deadline, f"refund still {refund.status}"
        time.sleep(0.1)
    return refund


def requests_seen(sim, path: str) -> int:
    return sim.control("GET", "/sim/stats").json()["requests"].get(path, 0)


def test_switching_a_running_shop_to_v3_strands_no_order(
    restartable_shop, fresh_sim, tea, shop_admin
):
    shop = restartable_shop("v2")
    phone = MiniProgram(shop.url, fresh_sim)
    phone.login()
    paid_v2 = buy(phone, tea)
    phone.request_payment(paid_v2["payment"])
    assert phone.wait_for_status(paid_v2["out_trade_no"])["status"] == "paid"
    unpaid_v2 = buy(phone, tea)
    assert unpaid_v2["payment"]["signType"] == "MD5"

    shop = restartable_shop("v3")

    # The v2 order paid before the switch is refunded through v2, its result by v2's notify.
    order = Order.objects.get(out_trade_no=paid_v2["out_trade_no"])
    assert "accepted by WeChat" in shop_admin(shop).refund(order, reason="Out of stock")
    assert wait_for_refund(Refund.objects.get(order=order)).status == "success"
    assert requests_seen(fresh_sim, "/secapi/pay/refund") == 1
    assert requests_seen(fresh_sim, "/v3/refund/domestic/refunds") == 0
    assert phone.wait_for_status(order.out_trade_no, "refunded")["status"] == "refunded"

    # The v2 order left unpaid is paid again with v2's parameters and v2's notify.
    again = phone.call("POST", "/payment/order", {"out_trade_no": unpaid_v2["out_trade_no"]}).json()
    assert again["payment"]["signType"] == "MD5"
    phone.request_payment(again["payment"])
    assert phone.wait_for_status(unpaid_v2["out_trade_no"])["status"] == "paid"

    # A WeChat retry of a v2 notify from before the switch is still a duplicate, not an error.
    [late] = fresh_sim.control("POST", f"/sim/notify/{paid_v2['out_trade_no']}").json()["attempts"]
    assert late["success"] is True

    # A new order is v3's.
    new = buy(phone, tea)
    assert new["payment"]["signType"] == "RSA"
    phone.request_payment(new["payment"])
    assert phone.wait_for_status(new["out_trade_no"])["status"] == "paid"

    numbers = [paid_v2["out_trade_no"], unpaid_v2["out_trade_no"], new["out_trade_no"]]
    orders = {o.out_trade_no: o for o in Order.objects.filter(out_trade_no__in=numbers)}
    assert [(orders[n].pay_version, orders[n].status) for n in numbers] == [
        ("v2", "refunded"),
        ("v2", "paid"),
        ("v3", "paid"),
    ]
    trades = [fresh_sim.control("GET", f"/sim/trades/{n}").json() for n in numbers]
    assert [t["api"] for t in trades] == ["v2", "v2", "v3"]
    assert [r["api"] for r in trades[0]["refunds"]] == ["v2"]
    ledger = PaymentNotification.objects.order_by("pk")
    assert list(ledger.values_list("out_trade_no", "kind", "api_version", "outcome")) == [
        (numbers[0], "payment", "v2", Outcome.PAID),
        (numbers[0], "refund", "v2", Outcome.REFUND_RECORDED),
        (numbers[1], "payment", "v2", Outcome.PAID),
        (numbers[0], "payment", "v2", Outcome.DUPLICATE),
        (numbers[2], "payment", "v3", Outcome.PAID),
    ]
    assert not Refund.objects.exclude(status=Refund.Status.SUCCESS).exists()
    assert Product.objects.get(pk=tea.pk).stock == 7
