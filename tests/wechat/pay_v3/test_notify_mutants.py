# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.
"""Rules of notify.py a mutation run found unpinned: the reason a malformed notify is refused
with, which the shop keeps on its ledger row (§7.4)."""

import json

import pytest

from tests.wx_v3 import (
    APIV3_KEY,
    APPID,
    MCHID,
    NOW,
    PUBLIC_KEY_ID,
    encrypt_resource,
    notify_body,
    refund_object,
    signed_headers,
    transaction,
)
from wechat.pay_v3 import (
    MAX_NOTIFY_BYTES,
    MalformedNotify,
    Refund,
    WxPayV3SignatureError,
    parse_notify,
)


def refused_because(keyring, wechat_key, body: bytes) -> str:
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    with pytest.raises(MalformedNotify) as caught:
        parse_notify(
            headers, body, keyring=keyring, apiv3_key=APIV3_KEY, now=NOW, mchid=MCHID, appid=APPID
        )
    return str(caught.value)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"not json", "notify body is not JSON"),
        (b"\xff\xfe", "notify body is not JSON"),
        (b"[1, 2]", "notify body is not a JSON object"),
    ],
)
def test_a_body_that_is_no_json_object_says_so(keyring, wechat_key, body, reason):
    assert refused_because(keyring, wechat_key, body) == reason


def test_a_resource_that_decrypts_to_no_json_says_so(keyring, wechat_key):
    body = notify_body(encrypt_resource(APIV3_KEY, b"not json"))
    assert refused_because(keyring, wechat_key, body) == "decrypted resource is not JSON"


@pytest.mark.parametrize("name", ["id", "event_type", "summary"])
def test_an_envelope_text_that_is_not_a_string_is_named(keyring, wechat_key, name):
    paid = json.dumps(transaction()).encode()
    envelope = json.loads(notify_body(encrypt_resource(APIV3_KEY, paid)))
    envelope[name] = 7
    body = json.dumps(envelope).encode()
    assert refused_because(keyring, wechat_key, body) == f"notify {name} is not a string"


def test_a_body_of_exactly_the_limit_is_read_one_byte_more_is_not(keyring, wechat_key):
    padded = notify_body(encrypt_resource(APIV3_KEY, json.dumps(transaction()).encode()))
    body = padded + b" " * (MAX_NOTIFY_BYTES - len(padded))
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    notify = parse_notify(headers, body, keyring=keyring, apiv3_key=APIV3_KEY, now=NOW)
    assert notify.resource.transaction_id == "4200002501202501018123456789"
    assert refused_because(keyring, wechat_key, body + b" ") == "notify body is too large"


@pytest.mark.parametrize("resource", [None, "x", [1]])
def test_a_body_without_a_resource_object_says_so(keyring, wechat_key, resource):
    envelope = json.loads(notify_body(encrypt_resource(APIV3_KEY, b"{}")))
    envelope["resource"] = resource
    body = json.dumps(envelope).encode()
    assert refused_because(keyring, wechat_key, body) == "notify has no resource object"


def test_a_bad_create_time_says_so(keyring, wechat_key):
    envelope = json.loads(notify_body(encrypt_resource(APIV3_KEY, b"{}")))
    envelope["create_time"] = "yesterday"
    body = json.dumps(envelope).encode()
    reason = refused_because(keyring, wechat_key, body)
    assert reason == "notify create_time is not an RFC 3339 time"


def test_a_resource_not_of_the_documented_shape_says_which_kind_and_why(keyring, wechat_key):
    paid = json.dumps(transaction(amount={"total": "101"})).encode()
    body = notify_body(encrypt_resource(APIV3_KEY, paid))
    reason = refused_because(keyring, wechat_key, body)
    assert reason == "decrypted transaction: total is not an amount in fen"


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"mchid": "1900000002"}, "notify is for another mchid"),
        ({"appid": "wx0000000000000000"}, "notify is for another appid"),
    ],
)
def test_a_notify_for_another_merchant_or_app_says_which(keyring, wechat_key, changes, reason):
    body = notify_body(encrypt_resource(APIV3_KEY, json.dumps(transaction(**changes)).encode()))
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    with pytest.raises(WxPayV3SignatureError) as caught:
        parse_notify(
            headers, body, keyring=keyring, apiv3_key=APIV3_KEY, now=NOW, mchid=MCHID, appid=APPID
        )
    assert str(caught.value) == reason


def test_text_instead_of_the_raw_body_says_why(keyring):
    with pytest.raises(TypeError) as caught:
        parse_notify({}, "{}", keyring=keyring, apiv3_key=APIV3_KEY)
    assert str(caught.value) == "parse the raw body bytes, never re-encoded JSON (§3.2)"


def test_a_notify_without_create_time_has_none(keyring, wechat_key):
    envelope = json.loads(
        notify_body(encrypt_resource(APIV3_KEY, json.dumps(transaction()).encode()))
    )
    del envelope["create_time"]
    body = json.dumps(envelope).encode()
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    notify = parse_notify(headers, body, keyring=keyring, apiv3_key=APIV3_KEY, now=NOW)
    assert notify.create_time is None
    assert notify.resource.out_trade_no == "T20250101000000001"


@pytest.mark.parametrize(
    "event_type, kind", [("REFUND.SUCCESS.EXTRA", Refund), ("REFUNDS.SUCCESS", type(None))]
)
def test_without_original_type_the_kind_is_the_event_types_first_part(
    keyring, wechat_key, event_type, kind
):
    resource = encrypt_resource(APIV3_KEY, json.dumps(refund_object(mchid=MCHID)).encode())
    del resource["original_type"]
    body = notify_body(resource, event_type=event_type)
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, body, timestamp=NOW)
    notify = parse_notify(headers, body, keyring=keyring, apiv3_key=APIV3_KEY, now=NOW)
    assert type(notify.resource) is kind
