"""The live stack for end-to-end and browser tests: the WeChat simulator and gunicorn as
real processes on the suite's database (a pytest plugin, loaded by tests/conftest.py).

Session-scoped: one simulator and one server per run, shared by tests/e2e and
tests/browser.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from demo.miniprogram import MiniProgram
from demo.stack import ShopServer, Simulator, WeChatAccount
from orders.models import Product
from tests.settings import TEST_ENV

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
    simulator = Simulator(ACCOUNT, retry_scale=0.01, log_path=logs / "wxsim.log").start()
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


def _start_shop(sim, logs, sign_type: str, certificate: dict[str, str]) -> ShopServer:
    return ShopServer(
        sim,
        database_url(),
        sign_type=sign_type,
        log_path=logs / f"gunicorn-{sign_type}.log",
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
    """Point this test process's WeChat Pay client at the simulator (for commands)."""
    settings.WECHAT_PAY_API_BASE = sim.url
    settings.WECHAT_API_BASE = sim.url
    return settings


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        for path in sorted(path for folder in _LOG_DIRS for path in folder.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-40:]
            report.sections.append((f"last lines of {path.name}", "\n".join(tail)))
    return report
