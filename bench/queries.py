"""Queries per request, counted with ``CaptureQueriesContext`` through Django's test client
in this process, against the bench database and the simulator (no injected latency).

Each request is made twice and the second (warm) one is reported, so that one-off work
(first use of a client, content types) does not count. ``queries`` includes the BEGIN and
COMMIT Django records; ``statements`` leaves them out. Not captured: Django's connection
health check (``SELECT 1`` when a persistent connection is first used in a request, on the
server). The peer's notify is counted the same way in a subprocess (``bench.peer_probe``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

from bench.checkout import ADDRESS
from bench.config import ACCOUNT, PEER_DIR, ROOT
from bench.servers import SimControl, peer_env
from bench.wire import Payment, notify_body

Call = Callable[[], object]


def capture(call: Call) -> tuple[int, list[str], object]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        response = call()
    return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries], response


def measure(control: SimControl) -> tuple[list[dict], dict[str, list[str]]]:
    """``[{request, queries, status}]`` and the SQL of each, for the results file."""
    from django.test import Client

    client = Client()
    rows: list[dict] = []
    sql: dict[str, list[str]] = {}

    def record(name: str, prepare: Callable[[], Call]) -> object:
        prepare()()  # cold
        count, statements, response = capture(prepare())
        rows.append({"server": "ours", "request": name, "queries": count,
                     "statements": _statements(statements), "status": response.status_code})
        sql[name] = statements
        return response

    openid = "obench-queries"
    record("POST /accounts/login", lambda: _login(client, control, openid))
    token = _login(client, control, openid)().json()["token"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    product_id = _product()
    body = json.dumps(
        {"items": [{"product_id": product_id, "quantity": 1}], "address": ADDRESS}
    )
    created = record(
        "POST /payment/order",
        same(lambda: client.post("/payment/order", body, content_type="application/json", **auth)),
    ).json()
    _fill_orders(openid, product_id, 25)
    record("GET /orders (page of 20)", same(lambda: client.get("/orders", **auth)))
    detail = f"/orders/{created['out_trade_no']}"
    record("GET /orders/<out_trade_no>", same(lambda: client.get(detail, **auth)))
    record("POST /payment/wxnotify", lambda: _notify_call(client, openid))
    peer = peer_notify()
    rows.append({"server": "peer", "request": "POST /payment/wxnotify", "queries": peer["queries"],
                 "statements": _statements(peer["sql"]), "status": 200})
    sql["POST /payment/wxnotify (peer)"] = peer["sql"]
    return rows, sql


def _statements(sql: list[str]) -> int:
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return sum(1 for s in sql if not s.startswith(control))


def peer_notify() -> dict:
    """The peer's notify through its own test client, in a subprocess with its settings."""
    env = {**os.environ, **peer_env(), "PYTHONPATH": str(PEER_DIR)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(  # noqa: S603 (fixed command)
        [sys.executable, "-m", "bench.peer_probe"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(done.stdout)


def same(call: Call) -> Callable[[], Call]:
    """For requests that can simply be repeated."""
    return lambda: call


def _login(client, control: SimControl, openid: str) -> Call:
    code = control.login_code(openid)  # outside the capture: this is the phone's part
    data = json.dumps({"code": code})
    return lambda: client.post("/accounts/login", data, content_type="application/json")


def _notify_call(client, openid: str) -> Call:
    """A fresh unpaid order and its signed notify, prepared outside the capture."""
    import secrets

    from accounts.models import User
    from bench.notify import seed_ours

    user = User.objects.get(openid=openid)
    payment = Payment("BQ" + secrets.token_hex(12), 4500, openid, "4200" + secrets.token_hex(10))
    seed_ours([payment], [user])
    body = notify_body(payment, ACCOUNT)
    return lambda: client.post("/payment/wxnotify", body, content_type="text/xml")


def _product() -> int:
    from orders.models import Product

    return Product.objects.create(name="Bench oolong", price=4500, stock=None).pk


def _fill_orders(openid: str, product_id: int, count: int) -> None:
    """Enough orders, each with one item, for a full first page."""
    import secrets

    from django.utils import timezone

    from accounts.models import User
    from orders.models import Order, OrderItem

    user = User.objects.get(openid=openid)
    now = timezone.now()
    orders = Order.objects.bulk_create(
        Order(
            out_trade_no="BF" + secrets.token_hex(12), user=user, openid=openid, body="Tea",
            total_fee=4500, spbill_create_ip="127.0.0.1",
            created_at=now - timedelta(minutes=i + 1), expires_at=now + timedelta(minutes=30),
        )
        for i in range(count)
    )
    OrderItem.objects.bulk_create(
        OrderItem(order=o, product_id=product_id, product_name="Tea", unit_price=4500, quantity=1)
        for o in orders
    )
