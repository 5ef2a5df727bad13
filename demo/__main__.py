"""``make demo``: a whole mini-program purchase against the local WeChat simulator.

Migrates SQLite, loads a small catalogue and a staff user, starts the simulator and the
shop (gunicorn, serving the catalogue's pictures), plays browse → login → order with a
delivery address → wx.requestPayment → notify → paid → shipped by the warehouse's file
(``manage.py ship_orders``) → the shipping uploaded to WeChat → the shopper confirms receipt
in WeChat → WeChat's settlement push (safe mode) → received, step by step, then leaves the
server up for admin. ``DEMO_ONCE=1`` exits after the flow instead, with status 0 only if the
order ended paid, shipped, uploaded and received.

``DEMO_PAY_VERSION=v3`` plays the same purchase through WeChat Pay API v3: the simulator
writes its v3 files (merchant key, serial, APIv3 key, WeChat Pay public key and id) and the
shop is started with them and ``WECHAT_PAY_VERSION=v3``; the payment is a JSAPI prepay, an
RSA paySign and a signed, encrypted JSON notify to /payment/v3/wxnotify.

Without Redis the task queue runs in-process (shopsite/celery.py): the upload happens right
after ``ship_orders`` commits, in that process.
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
from core.privacy import mask_phone
from demo.miniprogram import FlowError, MiniProgram
from demo.stack import ROOT, ShopServer, Simulator, WeChatAccount, free_port

DATABASE_URL = f"sqlite:///{ROOT / 'db.sqlite3'}"
LOG_DIR = ROOT / "var"
# What the shopper buys (names from setup_demo_shop): two things that ship and a voucher
# that does not; the address is needed because some of it ships.
DEMO_CART = [("Oolong tea 250g", 2), ("Celadon tea cup", 1), ("Tea tasting e-voucher", 1)]
TRACKING_NO = "SF1234567890"
# The message push settings (WeChat console → 消息推送) the simulator signs and encrypts with.
MESSAGE_TOKEN = "demo-push-token"  # noqa: S105 (the demo's, known to the simulator)
MESSAGE_AES_KEY = "DemoAesKey0123456789abcdefghijklmnopqrstuvw"  # 43 characters
CSV_HEADER = "out_trade_no,logistics_type,express_company,tracking_no"  # the warehouse's file


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


def prepare_database(password: str) -> None:
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "DJANGO_SECRET_KEY": "demo-setup-only"}
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    manage("setup_demo_shop", f"--password={password}", env=env)


def pay_version() -> str:
    version = os.environ.get("DEMO_PAY_VERSION", "v2").lower()
    if version not in ("v2", "v3"):
        raise SystemExit("DEMO_PAY_VERSION must be v2 or v3")
    return version


def play(phone: MiniProgram, sim: Simulator, shop: ShopServer) -> dict:
    catalogue = phone.browse()
    by_name = {p["name"]: p for p in catalogue}
    missing = [name for name, _ in DEMO_CART if name not in by_name]
    if missing:
        raise FlowError(f"not on sale: {', '.join(missing)} (setup_demo_shop makes them)")
    image = by_name[DEMO_CART[0][0]]["image"]
    picture = phone.http.get(image, timeout=30) if image else None
    shelves = "\n".join(
        f"{p['name']} {yuan(p['price'])}{'' if p['requires_shipping'] else ' (nothing to ship)'}"
        for p in catalogue
    )
    served = (
        f"HTTP {picture.status_code} {picture.headers.get('Content-Type')}, "
        f"{len(picture.content):,} bytes"
        if picture is not None
        else "none"
    )
    step(1, "GET /products (the catalogue, no token)", f"{shelves}\npicture {image}: {served}")
    if picture is None or picture.status_code != 200:
        raise FlowError("the product's picture was not served")

    code = phone.wx_login()
    step(2, "wx.login() on the phone", f"code = {code}")
    phone.login()
    step(3, "POST /accounts/login", f"openid {phone.openid} → bearer token {phone.token[:16]}…")

    address = phone.choose_address()
    step(4, "wx.chooseAddress(): where it ships", _address_line(address))

    picked = [(by_name[name], n) for name, n in DEMO_CART]
    remark = "Please ring twice"
    order = phone.order([{"product_id": p["id"], "quantity": n} for p, n in picked], remark=remark)
    lines = "\n".join(f"{n} x {p['name']} at {yuan(p['price'])}" for p, n in picked)
    v3 = shop.pay_version == "v3"
    prepay = "POST /v3/pay/transactions/jsapi" if v3 else "unifiedorder"
    step(
        5,
        f"POST /payment/order with the address (the server prices it, calls {prepay})",
        f"{lines}\nremark {remark!r}\n"
        f"out_trade_no {order['out_trade_no']}, total {yuan(order['total_fee'])}",
    )
    step(
        6,
        "wx.requestPayment(payment): the signed parameters",
        json.dumps(order["payment"], indent=2),
    )

    paid = phone.request_payment(order["payment"])
    transaction_id = paid["transaction_id"]
    step(
        7,
        "The shopper confirms; WeChat checks paySign and charges",
        f"transaction_id {paid['transaction_id']}",
    )

    number = order["out_trade_no"]
    final = phone.wait_for_status(number)
    attempts = sim.control("GET", f"/sim/trades/{number}").json()["notify_attempts"]
    delivered = "; ".join(
        f"attempt {a['attempt']}: HTTP {a['status']} {a['reply'][:60]}" for a in attempts
    )
    notified = (
        "WeChat → POST /payment/v3/wxnotify (signed JSON, AES-256-GCM resource)"
        if v3
        else "WeChat → POST /payment/wxnotify (signed XML)"
    )
    step(8, notified, delivered or "no attempt yet")
    step(
        9,
        f"GET /orders/{number} (the mini-program polls)",
        f"status {final['status']}, paid_at {final['paid_at']}, "
        f"fulfilment {final['fulfilment_status']}",
    )
    if final["status"] != "paid":
        return final

    sheet = LOG_DIR / "shipments.csv"
    rows = f"{CSV_HEADER}\n{number},express,SF,{TRACKING_NO}"
    sheet.write_text(rows + "\n", encoding="utf-8")
    run = shop.manage("ship_orders", str(sheet))
    if run.returncode != 0:
        raise FlowError(f"ship_orders failed: {(run.stderr or run.stdout).strip()[:300]}")
    said = "\n".join(f"→ {line}" for line in run.stdout.strip().splitlines())
    step(
        10,
        f"The warehouse: python manage.py ship_orders {sheet.relative_to(ROOT)}",
        f"{rows}\n{said}",
    )
    shipped = phone.call("GET", f"/orders/{number}").json()
    shipments = "; ".join(
        f"{s['logistics_type']} {s['express_company']} {s['tracking_no']} at {s['shipped_at']}, "
        f"upload {s['upload_status']}"
        for s in shipped["shipments"]
    )
    step(
        11,
        f"GET /orders/{number}",
        f"fulfilment {shipped['fulfilment_status']}: {shipments or 'no shipment'}\n"
        f"to {_address_line(shipped['address'] or {})}",
    )

    at_wechat = sim.control("GET", f"/sim/shipping/{transaction_id}").json()
    upload = at_wechat["shipment"]
    step(
        12,
        "WeChat's order shipping management has it (upload_shipping_info, after the commit)",
        f"{transaction_id}: order_state {at_wechat['order_state']}, "
        + (
            f"{len(upload['shipping_list'])} parcel(s), tracking "
            f"{', '.join(e['tracking_no'] for e in upload['shipping_list'])}"
            if upload
            else "nothing uploaded"
        ),
    )
    if not upload:
        raise FlowError("the shipping was not uploaded to WeChat")

    confirmed = sim.control(
        "POST", f"/sim/shipping/{transaction_id}", {"action": "confirm_receive"}
    )
    if confirmed.status_code != 200:
        raise FlowError(f"confirming receipt in WeChat failed: {confirmed.text[:300]}")
    push = sim.control(
        "POST",
        "/sim/push",
        {
            "url": f"{shop.url}/wechat/message",
            "token": MESSAGE_TOKEN,
            "mode": "safe",
            "aes_key": MESSAGE_AES_KEY,
            "settlement": {"transaction_id": transaction_id, "settled": True},
        },
    ).json()
    replies = "; ".join(f"HTTP {a['status']} {a['reply'][:20]!r}" for a in push["attempts"])
    event = push["event"]
    final = phone.call("GET", f"/orders/{number}").json()
    step(
        13,
        "The shopper confirms receipt in WeChat; WeChat → POST /wechat/message (safe mode)",
        f"{event['Event']}: confirm_receive_time {event.get('confirm_receive_time')}, "
        f"settlement_time {event.get('settlement_time')}\n{replies}\n"
        f"GET /orders/{number}: status {final['status']}, "
        f"fulfilment {final['fulfilment_status']}",
    )
    return final


def _address_line(address: dict) -> str:
    """The address as the demo prints it: the phone number masked (personal data)."""
    place = "".join(
        address.get(key, "") for key in ("province_name", "city_name", "county_name", "detail_info")
    )
    return (
        f"{address.get('user_name', '')} {mask_phone(address.get('tel_number'))}, {place} "
        f"{address.get('postal_code', '')}"
    ).strip()


def main() -> int:
    # A plain `kill` must stop the simulator and gunicorn too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    once = os.environ.get("DEMO_ONCE") == "1"
    version = pay_version()
    password = secrets.token_urlsafe(9)
    LOG_DIR.mkdir(exist_ok=True)
    print("Preparing SQLite (db.sqlite3): migrations, static files, catalogue, staff…", flush=True)
    prepare_database(password)

    sim = Simulator(WeChatAccount(), retry_scale=0.01, log_path=LOG_DIR / "wxsim.log").start()
    shop = ShopServer(
        sim,
        DATABASE_URL,
        pay_version=version,
        port=8000 if _port_free(8000) else free_port(),
        log_path=LOG_DIR / "server.log",
        # The catalogue's pictures come from the app itself here (nginx in production).
        extra_env={
            "SERVE_MEDIA": "1",
            "WECHAT_MESSAGE_TOKEN": MESSAGE_TOKEN,
            "WECHAT_MESSAGE_AES_KEY": MESSAGE_AES_KEY,
        },
    )
    try:
        shop.start()
        print(
            f"WeChat simulator at {sim.url}; shop (gunicorn) at {shop.url}; WeChat Pay {version}",
            flush=True,
        )
        final = play(MiniProgram(shop.url, sim), sim, shop)
    except FlowError as exc:
        print(f"\nThe purchase failed: {exc}\nLogs: {LOG_DIR}", file=sys.stderr)
        final = {"status": "failed", "fulfilment_status": "unknown", "shipments": []}
    ok = (
        final["status"] == "paid"
        and final["fulfilment_status"] == "received"
        and bool(final["shipments"])
        and all(s["upload_status"] == "uploaded" for s in final["shipments"])
    )
    if ok:
        print("\nDONE: the order was paid, shipped, uploaded to WeChat and received.", flush=True)
    else:
        print(
            f"\nNOT DONE: the order ended {final['status']}, {final['fulfilment_status']}.",
            flush=True,
        )
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
