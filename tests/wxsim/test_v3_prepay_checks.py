"""The JSAPI prepay body checked field by field (§4.1, §1.2), with bodies built by hand: what
the shop's client would never send must still get WeChat's 400, never a 500."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import json

import pytest

from tests.wxsim.client import APPID, MCH_ID, PAYER, new_out_trade_no

JSAPI = "/v3/pay/transactions/jsapi"
DROP = object()  # leave the field out


def body(**overrides) -> dict:
    data = {
        "appid": APPID,
        "mchid": MCH_ID,
        "description": "测试商店-商品",
        "out_trade_no": new_out_trade_no(),
        "notify_url": "https://shop.example.com/payment/v3/wxnotify",
        "amount": {"total": 101, "currency": "CNY"},
        "payer": {"openid": PAYER},
    }
    for name, value in overrides.items():
        if value is DROP:
            del data[name]
        else:
            data[name] = value
    return data


def refused(v3_by_hand, data: dict, status: int = 400) -> dict:
    response = v3_by_hand.call("POST", JSAPI, data)
    assert response.status_code == status, response.text
    return response.json()


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": {"total": 1.01, "currency": "CNY"}},  # yuan as a float
        {"amount": {"total": "101", "currency": "CNY"}},
        {"amount": {"total": 0, "currency": "CNY"}},
        {"amount": {"total": True, "currency": "CNY"}},
        {"amount": {"total": 101, "currency": "USD"}},
        {"amount": DROP},
        {"description": DROP},
        {"description": ""},
        {"description": "小熊玩偶🧸"},  # a 4-byte character (§1.2)
        {"description": "x" * 128},
        {"out_trade_no": "T1"},  # shorter than 6
        {"out_trade_no": "T 0000000001"},
        {"notify_url": "https://shop.example.com/notify?order=1"},
        {"notify_url": "/payment/v3/wxnotify"},
        {"notify_url": DROP},
        {"time_expire": "2025-01-01 08:30:00"},
        {"attach": 42},
        {"goods_tag": None},  # JSON null: omit absent fields instead (§1.2)
    ],
)
def test_bad_field_is_param_error(v3_by_hand, overrides):
    assert refused(v3_by_hand, body(**overrides))["code"] == "PARAM_ERROR"


def test_missing_openid_is_wechats_jsapi_message(v3_by_hand):
    response = v3_by_hand.call("POST", JSAPI, body(payer={}))
    assert response.status_code == 400
    assert response.json()["message"] == "JSAPI支付必须传openid"
    assert response.headers["Request-ID"].endswith("-268501013")


def test_unknown_field_is_refused(v3_by_hand):
    response = v3_by_hand.call("POST", JSAPI, body(total_fee=101))
    assert response.status_code == 400 and response.json()["code"] == "PARAM_ERROR"
    assert response.headers["Request-ID"].endswith("-270924358")


def test_other_appid_is_not_bound_to_the_merchant(v3_by_hand):
    assert refused(v3_by_hand, body(appid="wx1234567890abcdef"))["code"] == (
        "APPID_MCHID_NOT_MATCH"
    )


def test_body_mchid_must_be_the_authorizations(v3_by_hand):
    assert refused(v3_by_hand, body(mchid="1900000001"))["code"] == "PARAM_ERROR"


def test_nothing_is_recorded_for_a_refused_prepay(v3_by_hand, sim):
    data = body(amount={"total": 1.01})
    refused(v3_by_hand, data)
    assert data["out_trade_no"] not in sim.trades


def test_time_expire_with_fraction_and_z_is_accepted(v3_by_hand, sim):
    data = body(time_expire="2099-01-01T00:30:00.123Z")
    response = v3_by_hand.call("POST", JSAPI, data)
    assert response.status_code == 200, response.text
    assert sim.trades[data["out_trade_no"]].expires_at == pytest.approx(4070910600.123)


def hostile(field: str, raw_value: str) -> bytes:
    """A good prepay body whose ``field`` is ``raw_value``, as raw JSON text."""
    text = json.dumps({**body(), field: "@@"}, ensure_ascii=False)
    return text.replace('"@@"', raw_value).encode()


@pytest.mark.parametrize(
    "raw",
    [
        hostile("description", '"\\ud83e"'),  # a lone surrogate: no UTF-8 for it
        b"[" * 5000 + b"]" * 5000,
        hostile("amount", '{"total": 1e999}'),
        hostile("amount", '{"total": ' + "9" * 5000 + "}"),
        hostile("time_expire", '"2025-13-45T25:61:61+08:00"'),
    ],
    ids=["surrogate", "deep", "infinite", "huge", "no-such-time"],
)
def test_hostile_bodies_get_a_400_not_a_500(v3_by_hand, raw):
    response = v3_by_hand.call("POST", JSAPI, raw)
    assert response.status_code == 400, response.text
