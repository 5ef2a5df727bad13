"""Faults on the v3 paths (``POST /sim/faults``), as the shop's own client meets them: system
errors, HTML 500s, garbage, slow answers, tampered, stale or unknown-key signatures, and
any ``{code, message}`` answer WeChat gives."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import dataclasses
from datetime import datetime

import pytest

from tests.wxsim.client import PAYER, new_out_trade_no
from wechat.pay_v3 import (
    BEIJING,
    RateLimited,
    SignatureHeaderError,
    StatementCreating,
    SystemBusy,
    TimestampOutOfWindow,
    UnknownSerial,
    WxPayV3Client,
    WxPayV3SignatureError,
    WxPayV3Unavailable,
)

JSAPI = "/v3/pay/transactions/jsapi"
QUERY = "/v3/pay/transactions/out-trade-no/{out_trade_no}"


def add_fault(wx, **spec) -> dict:
    response = wx.control("POST", "/sim/faults", spec)
    assert response.status_code == 200, response.text
    return response.json()


def prepay(v3, number: str) -> str:
    return v3.jsapi_prepay(out_trade_no=number, description="测试商店-商品", total=101,
                           openid=PAYER, notify_url="https://shop.example.com/n").prepay_id


def test_system_error_records_nothing_and_the_same_call_then_works(v3, wx, sim):
    add_fault(wx, path=JSAPI, mode="systemerror")
    number = new_out_trade_no()

    with pytest.raises(SystemBusy) as raised:
        prepay(v3, number)

    assert raised.value.status == 500 and raised.value.retryable
    assert number not in sim.trades
    assert prepay(v3, number).startswith("wx")  # retried with the same number (§4.3)


def test_html_500_is_unavailable(v3, wx):
    add_fault(wx, path=JSAPI, mode="http500", count=2)
    for _ in range(2):
        with pytest.raises(WxPayV3Unavailable):
            prepay(v3, new_out_trade_no())
    assert prepay(v3, new_out_trade_no())


def test_garbage_answer_is_not_trusted(v3, wx):
    add_fault(wx, path=JSAPI, mode="garbage")
    with pytest.raises(SignatureHeaderError):  # unsigned: a forgery as far as we know (§3)
        prepay(v3, new_out_trade_no())


@pytest.mark.parametrize(
    ("mode", "error"),
    [("bad_sign", WxPayV3SignatureError), ("stale_timestamp", TimestampOutOfWindow),
     ("wrong_serial", UnknownSerial)],
)
def test_answer_the_shop_cannot_verify(v3, wx, mode, error):
    number = new_out_trade_no()
    prepay(v3, number)
    add_fault(wx, path=QUERY, mode=mode)

    with pytest.raises(error):
        v3.order_query(out_trade_no=number)

    assert v3.order_query(out_trade_no=number).trade_state == "NOTPAY"  # the next is fine


def test_close_answer_204_is_signed_and_can_be_spoiled(v3, wx):
    number = new_out_trade_no()
    prepay(v3, number)
    add_fault(wx, path=QUERY + "/close", mode="bad_sign")
    with pytest.raises(WxPayV3SignatureError):  # an empty body is signed too (§3.2)
        v3.close_order(out_trade_no=number)


def test_slow_answer_beyond_the_shops_timeout(v3, wx):
    impatient = WxPayV3Client(dataclasses.replace(v3.config, timeout=(1.0, 0.1)))
    add_fault(wx, path=JSAPI, mode="slow", delay_ms=400)
    number = new_out_trade_no()
    with pytest.raises(WxPayV3Unavailable):
        prepay(impatient, number)
    impatient.close()
    # WeChat went on and recorded it: the shop's retry with the same number re-enters.
    assert prepay(v3, number).startswith("wx")


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(400, "STATEMENT_CREATING", StatementCreating), (429, "FREQUENCY_LIMITED", RateLimited)],
)
def test_error_mode_answers_any_code(v3, wx, sim, status, code, error):
    add_fault(wx, path="/v3/bill/tradebill", mode="error", status=status, code=code,
              message="账单生成中")
    with pytest.raises(error) as raised:
        v3.trade_bill(bill_date=datetime.fromtimestamp(sim.now(), BEIJING).date())
    assert raised.value.status == status and raised.value.message == "账单生成中"


def test_faults_show_and_count_by_path_template(v3, wx, sim):
    shown = add_fault(wx, path="/v3/certificates", mode="error", code="NO_AUTH", status=403)
    assert shown["paths"]["/v3/certificates"][0] == {
        "mode": "error", "remaining": 1, "delay_ms": 0, "status": 403, "code": "NO_AUTH",
        "message": ""}
    number = new_out_trade_no()
    prepay(v3, number)
    v3.order_query(out_trade_no=number)
    assert sim.stats()["requests"][QUERY] == 1


@pytest.mark.parametrize(
    "spec",
    [
        {"path": "/pay/orderquery", "mode": "stale_timestamp"},  # v3 only
        {"path": "/v3/billdownload/file", "mode": "bad_sign"},  # the file is unsigned
        {"path": "/v3/pay/transactions/out-trade-no/T1", "mode": "http500"},  # the template
        {"path": JSAPI, "mode": "error"},  # no code
        {"path": JSAPI, "mode": "error", "code": "X", "status": 200},
    ],
)
def test_invalid_v3_fault_specs_are_400(wx, spec):
    assert wx.control("POST", "/sim/faults", spec).status_code == 400
