"""The shop's wire client (wechat.miniprogram) against the simulator, over real HTTP: the two
were written apart, from docs/protocol/miniprogram-server-api.md, and must agree."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.wxsim.client import APPID, PAYER, SECRET
from wechat.miniprogram import (
    AccessTokenInvalid,
    AlreadyShipped,
    LogisticsType,
    MiniProgramBusy,
    MiniProgramClient,
    MiniProgramConfig,
    MiniProgramUnavailable,
    NotSubscribed,
    OrderState,
    PaymentNotFound,
    ShippingItem,
    ShippingRefused,
    subscribe_value,
)


@pytest.fixture
def mp(wx):
    client = MiniProgramClient(MiniProgramConfig(appid=APPID, app_secret=SECRET,
                                                 api_base=wx.base_url, timeout=(2, 5)))
    yield client
    client.session.close()


def ship(mp, token, transaction_id, **overrides):
    fields = {
        "transaction_id": transaction_id,
        "logistics_type": LogisticsType.EXPRESS,
        "shipping_list": [ShippingItem("测试商店-商品*1", tracking_no="SF1234567890",
                                       express_company="SF", receiver_contact="189****1234")],
        "upload_time": datetime.now(UTC),
        "payer_openid": PAYER,
        **overrides,
    }
    mp.upload_shipping_info(token, **fields)


def test_token_ship_query_and_remind(mp, paid_trade):
    tid = paid_trade["transaction_id"]
    token = mp.stable_token()
    assert token.expires_in == 7200
    assert mp.is_trade_managed(token.token) is True
    assert mp.get_order(token.token, transaction_id=tid).order_state == OrderState.TO_SHIP

    ship(mp, token.token, tid)

    order = mp.get_order(token.token, merchant_id=paid_trade["mch_id"],
                         merchant_trade_no=paid_trade["_out_trade_no"])
    assert order.order_state == OrderState.SHIPPED and order.transaction_id == tid
    assert order.openid == PAYER and order.paid_amount == 101 and order.pay_time is not None
    mp.notify_confirm_receive(token.token, transaction_id=tid,
                              received_time=datetime.now(UTC) + timedelta(minutes=1))
    with pytest.raises(ShippingRefused):  # once per order
        mp.notify_confirm_receive(token.token, transaction_id=tid,
                                  received_time=datetime.now(UTC) + timedelta(minutes=1))


def test_the_same_upload_twice_is_already_shipped(mp, paid_trade):
    token = mp.stable_token().token
    moment = datetime.now(UTC)
    ship(mp, token, paid_trade["transaction_id"], upload_time=moment)

    with pytest.raises(AlreadyShipped):
        ship(mp, token, paid_trade["transaction_id"], upload_time=moment)


def test_unknown_payment_is_payment_not_found(mp):
    with pytest.raises(PaymentNotFound):
        ship(mp, mp.stable_token().token, "4200000000000000000000000000")


def test_stale_token_then_renewed(mp, wx, paid_trade):
    token = mp.stable_token().token
    wx.control("POST", "/sim/tokens/stale", {"access_token": token})

    with pytest.raises(AccessTokenInvalid):
        mp.is_trade_managed(token)
    renewed = mp.stable_token().token
    assert renewed != token and mp.is_trade_managed(renewed) is True


def test_subscribe_message_needs_an_accept(mp, wx):
    token = mp.stable_token().token
    data = {"thing1": subscribe_value("thing", "乌龙茶 250g 两罐装礼盒 送茶杯一只 限量版"),
            "amount2": subscribe_value("amount", 10200)}
    send = {"touser": PAYER, "template_id": "tmpl-shipped", "data": data}
    with pytest.raises(NotSubscribed):
        mp.send_subscribe_message(token, **send)
    wx.control("POST", "/sim/subscribe", {"openid": PAYER, "template_id": "tmpl-shipped"})

    assert isinstance(mp.send_subscribe_message(token, **send), int)
    sent = wx.control("GET", "/sim/messages").json()["messages"][0]["data"]
    assert sent == {"thing1": "乌龙茶 250g 两罐装礼盒 送茶杯一…", "amount2": "¥102.00"}


def test_faults_become_retryable_errors(mp, wx):
    token = mp.stable_token().token
    path = "/wxa/sec/order/is_trade_managed"
    for mode in ("systemerror", "http500", "garbage"):
        wx.control("POST", "/sim/faults", {"path": path, "mode": mode})
    with pytest.raises(MiniProgramBusy):
        mp.is_trade_managed(token)
    for _ in range(2):
        with pytest.raises(MiniProgramUnavailable) as caught:
            mp.is_trade_managed(token)
        assert caught.value.retryable

