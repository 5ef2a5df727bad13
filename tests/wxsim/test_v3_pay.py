"""v3 JSAPI prepay, wx.requestPayment with an RSA paySign, the payment notify, query and
close, driven by the shop's own ``wechat.pay_v3`` client: two independent implementations
that must agree. The ledger is v2's too.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import json
from datetime import datetime, timedelta

import pytest

from tests.wx_v3 import new_rsa_key
from tests.wx_v3 import wx_sign as rsa_sign
from tests.wxsim.client import (
    APPID,
    MCH_ID,
    PAYER,
    new_out_trade_no,
    parse_xml,
    wx_sign,
)
from wechat.pay_v3 import (
    BEIJING,
    InvalidRequest,
    OrderClosed,
    OrderNotExist,
    OrderPaid,
    OutTradeNoUsed,
    Transaction,
    parse_notify,
)


def prepay(v3, notify_url: str, out_trade_no: str | None = None, **overrides) -> tuple[str, str]:
    """(out_trade_no, prepay_id) of a new JSAPI order."""
    number = out_trade_no or new_out_trade_no()
    args = {"description": "测试商店-商品", "total": 101, "openid": PAYER,
            "notify_url": notify_url, "attach": "order-42", **overrides}
    return number, v3.jsapi_prepay(out_trade_no=number, **args).prepay_id


def request_payment(wx, payment: dict, **extra):
    """The phone: wx.requestPayment(payment) and the user confirming."""
    return wx.control("POST", "/sim/pay", {"payment": payment, **extra})


def test_prepay_pay_and_the_notify_the_shop_verifies(v3, wx, v3_receiver, sim):
    number, prepay_id = prepay(v3, v3_receiver.url)
    payment = v3.jsapi_params(prepay_id)
    assert payment["signType"] == "RSA" and payment["package"] == f"prepay_id={prepay_id}"

    paid = request_payment(wx, payment, openid=PAYER)

    assert paid.status_code == 200, paid.text
    assert paid.json()["notify"] == "scheduled"
    body = v3_receiver.wait_for(1)[0]
    notify = parse_notify(v3_receiver.headers[0], body, keyring=v3.keyring,
                          apiv3_key=v3.config.apiv3_key, now=sim.now(), mchid=MCH_ID,
                          appid=APPID)
    assert notify.event_type == "TRANSACTION.SUCCESS" and notify.original_type == "transaction"
    assert notify.summary == "支付成功" and notify.id.startswith("EV-")
    transaction = notify.resource
    assert isinstance(transaction, Transaction)
    assert transaction.out_trade_no == number
    assert transaction.transaction_id == paid.json()["transaction_id"]
    assert transaction.trade_state == "SUCCESS" and transaction.trade_type == "JSAPI"
    assert (transaction.total, transaction.payer_total, transaction.currency) == (101, 101, "CNY")
    assert transaction.payer_openid == PAYER and transaction.attach == "order-42"
    assert transaction.success_time.utcoffset() == timedelta(hours=8)
    assert v3_receiver.headers[0]["Wechatpay-Serial"] == sim.v3.public_key_id
    attempts = sim.trades[number].notify_attempts
    assert attempts[0]["success"] and attempts[0]["status"] == 204


def test_notify_body_is_compact_utf8_with_an_encrypted_resource(v3, wx, v3_receiver):
    number, prepay_id = prepay(v3, v3_receiver.url)
    request_payment(wx, v3.jsapi_params(prepay_id))

    body = v3_receiver.wait_for(1)[0]

    assert "支付成功".encode() in body and b"\\u" not in body and b", " not in body
    envelope = json.loads(body)
    assert envelope["resource_type"] == "encrypt-resource"
    assert envelope["create_time"].endswith("+08:00")
    resource = envelope["resource"]
    assert resource["algorithm"] == "AEAD_AES_256_GCM"
    assert resource["associated_data"] == "transaction" and len(resource["nonce"]) == 12
    assert number.encode() not in body  # the payment facts travel encrypted only
    assert v3_receiver.content_types[0] == "application/json"


def test_query_by_number_and_by_id(v3, wx, v3_receiver):
    number, prepay_id = prepay(v3, v3_receiver.url)
    before = v3.order_query(out_trade_no=number)
    assert before.trade_state == "NOTPAY" and not before.is_paid
    assert before.transaction_id == "" and before.success_time is None and before.total == 101
    transaction_id = request_payment(wx, v3.jsapi_params(prepay_id)).json()["transaction_id"]

    by_number = v3.order_query(out_trade_no=number)
    by_id = v3.order_query(transaction_id=transaction_id)

    assert by_number == by_id
    assert by_number.is_paid and by_number.transaction_id == transaction_id
    assert by_number.trade_state_desc == "支付成功" and by_number.bank_type == "OTHERS"


def test_unknown_order_is_order_not_exist(v3):
    with pytest.raises(OrderNotExist) as raised:
        v3.order_query(out_trade_no="T0000000001")
    assert raised.value.status == 404 and raised.value.request_id.endswith("-268512771")
    with pytest.raises(OrderNotExist):
        v3.order_query(transaction_id="4200000000000000000000000000")


def test_reentry_with_the_same_parameters_gives_the_prepay_id(v3, v3_receiver, sim):
    number, first = prepay(v3, v3_receiver.url)
    assert prepay(v3, v3_receiver.url, number)[1] == first
    later = sim.now() + 2 * 3600 + 1
    sim.now = lambda: later
    fresh = prepay(v3, v3_receiver.url, number)[1]
    assert fresh != first  # the same order, a new 2-hour prepay_id (§4.2)
    with pytest.raises(InvalidRequest) as raised:
        prepay(v3, v3_receiver.url, number, total=102)
    assert raised.value.code == "INVALID_REQUEST"
    assert raised.value.request_id.endswith("-268498688")


def test_close_an_unpaid_order_twice(v3, wx, v3_receiver):
    number, prepay_id = prepay(v3, v3_receiver.url)

    assert v3.close_order(out_trade_no=number) is None
    assert v3.close_order(out_trade_no=number) is None  # closing again succeeds (§6.3)

    assert v3.order_query(out_trade_no=number).trade_state == "CLOSED"
    refused = request_payment(wx, v3.jsapi_params(prepay_id))
    assert refused.status_code == 409 and "ORDERCLOSED" in refused.json()["detail"]
    with pytest.raises(OrderClosed):
        prepay(v3, v3_receiver.url, number)
    with pytest.raises(OrderNotExist):
        v3.close_order(out_trade_no="T0000000001")


def test_paid_order_cannot_be_closed_nor_prepaid_again(v3, wx, v3_receiver):
    number, prepay_id = prepay(v3, v3_receiver.url)
    request_payment(wx, v3.jsapi_params(prepay_id))

    with pytest.raises(OrderPaid) as closing:
        v3.close_order(out_trade_no=number)
    with pytest.raises(OrderPaid) as prepaying:
        prepay(v3, v3_receiver.url, number)

    # Both spellings in use (§10.3): the shop must take either.
    assert {closing.value.code, prepaying.value.code} == {"ORDER_PAID", "ORDERPAID"}
    assert request_payment(wx, v3.jsapi_params(prepay_id)).status_code == 409


@pytest.mark.parametrize(
    "tamper",
    [
        {"paySign": "A" * 344},
        {"nonceStr": "changed-after-signing"},
        {"signType": "MD5"},
        {"timeStamp": "1554208460000"},  # milliseconds
    ],
    ids=["signature", "nonce", "sign-type", "milliseconds"],
)
def test_bad_request_payment_is_refused(v3, wx, v3_receiver, tamper):
    _, prepay_id = prepay(v3, v3_receiver.url)
    payment = {**v3.jsapi_params(prepay_id), **tamper}

    response = request_payment(wx, payment)

    assert response.status_code == 400
    assert "支付验证签名失败" in response.json()["detail"]
    assert v3_receiver.received == []


def pay_sign_by_hand(key, prepay_id: str, lines: list[str] | None = None) -> dict:
    payment = {"timeStamp": "1735689601", "nonceStr": "3F2504E04F8911D39A0C0305E82C3301",
               "package": f"prepay_id={prepay_id}", "signType": "RSA"}
    signed = lines if lines is not None else [APPID, payment["timeStamp"], payment["nonceStr"],
                                              payment["package"]]
    payment["paySign"] = rsa_sign(key, "".join(line + "\n" for line in signed).encode())
    return payment


def test_pay_sign_by_hand_as_the_note_says_pays(v3, wx, v3_receiver, v3_merchant_key):
    _, prepay_id = prepay(v3, v3_receiver.url)
    response = request_payment(wx, pay_sign_by_hand(v3_merchant_key, prepay_id))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("variant", ["other-key", "app-variant", "no-app-id"])
def test_pay_sign_mistakes_are_refused(v3, wx, v3_receiver, v3_merchant_key, variant):
    _, prepay_id = prepay(v3, v3_receiver.url)
    timestamp, nonce = "1735689601", "3F2504E04F8911D39A0C0305E82C3301"
    if variant == "other-key":
        payment = pay_sign_by_hand(new_rsa_key(), prepay_id)
    elif variant == "app-variant":  # APP payments sign the bare prepay_id (§5.2)
        payment = pay_sign_by_hand(v3_merchant_key, prepay_id,
                                   [APPID, timestamp, nonce, prepay_id])
    else:
        payment = pay_sign_by_hand(v3_merchant_key, prepay_id,
                                   [timestamp, nonce, f"prepay_id={prepay_id}"])
    assert request_payment(wx, payment).status_code == 400


def test_v2_signature_on_a_v3_order_is_refused(v3, wx, v3_receiver):
    _, prepay_id = prepay(v3, v3_receiver.url)
    payment = {"timeStamp": "1735689601", "nonceStr": "abc", "package": f"prepay_id={prepay_id}",
               "signType": "MD5"}
    payment["paySign"] = wx_sign({"appId": APPID, **payment})
    assert request_payment(wx, payment).status_code == 400


def test_order_past_time_expire_cannot_be_paid(v3, wx, v3_receiver, sim):
    expire = datetime.fromtimestamp(sim.now(), BEIJING) + timedelta(minutes=5)
    _, prepay_id = prepay(v3, v3_receiver.url, time_expire=expire)
    later = sim.now() + 301
    sim.now = lambda: later

    response = request_payment(wx, v3.jsapi_params(prepay_id))

    assert response.status_code == 409 and "过期" in response.json()["detail"]


def test_coupon_shows_in_payer_total_and_promotion_detail(v3, wx, v3_receiver):
    number, prepay_id = prepay(v3, v3_receiver.url, total=500)
    request_payment(wx, v3.jsapi_params(prepay_id), coupon_fee=120)

    transaction = v3.order_query(out_trade_no=number)

    assert (transaction.total, transaction.payer_total) == (500, 380)
    assert transaction.raw["promotion_detail"][0]["amount"] == 120


# -- one merchant, one ledger: v2 and v3 see the same orders ----------------------------------


def test_v2_order_is_queried_through_v3(v3, wx, receiver):
    order = wx.unifiedorder(receiver.url)
    number = order["_out_trade_no"]
    assert v3.order_query(out_trade_no=number).trade_state == "NOTPAY"
    with pytest.raises(OutTradeNoUsed):  # the number is taken by a v2 order
        prepay(v3, receiver.url, number)
    wx.pay(number)
    notify = parse_xml(receiver.wait_for(1)[0])  # a v2 order gets a v2 notify

    transaction = v3.order_query(out_trade_no=number)

    assert transaction.is_paid and transaction.transaction_id == notify["transaction_id"]
    assert transaction.total == 101


def test_v3_order_is_queried_and_closed_through_v2(v3, wx, v3_receiver, sim):
    number, prepay_id = prepay(v3, v3_receiver.url)
    answer = wx.call("/pay/orderquery", {"out_trade_no": number})
    assert answer["result_code"] == "SUCCESS" and answer["trade_state"] == "NOTPAY"
    request_payment(wx, v3.jsapi_params(prepay_id))

    paid = wx.call("/pay/orderquery", {"out_trade_no": number})

    assert paid["trade_state"] == "SUCCESS" and paid["total_fee"] == "101"
    assert paid["openid"] == PAYER
    reentry = wx.unifiedorder(v3_receiver.url, out_trade_no=number)
    assert reentry["err_code"] == "ORDERPAID"


def test_shop_closing_through_v3_what_v2_placed(v3, wx, receiver):
    order = wx.unifiedorder(receiver.url)
    v3.close_order(out_trade_no=order["_out_trade_no"])
    answer = wx.call("/pay/orderquery", {"out_trade_no": order["_out_trade_no"]})
    assert answer["trade_state"] == "CLOSED"
