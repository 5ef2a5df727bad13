# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import re

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.wx_v3 import (
    OFFICIAL_PAY,
    OFFICIAL_PRIVATE_KEY_PEM,
    OFFICIAL_REQUEST,
    parse_authorization,
    private_pem,
    wx_verify,
)
from wechat.pay_v3 import (
    authorization,
    load_private_key,
    nonce_str,
    pay_sign,
    request_message,
    rsa_sign,
)


@pytest.fixture(scope="module")
def official_key() -> rsa.RSAPrivateKey:
    return load_private_key(OFFICIAL_PRIVATE_KEY_PEM)


def test_official_request_signature(official_key):
    r = OFFICIAL_REQUEST
    message = request_message(r["method"], r["url"], r["timestamp"], r["nonce"], r["body"])
    assert rsa_sign(official_key, message) == r["signature"]


def test_official_request_authorization_header(official_key):
    r = OFFICIAL_REQUEST
    header = authorization(
        mchid="1900007291",
        serial_no="3775B6A45ACD588826D15E583A95F5DD2C1E4F7A",
        private_key=official_key,
        method="POST",
        url=r["url"],
        body=r["body"],
        timestamp=r["timestamp"],
        nonce=r["nonce"],
    )
    # §2.3: one space after the scheme, pairs joined by commas without spaces.
    assert header == (
        'WECHATPAY2-SHA256-RSA2048 mchid="1900007291",'
        f'nonce_str="{r["nonce"]}",signature="{r["signature"]}",'
        f'timestamp="{r["timestamp"]}",serial_no="3775B6A45ACD588826D15E583A95F5DD2C1E4F7A"'
    )


def test_official_pay_sign(official_key):
    p = OFFICIAL_PAY
    signature = pay_sign(
        official_key,
        app_id=p["app_id"],
        timestamp=p["timestamp"],
        nonce=p["nonce"],
        package=f"prepay_id={p['prepay_id']}",
    )
    assert signature == p["pay_sign"]


def test_request_message_has_five_lines_each_ending_in_newline():
    message = request_message("get", "/v3/x?mchid=1", 1735689660, "N1", b"")
    # §2.1: an empty GET body keeps its line: the message ends "nonce\n\n".
    assert message == b"GET\n/v3/x?mchid=1\n1735689660\nN1\n\n"
    assert request_message("POST", "/v3/y", "1", "N", b'{"a":1}') == b'POST\n/v3/y\n1\nN\n{"a":1}\n'


def test_signature_is_pkcs1v15_sha256_and_deterministic(merchant_key):
    message = request_message("POST", "/v3/pay/transactions/jsapi", 1, "N", "体".encode())
    first = rsa_sign(merchant_key, message)
    assert first == rsa_sign(merchant_key, message)
    assert wx_verify(merchant_key.public_key(), message, first)
    assert not wx_verify(merchant_key.public_key(), message + b"x", first)


def test_authorization_verifies_independently(merchant_key):
    header = authorization(
        mchid="1900000001",
        serial_no="ABC123",
        private_key=merchant_key,
        method="GET",
        url="/v3/certificates",
        body=b"",
        timestamp=1735689600,
        nonce="5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    )
    fields = parse_authorization(header)
    assert fields.keys() == {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    message = b"GET\n/v3/certificates\n1735689600\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\n\n"
    assert wx_verify(merchant_key.public_key(), message, fields["signature"])


@pytest.mark.parametrize(
    "field, value",
    [("mchid", '19",x="1'), ("serial_no", "AB CD"), ("nonce", "a,b"), ("nonce", "")],
)
def test_authorization_refuses_values_that_would_change_the_header(merchant_key, field, value):
    args = {"mchid": "1900000001", "serial_no": "AB", "nonce": "N"}
    args[field] = value
    with pytest.raises(ValueError, match=field):
        authorization(
            private_key=merchant_key,
            method="GET",
            url="/v3/x",
            body=b"",
            timestamp=1,
            **args,
        )


def test_nonce_str_is_32_fresh_characters():
    nonces = {nonce_str() for _ in range(50)}
    assert len(nonces) == 50
    assert all(re.fullmatch(r"[0-9A-F]{32}", n) for n in nonces)


def test_load_private_key_accepts_pkcs8_pem_as_text_or_bytes(merchant_key):
    pem = private_pem(merchant_key)
    for given in (pem, pem.encode()):
        loaded = load_private_key(given)
        assert loaded.private_numbers() == merchant_key.private_numbers()


@pytest.mark.parametrize(
    "pem", ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END", "é"]
)
def test_load_private_key_refuses_garbage_without_echoing_it(pem):
    with pytest.raises(ValueError) as caught:
        load_private_key(pem)
    assert "AAAA" not in str(caught.value)


def test_load_private_key_refuses_short_rsa_keys():
    # The weak key is the point of the test.
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(ValueError, match="2048"):
        load_private_key(private_pem(short))
