"""Health check, settings checks and error shapes of the site as a whole."""

import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.db import OperationalError, connection
from django.test import Client

from core.money import yuan


@pytest.mark.django_db
def test_healthz_is_200_when_the_database_answers():
    response = Client().get("/healthz")
    assert (response.status_code, response.json()) == (
        200,
        {"status": "ok", "database": "ok", "cache": "ok", "take_out_of_rotation": False},
    )


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_fails():
    def fail(execute, sql, params, many, context):
        raise OperationalError("database is down")

    with connection.execute_wrapper(fail):
        response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["take_out_of_rotation"] is True


def test_missing_wechat_settings_are_a_system_check_warning(settings):
    settings.WECHAT_MCH_KEY = ""
    settings.WECHAT_APP_SECRET = ""

    messages = [m for m in run_checks() if m.id == "shopsite.W001"]

    assert len(messages) == 1
    assert "WECHAT_APP_SECRET" in messages[0].msg
    assert "WECHAT_MCH_KEY" in messages[0].msg


def test_bad_sign_type_setting_is_a_system_check_error(settings):
    settings.WECHAT_SIGN_TYPE = "SHA1"
    assert "shopsite.E001" in [m.id for m in run_checks()]


def test_unknown_paths_are_json_404():
    response = Client().get("/no/such/page")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_trailing_slash_is_not_redirected():
    assert Client().post("/accounts/login/").status_code == 404


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "¥0.00"), (1, "¥0.01"), (4500, "¥45.00"), (123456789, "¥1,234,567.89"), (-250, "-¥2.50")],
)
def test_yuan_formats_fen_exactly(fen, text):
    assert yuan(fen) == text


def import_settings(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import shopsite.settings"],
        env=clean,
        capture_output=True,
        text=True,
    )


def test_secret_key_is_required_unless_debug():
    assert "DJANGO_SECRET_KEY is required" in import_settings().stderr
    assert import_settings(DJANGO_DEBUG="1").returncode == 0
    assert import_settings(DJANGO_SECRET_KEY="x" * 50).returncode == 0


def test_order_ttl_below_wechats_minimum_is_refused():
    result = import_settings(DJANGO_DEBUG="1", ORDER_TTL_MINUTES="4")
    assert "ORDER_TTL_MINUTES" in result.stderr


def test_missing_refund_certificate_is_a_system_check_warning(settings):
    settings.WECHAT_CERT_PATH = ""
    settings.WECHAT_KEY_PATH = "/etc/wxshop/apiclient_key.pem"

    messages = [m for m in run_checks() if m.id == "shopsite.W003"]

    assert len(messages) == 1
    assert "WECHAT_CERT_PATH" in messages[0].msg
    assert "WECHAT_KEY_PATH" not in messages[0].msg


PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "k7Jq2vX9pLm4Rt8Wz1Nb6Yc3Hf5Gd0Se-Ua2Ko9Pi7Lj4Mh1Qg8Vr6Ts3Xw5Zy0Bn",
    "DJANGO_HTTPS": "1",
    "DJANGO_ALLOWED_HOSTS": "shop.example.com",
    "WECHAT_APPID": "wx1234567890abcdef",
    "WECHAT_APP_SECRET": "an-app-secret",
    "WECHAT_MCH_ID": "1900000109",
    "WECHAT_MCH_KEY": "0123456789abcdef0123456789abcdef",
    "WECHAT_NOTIFY_URL": "https://shop.example.com/payment/wxnotify",
    "WECHAT_CERT_PATH": "/etc/wxshop/apiclient_cert.pem",
    "WECHAT_KEY_PATH": "/etc/wxshop/apiclient_key.pem",
    # Throttles in local memory are a deploy warning (shopsite.W004); check does not connect.
    "REDIS_URL": "redis://redis.internal:6379/0",
}


def test_production_settings_pass_check_deploy():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={**clean, **PRODUCTION_ENV},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
