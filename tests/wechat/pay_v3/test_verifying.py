# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import json

import pytest
from cryptography.hazmat.primitives import serialization
from requests.structures import CaseInsensitiveDict

from tests.wx_v3 import (
    NOW,
    OFFICIAL_ANSWER,
    OFFICIAL_WECHATPAY_PUBLIC_KEY_PEM,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    new_rsa_key,
    pem_of,
    self_signed_certificate,
    signed_headers,
    utc,
)
from wechat.pay_v3 import (
    KeyRing,
    PlatformCertificate,
    SignatureHeaderError,
    SignatureProbe,
    TimestampOutOfWindow,
    UnknownSerial,
    WxPayV3SignatureError,
    verify_signature,
)

BODY = b'{"prepay_id":"wx01080000123456789abcdef0123456700"}'


@pytest.fixture
def pubkey_ring(wechat_key) -> KeyRing:
    return KeyRing(public_key=wechat_key.public_key(), public_key_id=PUBLIC_KEY_ID)


@pytest.fixture
def cert_ring(platform) -> KeyRing:
    return KeyRing(certificates=[platform.certificate])


# -- the official vector (§13.3) ---------------------------------------------------------------


def test_official_answer_verifies_with_the_published_public_key():
    ring = KeyRing.from_pem(
        public_key_pem=OFFICIAL_WECHATPAY_PUBLIC_KEY_PEM, public_key_id=PUBLIC_KEY_ID
    )
    a = OFFICIAL_ANSWER
    headers = {
        "Wechatpay-Timestamp": a["timestamp"],
        "Wechatpay-Nonce": a["nonce"],
        "Wechatpay-Signature": a["signature"],
        "Wechatpay-Serial": PUBLIC_KEY_ID,
    }
    now = int(a["timestamp"]) + 1
    assert verify_signature(headers, a["body"], ring, now=now) == PUBLIC_KEY_ID
    with pytest.raises(WxPayV3SignatureError):
        verify_signature(headers, a["body"].replace(b"JyC9", b"JyC8"), ring, now=now)


# -- choosing the key (§3.3-§3.5) --------------------------------------------------------------


def test_public_key_mode(pubkey_ring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    assert verify_signature(headers, BODY, pubkey_ring, now=NOW) == PUBLIC_KEY_ID


def test_platform_certificate_mode(cert_ring, platform):
    headers = signed_headers(platform.key, PLATFORM_SERIAL, BODY, timestamp=NOW)
    assert verify_signature(headers, BODY, cert_ring, now=NOW) == PLATFORM_SERIAL


def test_both_modes_at_once_during_a_switch(keyring, wechat_key, platform):
    by_key = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    by_cert = signed_headers(platform.key, PLATFORM_SERIAL, BODY, timestamp=NOW)
    assert verify_signature(by_key, BODY, keyring, now=NOW) == PUBLIC_KEY_ID
    assert verify_signature(by_cert, BODY, keyring, now=NOW) == PLATFORM_SERIAL


def test_the_key_is_the_one_of_the_serial_not_any_key_held(keyring, wechat_key):
    # Signed by the public key's pair but claiming the certificate's serial.
    headers = signed_headers(wechat_key, PLATFORM_SERIAL, BODY, timestamp=NOW)
    with pytest.raises(WxPayV3SignatureError) as caught:
        verify_signature(headers, BODY, keyring, now=NOW)
    assert type(caught.value) is WxPayV3SignatureError


def test_certificate_mode_only_refuses_the_public_key_serial(cert_ring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    with pytest.raises(UnknownSerial) as caught:
        verify_signature(headers, BODY, cert_ring, now=NOW)
    assert caught.value.serial == PUBLIC_KEY_ID
    assert "refresh" in str(caught.value)


def test_unknown_serial_tells_the_caller_to_refresh(keyring, platform):
    headers = signed_headers(
        platform.key, "7132D72A03E93CDDF8C03BBD1F37EEDF1A58F0E5", BODY, timestamp=NOW
    )
    with pytest.raises(UnknownSerial, match="refresh the platform certificates"):
        verify_signature(headers, BODY, keyring, now=NOW)


@pytest.mark.parametrize(
    "serial", [PLATFORM_SERIAL.lower(), "00" + PLATFORM_SERIAL, "0" + PLATFORM_SERIAL.lower()]
)
def test_certificate_serials_match_whatever_the_case_and_leading_zeros(cert_ring, platform, serial):
    headers = signed_headers(platform.key, serial, BODY, timestamp=NOW)
    assert verify_signature(headers, BODY, cert_ring, now=NOW) == serial


@pytest.mark.parametrize("serial", [PUBLIC_KEY_ID.lower(), PUBLIC_KEY_ID + "0", "PUB_KEY_ID_1"])
def test_public_key_id_is_compared_exactly_never_as_a_number(pubkey_ring, wechat_key, serial):
    headers = signed_headers(wechat_key, serial, BODY, timestamp=NOW)
    with pytest.raises(UnknownSerial):
        verify_signature(headers, BODY, pubkey_ring, now=NOW)


def test_an_expired_certificate_no_longer_verifies(wechat_key):
    key = new_rsa_key()
    old = self_signed_certificate(key, 0xABCDEF, utc(2020, 1, 1), utc(2024, 12, 31))
    ring = KeyRing(certificates=[old])
    headers = signed_headers(key, "ABCDEF", BODY, timestamp=NOW)
    with pytest.raises(UnknownSerial):
        verify_signature(headers, BODY, ring, now=NOW)
    # The same certificate verifies while it was valid.
    earlier = int(utc(2024, 6, 1).timestamp())
    headers = signed_headers(key, "ABCDEF", BODY, timestamp=earlier)
    assert verify_signature(headers, BODY, ring, now=earlier) == "ABCDEF"


# -- the raw body (§3.2) -----------------------------------------------------------------------


def test_only_the_raw_bytes_verify_not_re_serialized_json(keyring, wechat_key):
    raw = '{"summary": "支付成功", "amount": {"total": 1}}'.encode()
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, raw, timestamp=NOW)
    assert verify_signature(headers, raw, keyring, now=NOW)
    reserialized = json.dumps(json.loads(raw)).encode()
    with pytest.raises(WxPayV3SignatureError):
        verify_signature(headers, reserialized, keyring, now=NOW)


def test_empty_body_of_a_204_verifies(keyring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, b"", timestamp=NOW)
    assert verify_signature(headers, b"", keyring, now=NOW)


def test_text_instead_of_bytes_is_a_programming_error(keyring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    with pytest.raises(TypeError, match="raw body"):
        verify_signature(headers, BODY.decode(), keyring, now=NOW)


def test_a_tampered_nonce_or_timestamp_header_fails(keyring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    for name, value in (("Wechatpay-Nonce", "other"), ("Wechatpay-Timestamp", str(NOW + 1))):
        with pytest.raises(WxPayV3SignatureError):
            verify_signature({**headers, name: value}, BODY, keyring, now=NOW)


# -- header names (§3.1) -----------------------------------------------------------------------


def test_header_names_are_case_insensitive(keyring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    lower = {k.lower(): v for k, v in headers.items()}
    upper = {k.upper(): v for k, v in headers.items()}
    for given in (lower, upper, CaseInsensitiveDict(headers)):
        assert verify_signature(given, BODY, keyring, now=NOW) == PUBLIC_KEY_ID


def test_a_header_given_twice_with_different_values_is_refused(keyring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    headers["wechatpay-serial"] = PLATFORM_SERIAL
    with pytest.raises(SignatureHeaderError, match="twice"):
        verify_signature(headers, BODY, keyring, now=NOW)


# -- the 5-minute window (§3.6) ----------------------------------------------------------------


@pytest.mark.parametrize("offset", [-299, -1, 0, 1, 299])
def test_timestamps_less_than_five_minutes_off_are_accepted(keyring, wechat_key, offset):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    assert verify_signature(headers, BODY, keyring, now=NOW + offset)


@pytest.mark.parametrize("offset", [300, 301, 86_400])
def test_stale_timestamps_are_refused(keyring, wechat_key, offset):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    with pytest.raises(TimestampOutOfWindow, match="old"):
        verify_signature(headers, BODY, keyring, now=NOW + offset)


@pytest.mark.parametrize("offset", [300, 301, 86_400])
def test_future_timestamps_are_refused(keyring, wechat_key, offset):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW + offset)
    with pytest.raises(TimestampOutOfWindow, match="future"):
        verify_signature(headers, BODY, keyring, now=NOW)


def test_the_window_is_checked_against_a_fractional_clock(keyring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    assert verify_signature(headers, BODY, keyring, now=NOW + 299.9)
    with pytest.raises(TimestampOutOfWindow):
        verify_signature(headers, BODY, keyring, now=NOW + 300.0)


# -- probes (§3.7) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "probe",
    [
        "WECHATPAY/SIGNTEST/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "WECHATPAY/SIGNTEST/",
        "WECHATPAY/SIGNTEST/é",
    ],
)
def test_signature_probes_are_refused_cleanly(keyring, wechat_key, probe):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    headers["Wechatpay-Signature"] = probe
    with pytest.raises(SignatureProbe):
        verify_signature(headers, BODY, keyring, now=NOW)


def test_probes_are_refused_even_with_a_stale_timestamp_or_unknown_serial(keyring):
    headers = {
        "Wechatpay-Timestamp": "1",
        "Wechatpay-Nonce": "n",
        "Wechatpay-Serial": "FFFF",
        "Wechatpay-Signature": "WECHATPAY/SIGNTEST/x",
    }
    with pytest.raises(SignatureProbe):
        verify_signature(headers, BODY, keyring, now=NOW)


# -- missing and garbled headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
)
def test_each_missing_header_is_refused(keyring, wechat_key, name):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    del headers[name]
    with pytest.raises(SignatureHeaderError, match=name.lower()):
        verify_signature(headers, BODY, keyring, now=NOW)
    with pytest.raises(SignatureHeaderError, match=name.lower()):
        verify_signature({**headers, name: ""}, BODY, keyring, now=NOW)


def test_no_headers_at_all_is_refused(keyring):
    with pytest.raises(SignatureHeaderError):
        verify_signature({}, BODY, keyring, now=NOW)


@pytest.mark.parametrize(
    "name, value",
    [
        ("Wechatpay-Timestamp", "17356896OO"),
        ("Wechatpay-Timestamp", "-1735689600"),
        ("Wechatpay-Timestamp", "1735689600.5"),
        ("Wechatpay-Timestamp", "9" * 5000),
        ("Wechatpay-Timestamp", "\uff11\uff17\uff13\uff15\uff16\uff18\uff19\uff16\uff10\uff10"),
        ("Wechatpay-Nonce", "with space"),
        ("Wechatpay-Nonce", "é"),
        ("Wechatpay-Nonce", "n" * 500),
        ("Wechatpay-Serial", "PUB KEY"),
        ("Wechatpay-Signature", "not base64 !"),
        ("Wechatpay-Signature", "QUJD"[:3]),
        ("Wechatpay-Signature", "A" * 10_000),
        ("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA4096"),
        ("Wechatpay-Timestamp", 1735689600),
    ],
)
def test_garbled_headers_are_refused(keyring, wechat_key, name, value):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    headers[name] = value
    with pytest.raises(SignatureHeaderError):
        verify_signature(headers, BODY, keyring, now=NOW)


def test_a_valid_base64_signature_of_the_wrong_size_fails_as_a_bad_signature(keyring):
    headers = {
        "Wechatpay-Timestamp": str(NOW),
        "Wechatpay-Nonce": "n",
        "Wechatpay-Serial": PUBLIC_KEY_ID,
        "Wechatpay-Signature": "QUJD",
    }
    with pytest.raises(WxPayV3SignatureError) as caught:
        verify_signature(headers, BODY, keyring, now=NOW)
    assert type(caught.value) is WxPayV3SignatureError


def test_other_headers_are_ignored(keyring, wechat_key):
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    headers.update({"Content-Type": "application/json", "X-Odd": "é", "Wechatpay-Other": "1"})
    assert verify_signature(headers, BODY, keyring, now=NOW)


def test_the_default_clock_is_the_real_one(keyring, wechat_key):
    # Signed at a fixed 2025 moment: the real clock is long past it.
    headers = signed_headers(wechat_key, PUBLIC_KEY_ID, BODY, timestamp=NOW)
    with pytest.raises(TimestampOutOfWindow):
        verify_signature(headers, BODY, keyring)


# -- KeyRing -----------------------------------------------------------------------------------


def test_keyring_from_pem_holds_both_modes(wechat_key, platform):
    pub_pem = wechat_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ring = KeyRing.from_pem(
        public_key_pem=pub_pem,
        public_key_id=PUBLIC_KEY_ID,
        certificate_pems=[pem_of(platform.certificate)],
    )
    assert ring.serials == {PUBLIC_KEY_ID, PLATFORM_SERIAL}
    cert_headers = signed_headers(platform.key, PLATFORM_SERIAL, BODY, timestamp=NOW)
    assert verify_signature(cert_headers, BODY, ring, now=NOW) == PLATFORM_SERIAL


def test_with_certificates_keeps_the_public_key_and_replaces_certificates(keyring, wechat_key):
    key = new_rsa_key()
    fresh = PlatformCertificate.from_x509(
        self_signed_certificate(key, 0x0123ABCD, utc(2024, 1, 1), utc(2029, 1, 1))
    )
    ring = keyring.with_certificates([fresh])
    assert ring.serials == {PUBLIC_KEY_ID, "123ABCD"}
    assert keyring.serials == {PUBLIC_KEY_ID, PLATFORM_SERIAL}  # unchanged: immutable
    headers = signed_headers(key, "0123ABCD", BODY, timestamp=NOW)
    assert verify_signature(headers, BODY, ring, now=NOW) == "0123ABCD"


def test_platform_certificate_reads_serial_and_times_from_the_certificate(platform):
    cert = PlatformCertificate.from_pem(pem_of(platform.certificate))
    assert cert.serial_no == PLATFORM_SERIAL
    assert cert.effective_time == utc(2024, 12, 1)
    assert cert.expire_time == utc(2030, 1, 1)
    assert cert.pem() == pem_of(platform.certificate)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "needs"),
        ({"public_key_id": PUBLIC_KEY_ID}, "together"),
        ({"key": True}, "together"),
        ({"key": True, "public_key_id": "3775B6A45ACD588826D15E583A95F5DD2C1E4F7A"}, "PUB_KEY_ID"),
        ({"key": True, "public_key_id": "PUB_KEY_ID_1 2"}, "PUB_KEY_ID"),
    ],
)
def test_keyring_refuses_incomplete_configurations(wechat_key, kwargs, match):
    if kwargs.pop("key", False):
        kwargs["public_key"] = wechat_key.public_key()
    with pytest.raises(ValueError, match=match):
        KeyRing(**kwargs)


def test_keyring_refuses_non_pem_input():
    with pytest.raises(ValueError, match="public key"):
        KeyRing.from_pem(public_key_pem="garbage", public_key_id=PUBLIC_KEY_ID)
    with pytest.raises(ValueError, match="certificate"):
        KeyRing.from_pem(certificate_pems=["garbage"])
