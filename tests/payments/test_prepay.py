"""unifiedorder and the wx.requestPayment parameters returned by POST /payment/order."""

import time
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone

from orders.models import Order
from tests.factories import client_for, delivery_address, make_shopper
from tests.wx import wx_sign
from wechat.pay_v2 import format_wx_time

pytestmark = pytest.mark.django_db

PAY = "/payment/order"


def assert_pay_sign_valid(payment: dict, sign_type: str) -> None:
    """Re-verify paySign the way WeChat's client does (docs/protocol/wechat-pay-v2.md §4.2),
    independently."""
    signed = {
        "appId": settings.WECHAT_APPID,
        "timeStamp": payment["timeStamp"],
        "nonceStr": payment["nonceStr"],
        "package": payment["package"],
        "signType": payment["signType"],
    }
    assert payment["paySign"] == wx_sign(signed, settings.WECHAT_MCH_KEY, sign_type)


def test_new_order_returns_exactly_the_request_payment_parameters(new_order, wxpay):
    before = int(time.time())

    body = new_order()

    payment = body["payment"]
    assert set(payment) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert isinstance(payment["timeStamp"], str)
    assert before <= int(payment["timeStamp"]) <= time.time() + 1
    assert payment["package"] == "prepay_id=wx" + body["out_trade_no"][:30]
    assert payment["signType"] == "MD5"
    assert len(payment["nonceStr"]) <= 32
    assert_pay_sign_valid(payment, "MD5")


def test_unifiedorder_gets_the_orders_own_parameters(new_order, wxpay, shopper):
    body = new_order(quantity=2)

    sent = wxpay.calls()[0]
    order = Order.objects.get(out_trade_no=body["out_trade_no"])
    assert sent["out_trade_no"] == order.out_trade_no
    assert sent["total_fee"] == "9000"
    assert sent["openid"] == shopper.openid
    assert sent["trade_type"] == "JSAPI"
    assert sent["notify_url"] == settings.WECHAT_NOTIFY_URL
    assert sent["appid"] == settings.WECHAT_APPID
    assert sent["mch_id"] == settings.WECHAT_MCH_ID
    assert sent["body"] == "Oolong tea 250g"
    assert sent["time_start"] == format_wx_time(order.created_at)
    assert sent["time_expire"] == format_wx_time(order.expires_at)
    assert order.expires_at - order.created_at == timedelta(minutes=settings.ORDER_TTL_MINUTES)
    assert settings.WECHAT_MCH_KEY not in str(sent)


def test_hmac_sha256_is_used_end_to_end(new_order, wxpay, settings):
    settings.WECHAT_SIGN_TYPE = "HMAC-SHA256"

    body = new_order()

    assert wxpay.calls()[0]["sign_type"] == "HMAC-SHA256"
    assert len(wxpay.calls()[0]["sign"]) == 64
    assert body["payment"]["signType"] == "HMAC-SHA256"
    assert_pay_sign_valid(body["payment"], "HMAC-SHA256")
    assert Order.objects.get().sign_type == "HMAC-SHA256"


def test_paying_again_reuses_a_live_prepay_id_with_a_fresh_signature(api, new_order, wxpay):
    first = new_order()

    again = api.post(PAY, {"out_trade_no": first["out_trade_no"]}, format="json")

    assert again.status_code == 200
    assert len(wxpay.calls()) == 1
    assert again.json()["payment"]["package"] == first["payment"]["package"]
    assert again.json()["payment"]["nonceStr"] != first["payment"]["nonceStr"]
    assert_pay_sign_valid(again.json()["payment"], "MD5")


def test_an_old_prepay_id_is_renewed_with_identical_parameters(api, new_order, wxpay):
    first = new_order()
    Order.objects.update(prepay_expires_at=timezone.now() + timedelta(minutes=1))

    again = api.post(PAY, {"out_trade_no": first["out_trade_no"]}, format="json")

    assert again.status_code == 200
    one, two = wxpay.calls()
    volatile = {"nonce_str", "sign"}
    assert {k: v for k, v in one.items() if k not in volatile} == {
        k: v for k, v in two.items() if k not in volatile
    }


def test_re_entry_keeps_the_first_notify_url_after_the_setting_changes(
    api, new_order, wxpay, settings
):
    first = new_order()
    Order.objects.update(prepay_expires_at=timezone.now() + timedelta(minutes=1))
    settings.WECHAT_NOTIFY_URL = "https://new-domain.example.com/payment/wxnotify"

    assert api.post(PAY, {"out_trade_no": first["out_trade_no"]}, format="json").status_code == 200

    one, two = wxpay.calls()
    assert two["notify_url"] == one["notify_url"] == "https://shop.example.com/payment/wxnotify"


def test_another_users_order_cannot_be_paid(new_order, wxpay):
    body = new_order()
    stranger = client_for(make_shopper())

    response = stranger.post(PAY, {"out_trade_no": body["out_trade_no"]}, format="json")

    assert response.status_code == 404
    assert len(wxpay.calls()) == 1


@pytest.mark.parametrize("status", ["paid", "closed"])
def test_only_unpaid_orders_can_be_paid(api, new_order, wxpay, status):
    body = new_order()
    Order.objects.update(
        status=status, transaction_id="4200000000000000000000000001", paid_at=timezone.now()
    )

    response = api.post(PAY, {"out_trade_no": body["out_trade_no"]}, format="json")

    assert response.status_code == 409
    assert response.json()["status"] == status


def test_an_expired_order_cannot_be_paid(api, new_order, wxpay):
    body = new_order()
    Order.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api.post(PAY, {"out_trade_no": body["out_trade_no"]}, format="json")

    assert response.status_code == 409


@pytest.mark.parametrize(
    ("fault", "err_code"),
    [
        ({"err_code": "SYSTEMERROR"}, "SYSTEMERROR"),
        ({"err_code": "NOAUTH"}, "NOAUTH"),
        ({"http_status": 500}, None),
        ({"exception": requests.exceptions.ReadTimeout()}, None),
        ({"exception": requests.exceptions.ConnectionError()}, None),
        ({"tamper_answer": lambda a: {**a, "prepay_id": "wx-forged"}}, None),
        ({"tamper_answer": lambda a: {k: v for k, v in a.items() if k != "sign"}}, None),
    ],
)
def test_upstream_failure_is_502_and_the_order_stays_payable(api, products, wxpay, fault, err_code):
    for name, value in fault.items():
        setattr(wxpay, name, value)

    response = api.post(
        PAY,
        {
            "items": [{"product_id": products["tea"].pk, "quantity": 1}],
            "address": delivery_address(),
        },
        format="json",
    )

    assert response.status_code == 502
    body = response.json()
    assert body["detail"]
    assert body.get("err_code") == err_code
    order = Order.objects.get(out_trade_no=body["out_trade_no"])
    assert (order.status, order.prepay_id) == ("unpaid", "")

    # WeChat recovers: the same order is paid with the same out_trade_no.
    wxpay.err_code = wxpay.exception = wxpay.tamper_answer = None
    wxpay.http_status = 200
    retry = api.post(PAY, {"out_trade_no": order.out_trade_no}, format="json")
    assert retry.status_code == 200
    assert_pay_sign_valid(retry.json()["payment"], "MD5")


def test_without_wechat_pay_settings_it_is_503_and_no_order_is_made(api, products, settings):
    settings.WECHAT_MCH_KEY = ""

    response = api.post(
        PAY,
        {
            "items": [{"product_id": products["tea"].pk, "quantity": 1}],
            "address": delivery_address(),
        },
        format="json",
    )

    assert response.status_code == 503
    assert "WECHAT_MCH_KEY" in response.json()["detail"]
    assert not Order.objects.exists()


def test_no_database_transaction_is_open_while_wechat_answers(new_order, wxpay):
    seen = []
    wxpay.observers.append(lambda fields: seen.append(len(connection.atomic_blocks)))

    new_order()

    # pytest-django wraps each test in exactly one atomic block: a deeper one would be
    # ours, holding locks while WeChat answers (docs/INVARIANTS.md §6.7).
    assert seen == [1]
