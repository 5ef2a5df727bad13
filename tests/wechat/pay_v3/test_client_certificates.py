# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import dataclasses
from datetime import datetime

import pytest
import responses

from tests.wx_v3 import (
    APIV3_KEY,
    BASE,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    encrypt_resource,
    error_answer,
    new_rsa_key,
    pem_of,
    request_signature_ok,
    self_signed_certificate,
    signed_answer,
    utc,
)
from wechat.pay_v3 import (
    BEIJING,
    DecryptError,
    InvalidRequest,
    KeyRing,
    PlatformCertificate,
    UnknownSerial,
    WxPayV3Client,
    WxPayV3SignatureError,
    WxPayV3Unavailable,
)

CERTIFICATES = f"{BASE}/v3/certificates"
NEW_SERIAL = "7132D72A03E93CDDF8C03BBD1F37EEDF1A58F0E5"


@pytest.fixture(scope="module")
def new_platform():
    """The certificate WeChat rotates to: a key and serial the client does not hold yet."""
    key = new_rsa_key()
    cert = self_signed_certificate(key, int(NEW_SERIAL, 16), utc(2024, 12, 31), utc(2029, 12, 31))
    return key, cert


def entry(cert, serial: str, apiv3_key: str = APIV3_KEY) -> dict:
    return {
        "serial_no": serial,
        "effective_time": "2025-01-01T00:00:00+08:00",
        "expire_time": "2029-12-31T08:00:00+08:00",
        "encrypt_certificate": encrypt_resource(
            apiv3_key,
            pem_of(cert).encode(),
            associated_data="certificate",
            nonce="4de73afd28b6",
            original_type="",
        ),
    }


def test_download_decrypts_the_certificates(client, mocked, merchant_key, platform, new_platform):
    _key, cert = new_platform

    def wechat(request):
        request_signature_ok(request, merchant_key.public_key())
        assert request.path_url == "/v3/certificates"
        data = {"data": [entry(platform.certificate, PLATFORM_SERIAL), entry(cert, NEW_SERIAL)]}
        return signed_answer(platform.key, data, serial=PLATFORM_SERIAL)

    mocked.add_callback(responses.GET, CERTIFICATES, callback=wechat)
    certs = client.download_certificates()
    assert [c.serial_no for c in certs] == [PLATFORM_SERIAL, NEW_SERIAL]
    fresh = certs[1]
    assert fresh.certificate == cert
    assert fresh.effective_time == datetime(2025, 1, 1, tzinfo=BEIJING)
    assert fresh.expire_time == datetime(2029, 12, 31, 8, tzinfo=BEIJING)
    assert fresh.pem() == pem_of(cert)


def test_an_answer_signed_by_a_certificate_it_brings_verifies(client, mocked, new_platform):
    """§3.4: the first download cannot be vouched for by a certificate not held yet."""
    key, cert = new_platform
    data = {"data": [entry(cert, NEW_SERIAL)]}
    mocked.add_callback(
        responses.GET, CERTIFICATES, callback=lambda r: signed_answer(key, data, serial=NEW_SERIAL)
    )
    [fresh] = client.download_certificates()
    assert fresh.serial_no == NEW_SERIAL


def test_the_keyring_rebuilt_from_a_download_verifies_the_new_serial(client, mocked, new_platform):
    key, cert = new_platform
    data = {"data": [entry(cert, NEW_SERIAL)]}
    mocked.add_callback(
        responses.GET, CERTIFICATES, callback=lambda r: signed_answer(key, data, serial=NEW_SERIAL)
    )
    jsapi = f"{BASE}/v3/pay/transactions/jsapi"
    prepaid = signed_answer(key, {"prepay_id": "wx1"}, serial=NEW_SERIAL)
    mocked.add_callback(responses.POST, jsapi, callback=lambda r: prepaid)
    order = {
        "out_trade_no": "T20250101000000001",
        "description": "d",
        "total": 1,
        "openid": "o",
        "notify_url": "https://shop.example.com/n",
    }
    with pytest.raises(UnknownSerial):
        client.jsapi_prepay(**order)
    client.keyring = client.keyring.with_certificates(client.download_certificates())
    assert client.keyring.serials == {PUBLIC_KEY_ID, NEW_SERIAL}
    assert client.jsapi_prepay(**order).prepay_id == "wx1"


def test_an_answer_signed_by_nobody_it_knows_is_refused(client, mocked, new_platform):
    _key, cert = new_platform
    data = {"data": [entry(cert, NEW_SERIAL)]}
    stranger = new_rsa_key()
    other = "0A0B0C"
    mocked.add_callback(
        responses.GET, CERTIFICATES, callback=lambda r: signed_answer(stranger, data, serial=other)
    )
    with pytest.raises(UnknownSerial):
        client.download_certificates()


def test_a_certificate_encrypted_with_another_apiv3_key_is_refused(client, mocked, new_platform):
    key, cert = new_platform
    data = {"data": [entry(cert, NEW_SERIAL, apiv3_key="Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4")]}
    mocked.add_callback(
        responses.GET, CERTIFICATES, callback=lambda r: signed_answer(key, data, serial=NEW_SERIAL)
    )
    with pytest.raises(DecryptError):
        client.download_certificates()


def test_a_certificate_under_another_serial_is_refused(client, mocked, platform, new_platform):
    _key, cert = new_platform
    data = {"data": [entry(cert, PLATFORM_SERIAL)]}  # claims the old serial
    mocked.add_callback(
        responses.GET,
        CERTIFICATES,
        callback=lambda r: signed_answer(platform.key, data, serial=PLATFORM_SERIAL),
    )
    with pytest.raises(WxPayV3SignatureError, match="another serial"):
        client.download_certificates()


@pytest.mark.parametrize(
    "data",
    [{}, {"data": []}, {"data": "x"}, {"data": ["x"]}, {"data": [{"serial_no": "PUB_KEY_ID_1"}]}],
)
def test_malformed_certificate_answers_are_unavailable(client, mocked, platform, data):
    mocked.add_callback(
        responses.GET,
        CERTIFICATES,
        callback=lambda r: signed_answer(platform.key, data, serial=PLATFORM_SERIAL),
    )
    with pytest.raises(WxPayV3Unavailable):
        client.download_certificates()


def test_a_non_certificate_plaintext_is_unavailable(client, mocked, platform):
    bad = entry(platform.certificate, PLATFORM_SERIAL)
    bad["encrypt_certificate"] = encrypt_resource(APIV3_KEY, b"not a pem", associated_data="c")
    data = {"data": [bad]}
    mocked.add_callback(
        responses.GET,
        CERTIFICATES,
        callback=lambda r: signed_answer(platform.key, data, serial=PLATFORM_SERIAL),
    )
    with pytest.raises(WxPayV3Unavailable, match="PEM"):
        client.download_certificates()


def test_public_key_merchants_get_wechats_error(client, mocked):
    """§3.3: new merchants have no platform certificates."""
    mocked.add_callback(
        responses.GET, CERTIFICATES, callback=lambda r: error_answer(400, "INVALID_REQUEST")
    )
    with pytest.raises(InvalidRequest):
        client.download_certificates()


def test_a_public_key_only_ring_can_take_certificates(wechat_key, platform):
    ring = KeyRing(public_key=wechat_key.public_key(), public_key_id=PUBLIC_KEY_ID)
    both = ring.with_certificates([PlatformCertificate.from_x509(platform.certificate)])
    assert both.serials == {PUBLIC_KEY_ID, PLATFORM_SERIAL}


def test_certificate_mode_starts_with_no_key_and_bootstraps_from_the_first_download(
    config, mocked, platform
):
    """A merchant without the WeChat Pay public key holds no key before the first download:
    every answer is refused as of an unknown serial until then; the download itself is
    authenticated by the APIv3 key's GCM tags and the signature of a certificate it brings."""
    client = WxPayV3Client(dataclasses.replace(config, keyring=None))
    with pytest.raises(UnknownSerial):
        client.parse_notify({}, b"{}")

    mocked.add_callback(
        responses.GET,
        CERTIFICATES,
        callback=lambda request: signed_answer(
            platform.key,
            {"data": [entry(platform.certificate, PLATFORM_SERIAL)]},
            serial=PLATFORM_SERIAL,
        ),
    )
    certs = client.download_certificates()
    assert [c.serial_no for c in certs] == [PLATFORM_SERIAL]
    client.keyring = KeyRing(certificates=certs)
    assert client.keyring.serials == {PLATFORM_SERIAL}


def test_certificate_mode_refuses_a_first_download_signed_by_no_certificate_it_brings(
    config, mocked, new_platform, platform
):
    key, _cert = new_platform
    client = WxPayV3Client(dataclasses.replace(config, keyring=None))
    mocked.add_callback(
        responses.GET,
        CERTIFICATES,
        callback=lambda request: signed_answer(
            key, {"data": [entry(platform.certificate, PLATFORM_SERIAL)]}, serial=NEW_SERIAL
        ),
    )
    with pytest.raises(WxPayV3SignatureError):
        client.download_certificates()
