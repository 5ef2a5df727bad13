"""v3 payment notifies (§7): WeChat's retries until a 2xx, each attempt signed afresh;
notify faults (bad signature, stale timestamp, unknown serial, signature probe) on a first
attempt; duplicate delivery; drops. The shop's side is ``wechat.pay_v3``'s parse_notify."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import pytest

from tests.wxsim.client import PAYER, new_out_trade_no, notify_signed_by, wait_until
from wechat.pay_v3 import (
    SignatureProbe,
    TimestampOutOfWindow,
    UnknownSerial,
    WxPayV3Error,
    WxPayV3SignatureError,
)


def paid_v3_order(v3, wx, url: str) -> str:
    number = new_out_trade_no()
    prepay_id = v3.jsapi_prepay(out_trade_no=number, description="测试商店-商品", total=101,
                                openid=PAYER, notify_url=url).prepay_id
    response = wx.control("POST", "/sim/pay", {"payment": v3.jsapi_params(prepay_id)})
    assert response.status_code == 200, response.text
    return number


def verifying(v3, refusals: list):
    """A shop's notify view: 204 when parse_notify accepts, 401 with the reason if not."""

    def judge(headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            v3.parse_notify(headers, body)
        except WxPayV3Error as exc:
            refusals.append(exc)
            return 401, b'{"code":"FAIL","message":"signature"}'
        return 204, b""

    return judge


def attempts_of(sim, number: str, count: int) -> list[dict]:
    return wait_until(lambda: len(a := sim.trades[number].notify_attempts) >= count and a)


def test_non_2xx_replies_are_retried_each_signed_afresh(v3, wx, v3_receiver, sim):
    v3_receiver.replies = [(500, b""), (400, b'{"code":"FAIL","message":"busy"}'), (302, b""),
                           (200, b'{"code":"FAIL","message":"busy"}')]
    number = paid_v3_order(v3, wx, v3_receiver.url)

    bodies = v3_receiver.wait_for(5)

    assert len(set(bodies)) == 1  # the same notify...
    nonces = {h["Wechatpay-Nonce"] for h in v3_receiver.headers}
    assert len(nonces) == 5  # ...signed anew for each attempt (§3.6)
    for headers in v3_receiver.headers:
        assert v3.parse_notify(headers, bodies[0]).resource.out_trade_no == number
    attempts = attempts_of(sim, number, 5)
    assert [a["status"] for a in attempts] == [500, 400, 302, 200, 204]
    assert [a["success"] for a in attempts] == [False, False, False, False, True]


@pytest.mark.parametrize(
    "reply", [(200, '{"code":"SUCCESS","message":"成功"}'.encode()), (200, b"success")]
)
def test_200_with_a_success_body_ends_the_retries(v3, wx, v3_receiver, sim, reply):
    v3_receiver.default_reply = reply
    number = paid_v3_order(v3, wx, v3_receiver.url)
    attempts = attempts_of(sim, number, 1)
    assert attempts[0]["success"] and len(v3_receiver.received) == 1
    stats = wait_until(lambda: (s := sim.stats()["notifies"]) and s["pending"] == 0 and s)
    assert stats["delivered"] == 1 and stats["attempts"] == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("bad_sign", WxPayV3SignatureError),
        ("stale_timestamp", TimestampOutOfWindow),
        ("wrong_serial", UnknownSerial),
        ("probe", SignatureProbe),
    ],
)
def test_notify_fault_spoils_the_first_attempt_only(v3, wx, v3_receiver, sim, fault, error):
    refusals: list = []
    v3_receiver.judge = verifying(v3, refusals)
    assert wx.control("POST", "/sim/faults", {"notify": fault}).status_code == 200

    number = paid_v3_order(v3, wx, v3_receiver.url)

    attempts = attempts_of(sim, number, 2)
    assert attempts[0]["fault"] == fault and attempts[0]["status"] == 401
    assert attempts[1]["success"] and "fault" not in attempts[1]
    assert len(refusals) == 1 and type(refusals[0]) is error
    if fault == "probe":
        assert v3_receiver.headers[0]["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")


def test_a_shop_that_takes_a_forged_notify_shows_in_the_attempts(v3, wx, v3_receiver, sim):
    wx.control("POST", "/sim/faults", {"notify": "bad_sign"})
    number = paid_v3_order(v3, wx, v3_receiver.url)  # this receiver verifies nothing
    attempts = attempts_of(sim, number, 1)
    assert attempts[0] == {**attempts[0], "fault": "bad_sign", "success": True}
    assert not notify_signed_by(v3_receiver.headers[0], v3_receiver.received[0],
                                sim.v3.public_key_signer.key.public_key())


def test_duplicate_delivery_sends_copies_each_signed(v3, wx, v3_receiver):
    number = paid_v3_order(v3, wx, v3_receiver.url)
    v3_receiver.wait_for(1)

    response = wx.control("POST", f"/sim/notify/{number}", {"copies": 3, "concurrent": True})

    assert response.status_code == 200
    assert [a["success"] for a in response.json()["attempts"]] == [True, True, True]
    bodies = v3_receiver.wait_for(4)
    assert len(set(bodies[1:])) == 1
    assert len({h["Wechatpay-Nonce"] for h in v3_receiver.headers}) == 4
    for headers, body in zip(v3_receiver.headers, bodies, strict=True):
        assert v3.parse_notify(headers, body).resource.out_trade_no == number


def test_dropped_notify_is_never_sent(v3, wx, v3_receiver, sim):
    wx.control("POST", "/sim/faults", {"notify": "drop"})
    number = new_out_trade_no()
    prepay_id = v3.jsapi_prepay(out_trade_no=number, description="测试商店-商品", total=101,
                                openid=PAYER, notify_url=v3_receiver.url).prepay_id

    paid = wx.control("POST", "/sim/pay", {"payment": v3.jsapi_params(prepay_id)})

    assert paid.json()["notify"] == "dropped"
    assert v3.order_query(out_trade_no=number).is_paid  # the query still tells (§7.4 rule 7)
    assert sim.trades[number].notify_attempts == [] and v3_receiver.received == []


def test_invalid_notify_and_refund_faults_are_400(wx):
    for spec in ({"notify": "late"}, {"refund": "LOST"}, {"notify": "bad_sign", "count": -1}):
        assert wx.control("POST", "/sim/faults", spec).status_code == 400
