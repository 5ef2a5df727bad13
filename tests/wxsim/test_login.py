"""code2Session (§9) and the /sim/login phone side."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import json

import pytest

from tests.wxsim.client import APPID, SECRET
from wxsim.login import CODE_TTL_S, RATE_LIMIT_CALLS


def exchange(wx, code, **overrides):
    params = {
        "appid": APPID,
        "secret": SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
        **overrides,
    }
    params = {k: v for k, v in params.items() if v is not None}
    response = wx.http.get(wx.base_url + "/sns/jscode2session", params=params, timeout=5)
    assert response.status_code == 200
    return response


def login(wx, **body):
    response = wx.control("POST", "/sim/login", body)
    assert response.status_code == 200
    return response.json()


def test_code_exchanges_for_openid_as_text_plain_json(wx):
    issued = login(wx)
    assert issued["openid"].startswith("o") and len(issued["openid"]) == 28
    response = exchange(wx, issued["code"])
    assert response.headers["Content-Type"] == "text/plain"
    answer = json.loads(response.text)
    assert answer["openid"] == issued["openid"]
    assert len(answer["session_key"]) == 24
    assert "errcode" not in answer and "unionid" not in answer


def test_given_openid_and_unionid_are_kept_and_session_key_is_stable(wx):
    first = json.loads(exchange(wx, login(wx, openid="oFixedUser", unionid="uU1")["code"]).text)
    second = json.loads(exchange(wx, login(wx, openid="oFixedUser")["code"]).text)
    assert first["openid"] == second["openid"] == "oFixedUser"
    assert first["unionid"] == "uU1"
    assert first["session_key"] == second["session_key"]


def test_code_is_single_use(wx):
    code = login(wx)["code"]
    exchange(wx, code)
    answer = json.loads(exchange(wx, code).text)
    assert answer["errcode"] == 40163
    assert answer["errmsg"].startswith("code been used") and "rid: " in answer["errmsg"]


def test_unknown_code_is_invalid(wx):
    assert json.loads(exchange(wx, "no-such-code").text)["errcode"] == 40029


def test_code_expires_after_five_minutes(wx, sim):
    t0 = 1_700_000_000.0
    sim.now = lambda: t0
    code = login(wx)["code"]
    sim.now = lambda: t0 + CODE_TTL_S + 1
    assert json.loads(exchange(wx, code).text)["errcode"] == 40029


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"appid": "wx-somebody-else"}, 40013),
        ({"secret": "wrong"}, 40125),
        ({"appid": None}, 41002),
        ({"secret": None}, 41004),
        ({"js_code": None}, 41008),
        ({"grant_type": "client_credential"}, 40002),
    ],
)
def test_bad_credentials_and_missing_parameters(wx, overrides, errcode):
    code = login(wx)["code"]
    answer = json.loads(exchange(wx, code, **overrides).text)
    assert answer["errcode"] == errcode
    # The code was not consumed by a refused call.
    assert "openid" in json.loads(exchange(wx, code).text)


def test_rate_limit_per_openid(wx):
    codes = [login(wx, openid="oBusyUser")["code"] for _ in range(RATE_LIMIT_CALLS + 1)]
    for code in codes[:-1]:
        assert "openid" in json.loads(exchange(wx, code).text)
    assert json.loads(exchange(wx, codes[-1]).text)["errcode"] == 45011
    # Another user is not affected.
    assert "openid" in json.loads(exchange(wx, login(wx)["code"]).text)
