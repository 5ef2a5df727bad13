"""End-to-end: the simulator and gunicorn as real processes on the suite's database.

The fixtures (``sim``, ``shop``, ``phone``, …) live in ``tests/livestack.py``, shared
with the browser tests. Here ``phone`` is parametrized: every test that shops through
it runs once against one app server and once against two behind a round-robin
"balancer" (see ``server_pair``).
"""

import secrets
from collections.abc import Callable, Iterator

import pytest
import redis
import requests
import schemathesis

from accounts.models import User
from demo.miniprogram import MiniProgram
from demo.stack import ShopServer, Simulator, free_port
from orders.models import Order, Product
from tests.admin_forms import FormFields
from tests.livestack import ACCOUNT, PAY_VERSION, SERVER_ENV, database_url

__all__ = ["ACCOUNT", "SERVER_ENV", "database_url"]

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def server_pair(sim, logs, django_db_setup, merchant_certificate) -> Iterator[list[ShopServer]]:
    """Two app servers, one database, one Redis, one secret, and one public notify URL,
    as behind a balancer: the phone's calls alternate between the two, while WeChat's
    notifies all reach the second. They place orders with ``E2E_PAY_VERSION``'s API, as
    ``shop`` does."""
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
            pay_version=PAY_VERSION,
            log_path=logs / f"gunicorn-pair-{n}.log",
            # v3 derives /payment/v3/wxnotify from it (core.config.pay_notify_url).
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


# -- the access_token shared by several processes (test_access_token_concurrency.py) ----------

TOKEN_REDIS_URL = "redis://127.0.0.1:6379/13"
# Another process of the shop (an app server or a worker): the production settings with the
# shared cache in Redis, waiting for the go signal, then using the token USES times on
# THREADS threads at once; it prints one JSON line of what it got.
TOKEN_PROCESS = r"""
import json, os, threading, time
import redis
import shopsite.settings as shop_settings

shop_settings.CACHES = {"default": {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": os.environ["TOKEN_REDIS_URL"], "KEY_PREFIX": os.environ["TOKEN_PREFIX"],
}}
import django

django.setup()
from shipping.access_token import access_token, with_access_token

uses, threads, call = int(os.environ["USES"]), int(os.environ["THREADS"]), os.environ["CALL"]
signal = redis.Redis.from_url(os.environ["TOKEN_REDIS_URL"])
print("ready", flush=True)
while not signal.exists(os.environ["GO_KEY"]):
    time.sleep(0.002)
tokens, errors, latencies = [], [], []

def use_once():
    if call == "token":
        return access_token()
    return with_access_token(lambda client, token: client.is_trade_managed(token) and token)

def work(n):
    for _ in range(n):
        started = time.monotonic()
        try:
            tokens.append(use_once())
        except Exception as exc:
            errors.append(repr(exc))
        latencies.append(time.monotonic() - started)

share = [uses // threads + (i < uses % threads) for i in range(threads)]
workers = [threading.Thread(target=work, args=(n,)) for n in share]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(json.dumps({"tokens": tokens, "errors": errors, "latencies": latencies}), flush=True)
"""


@pytest.fixture
def token_cache(settings, sim) -> Iterator[str]:
    """This test process as one of the shop's processes: the shared cache in Redis
    (``TOKEN_REDIS_URL``, a key prefix of its own), WeChat the simulator. Yields the prefix;
    ``token_signal`` is the Redis the processes wait on."""
    prefix = f"token-test-{secrets.token_hex(6)}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TOKEN_REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    settings.WECHAT_API_BASE = sim.url
    yield prefix
    keys = redis.Redis.from_url(TOKEN_REDIS_URL)
    for key in keys.scan_iter(f"{prefix}*"):
        keys.delete(key)


@pytest.fixture
def token_signal(token_cache) -> redis.Redis:
    return redis.Redis.from_url(TOKEN_REDIS_URL)


@pytest.fixture
def token_processes(token_cache, sim, tmp_path):
    """Start other processes of the shop, each waiting for ``go_key`` in Redis, then using
    the token; ``finish(process)`` collects what one got."""
    import json
    import os
    import subprocess
    import sys

    from demo.stack import ROOT, stop_process

    started: list[subprocess.Popen] = []

    def start(*, uses: int, threads: int, call: str, go_key: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="shopsite.settings",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            WECHAT_APPID=ACCOUNT.appid,
            WECHAT_APP_SECRET=ACCOUNT.app_secret,
            WECHAT_API_BASE=sim.url,
            LOG_LEVEL="WARNING",
            TOKEN_REDIS_URL=TOKEN_REDIS_URL,
            TOKEN_PREFIX=token_cache,
            USES=str(uses),
            THREADS=str(threads),
            CALL=call,
            GO_KEY=go_key,
        )
        env.pop("REDIS_URL", None)
        with open(tmp_path / f"token-process-{len(started)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", TOKEN_PROCESS],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        started.append(process)
        assert process.stdout.readline().strip() == "ready"
        return process

    def finish(process: subprocess.Popen) -> dict:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        return json.loads(out.strip().splitlines()[-1])

    yield start, finish
    for process in started:
        stop_process(process)


# -- the task queue: two gunicorns, a Celery worker and Redis (test_shipping_upload.py) ---------


@pytest.fixture
def queue_phone(queue_stack, fresh_sim, transactional_db) -> MiniProgram:
    """A shopper whose calls alternate between ``queue_stack``'s two app servers."""
    first, second = queue_stack.servers
    app = MiniProgram(first.url, fresh_sim, also_urls=(second.url,))
    app.login()
    return app


@pytest.fixture
def own_redis_phone(own_queue_stack, fresh_sim, transactional_db) -> MiniProgram:
    app = MiniProgram(own_queue_stack.servers[0].url, fresh_sim)
    app.login()
    return app


# -- WeChat's daily bill (test_statements.py) ---------------------------------------------------


@pytest.fixture
def import_statement(shop, tmp_path, transactional_db):
    """``import_statement(day)``: ``manage.py import_statement --date <day>`` as its own
    process in the server's environment, the bill files kept under this test's folder."""
    import subprocess
    import sys

    from demo.stack import ROOT

    def run(day) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "import_statement", "--date", str(day)],
            cwd=ROOT,
            env={**shop.env(), "MEDIA_ROOT": str(tmp_path / "media")},
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


# -- admin over HTTP, and servers of their own (test_pay_v3.py, test_pay_switch.py) ------------

STAFF_PASSWORD = "a-long-e2e-test-password"


class ShopAdmin:
    """A member of staff logged in to one server's admin over HTTP, submitting its pages as
    a browser does: each form read back from the page, CSRF token and one-time key included."""

    def __init__(self, base_url: str, username: str):
        self.base_url = base_url
        self.http = requests.Session()
        login = f"{base_url}/admin/login/?next=/admin/"
        self.http.get(login, timeout=10).raise_for_status()
        answer = self.http.post(
            login,
            data={
                "csrfmiddlewaretoken": self.http.cookies["csrftoken"],
                "username": username,
                "password": STAFF_PASSWORD,
                "next": "/admin/",
            },
            timeout=30,
        )
        assert answer.url == f"{base_url}/admin/", f"admin login failed: {answer.text[:300]}"

    def refund(self, order: Order, amount: str | None = None, reason: str = "") -> str:
        """Open the order's "Refund…" page and submit it: ``amount`` in yuan (None: the
        page's own default, all that is still refundable). Returns the page it leads to."""
        page = f"{self.base_url}/admin/orders/order/{order.pk}/refund/"
        form = FormFields("refund_form")
        form.feed(self.http.get(page, timeout=10).text)
        assert form.data, f"no refund form at {page}"
        data = {**form.data, "reason": reason}
        if amount is not None:
            data["amount"] = amount
        answer = self.http.post(page, data=data, timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        return answer.text


@pytest.fixture
def shop_admin(transactional_db) -> Callable[[ShopServer], ShopAdmin]:
    """``shop_admin(server)``: a superuser logged in to that server's admin."""
    User.objects.create_superuser("boss", "boss@example.com", STAFF_PASSWORD)
    return lambda server: ShopAdmin(server.url, "boss")


@pytest.fixture
def certificate_sim(logs) -> Iterator[Simulator]:
    """A simulator of its own that signs v3 with its platform certificate only
    (``--v3-keys certificate``): a merchant without WeChat Pay's public key."""
    simulator = Simulator(
        ACCOUNT, retry_scale=0.01, log_path=logs / "wxsim-certificate.log", v3_keys="certificate"
    ).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def certificate_shop(
    certificate_sim, logs, django_db_setup, merchant_certificate
) -> Iterator[ShopServer]:
    """A v3 server on ``certificate_sim`` configured with no WeChat Pay public key: it
    verifies WeChat with the platform certificates it downloads."""
    server = ShopServer(
        certificate_sim,
        database_url(),
        pay_version="v3",
        log_path=logs / "gunicorn-v3-certificate.log",
        extra_env={
            **SERVER_ENV,
            **merchant_certificate,
            "WECHAT_PAY_PUBLIC_KEY_PATH": "",  # empty is unset (shopsite/settings.py env())
            "WECHAT_PAY_PUBLIC_KEY_ID": "",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture
def restartable_shop(
    sim, logs, django_db_setup, merchant_certificate
) -> Iterator[Callable[[str], ShopServer]]:
    """``start(pay_version)``: (re)start the one server of this test with that
    ``WECHAT_PAY_VERSION``, as an operator restarts a shop with a changed setting: the same
    port (so the same notify URLs), database, secret key (tokens stay valid) and v2
    settings; the one running before is stopped first."""
    port = free_port()
    env = {**SERVER_ENV, **merchant_certificate, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    running: list[ShopServer] = []

    def start(pay_version: str) -> ShopServer:
        if running:
            running.pop().stop()
        server = ShopServer(
            sim,
            database_url(),
            port=port,
            pay_version=pay_version,
            log_path=logs / f"gunicorn-switch-{pay_version}.log",
            extra_env=env,
        )
        running.append(server)
        return server.start()

    yield start
    for server in running:
        server.stop()
