"""End-to-end: the simulator and gunicorn as real processes on the suite's database.

The fixtures (``sim``, ``shop``, ``phone``, …) live in ``tests/livestack.py``, shared
with the browser tests. Here ``phone`` is parametrized: every test that shops through
it runs once against one app server and once against two behind a round-robin
"balancer" (see ``server_pair``).
"""

import secrets
from collections.abc import Iterator

import pytest
import redis
import schemathesis

from demo.miniprogram import MiniProgram
from demo.stack import ShopServer, free_port
from orders.models import Product
from tests.livestack import ACCOUNT, SERVER_ENV, database_url

__all__ = ["ACCOUNT", "SERVER_ENV", "database_url"]

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def server_pair(sim, logs, django_db_setup, merchant_certificate) -> Iterator[list[ShopServer]]:
    """Two app servers, one database, one Redis, one secret, and one public notify URL,
    as behind a balancer: the phone's calls alternate between the two, while WeChat's
    notifies all reach the second."""
    redis.Redis.from_url(REDIS_URL).flushdb()  # no throttle counts left from a past run
    ports = [free_port(), free_port()]
    env = {
        **SERVER_ENV,
        **merchant_certificate,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "REDIS_URL": REDIS_URL,
    }
    servers = [
        ShopServer(
            sim,
            database_url(),
            port=port,
            log_path=logs / f"gunicorn-pair-{n}.log",
            extra_env={**env, "WECHAT_NOTIFY_URL": f"http://127.0.0.1:{ports[1]}/payment/wxnotify"},
        )
        for n, port in enumerate(ports)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(params=["one server", "two servers"])
def phone(request, shop, fresh_sim, transactional_db) -> MiniProgram:
    if request.param == "one server":
        app = MiniProgram(shop.url, fresh_sim)
    else:
        first, second = request.getfixturevalue("server_pair")
        app = MiniProgram(first.url, fresh_sim, also_urls=(second.url,))
    app.login()
    return app


@pytest.fixture
def two_shops(server_pair) -> list[ShopServer]:
    return server_pair


@pytest.fixture
def refund_settings(pay_settings, shop, tmp_path):
    """This process sends refunds to the simulator; their notifies go to the server."""
    for name in ("cert", "key"):
        # requests insists the files exist; over plain HTTP it never reads them.
        (tmp_path / f"apiclient_{name}.pem").write_text("placeholder\n")
    pay_settings.WECHAT_CERT_PATH = str(tmp_path / "apiclient_cert.pem")
    pay_settings.WECHAT_KEY_PATH = str(tmp_path / "apiclient_key.pem")
    pay_settings.WECHAT_NOTIFY_URL = f"{shop.url}/payment/wxnotify"
    return pay_settings


@pytest.fixture
def api_schema(shop):
    """The live server's OpenAPI document, for schemathesis (test_openapi.py)."""
    return schemathesis.openapi.from_url(f"{shop.url}/api/schema?format=json")


@pytest.fixture
def token(shop, fresh_sim, transactional_db) -> str:
    """A logged-in shopper's bearer token. Not the parametrized ``phone``: schemathesis'
    lazy schema takes plain fixtures only."""
    phone = MiniProgram(shop.url, fresh_sim)
    phone.login()
    return phone.token


@pytest.fixture
def voucher(transactional_db) -> Product:
    """A virtual product: an order of only vouchers needs no delivery address."""
    return Product.objects.create(
        name="Tea tasting e-voucher", price=9900, stock=None, requires_shipping=False
    )
