"""Order shipping management: upload_shipping_info, get_order, notify_confirm_receive, and the
control calls that move a shipped trade on.

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md.
"""

import copy

import pytest

from tests.wxsim.client import MCH_ID, PAYER, UPLOAD, shipping_upload

GET_ORDER = "/wxa/sec/order/get_order"
REMIND = "/wxa/sec/order/notify_confirm_receive"
OK = {"errcode": 0, "errmsg": "ok"}


def upload(wx, token, transaction_id, **overrides):
    return wx.api(UPLOAD, shipping_upload(transaction_id, **overrides), token)


def errcode(answer):
    return answer.get("errcode", 0)


def state(wx, token, transaction_id):
    return wx.api(GET_ORDER, {"transaction_id": transaction_id}, token)["order"]["order_state"]


def test_upload_records_the_shipping_and_get_order_reports_it(wx, paid_trade, access_token):
    tid = paid_trade["transaction_id"]
    assert state(wx, access_token, tid) == 1  # to ship

    assert upload(wx, access_token, tid) == OK

    order = wx.api(GET_ORDER, {"transaction_id": tid}, access_token)["order"]
    assert order["order_state"] == 2
    assert order["transaction_id"] == tid
    assert order["merchant_id"] == MCH_ID
    assert order["merchant_trade_no"] == paid_trade["_out_trade_no"]
    assert order["paid_amount"] == 101 and order["openid"] == PAYER
    assert order["description"] == "测试商店-商品"
    assert isinstance(order["pay_time"], int) and order["in_complaint"] is False
    shipping = order["shipping"]
    assert shipping["logistics_type"] == 1 and shipping["finish_shipping"] is True
    assert shipping["shipping_list"][0]["tracking_no"] == "YT7407032196699"
    assert shipping["shipping_list"][0]["upload_time"] == 1671082175  # a number in answers (§6)


def test_upload_by_mchid_and_out_trade_no_and_get_order_by_merchant_names(
    wx, paid_trade, access_token
):
    key = {"order_number_type": 1, "mchid": MCH_ID, "out_trade_no": paid_trade["_out_trade_no"]}
    assert upload(wx, access_token, "", order_key=key) == OK
    answer = wx.api(GET_ORDER, {"merchant_id": MCH_ID,
                                "merchant_trade_no": paid_trade["_out_trade_no"]}, access_token)
    assert answer["order"]["transaction_id"] == paid_trade["transaction_id"]
    assert answer["order"]["order_state"] == 2


def test_virtual_goods_need_only_item_desc(wx, paid_trade, access_token):
    answer = upload(wx, access_token, paid_trade["transaction_id"], logistics_type=3,
                    shipping_list=[{"item_desc": "会员卡*1"}])
    assert answer == OK


def test_unknown_unpaid_or_other_merchants_payments_are_not_found(wx, receiver, access_token):
    unpaid = wx.unifiedorder(receiver.url)["_out_trade_no"]
    for key in ({"order_number_type": 2, "transaction_id": "4200000000000000000000000000"},
                {"order_number_type": 1, "mchid": MCH_ID, "out_trade_no": unpaid},
                {"order_number_type": 1, "mchid": "1900000109", "out_trade_no": unpaid}):
        assert errcode(upload(wx, access_token, "", order_key=key)) == 10060001
    assert errcode(wx.api(GET_ORDER, {"transaction_id": "42"}, access_token)) == 10060001


def test_the_payer_must_be_the_trades(wx, paid_trade, access_token):
    answer = upload(wx, access_token, paid_trade["transaction_id"],
                    payer={"openid": "o-somebody-else"})
    assert errcode(answer) == 10060031


def test_refunded_payment_cannot_ship(wx, paid_trade, access_token, sim):
    sim.trades[paid_trade["_out_trade_no"]].state = "REFUND"
    assert errcode(upload(wx, access_token, paid_trade["transaction_id"])) == 10060004
    assert state(wx, access_token, paid_trade["transaction_id"]) == 5


def entry(**fields):
    return [{"tracking_no": "YT1", "express_company": "YTO", "item_desc": "茶", **fields}]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"order_key": {"order_number_type": 3}}, 268485194),
        ({"order_key": {"order_number_type": 2}}, 268485195),
        ({"order_key": {"order_number_type": 1, "out_trade_no": "T1"}}, 268485196),
        ({"order_key": {"order_number_type": 1, "mchid": MCH_ID}}, 268485197),
        ({"order_key": "x"}, 47001),
        ({"logistics_type": 5}, 10060005),
        ({"logistics_type": "1"}, 10060005),  # a number, not a string (§6)
        ({"delivery_mode": 3}, 268485224),
        ({"delivery_mode": 2, "logistics_type": 3, "is_all_delivered": True}, 10060006),
        ({"delivery_mode": 2}, 10060007),
        ({"shipping_list": entry() * 2}, 268485228),
        ({"shipping_list": []}, 268485228),
        ({"delivery_mode": 2, "is_all_delivered": True, "shipping_list": entry() * 16}, 10060024),
        ({"shipping_list": entry(item_desc="")}, 10060008),
        ({"shipping_list": entry(item_desc="茶" * 121)}, 10060009),
        ({"shipping_list": entry(tracking_no="")}, 268485226),
        ({"shipping_list": entry(express_company="")}, 268485227),
        ({"shipping_list": entry(express_company="Y" * 129)}, 10060025),
        ({"shipping_list": entry(tracking_no="单" * 43)}, 10060026),
        ({"shipping_list": entry(express_company="SF")}, 10060014),
        ({"shipping_list": entry(contact={"receiver_contact": "18912341234"})}, 10060014),
        ({"upload_time": "2022-12-15 13:29:35"}, 268485216),
        ({"upload_time": "2022-12-15T13:29:35+0800"}, 268485216),
        ({"upload_time": 1671082175}, 268485216),
        ({"payer": {}}, 47001),
    ],
)
def test_fields_are_checked_like_wechat(wx, paid_trade, access_token, sim, overrides, code):
    answer = upload(wx, access_token, paid_trade["transaction_id"], **overrides)
    assert errcode(answer) == code, answer
    assert " rid: " in answer["errmsg"]
    assert sim.shipments == {}


def test_edges_that_pass(wx, paid_trade, access_token):
    answer = upload(wx, access_token, paid_trade["transaction_id"], shipping_list=entry(
        item_desc="茶" * 120, tracking_no="9" * 128, express_company="SF",
        contact={"receiver_contact": "189****1234"}), upload_time="2022-12-15T05:29:35Z")
    assert answer == OK


def test_same_upload_again_is_nothing_changed(wx, shipped_trade, access_token):
    assert errcode(upload(wx, access_token, shipped_trade["transaction_id"])) == 10060023


def test_one_change_then_the_reship_is_used_up(wx, shipped_trade, access_token):
    tid = shipped_trade["transaction_id"]
    changed = entry(tracking_no="YT2")
    earlier = upload(wx, access_token, tid, shipping_list=changed,
                     upload_time="2022-12-15T13:29:35.120+08:00")
    assert errcode(earlier) == 10060014  # an update needs a later upload_time (§2.4)
    assert upload(wx, access_token, tid, shipping_list=changed,
                  upload_time="2022-12-15T14:00:00+08:00") == OK
    order = wx.api(GET_ORDER, {"transaction_id": tid}, access_token)["order"]
    assert order["shipping"]["shipping_list"][0]["tracking_no"] == "YT2"
    third = upload(wx, access_token, tid, shipping_list=entry(tracking_no="YT3"),
                   upload_time="2022-12-15T15:00:00+08:00")
    assert errcode(third) == 10060003


def test_split_shipping_adds_parcels_until_all_delivered(wx, paid_trade, access_token):
    tid = paid_trade["transaction_id"]
    split = {"delivery_mode": 2, "is_all_delivered": False}
    assert upload(wx, access_token, tid, **split) == OK
    assert state(wx, access_token, tid) == 1  # not all delivered yet
    assert upload(wx, access_token, tid, delivery_mode=2, is_all_delivered=True,
                  shipping_list=entry(tracking_no="YT2"),
                  upload_time="2022-12-16T10:00:00+08:00") == OK
    order = wx.api(GET_ORDER, {"transaction_id": tid}, access_token)["order"]
    assert order["order_state"] == 2 and len(order["shipping"]["shipping_list"]) == 2


def test_confirm_and_settle_move_the_state_and_freeze_the_shipping(wx, shipped_trade,
                                                                   access_token):
    tid = shipped_trade["transaction_id"]
    moved = wx.control("POST", f"/sim/shipping/{tid}", {"action": "confirm_receive"}).json()
    assert moved["order_state"] == 3 and moved["shipment"]["confirm_receive_method"] == 2
    assert state(wx, access_token, tid) == 3
    later = upload(wx, access_token, tid, shipping_list=entry(tracking_no="YT9"),
                   upload_time="2023-01-01T00:00:00+08:00")
    assert errcode(later) == 10060004
    settled = wx.control("POST", f"/sim/shipping/{tid}", {"action": "settle"}).json()
    assert settled["order_state"] == 4 and settled["shipment"]["settlement_time"]
    assert state(wx, access_token, tid) == 4


def test_settle_without_the_user_confirms_automatically(wx, shipped_trade):
    tid = shipped_trade["transaction_id"]
    settled = wx.control("POST", f"/sim/shipping/{tid}", {"action": "settle"}).json()
    assert settled["shipment"]["confirm_receive_method"] == 1


def test_shipping_control_errors(wx, paid_trade):
    tid = paid_trade["transaction_id"]
    assert wx.control("GET", f"/sim/shipping/{tid}").json() == {"order_state": 1,
                                                                "shipment": None}
    assert wx.control("POST", f"/sim/shipping/{tid}", {"action": "settle"}).status_code == 409
    assert wx.control("POST", f"/sim/shipping/{tid}", {"action": "ship"}).status_code == 400
    assert wx.control("GET", "/sim/shipping/4200").status_code == 404


# --- notify_confirm_receive (§2.6) -------------------------------------------------------------

def remind(wx, token, tid, received_time):
    return wx.api(REMIND, {"transaction_id": tid, "received_time": received_time}, token)


def test_remind_once_after_shipping(wx, shipped_trade, access_token, sim):
    tid = shipped_trade["transaction_id"]
    shipped_at = int(sim.shipments[tid].shipped_at)
    assert errcode(remind(wx, access_token, tid, shipped_at - 1)) == 10060029
    assert errcode(remind(wx, access_token, tid, str(shipped_at))) == 10060029
    assert remind(wx, access_token, tid, shipped_at + 60) == OK
    assert errcode(remind(wx, access_token, tid, shipped_at + 60)) == 10060030
    assert sim.shipments[tid].received_time == shipped_at + 60


def test_remind_by_merchant_names(wx, shipped_trade, access_token, sim):
    body = {"merchant_id": MCH_ID, "merchant_trade_no": shipped_trade["_out_trade_no"],
            "received_time": int(sim.now()) + 60}
    assert wx.api(REMIND, body, access_token) == OK


def test_remind_needs_a_shipped_express_order(wx, paid_trade, access_token, sim):
    tid = paid_trade["transaction_id"]
    assert errcode(remind(wx, access_token, tid, int(sim.now()))) == 10060028
    upload(wx, access_token, tid, logistics_type=4, shipping_list=[{"item_desc": "自提"}])
    assert errcode(remind(wx, access_token, tid, int(sim.now()) + 60)) == 10060032
    assert errcode(remind(wx, access_token, "4200", int(sim.now()))) == 10060001


def test_every_shipping_call_needs_a_valid_token(wx, shipped_trade):
    tid = shipped_trade["transaction_id"]
    for path, body in ((UPLOAD, shipping_upload(tid)), (GET_ORDER, {"transaction_id": tid}),
                       (REMIND, {"transaction_id": tid, "received_time": 1})):
        assert errcode(wx.api(path, copy.deepcopy(body), "86_forged")) == 40001
        assert errcode(wx.api(path, body)) == 41001
