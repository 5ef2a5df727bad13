"""Refunds (§7.1), refund query (§7.2) and the encrypted refund notify (§7.3)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import base64
import hashlib

import pytest

from tests.wx import REQ_INFO_VECTOR, REQ_INFO_VECTOR_KEY
from tests.wxsim.client import KEY, parse_xml, signature_ok, wait_until


def refund(wx, trade, out_refund_no, refund_fee, **extra):
    params = {
        "out_trade_no": trade["_out_trade_no"],
        "out_refund_no": out_refund_no,
        "total_fee": 101,
        "refund_fee": refund_fee,
        **extra,
    }
    return wx.call("/secapi/pay/refund", params)


def test_refund_is_idempotent_by_out_refund_no(wx, paid_trade, sim):
    first = refund(wx, paid_trade, "R-0001", 30)
    assert first["result_code"] == "SUCCESS" and signature_ok(first, "MD5")
    assert first["refund_fee"] == "30" and first["refund_id"]
    again = refund(wx, paid_trade, "R-0001", 30)
    assert again["refund_id"] == first["refund_id"]
    assert sim.trades[paid_trade["_out_trade_no"]].refunded_fee == 30


def test_refunds_are_capped_at_the_paid_amount(wx, paid_trade):
    assert refund(wx, paid_trade, "R-0002", 100)["result_code"] == "SUCCESS"
    over = refund(wx, paid_trade, "R-0003", 2)
    assert over["result_code"] == "FAIL" and over["err_code"] == "ERROR"
    assert refund(wx, paid_trade, "R-0004", 1)["result_code"] == "SUCCESS"


def test_reused_out_refund_no_with_other_amount_is_refused(wx, paid_trade):
    refund(wx, paid_trade, "R-0005", 10)
    assert refund(wx, paid_trade, "R-0005", 11)["result_code"] == "FAIL"


@pytest.mark.parametrize(
    ("extra", "err_code"),
    [
        ({"total_fee": 999}, "PARAM_ERROR"),
        ({"out_refund_no": "退款1"}, "PARAM_ERROR"),
        ({"out_refund_no": ""}, "LACK_PARAMS"),
        ({"transaction_id": "4200000000000000000000000000"}, "INVALID_TRANSACTIONID"),
    ],
)
def test_refund_parameter_errors(wx, paid_trade, extra, err_code):
    answer = refund(wx, paid_trade, extra.pop("out_refund_no", "R-0006"), 1, **extra)
    assert answer["err_code"] == err_code


def test_unpaid_trade_cannot_be_refunded(wx, receiver):
    order = wx.unifiedorder(receiver.url)
    answer = refund(wx, order, "R-0007", 1)
    assert answer["err_code"] == "ORDERNOTEXIST"


def test_refund_succeeds_later_and_refundquery_lists_it(wx, paid_trade, sim):
    first = refund(wx, paid_trade, "R-0008", 40)
    refund(wx, paid_trade, "R-0009", 60)
    wait_until(lambda: all(r.status == "SUCCESS" for r in sim.refunds.values()))
    by_order = wx.call("/pay/refundquery", {"out_trade_no": paid_trade["_out_trade_no"]})
    assert by_order["result_code"] == "SUCCESS" and signature_ok(by_order, "MD5")
    assert by_order["total_refund_count"] == by_order["refund_count"] == "2"
    assert by_order["out_refund_no_0"] == "R-0008" and by_order["refund_fee_1"] == "60"
    assert by_order["refund_status_0"] == "SUCCESS" and by_order["refund_success_time_0"]
    by_id = wx.call("/pay/refundquery", {"refund_id": first["refund_id"]})
    assert by_id["refund_count"] == "1" and "total_refund_count" not in by_id
    query = wx.call("/pay/orderquery", {"out_trade_no": paid_trade["_out_trade_no"]})
    assert query["trade_state"] == "REFUND"


def test_refundquery_unknown_refund(wx, paid_trade):
    answer = wx.call("/pay/refundquery", {"out_trade_no": paid_trade["_out_trade_no"]})
    assert answer["err_code"] == "REFUNDNOTEXIST"
    assert wx.call("/pay/refundquery", {"out_refund_no": "NOPE"})["err_code"] == "REFUNDNOTEXIST"


def test_refund_notify_req_info_decrypts_with_the_key(wx, paid_trade, receiver):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    refund(wx, paid_trade, "R-0011", 5, notify_url=receiver.url)
    notify = parse_xml(receiver.wait_for(2)[1])
    assert "sign" not in notify and notify["return_code"] == "SUCCESS"
    key = hashlib.md5(KEY.encode()).hexdigest().encode()
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    plain = decryptor.update(base64.b64decode(notify["req_info"])) + decryptor.finalize()
    import xmltodict

    inner = xmltodict.parse(plain[: -plain[-1]])["root"]
    assert inner["out_refund_no"] == "R-0011" and inner["refund_status"] == "SUCCESS"
    assert inner["refund_fee"] == "5"


def test_encryption_reproduces_the_official_req_info_vector():
    """ECB is deterministic: re-encrypting the vector's plaintext gives its req_info (§7.3)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from wxsim.refunds import encrypt_req_info

    req_info = REQ_INFO_VECTOR  # the official vector, as the shop's own tests keep it
    api_key = REQ_INFO_VECTOR_KEY
    key = hashlib.md5(api_key.encode()).hexdigest().encode()
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    padded = decryptor.update(base64.b64decode(req_info)) + decryptor.finalize()
    assert encrypt_req_info(padded[: -padded[-1]], api_key) == req_info
