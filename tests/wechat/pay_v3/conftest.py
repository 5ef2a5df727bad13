"""Fixtures of the wechat.pay_v3 tests: a client of a test merchant and a strict HTTP mock
of WeChat Pay. The keys (merchant_key, wechat_key, platform) are in tests/conftest.py."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import pytest
import responses

from tests.wx_v3 import (
    APIV3_KEY,
    APPID,
    MCHID,
    MERCHANT_SERIAL,
    NOW,
    PUBLIC_KEY_ID,
)
from wechat.pay_v3 import KeyRing, WxPayV3Client, WxPayV3Config


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
