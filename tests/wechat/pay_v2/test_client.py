# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter

from tests.wechat.pay_v2.answers import BASE, sent_fields, wechat_answer
from tests.wx import OFFICIAL_APPID, OFFICIAL_KEY, OFFICIAL_MCH_ID, cdata_xml, signed
from wechat.pay_v2 import (
    OrderNotExist,
    OrderPaid,
    SystemBusy,
    WxPayClient,
    WxPayConfig,
    WxPayProtocolError,
    WxPaySignatureError,
    WxPayUnavailable,
    from_xml,
)

UNIFIEDORDER = f"{BASE}/pay/unifiedorder"
ORDERQUERY = f"{BASE}/pay/orderquery"
CLOSEORDER = f"{BASE}/pay/closeorder"
PREPAY_ID = "wx201410272009395522657a690389285100"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
NOTIFY_URL = "https://shop.example.com/payment/wxnotify"
ORDER = {
    "out_trade_no": "20240101000001",
    "total_fee": 101,
    "body": "小店-零食",
    "openid": OPENID,
    "notify_url": NOTIFY_URL,
    "spbill_create_ip": "203.0.113.7",
}


def prepay_answer(sign_type: str = "MD5", **fields: str) -> bytes:
    return wechat_answer(sign_type, prepay_id=PREPAY_ID, trade_type="JSAPI", **fields)


# -- unifiedorder ------------------------------------------------------------------------------


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_unified_order_sends_signed_request_and_returns_prepay_id(mocked, sign_type):
    def wechat(request):
        fields = from_xml(request.body)
        # Recompute the sign here, independently of wechat.pay_v2.signing (§2.1).
        string_a = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k])
        message = f"{string_a}&key={OFFICIAL_KEY}".encode()
        if sign_type == "MD5":
            expected = hashlib.md5(message).hexdigest().upper()
        else:
            expected = hmac.new(OFFICIAL_KEY.encode(), message, hashlib.sha256).hexdigest().upper()
        assert fields["sign"] == expected
        assert fields["sign_type"] == sign_type
        assert fields["openid"] == OPENID
        assert fields["trade_type"] == "JSAPI"
        assert fields["notify_url"] == NOTIFY_URL
        assert (fields["appid"], fields["mch_id"]) == (OFFICIAL_APPID, OFFICIAL_MCH_ID)
        assert fields["total_fee"] == "101"
        assert fields["body"] == "小店-零食"
        assert len(fields["nonce_str"]) == 32
        return 200, {"Content-Type": "text/plain"}, prepay_answer(sign_type)

    mocked.add_callback(responses.POST, UNIFIEDORDER, callback=wechat)
    client = WxPayClient(
        WxPayConfig(
            appid=OFFICIAL_APPID, mch_id=OFFICIAL_MCH_ID, api_key=OFFICIAL_KEY, sign_type=sign_type
        )
    )

    result = client.unified_order(**ORDER)

    assert result.prepay_id == PREPAY_ID
    assert result.trade_type == "JSAPI"
    assert result.raw["nonce_str"] == "IITRi8Iabbblz1Jc"
    assert len(mocked.calls) == 1


def test_unified_order_posts_utf8_xml(client, mocked):
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer())
    client.unified_order(**ORDER)
    request = mocked.calls[0].request
    assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert request.body.startswith(b"<xml>")
    assert "小店-零食".encode() in request.body


def test_unified_order_sends_times_in_beijing_and_attach(client, mocked):
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer())
    start = datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC)
    client.unified_order(
        **ORDER, time_start=start, time_expire=start + timedelta(minutes=30), attach="shop=1"
    )
    fields = sent_fields(mocked)
    assert fields["time_start"] == "20240101100000"
    assert fields["time_expire"] == "20240101103000"
    assert fields["attach"] == "shop=1"


def test_unified_order_leaves_out_optional_fields_not_given(client, mocked):
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer())
    client.unified_order(**ORDER)
    assert not {"time_start", "time_expire", "attach"} & sent_fields(mocked).keys()


@pytest.mark.parametrize("total_fee", [0, -1, 1.01, True, "101"])
def test_unified_order_refuses_fee_that_is_not_positive_int_fen(client, total_fee):
    with pytest.raises(ValueError, match="fen"):
        client.unified_order(**{**ORDER, "total_fee": total_fee})


# -- answers that must not be trusted ----------------------------------------------------------


def test_answer_with_bad_sign_raises_signature_error(client, mocked):
    answer = signed({"return_code": "SUCCESS", "appid": OFFICIAL_APPID, "mch_id": OFFICIAL_MCH_ID})
    answer.update(result_code="SUCCESS", prepay_id=PREPAY_ID)  # added after signing
    mocked.add(responses.POST, UNIFIEDORDER, body=cdata_xml(answer))
    with pytest.raises(WxPaySignatureError, match="invalid"):
        client.unified_order(**ORDER)


def test_answer_without_sign_raises_signature_error(client, mocked):
    fields = {
        "return_code": "SUCCESS",
        "appid": OFFICIAL_APPID,
        "mch_id": OFFICIAL_MCH_ID,
        "result_code": "SUCCESS",
    }
    mocked.add(responses.POST, UNIFIEDORDER, body=cdata_xml({**fields, "prepay_id": PREPAY_ID}))
    with pytest.raises(WxPaySignatureError, match="no sign"):
        client.unified_order(**ORDER)


def test_answer_signed_with_another_key_raises_signature_error(client, mocked):
    mocked.add(responses.POST, UNIFIEDORDER, body=wechat_answer(key="f" * 32, prepay_id="x"))
    with pytest.raises(WxPaySignatureError):
        client.unified_order(**ORDER)


def test_answer_signed_with_other_algorithm_than_request_raises_signature_error(mocked):
    config = WxPayConfig(
        appid=OFFICIAL_APPID, mch_id=OFFICIAL_MCH_ID, api_key=OFFICIAL_KEY, sign_type="HMAC-SHA256"
    )
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer("MD5"))
    with pytest.raises(WxPaySignatureError, match="HMAC-SHA256"):
        WxPayClient(config).unified_order(**ORDER)


@pytest.mark.parametrize(
    "echo", [{"appid": "wx0000000000000000"}, {"mch_id": "19999999"}, {"appid": ""}]
)
def test_validly_signed_answer_for_another_merchant_raises_signature_error(client, mocked, echo):
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer(**echo))
    with pytest.raises(WxPaySignatureError, match="appid/mch_id"):
        client.unified_order(**ORDER)


# -- protocol and business failures ------------------------------------------------------------


def test_return_code_fail_raises_protocol_error_with_return_msg(client, mocked):
    body = cdata_xml({"return_code": "FAIL", "return_msg": "签名错误"})
    mocked.add(responses.POST, UNIFIEDORDER, body=body)
    with pytest.raises(WxPayProtocolError) as caught:
        client.unified_order(**ORDER)
    assert caught.value.return_msg == "签名错误"


def test_systemerror_raises_retryable_system_busy(client, mocked):
    answer = wechat_answer(result_code="FAIL", err_code="SYSTEMERROR", err_code_des="系统错误")
    mocked.add(responses.POST, UNIFIEDORDER, body=answer)
    with pytest.raises(SystemBusy) as caught:
        client.unified_order(**ORDER)
    assert caught.value.retryable
    assert caught.value.err_code == "SYSTEMERROR"
    assert "SYSTEMERROR" in str(caught.value)


def test_orderpaid_raises_order_paid(client, mocked):
    answer = wechat_answer(result_code="FAIL", err_code="ORDERPAID", err_code_des="商户订单已支付")
    mocked.add(responses.POST, UNIFIEDORDER, body=answer)
    with pytest.raises(OrderPaid) as caught:
        client.unified_order(**ORDER)
    assert not caught.value.retryable
    assert caught.value.err_code_des == "商户订单已支付"


def test_success_answer_without_prepay_id_is_unusable(client, mocked):
    mocked.add(responses.POST, UNIFIEDORDER, body=wechat_answer(trade_type="JSAPI"))
    with pytest.raises(WxPayUnavailable, match="prepay_id"):
        client.unified_order(**ORDER)


# -- transport failures ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 301, 404])
def test_http_status_other_than_200_raises_unavailable(client, mocked, status):
    mocked.add(responses.POST, UNIFIEDORDER, status=status, body=prepay_answer())
    with pytest.raises(WxPayUnavailable, match=f"HTTP status {status}"):
        client.unified_order(**ORDER)


@pytest.mark.parametrize(
    "exception", [requests.exceptions.ConnectTimeout(), requests.exceptions.ReadTimeout()]
)
def test_timeouts_raise_unavailable(client, mocked, exception):
    mocked.add(responses.POST, UNIFIEDORDER, body=exception)
    with pytest.raises(WxPayUnavailable, match="timeout") as caught:
        client.unified_order(**ORDER)
    assert caught.value.__cause__ is exception


def test_connection_error_raises_unavailable(client, mocked):
    mocked.add(responses.POST, UNIFIEDORDER, body=requests.exceptions.ConnectionError())
    with pytest.raises(WxPayUnavailable, match="network error"):
        client.unified_order(**ORDER)


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe garbage", b"<html>Bad Gateway</html>", b"<xml><a>1</a></xml>"],
    ids=["empty", "garbage", "html", "no-return-code"],
)
def test_unparseable_answer_raises_unavailable(client, mocked, body):
    mocked.add(responses.POST, UNIFIEDORDER, body=body)
    with pytest.raises(WxPayUnavailable, match="unparseable"):
        client.unified_order(**ORDER)


def test_requests_get_the_configured_timeout(mocked):
    config = WxPayConfig(
        appid=OFFICIAL_APPID, mch_id=OFFICIAL_MCH_ID, api_key=OFFICIAL_KEY, timeout=(1.5, 4.0)
    )
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer())
    WxPayClient(config).unified_order(**ORDER)
    assert mocked.calls[0].request.req_kwargs["timeout"] == (1.5, 4.0)


def test_default_timeout_is_connect_and_read(client, mocked):
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer())
    client.unified_order(**ORDER)
    assert mocked.calls[0].request.req_kwargs["timeout"] == client.config.timeout == (3.05, 10.0)


def test_default_session_is_pooled_and_kept_between_calls(client, mocked):
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer())
    session = client.session
    assert isinstance(session, requests.Session)
    assert isinstance(session.get_adapter(BASE), HTTPAdapter)
    client.unified_order(**ORDER)
    client.unified_order(**ORDER)
    assert client.session is session


def test_two_calls_go_through_the_same_session(config, mocked):
    class CountingSession(requests.Session):
        sent = 0

        def send(self, request, **kwargs):
            self.sent += 1
            return super().send(request, **kwargs)

    session = CountingSession()
    client = WxPayClient(config, session=session)
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer())
    client.unified_order(**ORDER)
    client.unified_order(**ORDER)
    assert session.sent == 2
    assert client.session is session


def test_api_base_can_point_at_a_simulator(mocked):
    config = WxPayConfig(
        appid=OFFICIAL_APPID,
        mch_id=OFFICIAL_MCH_ID,
        api_key=OFFICIAL_KEY,
        api_base="http://sim:8000/",
    )
    mocked.add(responses.POST, "http://sim:8000/pay/closeorder", body=wechat_answer())
    WxPayClient(config).close_order(out_trade_no="20240101000001")


def test_certificate_is_sent_only_when_asked(mocked):
    config = WxPayConfig(
        appid=OFFICIAL_APPID,
        mch_id=OFFICIAL_MCH_ID,
        api_key=OFFICIAL_KEY,
        cert_path="/c.pem",
        key_path="/k.pem",
    )
    client = WxPayClient(config)
    mocked.add(responses.POST, f"{BASE}/secapi/pay/refund", body=wechat_answer())
    mocked.add(responses.POST, CLOSEORDER, body=wechat_answer())
    client._call("/secapi/pay/refund", {"out_refund_no": "r1"}, cert=True)
    client.close_order(out_trade_no="20240101000001")
    assert mocked.calls[0].request.req_kwargs["cert"] == ("/c.pem", "/k.pem")
    assert mocked.calls[1].request.req_kwargs["cert"] is None


def test_certificate_call_without_configured_certificate_is_refused(client):
    with pytest.raises(ValueError, match="cert_path"):
        client._call("/secapi/pay/refund", {"out_refund_no": "r1"}, cert=True)


# -- orderquery --------------------------------------------------------------------------------


def test_order_query_parses_a_paid_order(client, mocked):
    answer = wechat_answer(
        trade_state="SUCCESS",
        trade_state_desc="支付成功",
        out_trade_no="20240101000001",
        transaction_id="4200000483202001042069747825",
        total_fee="101",
        cash_fee="96",
        coupon_fee="5",
        coupon_count="1",
        coupon_id_0="10086",  # unmodelled but signed: must take part in verification
        coupon_fee_0="5",
        openid=OPENID,
        time_end="20141030133525",
    )
    mocked.add(responses.POST, ORDERQUERY, body=answer)

    query = client.order_query(out_trade_no="20240101000001")

    assert query.is_paid
    assert query.trade_state == "SUCCESS"
    assert query.trade_state_desc == "支付成功"
    assert query.total_fee == 101
    assert query.time_end == datetime(2014, 10, 30, 5, 35, 25, tzinfo=UTC)
    assert query.transaction_id == "4200000483202001042069747825"
    assert query.openid == OPENID
    assert query.raw["coupon_id_0"] == "10086"
    assert sent_fields(mocked)["out_trade_no"] == "20240101000001"


def test_order_query_of_unpaid_order_has_no_payment_fields(client, mocked):
    answer = wechat_answer(trade_state="NOTPAY", trade_state_desc="订单未支付", out_trade_no="o1")
    mocked.add(responses.POST, ORDERQUERY, body=answer)
    query = client.order_query(out_trade_no="o1")
    assert not query.is_paid
    assert (query.total_fee, query.time_end, query.transaction_id) == (None, None, "")


def test_order_query_by_transaction_id_sends_only_that_id(client, mocked):
    mocked.add(responses.POST, ORDERQUERY, body=wechat_answer(trade_state="CLOSED"))
    client.order_query(transaction_id="4200000483202001042069747825")
    fields = sent_fields(mocked)
    assert fields["transaction_id"] == "4200000483202001042069747825"
    assert "out_trade_no" not in fields


@pytest.mark.parametrize("ids", [{}, {"out_trade_no": "o1", "transaction_id": "t1"}])
def test_order_query_needs_exactly_one_id(client, ids):
    with pytest.raises(ValueError, match="exactly one"):
        client.order_query(**ids)


def test_order_query_of_unknown_order_raises_order_not_exist(client, mocked):
    answer = wechat_answer(
        result_code="FAIL", err_code="ORDERNOTEXIST", err_code_des="此交易订单号不存在"
    )
    mocked.add(responses.POST, ORDERQUERY, body=answer)
    with pytest.raises(OrderNotExist):
        client.order_query(out_trade_no="o1")


@pytest.mark.parametrize("field", [{"total_fee": "1.01"}, {"time_end": "2014-10-30"}])
def test_order_query_with_malformed_signed_field_raises_unavailable(client, mocked, field):
    mocked.add(responses.POST, ORDERQUERY, body=wechat_answer(trade_state="SUCCESS", **field))
    with pytest.raises(WxPayUnavailable, match="unparseable"):
        client.order_query(out_trade_no="o1")


# -- closeorder --------------------------------------------------------------------------------


def test_close_order_sends_out_trade_no(client, mocked):
    mocked.add(responses.POST, CLOSEORDER, body=wechat_answer(result_msg="OK"))
    assert client.close_order(out_trade_no="20240101000001") is None
    assert sent_fields(mocked)["out_trade_no"] == "20240101000001"


def test_close_order_of_paid_order_raises_order_paid(client, mocked):
    answer = wechat_answer(result_code="FAIL", err_code="ORDERPAID", err_code_des="订单已支付")
    mocked.add(responses.POST, CLOSEORDER, body=answer)
    with pytest.raises(OrderPaid):
        client.close_order(out_trade_no="20240101000001")


# -- wx.requestPayment parameters (§4) ---------------------------------------------------------

PAY_APPID = "wxd678efh567hg6787"
PAY_KEY = "qazwsxedcrfvtgbyhnujmikolp111111"
PAY_PREPAY_ID = "wx2017033010242291fcfe0db70013231072"
PAY_NONCE = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"


@pytest.mark.parametrize(
    ("sign_type", "pay_sign"),
    [
        ("MD5", "22D9B4E54AB1950F51E0649E8810ACD6"),
        ("HMAC-SHA256", "FB9D1EFB5C509131BBFF729F88A99CA2DE9B724D06D3B3262832A53083862BC0"),
    ],
)
def test_jsapi_params_match_official_pay_sign_vector(sign_type, pay_sign):
    config = WxPayConfig(
        appid=PAY_APPID, mch_id=OFFICIAL_MCH_ID, api_key=PAY_KEY, sign_type=sign_type
    )
    params = WxPayClient(config).jsapi_params(PAY_PREPAY_ID, timestamp=1490840662, nonce=PAY_NONCE)
    assert params == {
        "timeStamp": "1490840662",
        "nonceStr": PAY_NONCE,
        "package": f"prepay_id={PAY_PREPAY_ID}",
        "signType": sign_type,
        "paySign": pay_sign,
    }


def test_jsapi_params_default_to_now_in_seconds_and_fresh_nonce(client):
    before = int(time.time())
    first = client.jsapi_params(PREPAY_ID)
    second = client.jsapi_params(PREPAY_ID)
    assert before <= int(first["timeStamp"]) <= int(time.time())
    assert len(first["timeStamp"]) == 10
    assert len(first["nonceStr"]) == 32
    assert first["nonceStr"] != second["nonceStr"]


def test_jsapi_params_refuse_empty_prepay_id(client):
    with pytest.raises(ValueError, match="prepay_id"):
        client.jsapi_params("")


# -- configuration and logging -----------------------------------------------------------------


def test_config_repr_hides_the_api_key(config):
    assert OFFICIAL_KEY not in repr(config)
    assert OFFICIAL_KEY not in str(config)
    assert OFFICIAL_APPID in repr(config)


@pytest.mark.parametrize(
    "overrides",
    [{"appid": ""}, {"mch_id": ""}, {"api_key": ""}, {"sign_type": "SHA1"}, {"sign_type": "md5"}],
)
def test_config_refuses_missing_ids_and_unknown_sign_type(overrides):
    with pytest.raises(ValueError):
        WxPayConfig(
            **{
                "appid": OFFICIAL_APPID,
                "mch_id": OFFICIAL_MCH_ID,
                "api_key": OFFICIAL_KEY,
                **overrides,
            }
        )


def test_each_call_logs_one_info_line_without_key_or_body(client, mocked, caplog):
    caplog.set_level(logging.DEBUG, logger="wechat.pay_v2")
    mocked.add(responses.POST, UNIFIEDORDER, body=prepay_answer())
    client.unified_order(**ORDER)
    [record] = [r for r in caplog.records if r.name == "wechat.pay_v2"]
    message = record.getMessage()
    assert record.levelno == logging.INFO
    assert "/pay/unifiedorder" in message
    assert "out_trade_no=20240101000001" in message
    assert "outcome=ok" in message
    assert "elapsed_ms=" in message
    assert OFFICIAL_KEY not in caplog.text
    assert PREPAY_ID not in caplog.text
    assert OPENID not in caplog.text


def test_failed_call_logs_its_outcome(client, mocked, caplog):
    caplog.set_level(logging.INFO, logger="wechat.pay_v2")
    answer = wechat_answer(result_code="FAIL", err_code="SYSTEMERROR", err_code_des="系统错误")
    mocked.add(responses.POST, UNIFIEDORDER, body=answer)
    with pytest.raises(SystemBusy):
        client.unified_order(**ORDER)
    assert "outcome=SystemBusy(SYSTEMERROR)" in caplog.text
    assert OFFICIAL_KEY not in caplog.text
