"""v3 requests checked as WeChat checks them (§2) and answers signed as WeChat signs them
(§3), with calls built by hand: good and bad signatures, clocks, merchants, bodies.

The hand-built calls sign with tests/wx_v3.py, answers are verified by hand here.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import base64
import json
import re

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.wx_v3 import new_rsa_key
from tests.wxsim.client import APPID, MCH_ID, PAYER, answer_signed_by, new_out_trade_no

QUERY = "/v3/pay/transactions/out-trade-no/{}?mchid=" + MCH_ID


def prepay_body(out_trade_no: str, **overrides) -> dict:
    return {
        "appid": APPID,
        "mchid": MCH_ID,
        "description": "测试商店-商品",
        "out_trade_no": out_trade_no,
        "notify_url": "https://shop.example.com/payment/v3/wxnotify",
        "amount": {"total": 101, "currency": "CNY"},
        "payer": {"openid": PAYER},
        **overrides,
    }


def sign_error(response) -> dict:
    assert response.status_code == 401, response.text
    answer = response.json()
    assert answer["code"] == "SIGN_ERROR"
    return answer


def test_signed_request_gets_a_signed_answer(v3_by_hand, sim):
    response = v3_by_hand.call("POST", "/v3/pay/transactions/jsapi",
                               prepay_body(new_out_trade_no()))

    assert response.status_code == 200, response.text
    assert re.fullmatch(r"wx[0-9]{14}[0-9a-f]{20}", response.json()["prepay_id"])
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Wechatpay-Serial"] == sim.v3.public_key_id
    assert response.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert response.headers["Request-ID"].endswith("-0")
    assert answer_signed_by(response, sim.v3.public_key_signer.key.public_key())
    assert abs(int(response.headers["Wechatpay-Timestamp"]) - sim.now()) < 5


def test_get_signs_an_empty_body_line(v3_by_hand):
    number = new_out_trade_no()
    v3_by_hand.call("POST", "/v3/pay/transactions/jsapi", prepay_body(number))

    response = v3_by_hand.call("GET", QUERY.format(number))

    assert response.status_code == 200, response.text
    assert response.json()["trade_state"] == "NOTPAY"


def test_bad_signature_is_401_with_what_wechat_rebuilt(v3_by_hand):
    response = v3_by_hand.call("GET", QUERY.format("T0000000001"), key=new_rsa_key())

    answer = sign_error(response)
    assert answer["message"] == "错误的签名,验签失败"
    shown = answer["detail"]["sign_information"]
    assert shown["method"] == "GET" and shown["url"] == QUERY.format("T0000000001")
    assert shown["truncated_sign_message"].endswith("\n\n")
    assert response.headers["Request-ID"].endswith("-268443699")


@pytest.mark.parametrize(
    "change",
    [
        {"sign_target": "/v3/pay/transactions/out-trade-no/T0000000001"},  # query left out
        {"sign_target": "https://api.mch.weixin.qq.com" + QUERY.format("T0000000001")},
        {"sign_body": b"{}"},  # a GET signs an empty body
    ],
    ids=["query-unsigned", "host-in-url-line", "body-line"],
)
def test_message_not_exactly_what_was_sent_is_refused(v3_by_hand, change):
    sign_error(v3_by_hand.call("GET", QUERY.format("T0000000001"), **change))


def test_body_changed_after_signing_is_refused(v3_by_hand):
    body = prepay_body(new_out_trade_no())
    signed = json_bytes(body)
    resent = json_bytes(body, ensure_ascii=True)  # the same JSON, escaped differently

    response = v3_by_hand.call("POST", "/v3/pay/transactions/jsapi", resent, sign_body=signed)

    sign_error(response)


def json_bytes(data: dict, ensure_ascii: bool = False) -> bytes:
    return json.dumps(data, ensure_ascii=ensure_ascii, separators=(",", ":")).encode()


@pytest.mark.parametrize("skew", [-301, 301, 3600])
def test_timestamp_five_minutes_off_is_refused(v3_by_hand, sim, skew):
    response = v3_by_hand.call("GET", QUERY.format("T0000000001"),
                               timestamp=int(sim.now()) - skew)
    assert sign_error(response)["detail"]["field"] == "timestamp"


def test_timestamp_in_milliseconds_is_refused(v3_by_hand, sim):
    sign_error(v3_by_hand.call("GET", QUERY.format("T0000000001"),
                               timestamp=int(sim.now() * 1000)))


def test_timestamp_within_the_window_is_accepted(v3_by_hand, sim):
    response = v3_by_hand.call("GET", QUERY.format("T0000000001"),
                               timestamp=int(sim.now()) - 290)
    assert response.status_code == 404  # authenticated; then no such order


def test_wrong_merchant_serial_is_refused(v3_by_hand, sim):
    v3_by_hand.serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    answer = sign_error(v3_by_hand.call("GET", QUERY.format("T0000000001")))
    assert answer["message"].startswith("商户证书序列号有误")
    v3_by_hand.serial = sim.v3.public_key_id  # WeChat's id is not the merchant's serial
    sign_error(v3_by_hand.call("GET", QUERY.format("T0000000001")))


def test_serial_in_lowercase_is_the_same_serial(v3_by_hand):
    v3_by_hand.serial = v3_by_hand.serial.lower()
    assert v3_by_hand.call("GET", QUERY.format("T0000000001")).status_code == 404


def test_unknown_mchid_is_refused(v3_by_hand):
    v3_by_hand.mchid = "1900000001"
    response = v3_by_hand.call("GET", "/v3/pay/transactions/out-trade-no/T0000000001"
                                      "?mchid=1900000001")
    assert response.status_code == 400
    assert response.json()["code"] == "MCH_NOT_EXISTS"


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer abc",
        'WECHATPAY2-SHA256-RSA2048 mchid="10000100", nonce_str="x"',  # spaces after commas
        'WECHATPAY2-SHA256-RSA2048 mchid="10000100",nonce_str="abc",timestamp="1"',  # fields
        'WECHATPAY2-SHA256-RSA2048 mchid="10000100",mchid="10000100",nonce_str="a",'
        'signature="a",timestamp="1",serial_no="A"',
    ],
    ids=["missing", "other-scheme", "spaces", "missing-fields", "repeated-field"],
)
def test_malformed_authorization_is_refused(v3_by_hand, authorization):
    sign_error(v3_by_hand.call("GET", QUERY.format("T0000000001"), authorization=authorization))


def test_pss_padding_is_refused(v3_by_hand, sim):
    stamp, nonce, target = int(sim.now()), "ABC123", QUERY.format("T0000000001")
    message = f"GET\n{target}\n{stamp}\n{nonce}\n\n".encode()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = base64.b64encode(v3_by_hand.merchant_key.sign(message, pss, hashes.SHA256()))
    header = (f'WECHATPAY2-SHA256-RSA2048 mchid="{MCH_ID}",nonce_str="{nonce}",'
              f'signature="{signature.decode()}",timestamp="{stamp}",'
              f'serial_no="{v3_by_hand.serial}"')
    sign_error(v3_by_hand.call("GET", target, authorization=header))


@pytest.mark.parametrize(
    "body",
    [b'{"appid": ', b"[1, 2]", b"\xff\xfe", b""],
    ids=["truncated", "array", "not-utf8", "empty"],
)
def test_malformed_json_is_param_error(v3_by_hand, body):
    response = v3_by_hand.call("POST", "/v3/pay/transactions/jsapi", body)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "PARAM_ERROR"


def test_unknown_path_and_method(v3_by_hand):
    assert v3_by_hand.call("GET", "/v3/pay/nothing").status_code == 404
    response = v3_by_hand.call("DELETE", "/v3/pay/transactions/jsapi")
    assert response.status_code == 405


def test_error_answers_are_signed_too(v3_by_hand, sim):
    response = v3_by_hand.call("GET", QUERY.format("T0000000001"))

    assert response.status_code == 404
    assert response.json() == {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
    assert response.headers["Request-ID"].endswith("-268512771")
    assert answer_signed_by(response, sim.v3.public_key_signer.key.public_key())
