from dataclasses import dataclass
from pathlib import Path

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.cache import cache
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from orders.models import Order, Product
from tests.factories import client_for, make_paid_order, make_shopper, staff_client
from tests.wx import FakeWxPay
from tests.wx_v3 import (
    APIV3_KEY,
    MERCHANT_SERIAL,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    new_rsa_key,
    private_pem,
    self_signed_certificate,
    utc,
)

# The live stack (simulator + gunicorn) for tests/e2e and tests/browser.
pytest_plugins = ["tests.livestack"]


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


# Suites that start real processes (the simulator, gunicorn, a Celery worker) or a browser:
# marked slow, so that `make test` stays quick and `make test TESTS=slow` runs them (CI both).
SLOW_SUITES = ("e2e", "browser")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs PostgreSQL: DATABASE_URL=postgres://... make test")
    tests = Path(__file__).resolve().parent
    slow = [tests / suite for suite in SLOW_SUITES]
    for item in items:
        if "postgres" in item.keywords and not is_postgres():
            item.add_marker(skip)
        if any(item.path.is_relative_to(folder) for folder in slow):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters live in the cache; every test starts with none."""
    cache.clear()


@pytest.fixture(autouse=True)
def _no_real_network():
    """Any HTTP call a test did not mock fails the test (WeChat is never reachable).

    Loopback stays reachable for the tests that run the simulator and the server.
    """
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")
        mock.add_passthru("http://localhost")
        yield mock


@pytest.fixture
def http_mock(_no_real_network) -> responses.RequestsMock:
    return _no_real_network


@pytest.fixture
def wxpay(http_mock) -> FakeWxPay:
    return FakeWxPay(http_mock).install()


@pytest.fixture
def wxpay_v3(http_mock, pay_v3, merchant_key, wechat_key, platform):
    """WeChat Pay API v3 for the shop configured by ``pay_v3`` (new orders placed with v3):
    a ``tests.wx_v3.FakeWxPayV3`` answering with the shop's appid and mchid, signing with
    the WeChat Pay public key (or, ``sign_with_platform``, the platform certificate it also
    serves on /v3/certificates)."""
    from tests.wx_v3 import FakeWxPayV3

    return FakeWxPayV3(
        http_mock,
        merchant_key.public_key(),
        wechat_key,
        appid=pay_v3.WECHAT_APPID,
        mchid=pay_v3.WECHAT_MCH_ID,
        base=pay_v3.WECHAT_PAY_API_BASE,
        platform=(platform.key, platform.certificate, platform.serial),
    ).install()


@pytest.fixture
def debug_on(settings) -> None:
    """DEBUG on: the case where Django's error reports would show every local variable."""
    settings.DEBUG = True


@pytest.fixture
def refund_certificate(settings) -> None:
    """Refunds need the merchant certificate (docs/protocol/wechat-pay-v2.md §7.1). The paths need
    not exist:
    ``responses`` answers before requests would open the files."""
    settings.WECHAT_CERT_PATH = "/etc/wxshop/apiclient_cert.pem"
    settings.WECHAT_KEY_PATH = "/etc/wxshop/apiclient_key.pem"


@pytest.fixture
def shopper(db) -> User:
    return make_shopper()


@pytest.fixture
def api(shopper) -> APIClient:
    return client_for(shopper)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def products(db) -> dict[str, Product]:
    return {
        "tea": Product.objects.create(name="Oolong tea 250g", price=4500, stock=10),
        "cup": Product.objects.create(name="Tea cup", price=1200, stock=None),
        "gone": Product.objects.create(name="Old stock", price=100, stock=5, active=False),
    }


@pytest.fixture
def boss(db) -> User:
    """A superuser: every admin permission."""
    return User.objects.create_superuser("boss", "boss@example.com", "a-long-test-password")


@pytest.fixture
def boss_client(boss) -> Client:
    return staff_client(boss)


@pytest.fixture
def paid(shopper, products) -> Order:
    """¥45.00, paid through a notify at 2026-11-27 10:30:15 Beijing time."""
    return make_paid_order(shopper, products)


# -- WeChat Pay API v3 ---------------------------------------------------------------------------
# RSA keys made at test time (docs/protocol/wechat-pay-v3.md §13.5), session-scoped: RSA-2048
# generation is the slow part, and nothing mutates a key.


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
def pay_v3(settings, tmp_path, merchant_key, wechat_key):
    """The shop configured for API v3 in public-key mode, its key files in ``tmp_path``:
    new orders are placed with v3. Returns the settings."""
    from payments import v3client

    private_key = tmp_path / "apiclient_key.pem"
    private_key.write_text(private_pem(merchant_key))
    public_key = tmp_path / "pub_key.pem"
    public_key.write_bytes(
        wechat_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings.WECHAT_PAY_VERSION = "v3"
    settings.WECHAT_API_V3_KEY = APIV3_KEY
    settings.WECHAT_MCH_PRIVATE_KEY_PATH = str(private_key)
    settings.WECHAT_MCH_CERT_SERIAL = MERCHANT_SERIAL
    settings.WECHAT_PAY_PUBLIC_KEY_PATH = str(public_key)
    settings.WECHAT_PAY_PUBLIC_KEY_ID = PUBLIC_KEY_ID
    v3client.forget_clients()
    yield settings
    v3client.forget_clients()
