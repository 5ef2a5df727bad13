"""unifiedorder (§3) and the protocol checks every pay endpoint shares (§1, §2)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from dataclasses import replace

import pytest

from tests.wxsim.client import APPID, KEY, MCH_ID, parse_xml, signature_ok, to_xml, wx_sign

NOTIFY = "https://shop.example.com/payment/wxnotify"


@pytest.mark.parametrize(
    ("sign_type", "expected_len"), [(None, 32), ("MD5", 32), ("HMAC-SHA256", 64)]
)
def test_happy_answer_is_signed_with_the_request_sign_type(wx, sign_type, expected_len):
    answer = wx.unifiedorder(NOTIFY, sign_type=sign_type)
    assert answer["return_code"] == "SUCCESS" and answer["result_code"] == "SUCCESS"
    assert answer["appid"] == APPID and answer["mch_id"] == MCH_ID
    assert answer["trade_type"] == "JSAPI"
    assert answer["prepay_id"].startswith("wx") and len(answer["prepay_id"]) <= 64
    assert len(answer["sign"]) == expected_len
    fields = {k: v for k, v in answer.items() if not k.startswith("_")}
    assert signature_ok(fields, sign_type or "MD5")


def test_wrong_key_is_a_signature_failure(wx):
    answer = wx.call("/pay/unifiedorder", {"body": "x"}, key="0" * 32)
    assert answer["return_code"] == "FAIL"
    assert answer["return_msg"] == "签名错误"
    assert "sign" not in answer and "result_code" not in answer


def test_md5_digest_declared_as_hmac_is_refused(wx):
    answer = wx.call("/pay/unifiedorder", {"body": "x"}, sign_type="HMAC-SHA256", sign_with="MD5")
    assert answer["return_code"] == "FAIL" and answer["return_msg"] == "签名错误"


def test_hmac_digest_without_declared_sign_type_is_refused(wx):
    answer = wx.call("/pay/unifiedorder", {"body": "x"}, sign_with="HMAC-SHA256")
    assert answer["return_code"] == "FAIL"


def test_lowercase_signature_is_refused(wx, sim_server):
    fields = {"appid": APPID, "mch_id": MCH_ID, "nonce_str": "n1", "body": "x"}
    fields["sign"] = wx_sign(fields).lower()
    response = wx.http.post(sim_server.base_url + "/pay/unifiedorder", data=to_xml(fields))
    assert parse_xml(response.content)["return_code"] == "FAIL"


def test_jsapi_without_openid_lacks_params(wx):
    answer = wx.unifiedorder(NOTIFY, openid="")
    assert answer["return_code"] == "SUCCESS" and answer["result_code"] == "FAIL"
    assert answer["err_code"] == "LACK_PARAMS"
    assert "openid" in answer["err_code_des"]
    assert signature_ok({k: v for k, v in answer.items() if k != "_out_trade_no"}, "MD5")


@pytest.mark.parametrize(
    ("ids", "err_code"),
    [
        ({"appid": "wx-not-ours"}, "APPID_NOT_EXIST"),
        ({"mch_id": "1234567"}, "MCHID_NOT_EXIST"),
    ],
)
def test_foreign_appid_or_mch_id(wx, ids, err_code):
    answer = wx.unifiedorder(NOTIFY, **ids)
    assert answer["result_code"] == "FAIL" and answer["err_code"] == err_code


@pytest.mark.parametrize(
    "overrides",
    [
        {"out_trade_no": "short"},
        {"out_trade_no": "订单12345678"},
        {"out_trade_no": "A" * 33},
        {"body": "b" * 129},
        {"nonce_str": "n" * 33},
        {"total_fee": "1.00"},
        {"total_fee": "0"},
        {"total_fee": "-5"},
        {"notify_url": "https://shop.example.com/notify?order=1"},
        {"notify_url": "/payment/wxnotify"},
        {"notify_url": "ftp://shop.example.com/notify"},
        {"trade_type": "BOGUS"},
        {"spbill_create_ip": "not-an-ip"},
        {"fee_type": "USD"},
        {"time_expire": "2024-01-01"},
    ],
)
def test_invalid_fields_are_invalid_request(wx, overrides):
    answer = wx.unifiedorder(**{"notify_url": NOTIFY, **overrides})
    assert answer["result_code"] == "FAIL"
    assert answer["err_code"] == "INVALID_REQUEST", answer


def test_body_of_128_characters_is_accepted(wx):
    assert wx.unifiedorder(NOTIFY, body="商" * 128)["result_code"] == "SUCCESS"


def test_reentry_with_same_parameters_returns_same_prepay_id(wx):
    first = wx.unifiedorder(NOTIFY, out_trade_no="REENTRY0001")
    again = wx.unifiedorder(NOTIFY, out_trade_no="REENTRY0001")  # new nonce, new sign
    assert again["result_code"] == "SUCCESS"
    assert again["prepay_id"] == first["prepay_id"]


def test_reentry_after_two_hours_gets_a_fresh_prepay_id(wx, sim):
    first = wx.unifiedorder(NOTIFY, out_trade_no="REENTRY0002")
    later = sim.now() + 2 * 3600 + 1
    sim.now = lambda: later
    again = wx.unifiedorder(NOTIFY, out_trade_no="REENTRY0002")
    assert again["result_code"] == "SUCCESS"
    assert again["prepay_id"] != first["prepay_id"]
    assert len(sim.trades) == 1


def test_reentry_with_changed_amount_is_out_trade_no_used(wx):
    wx.unifiedorder(NOTIFY, out_trade_no="REENTRY0003", total_fee=100)
    answer = wx.unifiedorder(NOTIFY, out_trade_no="REENTRY0003", total_fee=99)
    assert answer["result_code"] == "FAIL"
    assert answer["err_code"] == "OUT_TRADE_NO_USED"
    assert "total_fee" in answer["err_code_des"]


def test_paid_and_closed_orders_cannot_be_reentered(wx, sim, receiver):
    paid = wx.unifiedorder(receiver.url)
    assert wx.pay(paid["_out_trade_no"]).status_code == 200
    again = wx.unifiedorder(receiver.url, out_trade_no=paid["_out_trade_no"])
    assert again["err_code"] == "ORDERPAID"

    sim.config = replace(sim.config, close_min_seconds=0)
    closed = wx.unifiedorder(NOTIFY)
    close = wx.call("/pay/closeorder", {"out_trade_no": closed["_out_trade_no"]})
    assert close["result_code"] == "SUCCESS"
    again = wx.unifiedorder(NOTIFY, out_trade_no=closed["_out_trade_no"])
    assert again["err_code"] == "ORDERCLOSED"


def test_dtd_is_refused_as_xml_format_error(wx, sim_server):
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<xml><appid>&x;</appid></xml>"
    )
    response = wx.http.post(sim_server.base_url + "/pay/unifiedorder", data=evil)
    answer = parse_xml(response.content)
    assert answer == {"return_code": "FAIL", "return_msg": "XML_FORMAT_ERROR"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "POST_DATA_EMPTY"),
        (b"<xml><appid>unterminated", "XML_FORMAT_ERROR"),
        ("<xml><body>测试</body></xml>".encode("gbk"), "NOT_UTF8"),
    ],
)
def test_transport_errors(wx, sim_server, body, message):
    response = wx.http.post(sim_server.base_url + "/pay/unifiedorder", data=body)
    assert response.status_code == 200
    assert parse_xml(response.content) == {"return_code": "FAIL", "return_msg": message}


def test_get_requires_post(wx, sim_server):
    response = wx.http.get(sim_server.base_url + "/pay/orderquery")
    assert parse_xml(response.content)["return_msg"] == "REQUIRE_POST_METHOD"


def test_numbers_without_cdata_are_accepted(wx, sim_server):
    fields = {
        "appid": APPID,
        "mch_id": MCH_ID,
        "nonce_str": "abc",
        "body": "x",
        "out_trade_no": "BARE00001",
        "total_fee": "1",
        "spbill_create_ip": "::1",
        "notify_url": NOTIFY,
        "trade_type": "JSAPI",
        "openid": "oX",
    }
    fields["sign"] = wx_sign(fields, KEY)
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    response = wx.http.post(sim_server.base_url + "/pay/unifiedorder", data=f"<xml>{body}</xml>")
    assert parse_xml(response.content)["result_code"] == "SUCCESS"
