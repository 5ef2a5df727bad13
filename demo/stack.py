"""Start the WeChat simulator and the shop (gunicorn) as real processes on loopback.

Used by ``make demo``, the end-to-end tests and the benchmarks: real processes, real
HTTP, real signatures. Production code never imports this.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from wxsim.config import DEMO_APIV3_KEY, DEMO_APPID, DEMO_MCH_ID, DEMO_MCH_KEY, DEMO_SECRET

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WeChatAccount:
    """The credentials the simulator plays WeChat with, and the shop is configured with."""

    appid: str = DEMO_APPID
    app_secret: str = DEMO_SECRET
    mch_id: str = DEMO_MCH_ID
    mch_key: str = DEMO_MCH_KEY
    apiv3_key: str = DEMO_APIV3_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[2]} exited with {process.returncode} at start")
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass  # not listening yet, or still loading the application
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class Simulator:
    account: WeChatAccount
    retry_scale: float = 0.01
    close_min_seconds: float = 300
    log_path: Path | None = None
    # How WeChat Pay v3 signs (wxsim/README.md, "Key modes"); the files it writes for the
    # shop land next to the ready file and are indexed in ``v3`` (its wxsim-v3.json).
    v3_keys: str = "public-key"
    url: str = ""
    process: subprocess.Popen | None = None
    v3: dict = field(default_factory=dict)

    def start(self) -> Simulator:
        folder = Path(tempfile.mkdtemp(prefix="wxsim-"))
        ready = folder / "ready"
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 (lives with the process)
        self.process = subprocess.Popen(  # noqa: S603 (fixed command)
            [
                sys.executable, "-m", "wxsim",
                "--appid", self.account.appid,
                "--secret", self.account.app_secret,
                "--mch-id", self.account.mch_id,
                "--mch-key", self.account.mch_key,
                "--retry-scale", str(self.retry_scale),
                "--close-min-seconds", str(self.close_min_seconds),
                "--ready-file", str(ready),
                "--v3-keys", self.v3_keys,
                "--v3-dir", str(folder / "v3"),
                "--apiv3-key", self.account.apiv3_key,
            ],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the WeChat simulator did not start")
            time.sleep(0.05)
        self.url = ready.read_text().strip()
        self.v3 = json.loads((folder / "v3" / "wxsim-v3.json").read_text(encoding="utf-8"))
        return self

    def v3_settings(self) -> dict[str, str]:
        """The shop's WeChat Pay v3 settings (shopsite/settings.py) for this simulator: the
        merchant key it made, its serial, the APIv3 key and, unless the simulator plays a
        platform-certificate merchant, WeChat Pay's public key and id."""
        index = self.v3
        settings = {
            "WECHAT_API_V3_KEY": index["apiv3_key"],
            "WECHAT_MCH_PRIVATE_KEY_PATH": index["merchant_private_key_path"],
            "WECHAT_MCH_CERT_SERIAL": index["merchant_serial"],
        }
        if self.v3_keys != "certificate":
            settings["WECHAT_PAY_PUBLIC_KEY_PATH"] = index["public_key_path"]
            settings["WECHAT_PAY_PUBLIC_KEY_ID"] = index["public_key_id"]
        return settings

    def control(self, method: str, path: str, json: dict | None = None) -> requests.Response:
        return requests.request(method, self.url + path, json=json, timeout=30)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class ShopServer:
    """gunicorn serving ``shopsite.wsgi`` against ``database_url``, talking to ``sim``."""

    sim: Simulator
    database_url: str
    sign_type: str = "MD5"
    # "v3": new orders go through WeChat Pay v3 (WECHAT_PAY_VERSION) with the simulator's
    # v3 files; notifies then come to /payment/v3/wxnotify (derived from WECHAT_NOTIFY_URL).
    pay_version: str = "v2"
    workers: int = 2
    log_path: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        account = self.sim.account
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="shopsite.settings",
            # One key for all workers: every worker must accept every worker's tokens.
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=self.database_url,
            WECHAT_APPID=account.appid,
            WECHAT_APP_SECRET=account.app_secret,
            WECHAT_MCH_ID=account.mch_id,
            WECHAT_MCH_KEY=account.mch_key,
            WECHAT_SIGN_TYPE=self.sign_type,
            WECHAT_API_BASE=self.sim.url,
            WECHAT_PAY_API_BASE=self.sim.url,
            WECHAT_NOTIFY_URL=f"{self.url}/payment/wxnotify",
        )
        if self.pay_version == "v3":
            env.update(WECHAT_PAY_VERSION="v3", **self.sim.v3_settings())
        env.update(self.extra_env)
        return env

    def start(self) -> ShopServer:
        self.port = self.port or free_port()
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 (lives with the process)
        self.process = subprocess.Popen(  # noqa: S603 (fixed command)
            [
                sys.executable, "-m", "gunicorn", "shopsite.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--timeout", "30",
            ],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(f"{self.url}/healthz", self.process)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        """``python manage.py <args>`` as another process on this server's database and
        settings, as staff or cron run the shop's commands next to it."""
        return subprocess.run(  # noqa: S603 (fixed command)
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip


@dataclass
class Worker:
    """The task queue's worker with the beat scheduler inside it (``celery -A shopsite worker
    --beat``), on ``server``'s settings (database, broker, WeChat) and ``extra_env``."""

    server: ShopServer
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Worker:
        folder = Path(tempfile.mkdtemp(prefix="worker-"))
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 (lives with the process)
        self.process = subprocess.Popen(  # noqa: S603 (fixed command)
            [
                sys.executable, "-m", "celery", "-A", "shopsite", "worker", "--beat",
                "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO",
                # Beat's state in a folder of its own, never the checkout's celerybeat-schedule.
                "--schedule", str(folder / "celerybeat-schedule"),
                "--hostname", f"worker-{secrets.token_hex(4)}@%h",
            ],
            cwd=ROOT, env={**self.server.env(), **self.extra_env},
            stdout=log, stderr=subprocess.STDOUT,
            # Its own process group: stopping it stops the embedded beat too.
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as read:
                read.seek(offset)
                if b" ready." in read.read():
                    return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Celery worker did not start (see {self.log_path})")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class RedisServer:
    """A redis-server of its own on a free loopback port, nothing saved to disk: one that a
    test may stop and start again without touching the machine's shared Redis."""

    binary: str
    log_path: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        import redis

        self.port = self.port or free_port()
        log = open(self.log_path, "ab")  # noqa: SIM115 (lives with the process)
        self.process = subprocess.Popen(  # noqa: S603 (fixed command)
            [
                self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", tempfile.mkdtemp(prefix="redis-"),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=1).ping():
                    return self
            except redis.RedisError:
                pass  # not listening yet
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start (see {self.log_path})")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
