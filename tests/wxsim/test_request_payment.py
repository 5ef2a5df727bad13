"""``POST /sim/pay`` with the wx.requestPayment parameters: paySign checked as WeChat does."""

import time

import pytest

from tests.wxsim.client import APPID, wx_sign


def request_payment(prepay_id: str, sign_type: str = "MD5", **overrides) -> dict:
    payment = {
        "timeStamp": str(int(time.time())),
        "nonceStr": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "package": f"prepay_id={prepay_id}",
        "signType": sign_type,
    }
    payment["paySign"] = wx_sign({"appId": APPID, **payment}, sign_type=sign_type)
    payment.update(overrides)
    return payment


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_correctly_signed_request_payment_pays(wx, receiver, sign_type):
    order = wx.unifiedorder(receiver.url, sign_type=None if sign_type == "MD5" else sign_type)

    response = wx.control(
        "POST", "/sim/pay", {"payment": request_payment(order["prepay_id"], sign_type)}
    )

    assert response.status_code == 200, response.text
    assert response.json()["out_trade_no"] == order["_out_trade_no"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"paySign": "0" * 32},
        {"signType": "HMAC-SHA256"},  # ordered with MD5
        {"timeStamp": str(int(time.time() * 1000))},  # milliseconds
        {"nonceStr": "changed-after-signing"},
    ],
)
def test_bad_request_payment_is_refused_like_wechat(wx, receiver, overrides):
    order = wx.unifiedorder(receiver.url)

    response = wx.control(
        "POST", "/sim/pay", {"payment": request_payment(order["prepay_id"], **overrides)}
    )

    assert response.status_code == 400
    assert "支付验证签名失败" in response.json()["detail"]


def test_pay_sign_without_app_id_is_refused(wx, receiver):
    order = wx.unifiedorder(receiver.url)
    payment = request_payment(order["prepay_id"])
    unsigned = {k: v for k, v in payment.items() if k != "paySign"}
    # appId left out: a classic bug (docs/protocol/wechat-pay-v2.md §4.3)
    payment["paySign"] = wx_sign(unsigned)

    assert wx.control("POST", "/sim/pay", {"payment": payment}).status_code == 400
