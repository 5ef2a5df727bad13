"""The whole purchase through real processes: phone → gunicorn → simulator → notify → paid."""

import sqlite3
import threading
import time
from io import StringIO

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection

from demo.miniprogram import FlowError, MiniProgram
from orders.models import Order, Product
from payments.models import PaymentNotification
from payments.services import payment_client
from wechat.pay_v2 import WxPayProtocolError

pytestmark = pytest.mark.django_db(transaction=True)

Outcome = PaymentNotification.Outcome


def buy(phone: MiniProgram, product: Product, quantity: int = 1) -> dict:
    return phone.order([{"product_id": product.pk, "quantity": quantity}])


def test_full_purchase_ends_paid_exactly_once(phone, tea, fresh_sim):
    order = buy(phone, tea, quantity=2)
    assert order["total_fee"] == 9000

    paid = phone.request_payment(order["payment"])
    final = phone.wait_for_status(order["out_trade_no"])

    assert final["status"] == "paid"
    assert final["transaction_id"] == paid["transaction_id"]
    trade = fresh_sim.control("GET", f"/sim/trades/{order['out_trade_no']}").json()
    assert trade["openid"] == phone.openid  # the payer is the buyer
    assert trade["total_fee"] == 9000
    assert [n.outcome for n in PaymentNotification.objects.all()] == [Outcome.PAID]
    assert Product.objects.get(pk=tea.pk).stock == 8


def test_hmac_sha256_purchase_end_to_end(hmac_shop, fresh_sim, tea):
    phone = MiniProgram(hmac_shop.url, fresh_sim)
    phone.login()
    order = buy(phone, tea)
    assert order["payment"]["signType"] == "HMAC-SHA256"

    phone.request_payment(order["payment"])

    assert phone.wait_for_status(order["out_trade_no"])["status"] == "paid"
    trade = fresh_sim.control("GET", f"/sim/trades/{order['out_trade_no']}").json()
    assert trade["sign_type"] == "HMAC-SHA256"


def test_tampered_pay_sign_is_refused_by_wechat(phone, tea):
    order = buy(phone, tea)
    payment = {**order["payment"], "nonceStr": "changed-by-someone"}

    with pytest.raises(FlowError, match="支付验证签名失败"):
        phone.request_payment(payment)


def test_paying_with_another_wechat_user_is_refused(shop, fresh_sim, phone, tea):
    order = buy(phone, tea)
    thief = MiniProgram(shop.url, fresh_sim)
    thief.login()

    response = fresh_sim.control(
        "POST", "/sim/pay", {"payment": order["payment"], "openid": thief.openid}
    )

    assert response.status_code == 409
    assert "下单账号与支付账号不一致" in response.json()["detail"]


def _lock_notifications_for(seconds: float) -> threading.Thread:
    """Make the server's database refuse notify writes for a while, as an outage would."""
    db = connection.settings_dict
    started = threading.Event()

    def hold():
        if connection.vendor == "sqlite":
            conn = sqlite3.connect(db["NAME"], isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
        else:
            conn = psycopg2.connect(
                dbname=db["NAME"], user=db["USER"], host=db["HOST"] or "127.0.0.1", port=db["PORT"]
            )
            conn.cursor().execute("LOCK TABLE payments_paymentnotification IN EXCLUSIVE MODE")
        started.set()
        time.sleep(seconds)
        conn.rollback()
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    started.wait(5)
    return thread


def test_notify_failing_while_the_database_is_down_is_retried_and_paid_once(phone, tea, fresh_sim):
    order = buy(phone, tea)
    outage = _lock_notifications_for(2.5)

    phone.request_payment(order["payment"])
    outage.join()
    final = phone.wait_for_status(order["out_trade_no"])

    assert final["status"] == "paid"
    attempts = fresh_sim.control("GET", f"/sim/trades/{order['out_trade_no']}").json()[
        "notify_attempts"
    ]
    assert attempts[0]["success"] is False  # answered FAIL during the outage
    assert attempts[-1]["success"] is True
    outcomes = list(PaymentNotification.objects.values_list("outcome", flat=True))
    assert outcomes.count(Outcome.PAID) == 1
    assert set(outcomes) <= {Outcome.PAID, Outcome.DUPLICATE, Outcome.ERROR}


def test_concurrent_duplicate_notifies_pay_once(phone, tea, fresh_sim):
    order = buy(phone, tea)
    phone.request_payment(order["payment"])
    phone.wait_for_status(order["out_trade_no"])

    copies = fresh_sim.control(
        "POST", f"/sim/notify/{order['out_trade_no']}", {"copies": 12, "concurrent": True}
    ).json()["attempts"]

    assert all(attempt["success"] for attempt in copies)
    outcomes = sorted(PaymentNotification.objects.values_list("outcome", flat=True))
    assert outcomes == [Outcome.DUPLICATE] * 12 + [Outcome.PAID]
    assert Order.objects.get(out_trade_no=order["out_trade_no"]).status == "paid"


def test_dropped_notify_is_recovered_by_reconcile_orders(phone, tea, fresh_sim, pay_settings):
    fresh_sim.control("POST", "/sim/faults", {"notify": "drop", "count": 1})
    order = buy(phone, tea)
    phone.request_payment(order["payment"])
    assert phone.wait_for_status(order["out_trade_no"], timeout=1)["status"] == "unpaid"

    out = StringIO()
    call_command("reconcile_orders", "--min-age-minutes", "0", stdout=out)

    assert "payment recorded (paid)" in out.getvalue()
    assert phone.wait_for_status(order["out_trade_no"], timeout=1)["status"] == "paid"
    assert not PaymentNotification.objects.exists()


@pytest.mark.parametrize(
    ("fault", "err_code"),
    [
        ({"mode": "systemerror"}, "SYSTEMERROR"),
        ({"mode": "http500"}, None),
        ({"mode": "garbage"}, None),
        ({"mode": "bad_sign"}, None),
        ({"mode": "slow", "delay_ms": 3000}, None),  # past the server's 2 s read timeout
    ],
)
def test_upstream_faults_are_502_and_the_order_can_be_paid_later(
    phone, tea, fresh_sim, fault, err_code
):
    fresh_sim.control("POST", "/sim/faults", {"path": "/pay/unifiedorder", "count": 1, **fault})

    response = phone.call(
        "POST",
        "/payment/order",
        {"items": [{"product_id": tea.pk, "quantity": 1}], "address": phone.choose_address()},
        expect=None,
    )

    assert response.status_code == 502
    assert response.json().get("err_code") == err_code
    out_trade_no = response.json()["out_trade_no"]
    again = phone.call("POST", "/payment/order", {"out_trade_no": out_trade_no}).json()
    phone.request_payment(again["payment"])
    assert phone.wait_for_status(out_trade_no)["status"] == "paid"


def test_close_then_late_payment_is_flagged_for_staff(phone, tea, fresh_sim):
    order = buy(phone, tea)
    closed = phone.call("POST", f"/orders/{order['out_trade_no']}/close").json()
    assert closed["status"] == "closed"
    assert Product.objects.get(pk=tea.pk).stock == 10

    # Within WeChat's first 5 minutes the prepay is still alive: the user pays anyway.
    phone.request_payment(order["payment"])
    deadline = time.monotonic() + 10
    while not Order.objects.get(out_trade_no=order["out_trade_no"]).needs_attention:
        assert time.monotonic() < deadline, "late payment was not flagged"
        time.sleep(0.1)

    flagged = Order.objects.get(out_trade_no=order["out_trade_no"])
    assert flagged.status == "closed"
    assert flagged.transaction_id
    assert "Paid after closing" in flagged.attention_reason


def test_simulator_refuses_a_request_signed_with_the_wrong_key(fresh_sim, pay_settings):
    pay_settings.WECHAT_MCH_KEY = "0" * 32

    with pytest.raises(WxPayProtocolError, match="签名错误"):
        payment_client().order_query(out_trade_no="20260101000000aaaaaaaaaaaaaaaaaa")
