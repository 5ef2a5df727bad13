# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import dataclasses
import json
import logging
from datetime import UTC, datetime

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter

from tests.wx_v3 import (
    APIV3_KEY,
    APPID,
    BASE,
    MCHID,
    MERCHANT_SERIAL,
    NOW,
    OFFICIAL_PAY,
    OFFICIAL_PRIVATE_KEY_PEM,
    PLATFORM_SERIAL,
    error_answer,
    private_pem,
    request_signature_ok,
    signed_answer,
    transaction,
    wx_verify,
)
from wechat.pay_v3 import (
    BEIJING,
    InvalidRequest,
    OrderClosed,
    OrderNotExist,
    OrderPaid,
    RateLimited,
    RequestSignatureRejected,
    SignatureHeaderError,
    SignatureProbe,
    SystemBusy,
    TimestampOutOfWindow,
    UnknownSerial,
    WxPayV3ApiError,
    WxPayV3Client,
    WxPayV3RequestInvalid,
    WxPayV3SignatureError,
    WxPayV3Unavailable,
    load_private_key,
)

JSAPI = f"{BASE}/v3/pay/transactions/jsapi"
QUERY = f"{BASE}/v3/pay/transactions/out-trade-no/T20250101000000001?mchid={MCHID}"
CLOSE = f"{BASE}/v3/pay/transactions/out-trade-no/T20250101000000001/close"
PREPAY_ID = "wx01080000123456789abcdef0123456700"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
ORDER = {
    "out_trade_no": "T20250101000000001",
    "description": "测试商品-小熊玩偶",
    "total": 101,
    "openid": OPENID,
    "notify_url": "https://shop.example.com/payment/v3/wxnotify",
}


# -- JSAPI prepay (§4) -------------------------------------------------------------------------


def test_prepay_sends_a_signed_json_request_and_returns_the_prepay_id(
    client, mocked, merchant_key, wechat_key
):
    seen = {}

    def wechat(request):
        # Verified as WeChat would, with the merchant's public key, not with our signer.
        seen["auth"] = request_signature_ok(request, merchant_key.public_key())
        seen["request"] = request
        return signed_answer(wechat_key, {"prepay_id": PREPAY_ID})

    mocked.add_callback(responses.POST, JSAPI, callback=wechat)
    result = client.jsapi_prepay(
        **ORDER, time_expire=datetime(2025, 1, 1, 0, 30, tzinfo=UTC), attach="shop=1"
    )
    assert result.prepay_id == PREPAY_ID
    auth = seen["auth"]
    assert (auth["mchid"], auth["serial_no"], auth["timestamp"]) == (
        MCHID,
        MERCHANT_SERIAL,
        str(NOW),
    )
    assert len(auth["nonce_str"]) == 32
    request = seen["request"]
    assert json.loads(request.body) == {
        "appid": APPID,
        "mchid": MCHID,
        "description": "测试商品-小熊玩偶",
        "out_trade_no": "T20250101000000001",
        "time_expire": "2025-01-01T08:30:00+08:00",
        "attach": "shop=1",
        "notify_url": "https://shop.example.com/payment/v3/wxnotify",
        "amount": {"total": 101, "currency": "CNY"},
        "payer": {"openid": OPENID},
    }
    # Raw UTF-8, compact, no \u escapes (§1.2).
    assert "测试商品".encode() in request.body
    assert b": " not in request.body
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"]
    assert request.req_kwargs["timeout"] == (1.25, 4.5)


def test_prepay_leaves_out_absent_optional_fields(client, mocked, wechat_key):
    mocked.add_callback(
        responses.POST, JSAPI, callback=lambda r: signed_answer(wechat_key, {"prepay_id": "wx1"})
    )
    client.jsapi_prepay(**ORDER)
    sent = json.loads(mocked.calls[0].request.body)
    assert "time_expire" not in sent
    assert "attach" not in sent
    assert None not in sent.values()


def test_nonces_differ_between_requests(client, mocked, wechat_key):
    answer = signed_answer(wechat_key, {"prepay_id": "wx1"})
    mocked.add_callback(responses.POST, JSAPI, callback=lambda r: answer)
    client.jsapi_prepay(**ORDER)
    client.jsapi_prepay(**ORDER)
    first, second = (c.request.headers["Authorization"] for c in mocked.calls)
    assert first != second


@pytest.mark.parametrize(
    "change",
    [
        {"total": 0},
        {"total": -1},
        {"total": 1.0},
        {"total": "101"},
        {"total": True},
        {"description": ""},
        {"description": "好" * 43},  # 129 UTF-8 bytes
        {"description": "小熊🧸"},  # 4-byte character (§1.2)
        {"description": "a\nb"},
        {"out_trade_no": "T1"},
        {"out_trade_no": "T" * 33},
        {"out_trade_no": "T2025 0101"},
        {"out_trade_no": "T2025/../0101"},
        {"notify_url": "https://shop.example.com/notify?order=1"},
        {"notify_url": "ftp://shop.example.com/notify"},
        {"notify_url": "/payment/v3/wxnotify"},
        {"notify_url": "https://shop.example.com/" + "n" * 250},
        {"openid": ""},
        {"time_expire": datetime(2025, 1, 1, 8, 30)},  # naive
        {"attach": "x" * 129},
    ],
)
def test_prepay_refuses_what_wechat_would_refuse_without_calling_it(client, mocked, change):
    with pytest.raises(WxPayV3RequestInvalid):
        client.jsapi_prepay(**{**ORDER, **change})
    assert len(mocked.calls) == 0


def test_prepay_accepts_127_byte_descriptions(client, mocked, wechat_key):
    mocked.add_callback(
        responses.POST, JSAPI, callback=lambda r: signed_answer(wechat_key, {"prepay_id": "wx1"})
    )
    client.jsapi_prepay(**{**ORDER, "description": "好" * 42 + "a"})  # 127 bytes


def test_prepay_answer_without_prepay_id_is_unavailable(client, mocked, wechat_key):
    mocked.add_callback(responses.POST, JSAPI, callback=lambda r: signed_answer(wechat_key, {}))
    with pytest.raises(WxPayV3Unavailable, match="prepay_id"):
        client.jsapi_prepay(**ORDER)


# -- every answer is verified before it is trusted (§3) ----------------------------------------


def test_an_answer_signed_by_another_key_is_refused(client, mocked, merchant_key):
    mocked.add_callback(
        responses.POST, JSAPI, callback=lambda r: signed_answer(merchant_key, {"prepay_id": "wx1"})
    )
    with pytest.raises(WxPayV3SignatureError):
        client.jsapi_prepay(**ORDER)


def test_an_unsigned_answer_is_refused(client, mocked):
    mocked.add(responses.POST, JSAPI, json={"prepay_id": "wx1"})
    with pytest.raises(SignatureHeaderError):
        client.jsapi_prepay(**ORDER)


def test_an_answer_whose_body_was_changed_is_refused(client, mocked, wechat_key):
    status, headers, _ = signed_answer(wechat_key, {"prepay_id": "wx1"})
    mocked.add_callback(
        responses.POST, JSAPI, callback=lambda r: (status, headers, b'{"prepay_id":"wx2"}')
    )
    with pytest.raises(WxPayV3SignatureError):
        client.jsapi_prepay(**ORDER)


def test_a_stale_answer_is_refused(client, mocked, wechat_key):
    mocked.add_callback(
        responses.POST,
        JSAPI,
        callback=lambda r: signed_answer(wechat_key, {"prepay_id": "wx1"}, timestamp=NOW - 300),
    )
    with pytest.raises(TimestampOutOfWindow):
        client.jsapi_prepay(**ORDER)


def test_an_answer_from_an_unknown_serial_asks_for_a_refresh(client, mocked, platform):
    other = "7132D72A03E93CDDF8C03BBD1F37EEDF1A58F0E5"
    mocked.add_callback(
        responses.POST,
        JSAPI,
        callback=lambda r: signed_answer(platform.key, {"prepay_id": "wx1"}, serial=other),
    )
    with pytest.raises(UnknownSerial, match="refresh"):
        client.jsapi_prepay(**ORDER)


def test_a_probe_answer_is_refused(client, mocked, wechat_key):
    status, headers, body = signed_answer(wechat_key, {"prepay_id": "wx1"})
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/AAAA"
    mocked.add_callback(responses.POST, JSAPI, callback=lambda r: (status, headers, body))
    with pytest.raises(SignatureProbe):
        client.jsapi_prepay(**ORDER)


def test_answers_signed_with_the_platform_certificate_verify_too(client, mocked, platform):
    mocked.add_callback(
        responses.POST,
        JSAPI,
        callback=lambda r: signed_answer(
            platform.key, {"prepay_id": "wx1"}, serial=PLATFORM_SERIAL
        ),
    )
    assert client.jsapi_prepay(**ORDER).prepay_id == "wx1"


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'"wx1"', b"\xff"])
def test_a_signed_answer_that_is_not_a_json_object_is_unavailable(client, mocked, wechat_key, body):
    mocked.add_callback(responses.POST, JSAPI, callback=lambda r: signed_answer(wechat_key, body))
    with pytest.raises(WxPayV3Unavailable):
        client.jsapi_prepay(**ORDER)


def test_the_keyring_can_be_replaced_on_a_live_client(client, mocked, platform, wechat_key):
    client.keyring = client.keyring.with_certificates([])
    mocked.add_callback(
        responses.POST,
        JSAPI,
        callback=lambda r: signed_answer(
            platform.key, {"prepay_id": "wx1"}, serial=PLATFORM_SERIAL
        ),
    )
    with pytest.raises(UnknownSerial):
        client.jsapi_prepay(**ORDER)


# -- errors (§10) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, code, cls",
    [
        (400, "PARAM_ERROR", InvalidRequest),
        (401, "SIGN_ERROR", RequestSignatureRejected),
        (403, "ORDERPAID", OrderPaid),
        (400, "ORDER_CLOSED", OrderClosed),
        (429, "FREQUENCY_LIMITED", RateLimited),
        (500, "SYSTEM_ERROR", SystemBusy),
        (403, "RULE_LIMIT", WxPayV3ApiError),
    ],
)
def test_error_answers_raise_typed_errors(client, mocked, status, code, cls):
    mocked.add_callback(
        responses.POST, JSAPI, callback=lambda r: error_answer(status, code, "说明")
    )
    with pytest.raises(WxPayV3ApiError) as caught:
        client.jsapi_prepay(**ORDER)
    error = caught.value
    assert type(error) is cls
    assert (error.status, error.code, error.message) == (status, code, "说明")
    assert error.request_id.endswith(f"-{status}")


def test_error_detail_is_kept(client, mocked):
    body = {
        "code": "PARAM_ERROR",
        "message": "参数错误",
        "detail": {
            "field": "/amount/total",
            "value": 0,
            "issue": "must be >= 1",
            "location": "body",
        },
    }
    mocked.add(responses.POST, JSAPI, json=body, status=400)
    with pytest.raises(InvalidRequest) as caught:
        client.jsapi_prepay(**ORDER)
    assert caught.value.detail["field"] == "/amount/total"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_without_a_code_are_unavailable(client, mocked, status):
    mocked.add(responses.POST, JSAPI, body="<html>Bad Gateway</html>", status=status)
    with pytest.raises(WxPayV3Unavailable, match=str(status)) as caught:
        client.jsapi_prepay(**ORDER)
    assert caught.value.retryable


def test_client_errors_without_a_code_keep_their_status(client, mocked):
    mocked.add(responses.POST, JSAPI, body="", status=404)
    with pytest.raises(WxPayV3ApiError) as caught:
        client.jsapi_prepay(**ORDER)
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (404, "", False)


@pytest.mark.parametrize(
    "exc", [requests.ConnectTimeout, requests.ReadTimeout, requests.ConnectionError]
)
def test_network_failures_are_unavailable_and_retryable(client, mocked, exc):
    mocked.add(responses.POST, JSAPI, body=exc("https://api.mch.weixin.qq.com/secret?x"))
    with pytest.raises(WxPayV3Unavailable) as caught:
        client.jsapi_prepay(**ORDER)
    assert caught.value.retryable
    assert "secret" not in str(caught.value)


def test_no_automatic_retries(client, mocked):
    mocked.add(responses.POST, JSAPI, json={"code": "SYSTEM_ERROR", "message": ""}, status=500)
    with pytest.raises(SystemBusy):
        client.jsapi_prepay(**ORDER)
    assert len(mocked.calls) == 1
    adapter = client.session.get_adapter(BASE)
    assert isinstance(adapter, HTTPAdapter)
    assert adapter.max_retries.total == 0


def test_a_given_session_is_used(config, mocked, wechat_key):
    session = requests.Session()
    session.headers["X-Trace"] = "t1"
    mocked.add_callback(
        responses.POST, JSAPI, callback=lambda r: signed_answer(wechat_key, {"prepay_id": "wx1"})
    )
    WxPayV3Client(config, session=session).jsapi_prepay(**ORDER)
    assert mocked.calls[0].request.headers["X-Trace"] == "t1"


# -- wx.requestPayment (§5) --------------------------------------------------------------------


def test_jsapi_params_match_the_official_pay_sign(config):
    p = OFFICIAL_PAY
    official = dataclasses.replace(
        config, appid=p["app_id"], private_key=load_private_key(OFFICIAL_PRIVATE_KEY_PEM)
    )
    params = WxPayV3Client(official).jsapi_params(
        p["prepay_id"], timestamp=int(p["timestamp"]), nonce=p["nonce"]
    )
    assert params == {
        "timeStamp": p["timestamp"],
        "nonceStr": p["nonce"],
        "package": f"prepay_id={p['prepay_id']}",
        "signType": "RSA",
        "paySign": p["pay_sign"],
    }


def test_jsapi_params_sign_appid_and_use_the_clock(client, merchant_key):
    params = client.jsapi_params(PREPAY_ID)
    assert params["timeStamp"] == str(NOW)
    assert len(params["nonceStr"]) == 32
    assert "appId" not in params
    message = f"{APPID}\n{NOW}\n{params['nonceStr']}\nprepay_id={PREPAY_ID}\n".encode()
    assert wx_verify(merchant_key.public_key(), message, params["paySign"])


@pytest.mark.parametrize("prepay_id", ["", "wx1\nx", "wx 1", None])
def test_jsapi_params_refuse_odd_prepay_ids(client, prepay_id):
    with pytest.raises(WxPayV3RequestInvalid, match="prepay_id"):
        client.jsapi_params(prepay_id)


def test_jsapi_params_refuse_nonces_that_would_change_the_message(client):
    with pytest.raises(WxPayV3RequestInvalid, match="nonce"):
        client.jsapi_params(PREPAY_ID, nonce="a\nb")


# -- query and close (§6) ----------------------------------------------------------------------


def test_query_by_out_trade_no_signs_the_mchid_query(client, mocked, merchant_key, wechat_key):
    def wechat(request):
        auth = request_signature_ok(request, merchant_key.public_key())
        assert (
            request.path_url
            == f"/v3/pay/transactions/out-trade-no/T20250101000000001?mchid={MCHID}"
        )
        assert request.body is None
        assert auth["mchid"] == MCHID
        return signed_answer(wechat_key, transaction())

    mocked.add_callback(responses.GET, QUERY, callback=wechat)
    paid = client.order_query(out_trade_no="T20250101000000001")
    assert paid.is_paid
    assert paid.trade_state == "SUCCESS"
    assert (paid.total, paid.payer_total, paid.currency) == (101, 101, "CNY")
    assert paid.payer_openid == OPENID
    assert paid.success_time == datetime(2025, 1, 1, 8, 0, 30, tzinfo=BEIJING)
    assert paid.raw["bank_type"] == "OTHERS"
    assert mocked.calls[0].request.req_kwargs["timeout"] == (1.25, 4.5)


def test_query_by_transaction_id(client, mocked, wechat_key):
    url = f"{BASE}/v3/pay/transactions/id/4200002501202501018123456789?mchid={MCHID}"
    mocked.add_callback(
        responses.GET, url, callback=lambda r: signed_answer(wechat_key, transaction())
    )
    assert client.order_query(transaction_id="4200002501202501018123456789").is_paid


def test_query_of_an_unpaid_order(client, mocked, wechat_key):
    unpaid = transaction(trade_state="NOTPAY", trade_state_desc="订单未支付")
    for name in ("transaction_id", "success_time", "payer", "bank_type"):
        del unpaid[name]
    unpaid["amount"] = {"total": 101, "currency": "CNY"}
    mocked.add_callback(responses.GET, QUERY, callback=lambda r: signed_answer(wechat_key, unpaid))
    state = client.order_query(out_trade_no="T20250101000000001")
    assert not state.is_paid
    assert (state.transaction_id, state.success_time, state.payer_openid) == ("", None, "")
    assert state.payer_total is None


def test_refund_state_still_counts_as_paid(client, mocked, wechat_key):
    answer = transaction(trade_state="REFUND")
    mocked.add_callback(responses.GET, QUERY, callback=lambda r: signed_answer(wechat_key, answer))
    assert client.order_query(out_trade_no="T20250101000000001").is_paid


def test_query_of_an_unknown_order(client, mocked):
    mocked.add_callback(
        responses.GET, QUERY, callback=lambda r: error_answer(404, "ORDER_NOT_EXIST", "订单不存在")
    )
    with pytest.raises(OrderNotExist):
        client.order_query(out_trade_no="T20250101000000001")


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"mchid": "1900000002"}, WxPayV3SignatureError),
        ({"appid": "wx0000000000000000"}, WxPayV3SignatureError),
        ({"out_trade_no": "T20250101000000002"}, WxPayV3Unavailable),
        ({"amount": {"total": "101"}}, WxPayV3Unavailable),
        ({"success_time": "yesterday"}, WxPayV3Unavailable),
    ],
)
def test_query_answers_not_about_this_order_are_refused(client, mocked, wechat_key, changes, error):
    answer = transaction(**changes)
    mocked.add_callback(responses.GET, QUERY, callback=lambda r: signed_answer(wechat_key, answer))
    with pytest.raises(error):
        client.order_query(out_trade_no="T20250101000000001")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"out_trade_no": "T20250101000000001", "transaction_id": "42"}, {"out_trade_no": "a/b"}],
)
def test_query_needs_exactly_one_sane_number(client, kwargs):
    with pytest.raises(WxPayV3RequestInvalid):
        client.order_query(**kwargs)


def test_close_posts_the_mchid_and_verifies_the_signed_204(
    client, mocked, merchant_key, wechat_key
):
    def wechat(request):
        request_signature_ok(request, merchant_key.public_key())
        assert request.body == b'{"mchid":"1900000001"}'
        return signed_answer(wechat_key, b"", status=204)

    mocked.add_callback(responses.POST, CLOSE, callback=wechat)
    assert client.close_order(out_trade_no="T20250101000000001") is None


def test_an_unsigned_204_is_refused(client, mocked):
    mocked.add(responses.POST, CLOSE, status=204)
    with pytest.raises(SignatureHeaderError):
        client.close_order(out_trade_no="T20250101000000001")


def test_a_204_signed_over_another_body_is_refused(client, mocked, wechat_key):
    _, headers, _ = signed_answer(wechat_key, b"{}")
    mocked.add_callback(responses.POST, CLOSE, callback=lambda r: (204, headers, b""))
    with pytest.raises(WxPayV3SignatureError):
        client.close_order(out_trade_no="T20250101000000001")


def test_closing_a_paid_order(client, mocked):
    mocked.add_callback(
        responses.POST, CLOSE, callback=lambda r: error_answer(400, "ORDER_PAID", "订单已支付")
    )
    with pytest.raises(OrderPaid):
        client.close_order(out_trade_no="T20250101000000001")


# -- configuration and logging -----------------------------------------------------------------


def test_config_repr_hides_the_secrets(config, merchant_key):
    text = repr(config) + str(config)
    assert APIV3_KEY not in text
    assert "RSAPrivateKey" not in text
    assert MCHID in text
    client = WxPayV3Client(config)
    assert APIV3_KEY not in repr(client.__dict__)


@pytest.mark.parametrize(
    "overrides",
    [
        {"appid": ""},
        {"mchid": ""},
        {"mchid": "19x"},
        {"merchant_serial_no": ""},
        {"merchant_serial_no": 'AB",x="'},
        {"apiv3_key": "short"},
        {"apiv3_key": ""},
        {"private_key": "-----BEGIN PRIVATE KEY-----"},
        {"keyring": "not a ring"},
    ],
)
def test_config_refuses_missing_or_malformed_settings(config, overrides):
    with pytest.raises(ValueError):
        dataclasses.replace(config, **overrides)


def test_config_refuses_a_pem_string_for_the_key(config, merchant_key):
    with pytest.raises(ValueError, match="RSA private key"):
        dataclasses.replace(config, private_key=private_pem(merchant_key))


def test_each_call_logs_one_info_line_without_secrets(client, mocked, wechat_key, caplog):
    caplog.set_level(logging.DEBUG, logger="wechat.pay_v3")
    mocked.add_callback(
        responses.POST,
        JSAPI,
        callback=lambda r: signed_answer(wechat_key, {"prepay_id": PREPAY_ID}),
    )
    client.jsapi_prepay(**ORDER)
    [record] = [r for r in caplog.records if r.name == "wechat.pay_v3"]
    message = record.getMessage()
    assert record.levelno == logging.INFO
    assert "POST /v3/pay/transactions/jsapi" in message
    assert "no=T20250101000000001" in message
    assert "status=200 outcome=ok" in message
    assert "request_id=08F8B4D8BB0610D70318C5A2E05E20B3A14A08F9F5022880E1" in message
    assert "elapsed_ms=" in message
    authorization = mocked.calls[0].request.headers["Authorization"]
    for secret in (APIV3_KEY, PREPAY_ID, OPENID, authorization.split('signature="')[1][:40]):
        assert secret not in caplog.text


def test_failed_call_logs_its_outcome(client, mocked, caplog):
    caplog.set_level(logging.INFO, logger="wechat.pay_v3")
    mocked.add_callback(responses.POST, JSAPI, callback=lambda r: error_answer(500, "SYSTEM_ERROR"))
    with pytest.raises(SystemBusy):
        client.jsapi_prepay(**ORDER)
    assert "status=500 outcome=SystemBusy(SYSTEM_ERROR)" in caplog.text


def test_refused_answer_logs_its_outcome(client, mocked, caplog):
    caplog.set_level(logging.INFO, logger="wechat.pay_v3")
    mocked.add(responses.POST, JSAPI, json={"prepay_id": "wx1"})
    with pytest.raises(SignatureHeaderError):
        client.jsapi_prepay(**ORDER)
    assert "outcome=SignatureHeaderError" in caplog.text


def test_query_logs_the_path_template_not_the_query(client, mocked, wechat_key, caplog):
    caplog.set_level(logging.INFO, logger="wechat.pay_v3")
    mocked.add_callback(
        responses.GET, QUERY, callback=lambda r: signed_answer(wechat_key, transaction())
    )
    client.order_query(out_trade_no="T20250101000000001")
    assert (
        "GET /v3/pay/transactions/out-trade-no/{out_trade_no} no=T20250101000000001" in caplog.text
    )
    assert "mchid=" not in caplog.text
