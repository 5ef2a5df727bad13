"""orderquery (§6.1) and closeorder with its 5-minute rule (§6.2)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import re
from dataclasses import replace

from tests.wxsim.client import signature_ok

NOTIFY = "https://shop.example.com/payment/wxnotify"


def query(wx, sign_type=None, **by):
    return wx.call("/pay/orderquery", by, sign_type=sign_type)


def test_unknown_order_does_not_exist(wx):
    answer = query(wx, out_trade_no="NOSUCHORDER1")
    assert answer["result_code"] == "FAIL" and answer["err_code"] == "ORDERNOTEXIST"


def test_query_without_any_number_lacks_params(wx):
    assert query(wx)["err_code"] == "LACK_PARAMS"


def test_unpaid_order_is_notpay(wx):
    order = wx.unifiedorder(NOTIFY)
    answer = query(wx, out_trade_no=order["_out_trade_no"])
    assert answer["result_code"] == "SUCCESS"
    assert answer["trade_state"] == "NOTPAY"
    assert answer["trade_state_desc"]
    assert "transaction_id" not in answer


def test_paid_order_carries_the_payment_fields(wx, paid_trade):
    answer = query(wx, out_trade_no=paid_trade["_out_trade_no"], sign_type="HMAC-SHA256")
    assert signature_ok(answer, "HMAC-SHA256")
    assert answer["trade_state"] == "SUCCESS"
    assert answer["transaction_id"] == paid_trade["transaction_id"]
    assert re.fullmatch(r"4200000\d{21}", answer["transaction_id"])
    assert answer["openid"] == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    assert answer["trade_type"] == "JSAPI"
    assert answer["total_fee"] == answer["cash_fee"] == "101"
    assert answer["attach"] == "order-42"
    assert answer["bank_type"] and re.fullmatch(r"\d{14}", answer["time_end"])


def test_query_by_transaction_id(wx, paid_trade):
    answer = query(wx, transaction_id=paid_trade["transaction_id"])
    assert answer["out_trade_no"] == paid_trade["_out_trade_no"]


def test_close_within_five_minutes_is_refused_then_allowed(wx, sim):
    order = wx.unifiedorder(NOTIFY)
    answer = wx.call("/pay/closeorder", {"out_trade_no": order["_out_trade_no"]})
    assert answer["result_code"] == "FAIL" and answer["err_code"] == "SYSTEMERROR"
    assert "5分钟" in answer["err_code_des"]

    sim.config = replace(sim.config, close_min_seconds=0)
    answer = wx.call("/pay/closeorder", {"out_trade_no": order["_out_trade_no"]})
    assert answer["result_code"] == "SUCCESS"
    assert query(wx, out_trade_no=order["_out_trade_no"])["trade_state"] == "CLOSED"
    again = wx.call("/pay/closeorder", {"out_trade_no": order["_out_trade_no"]})
    assert again["err_code"] == "ORDERCLOSED"


def test_close_after_five_minutes_by_the_clock(wx, sim):
    order = wx.unifiedorder(NOTIFY)
    later = sim.now() + 301
    sim.now = lambda: later
    answer = wx.call("/pay/closeorder", {"out_trade_no": order["_out_trade_no"]})
    assert answer["result_code"] == "SUCCESS"


def test_paid_order_cannot_be_closed(wx, sim, paid_trade):
    sim.config = replace(sim.config, close_min_seconds=0)
    answer = wx.call("/pay/closeorder", {"out_trade_no": paid_trade["_out_trade_no"]})
    assert answer["err_code"] == "ORDERPAID"


def test_closed_order_cannot_be_paid(wx, sim):
    sim.config = replace(sim.config, close_min_seconds=0)
    order = wx.unifiedorder(NOTIFY)
    wx.call("/pay/closeorder", {"out_trade_no": order["_out_trade_no"]})
    response = wx.pay(order["_out_trade_no"])
    assert response.status_code == 409
    assert "ORDERCLOSED" in response.json()["detail"]
