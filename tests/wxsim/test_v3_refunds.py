"""v3 refunds (§8): create, the REFUND.* notify the shop verifies and decrypts, query, the
refund rules, outcome faults, and refunds across the two APIs of one merchant."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import json

import pytest

from tests.wxsim.client import PAYER, new_out_trade_no, parse_xml, wait_until
from wechat.pay_v3 import InvalidRequest, Refund, ResourceNotExists, parse_notify

REFUND_URL = "/payment/v3/refundnotify"


def paid(v3, wx, notify_url: str, total: int = 101) -> str:
    number = new_out_trade_no()
    prepay_id = v3.jsapi_prepay(out_trade_no=number, description="测试商店-商品", total=total,
                                openid=PAYER, notify_url=notify_url).prepay_id
    assert wx.control("POST", "/sim/pay", {"payment": v3.jsapi_params(prepay_id)}).ok
    return number


def refund_url(receiver) -> str:
    return receiver.url.replace("/payment/v3/wxnotify", REFUND_URL)


def test_refund_is_accepted_then_notified_and_queried(v3, wx, v3_receiver, sim):
    number = paid(v3, wx, v3_receiver.url)
    v3_receiver.wait_for(1)

    accepted = v3.refund(out_refund_no="R" + number, out_trade_no=number, total=101, refund=40,
                         reason="缺货", notify_url=refund_url(v3_receiver))

    assert accepted.status == "PROCESSING" and accepted.refund == 40 and accepted.total == 101
    assert accepted.refund_id.startswith("503000") and accepted.success_time is None
    assert accepted.create_time.utcoffset().total_seconds() == 8 * 3600
    bodies = v3_receiver.wait_for(2)
    notify = parse_notify(v3_receiver.headers[1], bodies[1], keyring=v3.keyring,
                          apiv3_key=v3.config.apiv3_key, now=sim.now(),
                          mchid=v3.config.mchid)
    assert notify.event_type == "REFUND.SUCCESS" and notify.summary == "退款成功"
    assert json.loads(bodies[1])["resource"]["associated_data"] == "refund"
    refund = notify.resource
    assert isinstance(refund, Refund)
    assert (refund.out_refund_no, refund.out_trade_no, refund.status) == (
        "R" + number, number, "SUCCESS")
    assert refund.raw["refund_status"] == "SUCCESS" and "status" not in refund.raw
    assert (refund.refund, refund.total, refund.payer_refund) == (40, 101, 40)
    queried = v3.refund_query(out_refund_no="R" + number)
    assert queried.status == "SUCCESS" and queried.success_time is not None
    assert queried.refund_id == accepted.refund_id
    assert v3.order_query(out_trade_no=number).trade_state == "REFUND"


def test_same_out_refund_no_is_the_same_refund(v3, wx, v3_receiver, sim):
    number = paid(v3, wx, v3_receiver.url)
    first = v3.refund(out_refund_no="R" + number, out_trade_no=number, total=101, refund=40)
    again = v3.refund(out_refund_no="R" + number, out_trade_no=number, total=101, refund=40)
    assert again.refund_id == first.refund_id
    assert len(sim.trades[number].refunds) == 1
    with pytest.raises(InvalidRequest):
        v3.refund(out_refund_no="R" + number, out_trade_no=number, total=101, refund=41)


def test_total_other_than_the_orders_is_invalid_request(v3, wx, v3_receiver):
    number = paid(v3, wx, v3_receiver.url)
    with pytest.raises(InvalidRequest) as raised:
        v3.refund(out_refund_no="R" + number, out_trade_no=number, total=100, refund=50)
    assert raised.value.code == "INVALID_REQUEST"


def test_partial_refunds_add_up_to_the_order_at_most(v3, wx, v3_receiver):
    number = paid(v3, wx, v3_receiver.url)
    v3.refund(out_refund_no="A" + number, out_trade_no=number, total=101, refund=60)
    transaction_id = v3.order_query(out_trade_no=number).transaction_id
    v3.refund(out_refund_no="B" + number, transaction_id=transaction_id, total=101, refund=41)
    with pytest.raises(InvalidRequest):
        v3.refund(out_refund_no="C" + number, out_trade_no=number, total=101, refund=1)


def test_unknown_or_unpaid_order_and_unknown_refund(v3, v3_receiver):
    with pytest.raises(ResourceNotExists):
        v3.refund(out_refund_no="R0000001", out_trade_no="T0000000001", total=101, refund=1)
    number = new_out_trade_no()
    v3.jsapi_prepay(out_trade_no=number, description="测试", total=101, openid=PAYER,
                    notify_url=v3_receiver.url)
    with pytest.raises(ResourceNotExists):
        v3.refund(out_refund_no="R" + number, out_trade_no=number, total=101, refund=1)
    with pytest.raises(ResourceNotExists):
        v3.refund_query(out_refund_no="R0000001")


@pytest.mark.parametrize("outcome", ["ABNORMAL", "CLOSED"])
def test_refund_outcome_fault(v3, wx, v3_receiver, sim, outcome):
    number = paid(v3, wx, v3_receiver.url)
    v3_receiver.wait_for(1)
    assert wx.control("POST", "/sim/faults", {"refund": outcome}).status_code == 200

    v3.refund(out_refund_no="R" + number, out_trade_no=number, total=101, refund=101,
              notify_url=refund_url(v3_receiver))

    bodies = v3_receiver.wait_for(2)
    notify = v3.parse_notify(v3_receiver.headers[1], bodies[1])
    assert notify.event_type == f"REFUND.{outcome}"
    assert notify.resource.status == outcome and notify.resource.success_time is None
    assert v3.refund_query(out_refund_no="R" + number).status == outcome
    if outcome == "CLOSED":  # nothing went back: the amount can be refunded again (§8.3)
        again = v3.refund(out_refund_no="S" + number, out_trade_no=number, total=101,
                          refund=101)
        assert again.status == "PROCESSING"


def test_refund_notify_is_retried_and_can_be_resent(v3, wx, v3_receiver, sim):
    number = paid(v3, wx, v3_receiver.url)
    v3_receiver.wait_for(1)
    v3_receiver.replies = [(503, b"")]
    v3.refund(out_refund_no="R" + number, out_trade_no=number, total=101, refund=10,
              notify_url=refund_url(v3_receiver))
    v3_receiver.wait_for(3)
    record = sim.refunds["R" + number]
    attempts = wait_until(lambda: len(record.notify_attempts) >= 2 and record.notify_attempts)
    assert [a["status"] for a in attempts] == [503, 204]

    again = wx.control("POST", f"/sim/notify/{number}", {"out_refund_no": "R" + number})

    assert again.status_code == 200 and again.json()["attempts"][0]["success"]
    resent = v3_receiver.wait_for(4)[3]
    assert v3.parse_notify(v3_receiver.headers[3], resent).event_type == "REFUND.SUCCESS"


# -- one ledger: refunds across the two APIs -----------------------------------------------------


def test_v2_order_refunded_through_v3_and_seen_by_v2(v3, wx, receiver, sim):
    order = wx.unifiedorder(receiver.url)
    number = order["_out_trade_no"]
    wx.pay(number)
    receiver.wait_for(1)

    v3.refund(out_refund_no="R" + number, out_trade_no=number, total=101, refund=30,
              notify_url=receiver.url.replace("/payment/wxnotify", REFUND_URL))

    wait_until(lambda: sim.refunds["R" + number].status == "SUCCESS")
    answer = wx.call("/pay/refundquery", {"out_refund_no": "R" + number})
    assert answer["refund_status_0"] == "SUCCESS" and answer["refund_fee_0"] == "30"
    body = receiver.wait_for(2)[1]
    assert json.loads(body)["event_type"] == "REFUND.SUCCESS"  # v3 asked, so a v3 notify


def test_v3_order_refunded_through_v2_is_queried_through_v3(v3, wx, v3_receiver, sim):
    number = paid(v3, wx, v3_receiver.url)
    answer = wx.call("/secapi/pay/refund", {"out_trade_no": number, "out_refund_no": "R" + number,
                                            "total_fee": 101, "refund_fee": 20})
    assert answer["result_code"] == "SUCCESS", answer
    wait_until(lambda: sim.refunds["R" + number].status == "SUCCESS")
    queried = v3.refund_query(out_refund_no="R" + number)
    assert queried.status == "SUCCESS" and queried.refund == 20


def test_v2_refund_of_an_abnormal_refund_says_change(wx, receiver, sim):
    order = wx.unifiedorder(receiver.url)
    wx.pay(order["_out_trade_no"])
    receiver.wait_for(1)
    wx.control("POST", "/sim/faults", {"refund": "ABNORMAL"})
    number = order["_out_trade_no"]
    wx.call("/secapi/pay/refund", {"out_trade_no": number, "out_refund_no": "R" + number,
                                   "total_fee": 101, "refund_fee": 20,
                                   "notify_url": receiver.url})
    wait_until(lambda: sim.refunds["R" + number].status == "ABNORMAL")
    answer = wx.call("/pay/refundquery", {"out_refund_no": "R" + number})
    assert answer["refund_status_0"] == "CHANGE"  # v2's word for it (v2 note §7.2)
    assert parse_xml(receiver.wait_for(2)[1])["return_code"] == "SUCCESS"


@pytest.mark.parametrize(
    "body",
    [
        {"out_refund_no": "R1", "amount": {"refund": 1, "total": 101, "currency": "CNY"}},
        {"out_trade_no": "T0000000001", "out_refund_no": "R1",
         "amount": {"refund": 0.5, "total": 101, "currency": "CNY"}},
        {"out_trade_no": "T0000000001", "out_refund_no": "R 1",
         "amount": {"refund": 1, "total": 101, "currency": "CNY"}},
        {"out_trade_no": "T0000000001", "out_refund_no": "R1", "mchid": "10000100",
         "amount": {"refund": 1, "total": 101, "currency": "CNY"}},
        {"out_trade_no": "T0000000001", "out_refund_no": "R1", "funds_account": "BASIC",
         "amount": {"refund": 1, "total": 101, "currency": "CNY"}},
    ],
    ids=["no-order-number", "float", "bad-number", "mchid-in-body", "funds-account"],
)
def test_malformed_refund_is_param_error(v3_by_hand, body):
    response = v3_by_hand.call("POST", "/v3/refund/domestic/refunds", body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "PARAM_ERROR"
