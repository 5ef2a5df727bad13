# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import json
from datetime import datetime

import pytest

from tests.wx_v3 import (
    APIV3_KEY,
    APPID,
    MCHID,
    NOW,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    RESOURCE_VECTOR,
    RESOURCE_VECTOR_KEY,
    encrypt_resource,
    notify_body,
    refund_object,
    signed_headers,
    transaction,
)
from wechat.pay_v3 import (
    BEIJING,
    MAX_NOTIFY_BYTES,
    DecryptError,
    KeyRing,
    MalformedNotify,
    Refund,
    SignatureHeaderError,
    SignatureProbe,
    TimestampOutOfWindow,
    Transaction,
    UnknownSerial,
    WxPayV3SignatureError,
    parse_notify,
)


def paid_notify(wechat_key, **changes) -> tuple[dict, bytes]:
    body = notify_body(encrypt_resource(APIV3_KEY, json.dumps(transaction(**changes)).encode()))
    return signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW), body


def parse(headers, body, keyring, **kwargs):
    kwargs = {"apiv3_key": APIV3_KEY, "now": NOW, "mchid": MCHID, "appid": APPID, **kwargs}
    return parse_notify(headers, body, keyring=keyring, **kwargs)


def test_payment_notify_is_verified_decrypted_and_typed(keyring, wechat_key):
    headers, body = paid_notify(wechat_key)
    notify = parse(headers, body, keyring)
    assert notify.event_type == "TRANSACTION.SUCCESS"
    assert notify.id == "EV-2025010108003100000000000001"
    assert notify.create_time == datetime(2025, 1, 1, 8, 0, 31, tzinfo=BEIJING)
    assert notify.original_type == "transaction"
    paid = notify.resource
    assert isinstance(paid, Transaction)
    assert paid.is_paid
    assert paid.out_trade_no == "T20250101000000001"
    assert paid.transaction_id == "4200002501202501018123456789"
    assert paid.total == 101
    assert paid.payer_total == 101
    assert paid.payer_openid == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    assert paid.success_time == datetime(2025, 1, 1, 8, 0, 30, tzinfo=BEIJING)
    assert paid.success_time.utcoffset().total_seconds() == 8 * 3600
    assert notify.data["trade_state_desc"] == "支付成功"


def test_the_notes_resource_vector_decrypts_inside_a_notify(wechat_key):
    """§13.4's resource as a real notify would carry it."""
    body = notify_body(RESOURCE_VECTOR)
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    ring = KeyRing(public_key=wechat_key.public_key(), public_key_id=PUBLIC_KEY_ID)
    notify = parse_notify(headers, body, keyring=ring, apiv3_key=RESOURCE_VECTOR_KEY, now=NOW)
    assert notify.resource.total == 1
    assert notify.resource.attach == "shop=1"


def test_refund_notify_signed_with_a_platform_certificate(keyring, platform):
    plaintext = {
        "mchid": MCHID,
        "out_trade_no": "T20250101000000001",
        "transaction_id": "4200002501202501018123456789",
        "out_refund_no": "R20250102000000001",
        "refund_id": "50000000382019052709732678859",
        "refund_status": "SUCCESS",
        "success_time": "2025-01-02T10:00:05+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 101, "refund": 50, "payer_total": 101, "payer_refund": 50},
    }
    resource = encrypt_resource(
        APIV3_KEY,
        json.dumps(plaintext, ensure_ascii=False).encode(),
        associated_data="refund",
        original_type="refund",
    )
    body = notify_body(resource, event_type="REFUND.SUCCESS")
    headers = signed_headers(platform.key, PLATFORM_SERIAL, body, timestamp=NOW)
    notify = parse(headers, body, keyring)
    refund = notify.resource
    assert isinstance(refund, Refund)
    assert refund.status == "SUCCESS"  # from refund_status (§8.5)
    assert (refund.out_refund_no, refund.refund, refund.total) == ("R20250102000000001", 50, 101)
    assert refund.success_time == datetime(2025, 1, 2, 10, 0, 5, tzinfo=BEIJING)


def test_kind_falls_back_to_the_event_type(keyring, wechat_key):
    resource = encrypt_resource(APIV3_KEY, json.dumps(refund_object(mchid=MCHID)).encode())
    del resource["original_type"]
    body = notify_body(resource, event_type="REFUND.ABNORMAL")
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    assert isinstance(parse(headers, body, keyring).resource, Refund)


def test_an_authentic_notify_of_an_unknown_kind_keeps_its_data(keyring, wechat_key):
    resource = encrypt_resource(
        APIV3_KEY, b'{"mchid":"1900000001","x":1}', original_type="complaint"
    )
    body = notify_body(resource, event_type="COMPLAINT.CREATE")
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    notify = parse(headers, body, keyring)
    assert notify.resource is None
    assert notify.data == {"mchid": MCHID, "x": 1}


# -- refusals: the signature comes first -------------------------------------------------------


def test_bad_signature_is_refused_before_decrypting(keyring, wechat_key):
    headers, body = paid_notify(wechat_key)
    forged = body.replace(b"EV-2025", b"EV-2026")
    with pytest.raises(WxPayV3SignatureError):
        parse(headers, forged, keyring)


def test_probe_is_refused(keyring, wechat_key):
    headers, body = paid_notify(wechat_key)
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    with pytest.raises(SignatureProbe):
        parse(headers, body, keyring)


def test_stale_notify_is_refused(keyring, wechat_key):
    headers, body = paid_notify(wechat_key)
    with pytest.raises(TimestampOutOfWindow):
        parse(headers, body, keyring, now=NOW + 300)


def test_unknown_serial_is_refused(keyring, wechat_key):
    headers, body = paid_notify(wechat_key)
    headers = signed_headers(
        wechat_key, "PUB_KEY_ID_0000000000000000000000000002", body, timestamp=NOW
    )
    with pytest.raises(UnknownSerial):
        parse(headers, body, keyring)


def test_unsigned_notify_is_refused(keyring, wechat_key):
    _, body = paid_notify(wechat_key)
    with pytest.raises(SignatureHeaderError):
        parse({"Content-Type": "application/json"}, body, keyring)


def test_oversized_body_is_refused_before_anything_else(keyring, wechat_key):
    body = b" " * (MAX_NOTIFY_BYTES + 1)
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    with pytest.raises(MalformedNotify, match="large"):
        parse(headers, body, keyring)


# -- refusals after the signature: malformed or undecryptable ---------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"resource": "x"}', b'{"event_type": "X"}', b"\xff\xfe"],
)
def test_signed_but_malformed_bodies_are_refused(keyring, wechat_key, body):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    with pytest.raises(MalformedNotify):
        parse(headers, body, keyring)


def test_wrong_apiv3_key_is_a_decrypt_error(keyring, wechat_key):
    headers, body = paid_notify(wechat_key)
    with pytest.raises(DecryptError):
        parse(headers, body, keyring, apiv3_key="Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4")


def test_tampered_resource_signed_again_is_a_decrypt_error(keyring, wechat_key):
    resource = encrypt_resource(APIV3_KEY, json.dumps(transaction()).encode())
    resource["associated_data"] = "refund"
    body = notify_body(resource)
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    with pytest.raises(DecryptError):
        parse(headers, body, keyring)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"not json",
        b'["a"]',
        json.dumps(transaction(amount={"total": 1.5})).encode(),
        json.dumps(transaction(amount={"total": "101"})).encode(),
        json.dumps(transaction(success_time="2025-01-01 08:00:30")).encode(),
        json.dumps(transaction(payer="openid")).encode(),
    ],
)
def test_decrypted_resource_not_the_documented_json_is_malformed(keyring, wechat_key, plaintext):
    body = notify_body(encrypt_resource(APIV3_KEY, plaintext))
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    with pytest.raises(MalformedNotify):
        parse(headers, body, keyring)


def test_malformed_create_time_is_refused(keyring, wechat_key):
    envelope = json.loads(notify_body(encrypt_resource(APIV3_KEY, b"{}")))
    envelope["create_time"] = "yesterday"
    body = json.dumps(envelope).encode()
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    with pytest.raises(MalformedNotify, match="create_time"):
        parse(headers, body, keyring)


@pytest.mark.parametrize(
    "changes", [{"mchid": "1900000002"}, {"appid": "wx0000000000000000"}, {"mchid": None}]
)
def test_notify_for_another_merchant_or_app_is_not_ours(keyring, wechat_key, changes):
    headers, body = paid_notify(wechat_key, **changes)
    with pytest.raises(WxPayV3SignatureError, match="another"):
        parse(headers, body, keyring)


def test_text_body_is_a_programming_error(keyring, wechat_key):
    headers, body = paid_notify(wechat_key)
    with pytest.raises(TypeError):
        parse(headers, body.decode(), keyring)
