"""A cache outage (issue item 15): Redis killed or hung under a running shop.

The throttles fail open (the request goes through, one warning a minute), /healthz says
the instance is degraded but should stay in rotation, and nothing answers 500. The
Redis here is a real ``redis-server`` started and killed by the test.
"""

import logging
import signal
import time

import pytest
import redis
from django.test import Client

from core import throttling
from core.throttling import FailOpenScopedRateThrottle
from tests.wx import code2session_answer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("throttle_warning_not_yet_given")]

LOGIN = "/accounts/login"
# What a Redis outage must cost a request at most: settings.py's socket timeouts (0.5 s)
# plus generous slack for a busy test machine.
OUTAGE_BUDGET_SECONDS = 3.0


def _throttle_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "core.throttling"]


def _login(client: Client, http_mock, n: int):
    code2session_answer(http_mock, {"openid": f"o-outage-{n}", "session_key": "k"})
    started = time.monotonic()
    response = client.post(LOGIN, {"code": f"c{n}"}, content_type="application/json")
    return response, time.monotonic() - started


def test_login_and_healthz_with_redis_killed(redis_cache, http_mock, caplog):
    client = Client()
    response, _ = _login(client, http_mock, 0)
    assert response.status_code == 200
    assert client.get("/healthz").json()["cache"] == "ok"

    redis_cache.kill()
    redis_cache.wait(timeout=10)
    with caplog.at_level(logging.WARNING, logger="core.throttling"):
        answers = [_login(client, http_mock, n) for n in (1, 2, 3)]
        health = client.get("/healthz")

    assert [response.status_code for response, _ in answers] == [200, 200, 200]
    assert all(seconds < OUTAGE_BUDGET_SECONDS for _, seconds in answers)
    warnings = _throttle_warnings(caplog)
    assert len(warnings) == 1, "one warning a minute, not one per request"
    assert "cache unavailable" in warnings[0].getMessage()
    assert health.status_code == 200
    assert health.json() == {
        "status": "degraded",
        "database": "ok",
        "cache": "unavailable",
        "take_out_of_rotation": False,
    }


def test_a_hung_redis_costs_a_login_its_timeout_not_a_worker(redis_cache, http_mock, caplog):
    client = Client()
    assert _login(client, http_mock, 0)[0].status_code == 200

    # SIGSTOP: the socket stays open and nothing answers — only a timeout gets us out.
    redis_cache.send_signal(signal.SIGSTOP)
    try:
        with caplog.at_level(logging.WARNING, logger="core.throttling"):
            response, seconds = _login(client, http_mock, 1)
            health_started = time.monotonic()
            health = client.get("/healthz")
            health_seconds = time.monotonic() - health_started
    finally:
        redis_cache.send_signal(signal.SIGCONT)

    assert response.status_code == 200
    assert seconds < OUTAGE_BUDGET_SECONDS
    assert len(_throttle_warnings(caplog)) == 1
    assert (health.status_code, health.json()["cache"]) == (200, "unavailable")
    assert health_seconds < OUTAGE_BUDGET_SECONDS


def test_the_throttle_still_counts_in_redis_while_it_is_up(redis_cache, http_mock, monkeypatch):
    monkeypatch.setattr(FailOpenScopedRateThrottle, "THROTTLE_RATES", {"login": "2/min"})
    client = Client()

    statuses = [_login(client, http_mock, n)[0].status_code for n in range(3)]

    assert statuses == [200, 200, 429]


class _BrokenCache:
    """A cache whose server is gone: every call raises what redis-py raises."""

    def get(self, *args, **kwargs):
        raise redis.ConnectionError("Error 111 connecting to redis.internal:6379.")

    set = get


def test_the_outage_warning_repeats_at_most_once_a_minute(http_mock, caplog, monkeypatch):
    monkeypatch.setattr(FailOpenScopedRateThrottle, "cache", _BrokenCache())
    now = [1000.0]
    monkeypatch.setattr(throttling.time, "monotonic", lambda: now[0])
    client = Client()

    with caplog.at_level(logging.WARNING, logger="core.throttling"):
        statuses = [_login(client, http_mock, 1)[0].status_code]
        now[0] += 59
        statuses.append(_login(client, http_mock, 2)[0].status_code)
        assert len(_throttle_warnings(caplog)) == 1
        now[0] += 2
        statuses.append(_login(client, http_mock, 3)[0].status_code)

    assert statuses == [200, 200, 200]
    assert len(_throttle_warnings(caplog)) == 2


def test_healthz_with_both_database_and_cache_down_is_503(monkeypatch):
    from django.db import OperationalError, connection

    monkeypatch.setattr("shopsite.health.cache", _BrokenCache())

    def fail(execute, sql, params, many, context):
        raise OperationalError("database is down")

    with connection.execute_wrapper(fail):
        response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable",
        "cache": "unavailable",
        "take_out_of_rotation": True,
    }


# -- throttles without a shared cache ----------------------------------------------------------

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def _throttle_cache_warnings():
    from django.core.checks import run_checks

    return [m for m in run_checks() if m.id == "shopsite.W004"]


def test_local_memory_throttles_in_production_are_a_system_check_warning(settings):
    settings.DEBUG = False
    settings.CACHES = LOCMEM

    (message,) = _throttle_cache_warnings()

    assert "REDIS_URL" in message.hint
    assert "per worker" in message.msg


def test_no_throttle_cache_warning_with_redis_or_in_debug(settings):
    settings.DEBUG = False
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
        }
    }
    assert _throttle_cache_warnings() == []

    settings.DEBUG = True
    settings.CACHES = LOCMEM
    assert _throttle_cache_warnings() == []
