"""The processes under test: the WeChat simulator, our shop and the peer, on 127.0.0.1.

Reuses ``demo/stack.py`` (the simulator and our gunicorn); the peer is started the same
way with the same gunicorn arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.config import (
    ACCOUNT,
    GUNICORN_ARGS,
    GUNICORN_WORKERS,
    OUR_DB,
    PEER_DB,
    PEER_DIR,
    SECRET_KEY,
    database_url,
)
from demo.stack import ShopServer, Simulator, free_port, stop_process, wait_for

# Bench-only settings of our server: every shopper logs in from 127.0.0.1, so the
# per-IP login throttle (20/min) is lifted, and the load places many orders per shopper,
# so the per-shopper order throttle and unpaid-order caps are too; everything else is
# the production default.
OUR_ENV = {
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "LOGIN_THROTTLE_RATE": "1000000/min",
    "ORDER_THROTTLE_RATE": "1000000/min",
    "ORDER_MAX_UNPAID_PER_SHOPPER": "1000000",
    "ORDER_MAX_UNPAID_UNITS_PER_SHOPPER": "1000000",
}


def start_simulator(log_dir: Path) -> Simulator:
    sim = Simulator(ACCOUNT, retry_scale=0.01, log_path=log_dir / "wxsim.log")
    try:
        return sim.start()
    except BaseException:
        sim.stop()
        raise


def start_ours(sim: Simulator, log_dir: Path, **extra_env: str) -> ShopServer:
    server = ShopServer(
        sim,
        database_url(OUR_DB),
        workers=GUNICORN_WORKERS,
        log_path=log_dir / "gunicorn-ours.log",
        extra_env={**OUR_ENV, **extra_env},
    )
    for attempt in range(2):
        try:
            return server.start()
        except BaseException:
            server.stop()  # a server that failed to come up must not outlive the benchmark
            # demo.stack.wait_for gives up on a first answer slower than 1 s (workers still
            # importing on a busy machine): one more try, with the imports now cached.
            if attempt:
                raise
    raise AssertionError("unreachable")


# The peer as a production site runs it: persistent connections (startproject leaves 0, a new
# PostgreSQL connection per request, which no production site keeps). Issue #16.
PEER_CONN_MAX_AGE = "60"


@dataclass
class PeerServer:
    """``bench/peer`` (startproject + wechatpy) under the same gunicorn configuration, with
    ``CONN_MAX_AGE=60`` unless ``extra_env`` says otherwise."""

    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PeerServer:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "DJANGO_"))}
        env.update(
            peer_env(),
            DJANGO_SETTINGS_MODULE="peersite.settings",
            CONN_MAX_AGE=PEER_CONN_MAX_AGE,
        )
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # noqa: SIM115 (lives with the process)
        self.process = subprocess.Popen(  # noqa: S603 (fixed command)
            [sys.executable, "-m", "gunicorn", "peersite.wsgi:application",
             "--bind", f"127.0.0.1:{self.port}", *GUNICORN_ARGS],
            cwd=PEER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            # No health check in a fresh project: GET on the notify answers 405 once up.
            wait_for(f"{self.url}/payment/wxnotify", self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.process)


def peer_env() -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url(PEER_DB),
        "WECHAT_APPID": ACCOUNT.appid,
        "WECHAT_MCH_ID": ACCOUNT.mch_id,
        "WECHAT_MCH_KEY": ACCOUNT.mch_key,
    }


class SimControl:
    """The simulator's control API over ONE keep-alive connection, so that the
    benchmark's own calls do not inflate ``connections_accepted``."""

    def __init__(self, sim: Simulator):
        self.url = sim.url
        self.http = requests.Session()

    def call(self, method: str, path: str, json: dict | None = None) -> dict:
        response = self.http.request(method, self.url + path, json=json, timeout=30)
        response.raise_for_status()
        return response.json()

    def login_code(self, openid: str) -> str:
        return self.call("POST", "/sim/login", {"openid": openid})["code"]

    def set_latency(self, ms: int) -> None:
        self.call("POST", "/sim/faults", {"latency_ms": ms})

    def stats(self) -> dict:
        return self.call("GET", "/sim/stats")

    def close(self) -> None:
        self.http.close()


@dataclass
class Stack:
    sim: Simulator
    ours: ShopServer
    peer: PeerServer | None
    control: SimControl
    log_dir: Path
