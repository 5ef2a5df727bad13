"""The server API client at the HTTP boundary: request shapes, answers, errcodes, transport.

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md.
"""

import json
import logging
import traceback
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from responses import matchers

from wechat.miniprogram import (
    AccessToken,
    AccessTokenInvalid,
    AlreadyShipped,
    CredentialsRejected,
    LogisticsType,
    MiniProgramApiError,
    MiniProgramBusy,
    MiniProgramConfig,
    MiniProgramRateLimited,
    MiniProgramUnavailable,
    NotSubscribed,
    OrderState,
    PaymentNotFound,
    RequestInvalid,
    ShippingItem,
    ShippingRefused,
)

BASE = "https://api.weixin.qq.com"
TOKEN = "86_sEcReTtOkEn-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
TRANSACTION_ID = "4200002501202501018123456789"
OPENID = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
BEIJING_NOON = datetime(2025, 1, 2, 4, 0, 0, 120000, tzinfo=UTC)  # 12:00:00.120 in Beijing
OK = {"errcode": 0, "errmsg": "ok"}

TOKEN_PATH = "/cgi-bin/stable_token"
MANAGED_PATH = "/wxa/sec/order/is_trade_managed"
UPLOAD_PATH = "/wxa/sec/order/upload_shipping_info"
GET_ORDER_PATH = "/wxa/sec/order/get_order"
CONFIRM_PATH = "/wxa/sec/order/notify_confirm_receive"
SEND_PATH = "/cgi-bin/message/subscribe/send"


def answer(mock, path, payload, *, status=200, content_type="application/json"):
    mock.post(BASE + path, body=json.dumps(payload, ensure_ascii=False), status=status,
              content_type=content_type)


def sent(mock, index=-1):
    """The request the client sent: query parameters and JSON body."""
    request = mock.calls[index].request
    return request, dict(parse_qsl(urlsplit(request.url).query)), json.loads(request.body)


def upload(mp, **overrides):
    fields = {
        "transaction_id": TRANSACTION_ID,
        "logistics_type": LogisticsType.EXPRESS,
        "shipping_list": [ShippingItem("乌龙茶 250g*2", tracking_no="SF1234567890",
                                       express_company="SF", receiver_contact="189****1234")],
        "upload_time": BEIJING_NOON,
        "payer_openid": OPENID,
        **overrides,
    }
    return mp.upload_shipping_info(TOKEN, **fields)


# Every call that uses a token, as (path, call).
TOKEN_CALLS = [
    (MANAGED_PATH, lambda mp: mp.is_trade_managed(TOKEN)),
    (UPLOAD_PATH, upload),
    (GET_ORDER_PATH, lambda mp: mp.get_order(TOKEN, transaction_id=TRANSACTION_ID)),
    (CONFIRM_PATH, lambda mp: mp.notify_confirm_receive(
        TOKEN, transaction_id=TRANSACTION_ID, received_time=BEIJING_NOON)),
    (SEND_PATH, lambda mp: mp.send_subscribe_message(
        TOKEN, touser=OPENID, template_id="tmpl-1", data={"thing1": "已发货"})),
]


# --- §1 access_token ------------------------------------------------------------------------

def test_stable_token_posts_credentials_as_json_without_a_token(mp, http_mock):
    answer(http_mock, TOKEN_PATH, {"access_token": TOKEN, "expires_in": 7200})

    mp.stable_token()

    request, query, body = sent(http_mock)
    assert request.method == "POST"
    assert request.url == BASE + TOKEN_PATH
    assert query == {}
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert body == {
        "grant_type": "client_credential",
        "appid": "wxba5fad812f8e6fb9",
        "secret": "mp-app-secret-0123456789abcdef00",
        "force_refresh": False,
    }


def test_stable_token_force_refresh_is_sent(mp, http_mock):
    answer(http_mock, TOKEN_PATH, {"access_token": TOKEN, "expires_in": 7200})

    mp.stable_token(force_refresh=True)

    assert sent(http_mock)[2]["force_refresh"] is True


def test_stable_token_answer_is_an_access_token_with_its_lifetime(mp, http_mock):
    # The stable API renews ~5 minutes before expiry: expires_in is what remains (§1.1).
    answer(http_mock, TOKEN_PATH, {"access_token": TOKEN, "expires_in": 1234})
    before = datetime.now(UTC)

    token = mp.stable_token()

    assert token.token == TOKEN and token.expires_in == 1234
    assert before <= token.obtained_at <= datetime.now(UTC)
    assert token.expires_at == token.obtained_at + timedelta(seconds=1234)
    assert TOKEN not in repr(token)


def test_access_token_expires_within_counts_from_obtained_at():
    token = AccessToken(TOKEN, 600, datetime(2025, 1, 1, tzinfo=UTC))

    assert not token.expires_within(300, now=datetime(2025, 1, 1, 0, 4, 59, tzinfo=UTC))
    assert token.expires_within(300, now=datetime(2025, 1, 1, 0, 5, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    "payload",
    [{}, {"access_token": "", "expires_in": 7200}, {"access_token": TOKEN},
     {"access_token": TOKEN, "expires_in": "7200"}, {"access_token": TOKEN, "expires_in": 0}],
)
def test_stable_token_answer_without_a_usable_token_is_unavailable(mp, http_mock, payload):
    answer(http_mock, TOKEN_PATH, payload)

    with pytest.raises(MiniProgramUnavailable):
        mp.stable_token()


@pytest.mark.parametrize(
    ("errcode", "error_class", "retryable"),
    # 40001 is a bad AppSecret here, not a bad token (§1.2); 40164: IP not whitelisted.
    [(40001, CredentialsRejected, False), (40125, CredentialsRejected, False),
     (40013, CredentialsRejected, False), (41004, CredentialsRejected, False),
     (-1, MiniProgramBusy, True), (45009, MiniProgramRateLimited, True),
     (45011, MiniProgramRateLimited, True), (40164, MiniProgramApiError, False)],
)
def test_stable_token_errcodes(mp, http_mock, errcode, error_class, retryable):
    answer(http_mock, TOKEN_PATH, {"errcode": errcode, "errmsg": "nope rid: 6789abcd-01"})

    with pytest.raises(error_class) as caught:
        mp.stable_token()

    assert type(caught.value) is error_class
    assert caught.value.errcode == errcode and caught.value.retryable is retryable
    assert not isinstance(caught.value, AccessTokenInvalid)


# --- request shapes of the calls that use a token ---------------------------------------------

@pytest.mark.parametrize(("path", "call"), TOKEN_CALLS)
def test_token_goes_in_the_query_string_never_in_the_body(mp, http_mock, path, call):
    answer(http_mock, path, {**OK, "is_trade_managed": True, "msgid": 1,
                             "order": {"transaction_id": TRANSACTION_ID, "order_state": 1}})

    call(mp)

    request, query, body = sent(http_mock)
    assert request.method == "POST" and request.url.split("?")[0] == BASE + path
    assert query == {"access_token": TOKEN}
    assert "access_token" not in body and TOKEN not in request.body.decode()


@pytest.mark.parametrize(("path", "call"), [(TOKEN_PATH, lambda mp: mp.stable_token()),
                                            *TOKEN_CALLS])
def test_every_call_has_the_configured_timeout(mp, http_mock, path, call):
    answer(http_mock, path, {**OK, "access_token": TOKEN, "expires_in": 7200,
                             "is_trade_managed": False, "msgid": 1,
                             "order": {"transaction_id": TRANSACTION_ID, "order_state": 1}})

    call(mp)

    assert http_mock.calls[-1].request.req_kwargs["timeout"] == (1.25, 4.5)


@pytest.mark.parametrize("managed", [True, False])
def test_is_trade_managed_sends_the_appid_and_reads_the_boolean(mp, http_mock, managed):
    answer(http_mock, MANAGED_PATH, {**OK, "is_trade_managed": managed})

    assert mp.is_trade_managed(TOKEN) is managed
    assert sent(http_mock)[2] == {"appid": "wxba5fad812f8e6fb9"}


@pytest.mark.parametrize("payload", [OK, {**OK, "is_trade_managed": "true"}])
def test_is_trade_managed_without_a_boolean_is_unavailable(mp, http_mock, payload):
    answer(http_mock, MANAGED_PATH, payload)

    with pytest.raises(MiniProgramUnavailable):
        mp.is_trade_managed(TOKEN)


def test_upload_by_transaction_id_sends_the_documented_body(mp, http_mock):
    answer(http_mock, UPLOAD_PATH, OK)

    assert upload(mp) is None

    request, _, body = sent(http_mock)
    assert body == {
        "order_key": {"order_number_type": 2, "transaction_id": TRANSACTION_ID},
        "logistics_type": 1,
        "delivery_mode": 1,
        "shipping_list": [{
            "item_desc": "乌龙茶 250g*2",
            "tracking_no": "SF1234567890",
            "express_company": "SF",
            "contact": {"receiver_contact": "189****1234"},
        }],
        "upload_time": "2025-01-02T12:00:00.120+08:00",
        "payer": {"openid": OPENID},
    }
    # Numbers stay numbers (§6) and Chinese goes as UTF-8, not \u escapes.
    assert b'"logistics_type":1' in request.body and "乌龙茶".encode() in request.body


def test_upload_by_merchant_ids_and_virtual_goods_has_only_item_desc(mp, http_mock):
    answer(http_mock, UPLOAD_PATH, OK)

    upload(mp, transaction_id="", mchid="1900000109", out_trade_no="T20250101000000001",
           logistics_type=LogisticsType.VIRTUAL, shipping_list=[ShippingItem("会员卡*1")])

    body = sent(http_mock)[2]
    assert body["order_key"] == {"order_number_type": 1, "mchid": "1900000109",
                                 "out_trade_no": "T20250101000000001"}
    assert body["logistics_type"] == 3
    assert body["shipping_list"] == [{"item_desc": "会员卡*1"}]


def test_upload_that_breaks_the_rules_is_refused_before_sending(mp, http_mock):
    with pytest.raises(RequestInvalid) as caught:
        upload(mp, shipping_list=[ShippingItem("x" * 121, "SF1", "ZTO")])

    assert caught.value.errcode is None and not caught.value.retryable
    assert "item_desc" in str(caught.value)
    assert len(http_mock.calls) == 0


def test_get_order_sends_merchant_names_and_reads_the_order(mp, http_mock):
    order = {
        "transaction_id": TRANSACTION_ID,
        "merchant_id": "1900000109",
        "sub_merchant_id": "",
        "merchant_trade_no": "T20250101000000001",
        "description": "乌龙茶",
        "paid_amount": 10200,
        "openid": OPENID,
        "trade_create_time": 1735689600,
        "pay_time": 1735689630,
        "order_state": 2,
        "in_complaint": False,
        "shipping": {"delivery_mode": 1, "logistics_type": 1, "finish_shipping": True},
    }
    answer(http_mock, GET_ORDER_PATH, {**OK, "order": order})

    result = mp.get_order(TOKEN, merchant_id="1900000109", merchant_trade_no="T20250101000000001")

    assert sent(http_mock)[2] == {"merchant_id": "1900000109",
                                  "merchant_trade_no": "T20250101000000001"}
    assert result.transaction_id == TRANSACTION_ID
    assert result.order_state == OrderState.SHIPPED and isinstance(result.order_state, OrderState)
    assert result.merchant_trade_no == "T20250101000000001" and result.merchant_id == "1900000109"
    assert result.paid_amount == 10200 and result.openid == OPENID
    assert result.pay_time == datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC)  # 08:00:30 Beijing
    assert result.pay_time.utcoffset() == timedelta(hours=8)
    assert result.in_complaint is False
    assert result.shipping["finish_shipping"] is True
    assert result.raw == order


def test_get_order_keeps_a_state_it_does_not_know_as_a_number(mp, http_mock):
    answer(http_mock, GET_ORDER_PATH,
           {**OK, "order": {"transaction_id": TRANSACTION_ID, "order_state": 9}})

    result = mp.get_order(TOKEN, transaction_id=TRANSACTION_ID)

    assert result.order_state == 9 and result.pay_time is None and result.shipping == {}


@pytest.mark.parametrize(
    "payload",
    [OK, {**OK, "order": []}, {**OK, "order": {"transaction_id": TRANSACTION_ID}},
     {**OK, "order": {"order_state": 1}}, {**OK, "order": {"transaction_id": "x",
                                                           "order_state": "1"}}],
)
def test_get_order_without_ids_or_state_is_unavailable(mp, http_mock, payload):
    answer(http_mock, GET_ORDER_PATH, payload)

    with pytest.raises(MiniProgramUnavailable):
        mp.get_order(TOKEN, transaction_id=TRANSACTION_ID)


@pytest.mark.parametrize(
    "ids",
    [{}, {"transaction_id": TRANSACTION_ID, "merchant_id": "1"}, {"merchant_id": "1"},
     {"merchant_trade_no": "T1"}],
)
def test_get_order_needs_exactly_one_key(mp, http_mock, ids):
    with pytest.raises(RequestInvalid):
        mp.get_order(TOKEN, **ids)
    assert len(http_mock.calls) == 0


def test_notify_confirm_receive_sends_received_time_as_unix_seconds(mp, http_mock):
    answer(http_mock, CONFIRM_PATH, OK)

    mp.notify_confirm_receive(TOKEN, merchant_id="1900000109",
                              merchant_trade_no="T20250101000000001", received_time=BEIJING_NOON)

    assert sent(http_mock)[2] == {"merchant_id": "1900000109",
                                  "merchant_trade_no": "T20250101000000001",
                                  "received_time": 1735790400}


def test_notify_confirm_receive_refuses_a_naive_time(mp, http_mock):
    with pytest.raises(RequestInvalid):
        mp.notify_confirm_receive(TOKEN, transaction_id=TRANSACTION_ID,
                                  received_time=datetime(2025, 1, 2, 12))
    assert len(http_mock.calls) == 0


def test_send_subscribe_message_wraps_values_and_returns_msgid(mp, http_mock):
    answer(http_mock, SEND_PATH, {**OK, "msgid": 294402298110051942})

    msgid = mp.send_subscribe_message(
        TOKEN, touser=OPENID, template_id="tmpl-shipped", page="pages/order?no=T1",
        data={"thing1": "乌龙茶 250g", "character_string2": "T20250101000000001",
              "amount3": "¥102.00"},
    )

    assert msgid == 294402298110051942
    assert sent(http_mock)[2] == {
        "touser": OPENID,
        "template_id": "tmpl-shipped",
        "page": "pages/order?no=T1",
        "data": {"thing1": {"value": "乌龙茶 250g"},
                 "character_string2": {"value": "T20250101000000001"},
                 "amount3": {"value": "¥102.00"}},
        # Both sent although they have defaults (§4.2, unsure).
        "miniprogram_state": "formal",
        "lang": "zh_CN",
    }


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"data": {"thing1": "x" * 21}}, "thing1"),
        ({"data": {"phrase2": "已经发货了啊"}}, "phrase2"),
        ({"data": {"amount1": 102}}, "amount1"),
        ({"data": {"shipped1": "x"}}, "shipped1"),
        ({"data": {}}, "data"),
        ({"touser": ""}, "touser"),
        ({"template_id": ""}, "template_id"),
        ({"miniprogram_state": "release"}, "miniprogram_state"),
        ({"lang": "fr_FR"}, "lang"),
    ],
)
def test_subscribe_message_that_breaks_the_rules_is_refused_before_sending(
    mp, http_mock, fields, named
):
    arguments = {"touser": OPENID, "template_id": "t", "data": {"thing1": "ok"}, **fields}

    with pytest.raises(RequestInvalid) as caught:
        mp.send_subscribe_message(TOKEN, **arguments)

    assert named in str(caught.value)
    assert len(http_mock.calls) == 0


# --- errcodes of calls that use a token ------------------------------------------------------

@pytest.mark.parametrize(
    ("errcode", "error_class", "retryable"),
    [
        (40001, AccessTokenInvalid, True),
        (40014, AccessTokenInvalid, True),
        (42001, AccessTokenInvalid, True),
        (-1, MiniProgramBusy, True),
        (10060012, MiniProgramBusy, True),
        (45009, MiniProgramRateLimited, True),
        (43108, MiniProgramRateLimited, True),
        (10060001, PaymentNotFound, True),  # just paid: WeChat does not know it yet (§2.4)
        (10060002, AlreadyShipped, False),
        (10060023, AlreadyShipped, False),
        (10060003, ShippingRefused, False),
        (10060004, ShippingRefused, False),
        (10060030, ShippingRefused, False),
        (43101, NotSubscribed, False),
        (47003, RequestInvalid, False),
        (10060009, RequestInvalid, False),
        (268485228, RequestInvalid, False),
        (48001, MiniProgramApiError, False),
        (12345678, MiniProgramApiError, False),  # unknown: not retried blindly
    ],
)
@pytest.mark.parametrize(("path", "call"), TOKEN_CALLS[:3] + TOKEN_CALLS[4:])
def test_errcodes_become_typed_errors(mp, http_mock, path, call, errcode, error_class, retryable):
    answer(http_mock, path, {"errcode": errcode, "errmsg": "refused rid: 67c69222-4967899b"})

    with pytest.raises(MiniProgramApiError) as caught:
        call(mp)

    assert type(caught.value) is error_class
    assert caught.value.errcode == errcode
    assert caught.value.errmsg == "refused rid: 67c69222-4967899b"
    assert caught.value.retryable is retryable


def test_already_shipped_is_a_shipping_refusal():
    assert issubclass(AlreadyShipped, ShippingRefused)
    assert issubclass(RequestInvalid, ValueError)


def test_errcode_zero_or_absent_is_success(mp, http_mock):
    answer(http_mock, UPLOAD_PATH, {"errmsg": "ok"})
    upload(mp)
    answer(http_mock, UPLOAD_PATH, {"errcode": 0})
    upload(mp)


# --- transport ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ConnectTimeout(), requests.exceptions.ReadTimeout(),
     requests.exceptions.ConnectionError(), requests.exceptions.SSLError()],
)
@pytest.mark.parametrize(("path", "call"), [(TOKEN_PATH, lambda mp: mp.stable_token()),
                                            TOKEN_CALLS[0]])
def test_unreachable_wechat_is_unavailable_and_retryable(mp, http_mock, failure, path, call):
    http_mock.post(BASE + path, body=failure)

    with pytest.raises(MiniProgramUnavailable) as caught:
        call(mp)

    assert caught.value.retryable and caught.value.errcode is None
    assert "unreachable" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "status"),
    [("<html>502 Bad Gateway</html>", 502), ("<html>busy</html>", 200), ("[1]", 200),
     ('"ok"', 200), ("", 200), ('{"errcode": "40001"}', 200), (b"\xff\xfe{", 200)],
)
def test_nonsense_answers_are_unavailable(mp, http_mock, body, status):
    http_mock.post(BASE + MANAGED_PATH, body=body, status=status)

    with pytest.raises(MiniProgramUnavailable) as caught:
        mp.is_trade_managed(TOKEN)

    assert caught.value.retryable


def test_json_labelled_text_plain_with_chinese_is_read_as_utf8(mp, http_mock):
    answer(http_mock, UPLOAD_PATH, {"errcode": 10060001, "errmsg": "支付单不存在 rid: 1"},
           content_type="text/plain")

    with pytest.raises(PaymentNotFound) as caught:
        upload(mp)

    assert caught.value.errmsg == "支付单不存在 rid: 1"


def test_empty_token_is_refused_before_sending(mp, http_mock):
    with pytest.raises(RequestInvalid):
        mp.is_trade_managed("")
    assert len(http_mock.calls) == 0


# --- the token and the secret never leave in logs or errors -------------------------------------

def test_token_and_secret_are_never_logged_nor_in_errors(mp, http_mock, caplog):
    caplog.set_level(logging.DEBUG)
    answer(http_mock, TOKEN_PATH, {"access_token": TOKEN, "expires_in": 7200})
    answer(http_mock, MANAGED_PATH, {**OK, "is_trade_managed": True})
    # An errmsg that echoes the token, and a transport error whose text has the URL in it,
    # as requests' own ConnectionError text does.
    answer(http_mock, GET_ORDER_PATH,
           {"errcode": 40001, "errmsg": f"invalid credential {TOKEN} rid: 1"})
    http_mock.post(BASE + UPLOAD_PATH, body=requests.exceptions.ConnectionError(
        f"Max retries exceeded with url: {UPLOAD_PATH}?access_token={TOKEN}"))
    errors = []

    token = mp.stable_token().token
    mp.is_trade_managed(token)
    for call in (lambda: mp.get_order(token, transaction_id=TRANSACTION_ID),
                 lambda: upload(mp)):
        with pytest.raises(MiniProgramApiError) as caught:
            call()
        errors.append(caught.value)

    assert caplog.records  # the calls were logged...
    for secret in (TOKEN, "mp-app-secret-0123456789abcdef00"):  # ...without either secret
        assert secret not in caplog.text
        # Nor in a printed traceback: requests' exception (with the URL) is not chained.
        assert all(secret not in "".join(traceback.format_exception(e)) for e in errors)
    assert "/wxa/sec/order/get_order errcode=40001 rid=1" in caplog.text
    assert "/wxa/sec/order/is_trade_managed ok" in caplog.text


def test_calls_reuse_one_session(mp, http_mock):
    answer(http_mock, MANAGED_PATH, {**OK, "is_trade_managed": True})
    session = mp.session

    mp.is_trade_managed(TOKEN)
    mp.is_trade_managed(TOKEN)

    assert mp.session is session and isinstance(session, requests.Session)


def test_config_hides_the_secret_and_needs_appid_and_secret():
    assert "s3cret" not in repr(MiniProgramConfig(appid="wx1", app_secret="s3cret"))
    for fields in ({"appid": "", "app_secret": "s"}, {"appid": "wx1", "app_secret": ""}):
        with pytest.raises(ValueError):
            MiniProgramConfig(**fields)


def test_matchers_see_the_json_body(mp, http_mock):
    # The body is JSON a strict parser accepts, with the request's Content-Type.
    http_mock.post(BASE + MANAGED_PATH, json={**OK, "is_trade_managed": True},
                   match=[matchers.json_params_matcher({"appid": "wxba5fad812f8e6fb9"}),
                          matchers.query_param_matcher({"access_token": TOKEN})])

    assert mp.is_trade_managed(TOKEN) is True
