"""Fixtures of the wechat.pay_v3 tests: RSA keys made at test time (§13.5), a self-signed
"platform certificate", a client of a test merchant, and a strict HTTP mock of WeChat Pay.

Keys are session-scoped: RSA-2048 generation is the slow part, and nothing mutates a key.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

from dataclasses import dataclass

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.wechat.pay_v3.wechat_side import (
    APIV3_KEY,
    APPID,
    MCHID,
    MERCHANT_SERIAL,
    NOW,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    new_rsa_key,
    self_signed_certificate,
    utc,
)
from wechat.pay_v3 import KeyRing, WxPayV3Client, WxPayV3Config


@dataclass(frozen=True)
class PlatformCert:
    key: rsa.RSAPrivateKey
    certificate: object
    serial: str


@pytest.fixture(scope="session")
def merchant_key() -> rsa.RSAPrivateKey:
    """Ours: signs requests and paySign; WeChat verifies with its public half."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def wechat_key() -> rsa.RSAPrivateKey:
    """WeChat's "WeChat Pay public key" pair (public-key mode, §3.3)."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def platform() -> PlatformCert:
    """WeChat's platform certificate and its key (certificate mode, §3.4)."""
    key = new_rsa_key()
    cert = self_signed_certificate(key, int(PLATFORM_SERIAL, 16), utc(2024, 12, 1), utc(2030, 1, 1))
    return PlatformCert(key, cert, PLATFORM_SERIAL)


@pytest.fixture
def keyring(wechat_key, platform) -> KeyRing:
    """Both modes at once, as during a switch-over (§3.5)."""
    return KeyRing(
        public_key=wechat_key.public_key(),
        public_key_id=PUBLIC_KEY_ID,
        certificates=[platform.certificate],
    )


@pytest.fixture
def config(merchant_key, keyring) -> WxPayV3Config:
    """A test merchant whose clock stands at NOW, with unusual timeouts so tests can see
    they are passed on."""
    return WxPayV3Config(
        appid=APPID,
        mchid=MCHID,
        merchant_serial_no=MERCHANT_SERIAL,
        private_key=merchant_key,
        apiv3_key=APIV3_KEY,
        keyring=keyring,
        timeout=(1.25, 4.5),
        clock=lambda: NOW,
    )


@pytest.fixture
def client(config) -> WxPayV3Client:
    return WxPayV3Client(config)


@pytest.fixture
def mocked():
    """WeChat Pay mocked strictly: a call the test did not add fails, and so does an
    answer it added that was never asked for."""
    with responses.RequestsMock() as rsps:
        yield rsps
