"""The /sim control API: stats, connection counting, trades, reset."""

import requests

from tests.wxsim.client import APPID, SECRET


def exchange_url(wx):
    return wx.base_url + "/sns/jscode2session"


def test_one_keep_alive_session_is_one_connection(sim, sim_server):
    with requests.Session() as http:
        http.get(sim_server.base_url + "/sns/jscode2session", params={"appid": APPID})
        http.get(sim_server.base_url + "/sns/jscode2session", params={"appid": APPID})
    stats = sim.stats()
    assert stats["connections_accepted"] == 1
    assert stats["requests"] == {"/sns/jscode2session": 2}


def test_two_sessions_are_two_connections(sim, sim_server):
    for _ in range(2):
        with requests.Session() as http:
            http.get(sim_server.base_url + "/sns/jscode2session")
    assert sim.stats()["connections_accepted"] == 2


def test_stats_endpoint_shape(wx):
    wx.http.get(exchange_url(wx), params={"appid": APPID, "secret": SECRET})
    stats = wx.control("GET", "/sim/stats").json()
    assert stats["requests"] == {"/sns/jscode2session": 1}
    assert stats["connections_accepted"] == 1
    assert set(stats["notifies"]) >= {"delivered", "attempts", "pending"}


def test_trade_json_and_reset(wx, paid_trade, sim):
    trade = wx.control("GET", f"/sim/trades/{paid_trade['_out_trade_no']}").json()
    assert trade["state"] == "SUCCESS" and trade["total_fee"] == 101
    assert trade["sign_type"] == "MD5" and trade["prepay_id"] == paid_trade["prepay_id"]
    assert trade["transaction_id"] == paid_trade["transaction_id"]
    assert trade["refunds"] == [] and isinstance(trade["notify_attempts"], list)
    assert wx.control("POST", "/sim/reset").json() == {"reset": True}
    assert wx.control("GET", f"/sim/trades/{paid_trade['_out_trade_no']}").status_code == 404
    stats = sim.stats()
    assert stats["requests"] == {} and stats["notifies"]["delivered"] == 0


def test_control_errors(wx):
    assert wx.control("GET", "/sim/nothing").status_code == 404
    assert wx.control("GET", "/sim/pay").status_code == 405
    assert wx.control("POST", "/sim/pay", {}).status_code == 400
    assert wx.control("POST", "/sim/pay", {"out_trade_no": 5}).status_code == 400
    assert wx.control("POST", "/sim/pay", {"out_trade_no": "NOPE0001"}).status_code == 404
    bad_json = wx.http.post(wx.base_url + "/sim/login", data=b"{not json")
    assert bad_json.status_code == 400 and "detail" in bad_json.json()
    assert wx.http.get(wx.base_url + "/elsewhere").status_code == 404
