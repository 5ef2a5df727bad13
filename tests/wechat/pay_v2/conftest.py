"""Fixtures of the wechat.pay_v2 tests: clients configured with WeChat's official test
merchant (tests/wx.py), and a strict HTTP mock of WeChat Pay.

``client`` here is a WxPayClient, not pytest-django's test client: nothing in these
Django-free tests needs that one.
"""

import pytest
import responses

from tests.wx import OFFICIAL_APPID, OFFICIAL_KEY, OFFICIAL_MCH_ID
from wechat.pay_v2 import WxPayClient, WxPayConfig


@pytest.fixture
def config() -> WxPayConfig:
    return WxPayConfig(appid=OFFICIAL_APPID, mch_id=OFFICIAL_MCH_ID, api_key=OFFICIAL_KEY)


@pytest.fixture
def client(config: WxPayConfig) -> WxPayClient:
    return WxPayClient(config)


@pytest.fixture
def cert_client() -> WxPayClient:
    """A client with the merchant certificate refunds need (the paths are never opened:
    the HTTP mock answers first)."""
    config = WxPayConfig(
        appid=OFFICIAL_APPID,
        mch_id=OFFICIAL_MCH_ID,
        api_key=OFFICIAL_KEY,
        cert_path="/c.pem",
        key_path="/k.pem",
    )
    return WxPayClient(config)


@pytest.fixture
def mocked():
    """WeChat Pay mocked strictly: a call the test did not add fails, and so does an
    answer it added that was never asked for."""
    with responses.RequestsMock() as rsps:
        yield rsps
