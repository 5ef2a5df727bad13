"""Subscribe messages: one send per accept, keyword values checked (§4 of
docs/protocol/miniprogram-server-api.md)."""

import pytest

SEND = "/cgi-bin/message/subscribe/send"
USER, TEMPLATE = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "tmpl-shipped"


def message(**overrides):
    return {
        "touser": USER,
        "template_id": TEMPLATE,
        "page": "pages/order/detail?no=T1",
        "data": {"thing1": {"value": "乌龙茶 250g"}, "character_string2": {"value": "T1"},
                 "amount3": {"value": "¥102.00"}, "time4": {"value": "2026年1月2日 15:04"}},
        "miniprogram_state": "formal",
        "lang": "zh_CN",
        **overrides,
    }


def accept(wx, count=1, template_id=TEMPLATE):
    response = wx.control("POST", "/sim/subscribe",
                          {"openid": USER, "template_id": template_id, "count": count})
    assert response.status_code == 200, response.text
    return response.json()


def test_without_an_accept_the_send_is_43101(wx, access_token, sim):
    answer = wx.api(SEND, message(), access_token)
    assert answer["errcode"] == 43101 and answer["errmsg"].startswith("user refuse")
    assert sim.messages == []


def test_each_accept_allows_exactly_one_send(wx, access_token):
    assert accept(wx, count=2) == {"openid": USER, "template_id": TEMPLATE, "remaining": 2}
    first = wx.api(SEND, message(), access_token)
    second = wx.api(SEND, message(), access_token)
    assert first["errcode"] == 0 and isinstance(first["msgid"], int)
    assert second["errcode"] == 0 and second["msgid"] != first["msgid"]
    assert wx.api(SEND, message(), access_token)["errcode"] == 43101


def test_accepts_are_per_template(wx, access_token):
    accept(wx, template_id="tmpl-other")
    assert wx.api(SEND, message(), access_token)["errcode"] == 43101


def test_sent_messages_are_listed_with_their_values(wx, access_token):
    accept(wx)
    msgid = wx.api(SEND, message(), access_token)["msgid"]
    listed = wx.control("GET", "/sim/messages").json()["messages"]
    assert len(listed) == 1 and listed[0]["msgid"] == msgid
    assert listed[0]["data"]["thing1"] == "乌龙茶 250g" and listed[0]["touser"] == USER
    assert wx.control("GET", "/sim/stats").json()["messages"] == 1


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"touser": ""}, 40003),
        ({"template_id": ""}, 40037),
        ({"data": {}}, 47003),
        ({"data": {"thing1": "bare"}}, 47003),
        ({"data": {"thing1": {"value": "x" * 21}}}, 47003),
        ({"data": {"thing": {"value": "no number"}}}, 47003),
        ({"data": {"colour1": {"value": "red"}}}, 47003),
        ({"data": {"phrase1": {"value": "已经发货了啊"}}}, 47003),
        ({"data": {"phrase1": {"value": "shipped"}}}, 47003),
        ({"data": {"character_string1": {"value": "订单T1"}}}, 47003),
        ({"data": {"character_string1": {"value": "T" * 33}}}, 47003),
        ({"data": {"number1": {"value": "12a"}}}, 47003),
        ({"data": {"amount1": {"value": "¥12345678901"}}}, 47003),
        ({"data": {"amount1": {"value": "102 yuan"}}}, 47003),
        ({"data": {"thing1": {"value": ""}}}, 47003),
        ({"miniprogram_state": "release"}, 47003),
        ({"lang": "fr_FR"}, 47003),
    ],
)
def test_bad_messages_are_refused_and_use_no_accept(wx, access_token, sim, overrides, errcode):
    accept(wx)
    assert wx.api(SEND, message(**overrides), access_token)["errcode"] == errcode
    assert sim.subscriptions[(USER, TEMPLATE)] == 1


@pytest.mark.parametrize(
    "data",
    [{"thing1": {"value": "x" * 19 + "…"}}, {"phrase1": {"value": "已发货"}},
     {"amount1": {"value": "¥99999999.99"}}, {"amount1": {"value": "102元"}},
     {"number1": {"value": "1" * 32}}, {"name1": {"value": "Alexander Hamilton B"}},
     {"character_string1": {"value": "T2025-01/02_x" + "1" * 19}}],
)
def test_values_at_the_limits_pass(wx, access_token, data):
    accept(wx)
    assert wx.api(SEND, message(data=data), access_token)["errcode"] == 0


def test_subscribe_control_errors(wx):
    assert wx.control("POST", "/sim/subscribe", {"openid": USER}).status_code == 400
    assert wx.control("POST", "/sim/subscribe", {"openid": USER, "template_id": "t",
                                                 "count": 0}).status_code == 400
