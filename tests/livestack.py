"""The live stack for end-to-end and browser tests: the WeChat simulator and gunicorn as
real processes on the suite's database (a pytest plugin, loaded by tests/conftest.py).

Session-scoped: one simulator and one server per run, shared by tests/e2e and
tests/browser.

WeChat Pay v3: ``E2E_PAY_VERSION=v3`` starts ``shop``, ``hmac_shop`` and the queue stacks with
``WECHAT_PAY_VERSION=v3`` and the simulator's v3 files, as ``DEMO_PAY_VERSION=v3`` does for
the demo, so the whole suite runs its purchases through v3; ``E2E_V3_KEYS`` picks the
simulator's key mode (public-key, certificate, both). ``v3_shop`` / ``v3_phone`` are a v3 server
next to the default one, for tests of v3 itself.
"""

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from demo.miniprogram import MiniProgram
from demo.stack import RedisServer, ShopServer, Simulator, WeChatAccount, Worker, free_port
from orders.models import Product
from tests.settings import TEST_ENV

# Which WeChat Pay API the default servers place orders with, and how the simulator's v3 signs.
PAY_VERSION = os.environ.get("E2E_PAY_VERSION", "v2").lower()
V3_KEYS = os.environ.get("E2E_V3_KEYS", "public-key")
if PAY_VERSION not in ("v2", "v3") or V3_KEYS not in ("public-key", "certificate", "both"):
    raise pytest.UsageError(
        "E2E_PAY_VERSION is v2 or v3; E2E_V3_KEYS is public-key, certificate or both"
    )
# The test settings' own credentials, so the test process can sign and verify too.
ACCOUNT = WeChatAccount(
    appid=TEST_ENV["WECHAT_APPID"],
    app_secret=TEST_ENV["WECHAT_APP_SECRET"],
    mch_id=TEST_ENV["WECHAT_MCH_ID"],
    mch_key=TEST_ENV["WECHAT_MCH_KEY"],
)
# Short enough that a locked database makes a notify fail well within WeChat's 5 s.
_LOG_DIRS: list[Path] = []
SERVER_ENV = {
    "DATABASE_LOCK_TIMEOUT_MS": "1000",
    "WECHAT_READ_TIMEOUT_MS": "2000",
    # Every test phone logs in from 127.0.0.1; the throttle has unit tests of its own.
    "LOGIN_THROTTLE_RATE": "10000/min",
    # Some tests leave more unpaid orders than a shopper may hold; the caps and the order
    # throttle have unit tests of their own (tests/orders/test_order_create_limits.py).
    "ORDER_MAX_UNPAID_PER_SHOPPER": "50",
    "ORDER_THROTTLE_RATE": "10000/min",
}


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def logs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("e2e-logs")
    _LOG_DIRS.append(path)  # for the failure report below
    return path


@pytest.fixture(scope="session")
def sim(logs) -> Iterator[Simulator]:
    simulator = Simulator(
        ACCOUNT, retry_scale=0.01, log_path=logs / "wxsim.log", v3_keys=V3_KEYS
    ).start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="session")
def merchant_certificate(tmp_path_factory) -> dict[str, str]:
    """The server's WECHAT_CERT_PATH/KEY_PATH, so admin can refund: requests insists the
    files exist, and over the simulator's plain HTTP never reads them."""
    folder = tmp_path_factory.mktemp("cert")
    paths = {}
    for name, setting in (("cert", "WECHAT_CERT_PATH"), ("key", "WECHAT_KEY_PATH")):
        (folder / f"apiclient_{name}.pem").write_text("placeholder\n")
        paths[setting] = str(folder / f"apiclient_{name}.pem")
    return paths


@pytest.fixture(scope="session")
def static_files() -> None:
    """Admin's CSS and JS as production serves them (whitenoise reads STATIC_ROOT when the
    server starts); the first run copies them, later runs only check."""
    call_command("collectstatic", interactive=False, verbosity=0)


def _start_shop(
    sim, logs, sign_type: str, certificate: dict[str, str], pay_version: str = PAY_VERSION
) -> ShopServer:
    return ShopServer(
        sim,
        database_url(),
        sign_type=sign_type,
        pay_version=pay_version,
        log_path=logs / f"gunicorn-{sign_type}{'-v3' if pay_version == 'v3' else ''}.log",
        extra_env={**SERVER_ENV, **certificate},
    ).start()


@pytest.fixture(scope="session")
def shop(sim, logs, django_db_setup, static_files, merchant_certificate) -> Iterator[ShopServer]:
    server = _start_shop(sim, logs, "MD5", merchant_certificate)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hmac_shop(sim, logs, django_db_setup, merchant_certificate) -> Iterator[ShopServer]:
    server = _start_shop(sim, logs, "HMAC-SHA256", merchant_certificate)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def v3_shop(sim, logs, django_db_setup, static_files, merchant_certificate) -> Iterator[ShopServer]:
    """A server placing orders through WeChat Pay v3, whatever ``E2E_PAY_VERSION`` says."""
    server = _start_shop(sim, logs, "MD5", merchant_certificate, pay_version="v3")
    yield server
    server.stop()


@pytest.fixture
def v3_phone(v3_shop, fresh_sim, transactional_db) -> MiniProgram:
    app = MiniProgram(v3_shop.url, fresh_sim)
    app.login()
    return app


def _use_v3(settings, sim) -> None:
    settings.WECHAT_PAY_VERSION = "v3"
    for name, value in sim.v3_settings().items():
        setattr(settings, name, value)


@pytest.fixture
def v3_pay_settings(pay_settings, sim):
    """``pay_settings`` with the simulator's v3 files: commands in this process place and
    check orders through v3, as ``v3_shop`` does."""
    _use_v3(pay_settings, sim)
    return pay_settings


# -- the task queue: app servers and a Celery worker on Redis (docs/INVARIANTS.md §8) ----------

# The machine's Redis, a database of its own: the broker and shared cache of ``queue_stack``.
QUEUE_REDIS_URL = "redis://127.0.0.1:6379/11"
MESSAGE_TOKEN = "e2e-push-token"
MESSAGE_AES_KEY = "Zq3b0JH9xv8Yc2m1Lr7Tn4Wk6Pf5Ds0Ae9Gu3Ji8Kl2"  # 43 characters (safe mode)
QUEUE_ENV = {
    "WECHAT_TRADE_MANAGED": "1",
    "WECHAT_MESSAGE_TOKEN": MESSAGE_TOKEN,
    "WECHAT_MESSAGE_AES_KEY": MESSAGE_AES_KEY,
    # Seconds, not minutes: a retried upload and the sweep come round while a test waits.
    "SHIPPING_UPLOAD_RETRY_FIRST_SECONDS": "1",
    "SHIPPING_UPLOADS_SWEEP_SECONDS": "1",
}


def redis_or_skip(url: str | None = None) -> str:
    """The redis-server binary (``url`` None) or a reachable Redis at ``url``. Missing: the
    test fails in CI (``CI=true``: .ci/run starts Redis, nothing may be skipped there) and is
    skipped with the reason elsewhere."""
    import redis

    if url is None:
        found = shutil.which("redis-server")
        problem = "" if found else "redis-server is not installed"
    else:
        found = url
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            problem = ""
        except redis.RedisError as exc:
            problem = f"no Redis at {url} ({type(exc).__name__})"
    if problem:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{problem}: the task-queue tests need it in CI", pytrace=False)
        pytest.skip(f"{problem}: the task-queue tests need it")
    return found


@dataclass
class QueueStack:
    """App servers, a worker and the Redis they share (broker and cache)."""

    servers: list[ShopServer]
    worker: Worker
    redis_url: str


def start_queue_stack(
    sim, logs: Path, name: str, redis_url: str, certificate: dict[str, str], servers: int
) -> QueueStack:
    ports = [free_port() for _ in range(servers)]
    env = {
        **SERVER_ENV,
        **certificate,
        **QUEUE_ENV,
        # One key for all: every server accepts every server's tokens.
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        # WeChat's notifies all reach the last server, as behind a balancer.
        "WECHAT_NOTIFY_URL": f"http://127.0.0.1:{ports[-1]}/payment/wxnotify",
    }
    shops = [
        ShopServer(
            sim, database_url(), port=port, log_path=logs / f"gunicorn-{name}-{n}.log",
            extra_env=env, pay_version=PAY_VERSION,
        )
        for n, port in enumerate(ports)
    ]  # fmt: skip
    worker = Worker(shops[0], log_path=logs / f"worker-{name}.log", extra_env=env)
    _WORKERS.append(worker)
    stack = QueueStack(shops, worker, redis_url)
    try:
        for shop in shops:
            shop.start()
        worker.start()
    except BaseException:
        stop_queue_stack(stack)
        raise
    return stack


# Every worker started for the tests. All of them sweep the one test database for pending
# uploads, so a test that needs to see an upload wait (the broker-outage test) pauses the
# others: otherwise another stack's worker uploads it through its own Redis.
_WORKERS: list[Worker] = []


def _running(worker: Worker) -> bool:
    return worker.process is not None and worker.process.poll() is None


def stop_queue_stack(stack: QueueStack) -> None:
    stack.worker.stop()
    for shop in stack.servers:
        shop.stop()


@pytest.fixture(scope="session")
def queue_stack(sim, logs, django_db_setup, merchant_certificate) -> Iterator[QueueStack]:
    """Two app servers and one Celery worker (with beat) on the machine's Redis."""
    import redis

    redis_or_skip(QUEUE_REDIS_URL)
    redis.Redis.from_url(QUEUE_REDIS_URL).flushdb()  # no task or token left from a past run
    stack = start_queue_stack(sim, logs, "queue", QUEUE_REDIS_URL, merchant_certificate, 2)
    yield stack
    stop_queue_stack(stack)


@pytest.fixture
def own_redis(logs) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop and start again."""
    server = RedisServer(redis_or_skip(), log_path=logs / "redis-own.log").start()
    yield server
    server.stop()


@pytest.fixture
def own_queue_stack(sim, logs, own_redis, django_db_setup, merchant_certificate):
    """One app server and a worker on ``own_redis``, the only worker running meanwhile."""
    paused = [worker for worker in _WORKERS if _running(worker)]
    for worker in paused:
        worker.stop()
    stack = start_queue_stack(sim, logs, "own-redis", own_redis.url, merchant_certificate, 1)
    try:
        yield stack
    finally:
        stop_queue_stack(stack)
        for worker in paused:
            worker.start()


@pytest.fixture
def fresh_sim(sim) -> Simulator:
    sim.control("POST", "/sim/reset")
    return sim


@pytest.fixture
def tea(transactional_db) -> Product:
    return Product.objects.create(name="Oolong tea 250g", price=4500, stock=10)


@pytest.fixture
def phone(shop, fresh_sim, transactional_db) -> MiniProgram:
    app = MiniProgram(shop.url, fresh_sim)
    app.login()
    return app


@pytest.fixture
def pay_settings(settings, sim):
    """Point this test process's WeChat Pay client at the simulator (for commands). With
    ``E2E_PAY_VERSION=v3`` the simulator's v3 files too, as ``shop`` has them: the orders
    the servers placed are checked and refunded here through v3."""
    settings.WECHAT_PAY_API_BASE = sim.url
    settings.WECHAT_API_BASE = sim.url
    if PAY_VERSION == "v3":
        _use_v3(settings, sim)
    return settings


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        for path in sorted(path for folder in _LOG_DIRS for path in folder.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-40:]
            report.sections.append((f"last lines of {path.name}", "\n".join(tail)))
    return report
