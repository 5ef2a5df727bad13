"""The upload_shipping_info body, checked before sending as WeChat checks it.

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md.
"""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from wechat.miniprogram import (
    DeliveryMode,
    LogisticsType,
    RequestInvalid,
    ShippingItem,
    mask_phone,
)
from wechat.miniprogram.shipping import (
    merchant_order_key,
    rfc3339,
    shipping_body,
    upload_order_key,
)

KEY = {"order_number_type": 2, "transaction_id": "4200002501202501018123456789"}
NOW = datetime(2022, 12, 15, 5, 29, 35, 120000, tzinfo=UTC)
PARCEL = ShippingItem("小熊玩偶*1", tracking_no="YT7407032196699", express_company="YTO")


def body(**overrides):
    fields = {
        "order_key": KEY,
        "logistics_type": LogisticsType.EXPRESS,
        "delivery_mode": DeliveryMode.UNIFIED,
        "shipping_list": [PARCEL],
        "upload_time": NOW,
        "payer_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "is_all_delivered": None,
        **overrides,
    }
    return shipping_body(**fields)


def refused(**overrides) -> str:
    with pytest.raises(RequestInvalid) as caught:
        body(**overrides)
    assert caught.value.errcode is None and not caught.value.retryable
    return str(caught.value)


def test_rfc3339_is_beijing_time_with_milliseconds_as_the_notes_example():
    assert rfc3339(NOW) == "2022-12-15T13:29:35.120+08:00"
    other_zone = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert rfc3339(other_zone) == "2022-12-15T13:29:35.120+08:00"


def test_naive_upload_time_is_refused():
    assert "upload_time" in refused(upload_time=datetime(2022, 12, 15, 13, 29, 35))


def test_order_keys_use_each_calls_own_names():
    assert upload_order_key("42", "", "") == {"order_number_type": 2, "transaction_id": "42"}
    assert upload_order_key("", "1900000109", "T1") == {
        "order_number_type": 1, "mchid": "1900000109", "out_trade_no": "T1"}
    assert merchant_order_key("", "1900000109", "T1") == {
        "merchant_id": "1900000109", "merchant_trade_no": "T1"}
    assert merchant_order_key("42", "", "") == {"transaction_id": "42"}


@pytest.mark.parametrize(("tid", "mchid", "no"), [("", "", ""), ("42", "1", "T1"), ("", "1", ""),
                                                  ("", "", "T1"), ("42", "1", "")])
def test_order_key_needs_one_complete_key(tid, mchid, no):
    with pytest.raises(RequestInvalid):
        upload_order_key(tid, mchid, no)


def test_item_desc_of_120_characters_passes_and_121_is_refused():
    ok = body(shipping_list=[ShippingItem("茶" * 120, "YT1", "YTO")])
    assert ok["shipping_list"][0]["item_desc"] == "茶" * 120
    assert "item_desc" in refused(shipping_list=[ShippingItem("茶" * 121, "YT1", "YTO")])


@pytest.mark.parametrize("desc", ["", "   ", None])
def test_item_desc_is_required(desc):
    assert refused(shipping_list=[ShippingItem(desc, "YT1", "YTO")]) == "item_desc is required"


@pytest.mark.parametrize("missing", ["tracking_no", "express_company"])
def test_express_needs_tracking_number_and_company(missing):
    item = ShippingItem("tea", **{"tracking_no": "YT1", "express_company": "YTO", missing: ""})
    assert missing in refused(shipping_list=[item])


def test_tracking_number_and_company_have_at_most_128_bytes():
    assert body(shipping_list=[ShippingItem("tea", "9" * 128, "YTO")])
    assert "tracking_no" in refused(shipping_list=[ShippingItem("tea", "单" * 43, "YTO")])
    assert "express_company" in refused(shipping_list=[ShippingItem("tea", "1", "Y" * 129)])


@pytest.mark.parametrize("kind", [LogisticsType.SAME_CITY, LogisticsType.VIRTUAL,
                                  LogisticsType.SELF_PICKUP])
def test_other_logistics_need_only_item_desc(kind):
    result = body(logistics_type=kind, shipping_list=[ShippingItem("会员卡*1")])
    assert result["logistics_type"] == int(kind)
    assert result["shipping_list"] == [{"item_desc": "会员卡*1"}]


@pytest.mark.parametrize("value", [0, 5, "1", None])
def test_logistics_type_is_1_to_4(value):
    assert "logistics_type" in refused(logistics_type=value)


def test_unified_mode_has_exactly_one_entry():
    assert "exactly one" in refused(shipping_list=[PARCEL, PARCEL])
    assert "exactly one" in refused(shipping_list=[])


def test_split_mode_is_express_only_needs_is_all_delivered_and_at_most_15_entries():
    split = {"delivery_mode": DeliveryMode.SPLIT, "is_all_delivered": False}
    result = body(**split, shipping_list=[PARCEL] * 15)
    assert result["delivery_mode"] == 2 and result["is_all_delivered"] is False
    assert len(result["shipping_list"]) == 15
    assert "15" in refused(**split, shipping_list=[PARCEL] * 16)
    assert "is_all_delivered" in refused(delivery_mode=DeliveryMode.SPLIT)
    assert "express" in refused(**split, logistics_type=LogisticsType.VIRTUAL,
                                shipping_list=[ShippingItem("x")])
    assert "delivery_mode" in refused(delivery_mode=3)


def test_sf_express_needs_a_masked_phone():
    sf = ShippingItem("tea", "SF1", "SF")
    assert "SF" in refused(shipping_list=[sf])
    with_phone = ShippingItem("tea", "SF1", "SF", consignor_contact="0755****1234")
    assert body(shipping_list=[with_phone])["shipping_list"][0]["contact"] == {
        "consignor_contact": "0755****1234"}


@pytest.mark.parametrize("phone", ["18912341234", "189 1234 1234", "abc****1234", "189****12345"])
def test_an_unmasked_phone_is_never_sent(phone):
    item = ShippingItem("tea", "YT1", "YTO", receiver_contact=phone)
    message = refused(shipping_list=[item])
    assert "masked" in message and phone not in message
    assert phone not in repr(item)


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("18912341234", "189****1234"), ("+86 189-1234-1234", "189****1234"),
     ("020-1234567", "****4567"), ("0755-1234", "****1234"), ("1234", "****1234")],
)
def test_mask_phone_keeps_the_last_four_digits(phone, masked):
    assert mask_phone(phone) == masked


def test_mask_phone_needs_four_digits():
    with pytest.raises(ValueError, match=r"^a phone number has at least 4 digits$"):
        mask_phone("12-3")


def test_payer_openid_is_required():
    assert "payer_openid" in refused(payer_openid="")


SPLIT = {"delivery_mode": DeliveryMode.SPLIT, "is_all_delivered": False}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"logistics_type": 0}, "logistics_type must be 1 (express) to 4 (self pickup)"),
        ({"delivery_mode": 3}, "delivery_mode must be 1 (unified) or 2 (split)"),
        (
            {**SPLIT, "logistics_type": LogisticsType.VIRTUAL},
            "only express shipping can be split (10060006)",
        ),
        ({"delivery_mode": DeliveryMode.SPLIT}, "split shipping needs is_all_delivered (10060007)"),
        (
            {"shipping_list": [PARCEL, PARCEL]},
            "unified shipping has exactly one shipping_list entry",
        ),
        ({**SPLIT, "shipping_list": [PARCEL] * 16}, "shipping_list has 1 to 15 entries"),
        ({"shipping_list": ["小熊玩偶*1"]}, "shipping_list holds ShippingItem entries"),
        (
            {"shipping_list": [ShippingItem("茶" * 121, "YT1", "YTO")]},
            "item_desc has at most 120 characters",
        ),
        ({"shipping_list": [ShippingItem("tea", "", "YTO")]}, "express shipping needs tracking_no"),
        (
            {"shipping_list": [ShippingItem("tea", "YT1", "Y" * 129)]},
            "express_company has at most 128 bytes",
        ),
        (
            {"shipping_list": [ShippingItem("tea", "SF1", "SF")]},
            "SF Express needs a masked receiver_contact or consignor_contact",
        ),
        (
            {"shipping_list": [ShippingItem("tea", "YT1", "YTO", consignor_contact="1234")]},
            "consignor_contact must be a masked phone like 189****1234",
        ),
        (
            {"upload_time": datetime(2022, 12, 15, 13, 29, 35)},
            "upload_time must be an aware datetime",
        ),
        ({"payer_openid": ""}, "payer_openid is required"),
    ],
)
def test_each_refusal_says_its_rule_in_words_an_operator_can_act_on(overrides, reason):
    assert refused(**overrides) == reason
