"""Injected faults: POST/DELETE /sim/faults."""

import json
import time

import pytest
import xmltodict

from tests.wxsim.client import APPID, SECRET, parse_xml, signature_ok

NOTIFY = "https://shop.example.com/payment/wxnotify"


def add_fault(wx, **spec):
    response = wx.control("POST", "/sim/faults", spec)
    assert response.status_code == 200, response.text
    return response.json()


def test_systemerror_is_signed_and_records_nothing(wx, sim):
    add_fault(wx, path="/pay/unifiedorder", mode="systemerror", count=1)
    answer = wx.unifiedorder(NOTIFY, sign_type="HMAC-SHA256")
    assert answer["return_code"] == "SUCCESS" and answer["result_code"] == "FAIL"
    assert answer["err_code"] == "SYSTEMERROR"
    assert signature_ok({k: v for k, v in answer.items() if k != "_out_trade_no"}, "HMAC-SHA256")
    assert sim.trades == {}
    retried = wx.unifiedorder(NOTIFY, out_trade_no=answer["_out_trade_no"])
    assert retried["result_code"] == "SUCCESS"


def test_http500_then_normal(wx):
    add_fault(wx, path="/pay/orderquery", mode="http500", count=2)
    url = wx.base_url + "/pay/orderquery"
    assert wx.http.post(url, data=b"<xml/>").status_code == 500
    assert wx.http.post(url, data=b"<xml/>").status_code == 500
    assert wx.http.post(url, data=b"<xml/>").status_code == 200


def test_slow_answers_normally_after_the_delay(wx):
    add_fault(wx, path="/pay/unifiedorder", mode="slow", delay_ms=200)
    started = time.monotonic()
    answer = wx.unifiedorder(NOTIFY)
    assert time.monotonic() - started >= 0.2
    assert answer["result_code"] == "SUCCESS"


def test_garbage_is_neither_xml_nor_json(wx):
    add_fault(wx, path="/pay/unifiedorder", mode="garbage")
    response = wx.http.post(wx.base_url + "/pay/unifiedorder", data=b"<xml/>")
    assert response.status_code == 200
    with pytest.raises(Exception):  # noqa: B017 - any parser error will do
        xmltodict.parse(response.content)


def test_bad_sign_answer_does_not_verify(wx):
    add_fault(wx, path="/pay/unifiedorder", mode="bad_sign")
    answer = wx.unifiedorder(NOTIFY)
    assert answer["result_code"] == "SUCCESS"
    assert not signature_ok({k: v for k, v in answer.items() if k != "_out_trade_no"}, "MD5")


def test_code2session_systemerror(wx):
    add_fault(wx, path="/sns/jscode2session", mode="systemerror")
    code = wx.control("POST", "/sim/login", {}).json()["code"]
    params = {"appid": APPID, "secret": SECRET, "js_code": code, "grant_type": "authorization_code"}
    url = wx.base_url + "/sns/jscode2session"
    assert json.loads(wx.http.get(url, params=params).text)["errcode"] == -1
    assert "openid" in json.loads(wx.http.get(url, params=params).text)


def test_latency_applies_to_wechat_paths_only(wx):
    add_fault(wx, latency_ms=150)
    started = time.monotonic()
    wx.control("GET", "/sim/stats")
    assert time.monotonic() - started < 0.15
    started = time.monotonic()
    wx.http.post(wx.base_url + "/pay/orderquery", data=b"")
    assert time.monotonic() - started >= 0.15


def test_delete_clears_faults(wx):
    add_fault(wx, path="/pay/orderquery", mode="http500", count=5)
    add_fault(wx, notify="drop", count=2)
    cleared = wx.control("DELETE", "/sim/faults").json()
    assert cleared == {"paths": {}, "notify_drop": 0, "latency_ms": 0}
    response = wx.http.post(wx.base_url + "/pay/orderquery", data=b"")
    assert parse_xml(response.content)["return_msg"] == "POST_DATA_EMPTY"


@pytest.mark.parametrize(
    "spec",
    [
        {"path": "/pay/nothing", "mode": "http500"},
        {"path": "/pay/orderquery", "mode": "explode"},
        {"path": "/sns/jscode2session", "mode": "bad_sign"},
        {"path": "/pay/orderquery", "mode": "http500", "count": -1},
        {"notify": "delay"},
        {"colour": "blue"},
    ],
)
def test_invalid_fault_specs_are_400(wx, spec):
    assert wx.control("POST", "/sim/faults", spec).status_code == 400
