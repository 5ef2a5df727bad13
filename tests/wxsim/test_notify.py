"""Payment notifies (§5): content, signature, retries, drops, duplicates."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from tests.wxsim.client import FAIL_REPLY, parse_xml, signature_ok, wait_until

NOTIFY_FIELDS = {
    "return_code",
    "appid",
    "mch_id",
    "nonce_str",
    "sign",
    "result_code",
    "openid",
    "is_subscribe",
    "trade_type",
    "bank_type",
    "total_fee",
    "fee_type",
    "cash_fee",
    "transaction_id",
    "out_trade_no",
    "attach",
    "time_end",
}


def test_md5_notify_carries_the_full_signed_field_set(paid_trade, receiver, sim):
    notify = parse_xml(receiver.received[0])
    assert set(notify) == NOTIFY_FIELDS
    assert signature_ok(notify, "MD5") and len(notify["sign"]) == 32
    assert notify["out_trade_no"] == paid_trade["_out_trade_no"]
    assert notify["transaction_id"] == paid_trade["transaction_id"]
    assert notify["total_fee"] == notify["cash_fee"] == "101"
    assert notify["attach"] == "order-42" and notify["is_subscribe"] == "N"
    trade = wait_until(lambda: sim.trades[paid_trade["_out_trade_no"]].notify_attempts)
    assert trade[0]["success"] is True and trade[0]["status"] == 200


def test_hmac_trade_notify_is_hmac_signed_without_sign_type(wx, receiver):
    order = wx.unifiedorder(receiver.url, sign_type="HMAC-SHA256")
    assert wx.pay(order["_out_trade_no"]).json()["notify"] == "scheduled"
    notify = parse_xml(receiver.wait_for(1)[0])
    assert "sign_type" not in notify
    assert len(notify["sign"]) == 64
    assert signature_ok(notify, "HMAC-SHA256")
    assert not signature_ok(notify, "MD5")


def test_failed_replies_are_retried_until_success(wx, receiver, sim):
    receiver.replies = [(200, FAIL_REPLY), (200, b"success"), (500, b"oops")]
    order = wx.unifiedorder(receiver.url)
    wx.pay(order["_out_trade_no"])
    bodies = receiver.wait_for(4)
    assert len(set(bodies)) == 1  # the same notify, re-sent
    attempts = wait_until(
        lambda: (a := sim.trades[order["_out_trade_no"]].notify_attempts) and len(a) == 4 and a
    )
    assert [a["success"] for a in attempts] == [False, False, False, True]
    assert [a["status"] for a in attempts] == [200, 200, 500, 200]
    assert attempts[1]["reply"] == "success"
    trade = wx.control("GET", f"/sim/trades/{order['_out_trade_no']}").json()
    assert len(trade["notify_attempts"]) == 4
    stats = wait_until(lambda: (s := sim.stats()["notifies"]) and s["pending"] == 0 and s)
    assert stats["delivered"] == 1 and stats["attempts"] == 4


def test_unreachable_notify_url_is_retried_and_recorded(wx, sim):
    order = wx.unifiedorder("http://127.0.0.1:9/payment/wxnotify")
    wx.pay(order["_out_trade_no"])
    attempts = wait_until(
        lambda: len(sim.trades[order["_out_trade_no"]].notify_attempts) >= 2
        and sim.trades[order["_out_trade_no"]].notify_attempts
    )
    assert attempts[0]["status"] is None and attempts[0]["error"]
    assert sim.stats()["notifies"]["pending"] == 1


def test_drop_fault_swallows_the_next_notify(wx, receiver, sim):
    assert wx.control("POST", "/sim/faults", {"notify": "drop", "count": 1}).status_code == 200
    dropped = wx.unifiedorder(receiver.url)
    assert wx.pay(dropped["_out_trade_no"]).json()["notify"] == "dropped"
    delivered = wx.unifiedorder(receiver.url)
    assert wx.pay(delivered["_out_trade_no"]).json()["notify"] == "scheduled"
    received = [parse_xml(b)["out_trade_no"] for b in receiver.wait_for(1)]
    assert received == [delivered["_out_trade_no"]]
    assert sim.trades[dropped["_out_trade_no"]].notify_attempts == []
    assert sim.stats()["notifies"]["dropped"] == 1


def test_coupon_payment_adds_signed_coupon_fields(wx, receiver):
    order = wx.unifiedorder(receiver.url, total_fee=500)
    assert wx.pay(order["_out_trade_no"], coupon_fee=120).status_code == 200
    notify = parse_xml(receiver.wait_for(1)[0])
    assert notify["total_fee"] == "500" and notify["cash_fee"] == "380"
    assert notify["coupon_fee"] == notify["coupon_fee_0"] == "120"
    assert notify["coupon_count"] == "1" and notify["coupon_id_0"]
    assert signature_ok(notify, "MD5")


def test_paying_with_another_openid_is_refused(wx, receiver):
    order = wx.unifiedorder(receiver.url)
    response = wx.pay(order["_out_trade_no"], openid="oSomebodyElse")
    assert response.status_code == 409
    assert "下单账号与支付账号不一致" in response.json()["detail"]
    assert receiver.received == []


def test_pay_by_prepay_id_and_expired_prepay(wx, sim, receiver):
    order = wx.unifiedorder(receiver.url)
    later = sim.now() + 2 * 3600 + 1
    sim.now = lambda: later
    expired = wx.control("POST", "/sim/pay", {"prepay_id": order["prepay_id"]})
    assert expired.status_code == 409 and "过期" in expired.json()["detail"]
    fresh = wx.unifiedorder(receiver.url, out_trade_no=order["_out_trade_no"])
    paid = wx.control("POST", "/sim/pay", {"prepay_id": fresh["prepay_id"]})
    assert paid.status_code == 200 and paid.json()["out_trade_no"] == order["_out_trade_no"]
    assert wx.pay(order["_out_trade_no"]).status_code == 409  # already paid


def test_resend_sends_concurrent_identical_copies(wx, paid_trade, receiver):
    response = wx.control(
        "POST", f"/sim/notify/{paid_trade['_out_trade_no']}", {"copies": 3, "concurrent": True}
    )
    assert response.status_code == 200
    assert [a["success"] for a in response.json()["attempts"]] == [True, True, True]
    bodies = receiver.wait_for(4)
    assert len(bodies) == 4 and len(set(bodies[1:])) == 1


def test_resend_for_unpaid_trade_is_refused(wx, receiver):
    order = wx.unifiedorder(receiver.url)
    assert wx.control("POST", f"/sim/notify/{order['_out_trade_no']}").status_code == 409
    assert wx.control("POST", "/sim/notify/NOPE0000").status_code == 404
