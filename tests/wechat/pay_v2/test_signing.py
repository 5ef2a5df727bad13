# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import hashlib
import hmac

import pytest

from tests.wx import OFFICIAL_KEY, OFFICIAL_PARAMS, signed, wx_sign
from wechat.pay_v2.signing import (
    HMAC_SHA256,
    MD5,
    nonce_str,
    notify_sign_type,
    sign,
    verify,
)

OFFICIAL_MD5 = "9A0A8659F005D6984697E2CA0A9CF3B7"
OFFICIAL_HMAC = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
STRING_A = (
    "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
)


# -- official and known vectors (§2.2) ---------------------------------------------------------


def test_md5_matches_official_example():
    assert sign(OFFICIAL_PARAMS, OFFICIAL_KEY) == OFFICIAL_MD5
    assert sign(OFFICIAL_PARAMS, OFFICIAL_KEY, MD5) == OFFICIAL_MD5


def test_hmac_sha256_matches_official_example():
    assert sign(OFFICIAL_PARAMS, OFFICIAL_KEY, HMAC_SHA256) == OFFICIAL_HMAC


def test_hmac_message_keeps_the_trailing_key_pair():
    without_key = (
        hmac.new(OFFICIAL_KEY.encode(), STRING_A.encode(), hashlib.sha256).hexdigest().upper()
    )
    assert without_key == "F734F0E6B3509F9701F4A27CA72985EE10313DD0F96B71CAB42985D0F4F56376"
    assert sign(OFFICIAL_PARAMS, OFFICIAL_KEY, HMAC_SHA256) != without_key


def test_signature_is_uppercase_hex():
    assert sign(OFFICIAL_PARAMS, OFFICIAL_KEY) != "9a0a8659f005d6984697e2ca0a9cf3b7"
    assert sign(OFFICIAL_PARAMS, OFFICIAL_KEY).isupper()


def test_sent_sign_type_is_part_of_the_signed_string():
    params = {**OFFICIAL_PARAMS, "sign_type": HMAC_SHA256}
    assert sign(params, OFFICIAL_KEY, HMAC_SHA256) == (
        "2C9DF1156522C0B2B03B4DBF3BCA5CACB602CBD5CA0F9E112458CF3E9855303B"
    )


@pytest.mark.parametrize(
    ("sign_type", "expected"),
    [
        (MD5, "1E3A8D73B5A4AEE787C0F68B5DAB8520"),
        (HMAC_SHA256, "EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659"),
    ],
)
def test_matches_wechatpy_vectors(sign_type, expected):
    assert sign({"test1": "test1", "test2": "test2"}, OFFICIAL_KEY, sign_type) == expected


# -- rules of §2.1 -----------------------------------------------------------------------------


def test_empty_and_none_values_are_not_signed():
    params = {**OFFICIAL_PARAMS, "attach": "", "detail": None}
    assert sign(params, OFFICIAL_KEY) == OFFICIAL_MD5


def test_existing_sign_field_is_not_signed():
    assert sign({**OFFICIAL_PARAMS, "sign": "WHATEVER"}, OFFICIAL_KEY) == OFFICIAL_MD5


def test_int_values_sign_like_their_decimal_text():
    assert sign({"total_fee": 1}, OFFICIAL_KEY) == sign({"total_fee": "1"}, OFFICIAL_KEY)


def test_names_sort_by_byte_order_uppercase_first():
    params = {"appid": "a", "appId": "b", "Z": "c"}
    stringsigntemp = f"Z=c&appId=b&appid=a&key={OFFICIAL_KEY}"
    assert sign(params, OFFICIAL_KEY) == hashlib.md5(stringsigntemp.encode()).hexdigest().upper()


def test_values_are_signed_raw_without_escaping():
    params = {"body": "腾讯-游戏 & <礼包>", "detail": '{"a":"b=c"}'}
    assert sign(params, OFFICIAL_KEY) == wx_sign(params, OFFICIAL_KEY)


def test_unknown_sign_type_is_refused():
    with pytest.raises(ValueError, match="sign_type"):
        sign(OFFICIAL_PARAMS, OFFICIAL_KEY, "SHA1")


# -- verify ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sign_type", [MD5, HMAC_SHA256])
def test_verify_accepts_answer_signed_by_wechat(sign_type):
    answer = signed({"return_code": "SUCCESS", "appid": "wx1"}, sign_type=sign_type)
    assert verify(answer, OFFICIAL_KEY, sign_type)


def test_verify_includes_fields_we_do_not_know():
    answer = signed({"return_code": "SUCCESS", "coupon_id_0": "10086", "coupon_fee_0": "5"})
    assert verify(answer, OFFICIAL_KEY)
    del answer["coupon_id_0"]
    assert not verify(answer, OFFICIAL_KEY)


def test_verify_rejects_tampered_value():
    answer = signed({"total_fee": "1", "out_trade_no": "o1"})
    answer["total_fee"] = "100"
    assert not verify(answer, OFFICIAL_KEY)


def test_verify_rejects_wrong_key():
    answer = signed({"total_fee": "1"})
    assert not verify(answer, "0" * 32)


def test_verify_rejects_wrong_sign_type():
    answer = signed({"total_fee": "1"}, sign_type=HMAC_SHA256)
    assert not verify(answer, OFFICIAL_KEY, MD5)
    assert verify(answer, OFFICIAL_KEY, HMAC_SHA256)


@pytest.mark.parametrize("bad_sign", [None, "", "签名", "x" * 64])
def test_verify_rejects_missing_empty_or_junk_sign(bad_sign):
    answer = {"total_fee": "1"}
    if bad_sign is not None:
        answer["sign"] = bad_sign
    assert verify(answer, OFFICIAL_KEY) is False


def test_verify_rejects_lowercase_sign():
    answer = signed({"total_fee": "1"})
    answer["sign"] = answer["sign"].lower()
    assert not verify(answer, OFFICIAL_KEY)


def test_verify_with_unknown_sign_type_is_false_not_an_exception():
    assert verify(signed({"total_fee": "1"}), OFFICIAL_KEY, "SHA1") is False


# -- notify_sign_type (§5.3) -------------------------------------------------------------------

MD5_SIGN = "A" * 32
HMAC_SIGN = "A" * 64


@pytest.mark.parametrize(
    ("fields", "default", "expected"),
    [
        ({"sign_type": HMAC_SHA256, "sign": MD5_SIGN}, None, HMAC_SHA256),
        ({"sign_type": MD5, "sign": HMAC_SIGN}, HMAC_SHA256, MD5),
        ({"sign": MD5_SIGN}, HMAC_SHA256, HMAC_SHA256),
        ({"sign_type": "SHA1", "sign": MD5_SIGN}, HMAC_SHA256, HMAC_SHA256),
        ({"sign": HMAC_SIGN}, None, HMAC_SHA256),
        ({"sign": MD5_SIGN}, None, MD5),
        ({"sign_type": "", "sign": HMAC_SIGN}, None, HMAC_SHA256),
        ({}, None, MD5),
    ],
    ids=[
        "field-wins-over-length",
        "field-wins-over-default",
        "default-when-field-absent",
        "default-when-field-invalid",
        "64-chars-means-hmac",
        "32-chars-means-md5",
        "empty-field-falls-back-to-length",
        "nothing-means-documented-md5",
    ],
)
def test_notify_sign_type_picks_the_algorithm(fields, default, expected):
    assert notify_sign_type(fields, default) == expected


def test_notify_sign_type_refuses_unknown_default():
    with pytest.raises(ValueError, match="default"):
        notify_sign_type({"sign": MD5_SIGN}, "SHA1")


# -- nonce_str ---------------------------------------------------------------------------------


def test_nonce_str_is_32_random_characters():
    first, second = nonce_str(), nonce_str()
    assert len(first) == 32
    assert first.isalnum()
    assert first != second
