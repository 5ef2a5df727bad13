"""v3 key modes (§3.3-§3.5): the WeChat Pay public key, platform certificates from
``GET /v3/certificates``, or both while a merchant switches over; ``/sim/v3/keys``."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import base64
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.wx_v3 import new_rsa_key, self_signed_certificate
from tests.wxsim.client import PAYER, V3_APIV3_KEY, answer_signed_by, new_out_trade_no
from wechat.pay_v3 import KeyRing, ResourceNotExists, UnknownSerial, WxPayV3Client


def switch(wx, mode: str) -> dict:
    response = wx.control("POST", "/sim/v3/keys", {"mode": mode})
    assert response.status_code == 200, response.text
    return response.json()


def client_with(v3, keyring: KeyRing) -> WxPayV3Client:
    return WxPayV3Client(dataclasses.replace(v3.config, keyring=keyring))


def bootstrap_ring() -> KeyRing:
    """A shop of the certificate era before its first download: a ring must hold a key, and
    this one is nobody's, so only the certificates downloaded can verify (§3.4)."""
    now = datetime.now(UTC)
    cert = self_signed_certificate(new_rsa_key(), 1, now - timedelta(days=1),
                                   now + timedelta(days=1))
    return KeyRing(certificates=[cert])


def prepay(client, url: str) -> str:
    return client.jsapi_prepay(out_trade_no=new_out_trade_no(), description="测试", total=101,
                               openid=PAYER, notify_url=url).prepay_id


def test_public_key_mode_has_no_platform_certificate(v3):
    with pytest.raises(ResourceNotExists) as raised:
        v3.download_certificates()
    assert raised.value.status == 404 and raised.value.message.startswith("无可用的平台证书")


def test_certificate_mode_serves_the_encrypted_certificate(v3, v3_by_hand, wx, sim):
    switch(wx, "certificate")

    response = v3_by_hand.call("GET", "/v3/certificates")

    assert response.status_code == 200
    [entry] = response.json()["data"]
    assert entry["serial_no"] == sim.v3.platform_serial and len(entry["serial_no"]) == 40
    assert entry["effective_time"].endswith("+08:00") and entry["expire_time"].endswith("+08:00")
    sealed = entry["encrypt_certificate"]
    assert sealed["algorithm"] == "AEAD_AES_256_GCM" and sealed["associated_data"] == "certificate"
    pem = AESGCM(V3_APIV3_KEY.encode()).decrypt(
        sealed["nonce"].encode(), base64.b64decode(sealed["ciphertext"]), b"certificate")
    assert pem.decode() == sim.v3.certificate_pem()
    assert response.headers["Wechatpay-Serial"] == sim.v3.platform_serial
    assert answer_signed_by(response, sim.v3.certificate.public_key())


def test_shop_downloads_certificates_then_verifies_answers_and_notifies(
    v3, wx, v3_receiver, sim
):
    switch(wx, "certificate")
    shop = client_with(v3, bootstrap_ring())
    certificates = shop.download_certificates()
    assert [c.serial_no for c in certificates] == [sim.v3.platform_serial]
    shop.keyring = shop.keyring.with_certificates(certificates)

    prepay_id = prepay(shop, v3_receiver.url)
    wx.control("POST", "/sim/pay", {"payment": shop.jsapi_params(prepay_id)})

    body = v3_receiver.wait_for(1)[0]
    assert v3_receiver.headers[0]["Wechatpay-Serial"] == sim.v3.platform_serial
    assert shop.parse_notify(v3_receiver.headers[0], body).resource.is_paid
    with pytest.raises(UnknownSerial):  # the public key alone no longer verifies
        prepay(v3, v3_receiver.url)
    shop.close()


def test_both_modes_while_switching_over(v3, v3_by_hand, wx, v3_receiver, sim):
    switch(wx, "both")
    shop = client_with(v3, bootstrap_ring())
    shop.keyring = v3.keyring.with_certificates(shop.download_certificates())

    for _ in range(2):
        wx.control("POST", "/sim/pay", {"payment": shop.jsapi_params(prepay(shop,
                                                                             v3_receiver.url))})
    bodies = v3_receiver.wait_for(2)

    # Notifies move over gradually (§3.5): the shop must take either key meanwhile.
    serials = {h["Wechatpay-Serial"] for h in v3_receiver.headers}
    assert serials == {sim.v3.public_key_id, sim.v3.platform_serial}
    for headers, body in zip(v3_receiver.headers, bodies, strict=True):
        assert shop.parse_notify(headers, body).resource.is_paid
    # Answers: the key the request names in Wechatpay-Serial, else the certificate (§1.2).
    query = "/v3/pay/transactions/out-trade-no/T0000000001?mchid=" + v3.config.mchid
    named = v3_by_hand.call("GET", query, headers={"Wechatpay-Serial": sim.v3.public_key_id})
    assert named.headers["Wechatpay-Serial"] == sim.v3.public_key_id
    unnamed = v3_by_hand.call("GET", query)
    assert unnamed.headers["Wechatpay-Serial"] == sim.v3.platform_serial
    shop.close()


def test_keys_show_public_facts_only_and_reset_restores_the_mode(wx, sim):
    shown = wx.control("GET", "/sim/v3/keys").json()
    assert shown["mode"] == "public-key"
    assert shown["public_key_id"].startswith("PUB_KEY_ID_01") and len(shown["public_key_id"]) == 39
    assert shown["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert shown["merchant_serial"] == sim.v3.merchant_serial
    assert shown["merchant_key_generated"] is False  # the tests gave theirs
    text = str(shown)
    assert "PRIVATE" not in text and V3_APIV3_KEY not in text
    switch(wx, "both")
    wx.control("POST", "/sim/reset")
    assert wx.control("GET", "/sim/v3/keys").json()["mode"] == "public-key"
    assert wx.control("GET", "/sim/v3/keys").json()["public_key_id"] == shown["public_key_id"]


def test_unknown_mode_is_400(wx):
    assert wx.control("POST", "/sim/v3/keys", {"mode": "hmac"}).status_code == 400
