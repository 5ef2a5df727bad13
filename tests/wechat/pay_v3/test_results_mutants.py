# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.
"""Rules of results.py a mutation run found unpinned: every amount of a refund is lifted out
(§8.2), ``raw`` keeps WeChat's whole object, and the message a caller shows (the client
wraps it: "unparseable tradebill answer: …")."""

from datetime import datetime

import pytest

from tests.wx_v3 import APPID, MCHID, refund_object, transaction
from wechat.pay_v3 import BEIJING, Refund, TradeBill, Transaction


def test_a_refund_lifts_out_each_of_its_four_amounts():
    data = refund_object(
        amount={
            "total": 101,
            "refund": 50,
            "payer_total": 91,
            "payer_refund": 40,
            "currency": "CNY",
        }
    )
    refund = Refund.from_json(data)
    assert (refund.total, refund.refund, refund.payer_total, refund.payer_refund) == (
        101,
        50,
        91,
        40,
    )
    assert refund.currency == "CNY"


def test_a_refund_names_its_order_by_transaction_id_and_out_trade_no():
    data = refund_object(transaction_id="4200000000000000000000000001", out_trade_no="T2")
    refund = Refund.from_json(data)
    assert (refund.transaction_id, refund.out_trade_no) == ("4200000000000000000000000001", "T2")


def test_zero_fen_is_an_amount():
    # An order paid entirely by coupons: the payer paid nothing, and refunds nothing.
    refund = Refund.from_json(refund_object(amount={"total": 101, "refund": 0, "payer_total": 0}))
    assert (refund.refund, refund.payer_total) == (0, 0)


def test_an_amount_that_is_not_an_object_is_refused_by_name():
    with pytest.raises(ValueError) as caught:
        Refund.from_json(refund_object(amount=101))
    assert str(caught.value) == "amount is not an object"


def test_a_text_field_that_is_not_a_string_is_refused_by_name():
    with pytest.raises(ValueError) as caught:
        Refund.from_json(refund_object(out_trade_no=2))
    assert str(caught.value) == "out_trade_no is not a string"


def test_a_refund_without_payer_amounts_has_none():
    refund = Refund.from_json(refund_object(amount={"total": 101, "refund": 50}))
    assert (refund.payer_total, refund.payer_refund) == (None, None)


@pytest.mark.parametrize("field", ["total", "refund", "payer_total", "payer_refund"])
@pytest.mark.parametrize("value", [-1, 1.0, "50", True])
def test_a_refund_amount_that_is_not_fen_is_refused(field, value):
    data = refund_object()
    data["amount"] = {**data["amount"], field: value}
    with pytest.raises(ValueError, match=f"^{field} is not an amount in fen$"):
        Refund.from_json(data)


def test_a_refund_keeps_wechats_whole_object_as_a_copy():
    data = refund_object()
    refund = Refund.from_json(data)
    assert refund.raw == data
    assert refund.raw["funds_account"] == "AVAILABLE"  # not lifted out, still there
    data["status"] = "CLOSED"
    assert refund.raw["status"] == "SUCCESS"
    assert refund.success_time == datetime(2025, 1, 2, 10, 0, 5, tzinfo=BEIJING)


@pytest.mark.parametrize("missing", ["download_url", "hash_type", "hash_value"])
def test_a_tradebill_answer_missing_a_field_says_which_fields_it_needs(missing):
    data = {"download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=t"}
    data |= {"hash_type": "SHA1", "hash_value": "ab" * 20}
    del data[missing]
    with pytest.raises(ValueError) as caught:
        TradeBill.from_json(data, None)
    assert str(caught.value) == "download_url, hash_type or hash_value missing"


def test_a_transaction_lifts_out_each_field_it_names():
    got = Transaction.from_json(transaction())
    assert (got.appid, got.mchid, got.out_trade_no, got.transaction_id) == (
        APPID,
        MCHID,
        "T20250101000000001",
        "4200002501202501018123456789",
    )
    assert (got.trade_type, got.trade_state, got.trade_state_desc) == (
        "JSAPI",
        "SUCCESS",
        "支付成功",
    )
    assert (got.bank_type, got.attach, got.payer_openid) == (
        "OTHERS",
        "shop=1",
        "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    )
    assert (got.total, got.payer_total, got.currency) == (101, 101, "CNY")
    assert got.success_time == datetime(2025, 1, 1, 8, 0, 30, tzinfo=BEIJING)
    assert got.is_paid
