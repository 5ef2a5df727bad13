"""Rules of shipping.py a mutation run found unpinned: Beijing upload times whatever the
server's own zone, a zone that gives no offset counts as none, the exact reasons of the order
keys and of a get_order answer that is not WeChat's, and how get_order's answer reads a field
it lacks or mistypes (empty, zero, no time, not in complaint).

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md.
"""

import time
from datetime import UTC, date, datetime

import pytest

from tests.wechat.zones import NoOffset
from wechat.miniprogram import MiniProgramUnavailable, RequestInvalid
from wechat.miniprogram.shipping import (
    merchant_order_key,
    rfc3339,
    shipping_order,
    unix_seconds,
    upload_order_key,
)

TRANSACTION_ID = "4200002501202501018123456789"
NOW = datetime(2022, 12, 15, 5, 29, 35, 120000, tzinfo=UTC)


@pytest.mark.usefixtures("server_in_new_york")
def test_upload_time_is_beijing_time_whatever_the_servers_zone():
    assert time.localtime(0).tm_gmtoff == -5 * 3600
    assert rfc3339(NOW) == "2022-12-15T13:29:35.120+08:00"


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2022, 12, 15, 13, 29, 35, tzinfo=NoOffset()),
        date(2022, 12, 15),
        "2022-12-15T13:29:35.120+08:00",
    ],
)
def test_a_time_without_an_offset_or_not_a_datetime_is_refused(moment):
    with pytest.raises(RequestInvalid) as upload:
        rfc3339(moment)
    with pytest.raises(RequestInvalid) as receipt:
        unix_seconds(moment, "received_time")
    assert str(upload.value) == "upload_time must be an aware datetime"
    assert str(receipt.value) == "received_time must be an aware datetime"


def test_an_incomplete_order_key_says_which_ids_each_call_takes():
    with pytest.raises(RequestInvalid) as upload:
        upload_order_key("", "1900000109", "")
    with pytest.raises(RequestInvalid) as merchant:
        merchant_order_key(TRANSACTION_ID, "1900000109", "T1")
    assert str(upload.value) == "give transaction_id, or mchid and out_trade_no (not both)"
    assert str(merchant.value) == (
        "give transaction_id, or merchant_id and merchant_trade_no (not both)"
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"errcode": 0}, "get_order answered without an order"),
        (
            {"order": {"transaction_id": TRANSACTION_ID}},
            "get_order answered without transaction_id/order_state",
        ),
    ],
)
def test_an_answer_that_is_not_wechats_says_what_it_lacks(answer, reason):
    with pytest.raises(MiniProgramUnavailable) as caught:
        shipping_order(answer)
    assert str(caught.value) == reason


def test_get_order_reads_the_description_and_a_complaint():
    order = {
        "transaction_id": TRANSACTION_ID,
        "order_state": 2,
        "description": "乌龙茶",
        "in_complaint": True,
    }

    result = shipping_order({"order": order})

    assert result.description == "乌龙茶" and result.in_complaint is True


def test_fields_get_order_leaves_out_or_mistypes_read_as_empty():
    order = {"transaction_id": TRANSACTION_ID, "order_state": 1, "paid_amount": "10200"}

    result = shipping_order({"order": {**order, "merchant_id": 1900000109}})

    assert (result.merchant_id, result.merchant_trade_no, result.openid) == ("", "", "")
    assert result.description == "" and result.paid_amount == 0
    assert result.pay_time is None and result.in_complaint is False


@pytest.mark.parametrize(
    ("seconds", "moment"), [(0, None), (1, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC))]
)
def test_pay_time_zero_is_no_time_and_any_later_second_is_a_moment(seconds, moment):
    order = {"transaction_id": TRANSACTION_ID, "order_state": 1, "pay_time": seconds}

    assert shipping_order({"order": order}).pay_time == moment
