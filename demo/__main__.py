"""``make demo``: a whole mini-program purchase against the local WeChat simulator.

Migrates SQLite, loads a small catalogue and a staff user, starts the simulator and the
shop (gunicorn), plays login → order → wx.requestPayment → notify → paid step by step,
then leaves the server up for admin. ``DEMO_ONCE=1`` exits after the flow instead, with
status 0 only if the order ended paid.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

from core.money import yuan
from demo.miniprogram import FlowError, MiniProgram
from demo.stack import ROOT, ShopServer, Simulator, WeChatAccount, free_port

DATABASE_URL = f"sqlite:///{ROOT / 'db.sqlite3'}"
LOG_DIR = ROOT / "var"


def step(number: int, title: str, detail: str = "") -> None:
    print(f"\n[{number}] {title}", flush=True)
    for line in detail.splitlines():
        print(f"    {line}", flush=True)


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 (fixed command)
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def prepare_database(password: str) -> list[dict]:
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "DJANGO_SECRET_KEY": "demo-setup-only"}
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    out = manage("setup_demo_shop", f"--password={password}", env=env)
    return json.loads(out.strip().splitlines()[-1])["products"]


def play(phone: MiniProgram, sim: Simulator, products: list[dict]) -> dict:
    code = phone.wx_login()
    step(1, "wx.login() on the phone", f"code = {code}")
    phone.login()
    step(2, "POST /accounts/login", f"openid {phone.openid} → bearer token {phone.token[:16]}…")

    picked = [(products[0], 2), (products[2], 1)]
    order = phone.order([{"product_id": p["id"], "quantity": n} for p, n in picked])
    lines = "\n".join(f"{n} x {p['name']} at {yuan(p['price'])}" for p, n in picked)
    step(
        3,
        "POST /payment/order (the server prices it and calls unifiedorder)",
        f"{lines}\nout_trade_no {order['out_trade_no']}, total {yuan(order['total_fee'])}",
    )
    step(
        4,
        "wx.requestPayment(payment): the signed parameters",
        json.dumps(order["payment"], indent=2),
    )

    paid = phone.request_payment(order["payment"])
    step(
        5,
        "The shopper confirms; WeChat checks paySign and charges",
        f"transaction_id {paid['transaction_id']}",
    )

    final = phone.wait_for_status(order["out_trade_no"])
    attempts = sim.control("GET", f"/sim/trades/{order['out_trade_no']}").json()["notify_attempts"]
    delivered = "; ".join(
        f"attempt {a['attempt']}: HTTP {a['status']} {a['reply'][:60]}" for a in attempts
    )
    step(6, "WeChat → POST /payment/wxnotify (signed XML)", delivered or "no attempt yet")
    step(
        7,
        f"GET /orders/{order['out_trade_no']} (the mini-program polls)",
        f"status {final['status']}, paid_at {final['paid_at']}",
    )
    return final


def main() -> int:
    # A plain `kill` must stop the simulator and gunicorn too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    once = os.environ.get("DEMO_ONCE") == "1"
    password = secrets.token_urlsafe(9)
    LOG_DIR.mkdir(exist_ok=True)
    print("Preparing SQLite (db.sqlite3): migrations, static files, catalogue, staff…", flush=True)
    products = prepare_database(password)

    sim = Simulator(WeChatAccount(), retry_scale=0.01, log_path=LOG_DIR / "wxsim.log").start()
    shop = ShopServer(
        sim,
        DATABASE_URL,
        port=8000 if _port_free(8000) else free_port(),
        log_path=LOG_DIR / "server.log",
    )
    try:
        shop.start()
        print(f"WeChat simulator at {sim.url}; shop (gunicorn) at {shop.url}", flush=True)
        final = play(MiniProgram(shop.url, sim), sim, products)
    except FlowError as exc:
        print(f"\nThe purchase failed: {exc}\nLogs: {LOG_DIR}", file=sys.stderr)
        final = {"status": "failed"}
    ok = final["status"] == "paid"
    print(f"\n{'PAID' if ok else 'NOT PAID'}: the order ended {final['status']}.", flush=True)
    try:
        if not once:
            print(
                f"\nAdmin: {shop.url}/admin/  user admin, password {password}\n"
                f"Logs: {LOG_DIR}/server.log, {LOG_DIR}/wxsim.log. Ctrl-C stops.",
                flush=True,
            )
            while shop.process.poll() is None:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        shop.stop()
        sim.stop()
    return 0 if ok else 1


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


if __name__ == "__main__":
    sys.exit(main())
