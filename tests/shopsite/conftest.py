"""Fixtures of the shopsite tests: a real redis-server to kill under a running shop."""

import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis

from core import throttling

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_server():
    """A throw-away redis-server on a free port: ``(process, url)``; killed afterwards."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # in case a test left it stopped
            process.kill()
        process.wait(timeout=10)


@pytest.fixture
def redis_cache(settings, redis_server):
    """The default cache on that server, configured like production (short timeouts)."""
    process, url = redis_server
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    return process


@pytest.fixture
def throttle_warning_not_yet_given(monkeypatch) -> None:
    """The throttles warn about a cache outage once a minute: as if none was given yet."""
    monkeypatch.setattr(throttling, "_last_warning_monotonic", None)
