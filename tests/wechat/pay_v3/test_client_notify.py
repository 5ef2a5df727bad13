# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import dataclasses
import json
import logging

import pytest

from tests.wx_v3 import (
    APIV3_KEY,
    NOW,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    encrypt_resource,
    notify_body,
    signed_headers,
    transaction,
)
from wechat.pay_v3 import (
    DecryptError,
    SignatureProbe,
    TimestampOutOfWindow,
    Transaction,
    UnknownSerial,
    WxPayV3Client,
    WxPayV3SignatureError,
)


def paid(key, serial=PUBLIC_KEY_ID, **changes):
    body = notify_body(encrypt_resource(APIV3_KEY, json.dumps(transaction(**changes)).encode()))
    return signed_headers(key, serial, body, timestamp=NOW), body


def test_client_parses_a_notify_with_its_keyring_key_and_clock(client, wechat_key, platform):
    for key, serial in ((wechat_key, PUBLIC_KEY_ID), (platform.key, PLATFORM_SERIAL)):
        headers, body = paid(key, serial)
        notify = client.parse_notify(headers, body)
        assert isinstance(notify.resource, Transaction)
        assert notify.resource.total == 101


@pytest.mark.parametrize("offset, accepted", [(299, True), (300, False), (-300, False)])
def test_client_window_follows_the_injected_clock(config, wechat_key, offset, accepted):
    client = WxPayV3Client(dataclasses.replace(config, clock=lambda: NOW + offset))
    headers, body = paid(wechat_key)
    if accepted:
        assert client.parse_notify(headers, body)
    else:
        with pytest.raises(TimestampOutOfWindow):
            client.parse_notify(headers, body)


def test_client_checks_the_notify_is_for_its_merchant_and_app(client, wechat_key):
    for changes in ({"mchid": "1900000002"}, {"appid": "wx0000000000000000"}):
        headers, body = paid(wechat_key, **changes)
        with pytest.raises(WxPayV3SignatureError, match="another"):
            client.parse_notify(headers, body)


def test_client_refuses_with_a_stale_keyring(client, wechat_key):
    client.keyring = client.keyring.with_certificates([])
    headers, body = paid(wechat_key, PLATFORM_SERIAL)
    with pytest.raises(UnknownSerial):
        client.parse_notify(headers, body)


def test_client_decrypts_with_its_apiv3_key(config, wechat_key):
    other = WxPayV3Client(dataclasses.replace(config, apiv3_key="Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4"))
    headers, body = paid(wechat_key)
    with pytest.raises(DecryptError):
        other.parse_notify(headers, body)


def test_each_notify_logs_one_line_without_its_content(client, wechat_key, caplog):
    caplog.set_level(logging.DEBUG, logger="wechat.pay_v3")
    headers, body = paid(wechat_key)
    client.parse_notify(headers, body)
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/AAAA"
    with pytest.raises(SignatureProbe):
        client.parse_notify(headers, body)
    records = [r for r in caplog.records if r.name == "wechat.pay_v3"]
    assert [r.getMessage() for r in records] == [
        "wxpay_v3 notify event_type=TRANSACTION.SUCCESS outcome=ok",
        "wxpay_v3 notify event_type=- outcome=SignatureProbe",
    ]
    assert all(r.levelno == logging.INFO for r in records)
    for secret in (APIV3_KEY, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "4200002501202501018123456789"):
        assert secret not in caplog.text
