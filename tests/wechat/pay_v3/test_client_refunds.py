# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import json
from datetime import datetime

import pytest
import responses

from tests.wx_v3 import (
    BASE,
    error_answer,
    refund_object,
    request_signature_ok,
    signed_answer,
)
from wechat.pay_v3 import (
    BEIJING,
    NotEnough,
    ResourceNotExists,
    SystemBusy,
    WxPayV3RequestInvalid,
    WxPayV3SignatureError,
    WxPayV3Unavailable,
)

REFUNDS = f"{BASE}/v3/refund/domestic/refunds"
REFUND = {
    "out_trade_no": "T20250101000000001",
    "out_refund_no": "R20250102000000001",
    "total": 101,
    "refund": 50,
}


def test_refund_sends_amounts_in_fen_without_mchid(client, mocked, merchant_key, wechat_key):
    def wechat(request):
        request_signature_ok(request, merchant_key.public_key())
        return signed_answer(wechat_key, refund_object(status="PROCESSING", success_time=None))

    mocked.add_callback(responses.POST, REFUNDS, callback=wechat)
    accepted = client.refund(
        **REFUND, reason="商品已售完", notify_url="https://shop.example.com/payment/v3/refundnotify"
    )
    sent = json.loads(mocked.calls[0].request.body)
    # §8.1: no mchid in the body; it comes from Authorization.
    assert sent == {
        "out_trade_no": "T20250101000000001",
        "out_refund_no": "R20250102000000001",
        "reason": "商品已售完",
        "notify_url": "https://shop.example.com/payment/v3/refundnotify",
        "amount": {"refund": 50, "total": 101, "currency": "CNY"},
    }
    assert accepted.status == "PROCESSING"
    assert accepted.refund_id == "50000000382019052709732678859"
    assert (accepted.refund, accepted.total, accepted.success_time) == (50, 101, None)
    assert accepted.create_time == datetime(2025, 1, 2, 10, 0, tzinfo=BEIJING)
    assert mocked.calls[0].request.req_kwargs["timeout"] == (1.25, 4.5)


def test_refund_by_transaction_id(client, mocked, wechat_key):
    mocked.add_callback(
        responses.POST, REFUNDS, callback=lambda r: signed_answer(wechat_key, refund_object())
    )
    client.refund(
        transaction_id="4200002501202501018123456789",
        out_refund_no="R20250102000000001",
        total=101,
        refund=50,
    )
    sent = json.loads(mocked.calls[0].request.body)
    assert sent["transaction_id"] == "4200002501202501018123456789"
    assert "out_trade_no" not in sent
    assert "reason" not in sent
    assert "notify_url" not in sent


@pytest.mark.parametrize(
    "change",
    [
        {"refund": 0},
        {"refund": 102},
        {"total": 0},
        {"refund": 50.0},
        {"out_refund_no": ""},
        {"out_refund_no": "R" * 65},
        {"out_refund_no": "R/1"},
        {"reason": "x" * 81},
        {"reason": "退款😀"},
        {"notify_url": "https://shop.example.com/n?x=1"},
        {"transaction_id": "4200002501202501018123456789"},  # both numbers
        {"out_trade_no": None},  # neither
    ],
)
def test_refund_refuses_what_wechat_would_refuse(client, mocked, change):
    with pytest.raises(WxPayV3RequestInvalid):
        client.refund(**{**REFUND, **change})
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    "status, code, cls, retryable",
    [
        (403, "NOT_ENOUGH", NotEnough, False),
        (500, "SYSTEM_ERROR", SystemBusy, True),
        (404, "RESOURCE_NOT_EXISTS", ResourceNotExists, False),
    ],
)
def test_refund_errors(client, mocked, status, code, cls, retryable):
    mocked.add_callback(responses.POST, REFUNDS, callback=lambda r: error_answer(status, code))
    with pytest.raises(cls) as caught:
        client.refund(**REFUND)
    assert caught.value.retryable is retryable


@pytest.mark.parametrize(
    "answer",
    [refund_object(out_refund_no="R20250102000000002"), refund_object(refund_id="")],
)
def test_refund_answer_for_another_refund_is_unavailable(client, mocked, wechat_key, answer):
    mocked.add_callback(
        responses.POST, REFUNDS, callback=lambda r: signed_answer(wechat_key, answer)
    )
    with pytest.raises(WxPayV3Unavailable):
        client.refund(**REFUND)


def test_unsigned_refund_answer_is_refused(client, mocked):
    mocked.add(responses.POST, REFUNDS, json=refund_object())
    with pytest.raises(WxPayV3SignatureError):
        client.refund(**REFUND)


def test_refund_query(client, mocked, merchant_key, wechat_key):
    def wechat(request):
        request_signature_ok(request, merchant_key.public_key())
        return signed_answer(wechat_key, refund_object())

    mocked.add_callback(responses.GET, f"{REFUNDS}/R20250102000000001", callback=wechat)
    refund = client.refund_query(out_refund_no="R20250102000000001")
    assert refund.status == "SUCCESS"
    assert refund.success_time == datetime(2025, 1, 2, 10, 0, 5, tzinfo=BEIJING)
    assert refund.user_received_account == "支付用户零钱"
    assert (refund.payer_refund, refund.currency, refund.channel) == (50, "CNY", "ORIGINAL")


def test_refund_query_escapes_what_a_path_cannot_carry(client, mocked, merchant_key, wechat_key):
    number = "R-1*2@3|4"

    def wechat(request):
        # Signed over the path exactly as sent (§2.1).
        request_signature_ok(request, merchant_key.public_key())
        assert request.path_url == "/v3/refund/domestic/refunds/R-1*2@3%7C4"
        return signed_answer(wechat_key, refund_object(out_refund_no=number))

    mocked.add_callback(responses.GET, f"{REFUNDS}/R-1*2@3%7C4", callback=wechat)
    assert client.refund_query(out_refund_no=number).out_refund_no == number


def test_refund_query_of_an_unknown_refund(client, mocked):
    mocked.add_callback(
        responses.GET,
        f"{REFUNDS}/R20250102000000001",
        callback=lambda r: error_answer(404, "RESOURCE_NOT_EXISTS", "退款单不存在"),
    )
    with pytest.raises(ResourceNotExists):
        client.refund_query(out_refund_no="R20250102000000001")


def test_refund_query_answer_for_another_refund_is_unavailable(client, mocked, wechat_key):
    other = refund_object(out_refund_no="R20250102000000009")
    mocked.add_callback(
        responses.GET,
        f"{REFUNDS}/R20250102000000001",
        callback=lambda r: signed_answer(wechat_key, other),
    )
    with pytest.raises(WxPayV3Unavailable):
        client.refund_query(out_refund_no="R20250102000000001")
