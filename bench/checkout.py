"""Order creation: ``POST /payment/order`` by many logged-in shoppers, with the simulator
adding a fixed latency to every WeChat answer, and the connections the workers open to it.
"""

from __future__ import annotations

import json
import random

from bench import load
from bench.config import Options
from bench.servers import Stack

LATENCY_MS = 30
PRODUCTS = 10
ORDER_PATH = "/payment/order"
# Every bench order ships to the same address (what wx.chooseAddress gives, snake_case).
ADDRESS = {
    "user_name": "张三",
    "tel_number": "020-81167888",
    "province_name": "广东省",
    "city_name": "广州市",
    "county_name": "海珠区",
    "detail_info": "新港中路397号",
    "postal_code": "510000",
}


def login_shoppers(stack: Stack, count: int) -> list[str]:
    """Tokens for ``count`` shoppers, each logged in through ``/accounts/login``."""
    codes = [stack.control.login_code(f"obench-shopper-{i}") for i in range(count)]
    reqs = [
        load.Req("POST", "/accounts/login", json.dumps({"code": code}).encode(), _JSON)
        for code in codes
    ]
    tokens: list[str] = []

    def check(status: int, body: bytes) -> bool:
        if status != 200:
            return False
        tokens.append(json.loads(body)["token"])
        return True

    result = load.run(stack.ours.url, reqs, 8, 120, check)
    if result.errors or result.unsent:
        raise RuntimeError(f"login failed: {result.summary()}")
    return tokens


def products() -> list[int]:
    from orders.models import Product

    made = Product.objects.bulk_create(
        Product(name=f"Bench green tea {i}", price=1000 + 100 * i, stock=None)
        for i in range(PRODUCTS)
    )
    return [p.pk for p in made]


def order_requests(tokens: list[str], product_ids: list[int], count: int) -> list[load.Req]:
    rng = random.Random(6)
    reqs = []
    for i in range(count):
        lines = rng.sample(product_ids, rng.randint(1, 2))
        items = [{"product_id": pid, "quantity": rng.randint(1, 3)} for pid in lines]
        headers = {**_JSON, "Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        body = json.dumps({"items": items, "address": ADDRESS}).encode()
        reqs.append(load.Req("POST", ORDER_PATH, body, headers))
    return reqs


def is_order_created(status: int, body: bytes) -> bool:
    return status == 201 and bool(json.loads(body).get("payment", {}).get("paySign"))


# (name, upstream latency ms, client concurrency, share of --orders)
RUNS = (
    ("no upstream latency", 0, 4, 0.3),
    (f"+{LATENCY_MS} ms, c=workers", LATENCY_MS, 4, 1.0),
    (f"+{LATENCY_MS} ms, c=32", LATENCY_MS, 32, 1.0),
)


def run(stack: Stack, options: Options) -> tuple[dict, list[str]]:
    tokens = login_shoppers(stack, options.shoppers)
    product_ids = products()
    before = stack.control.stats()
    rows, problems = [], []
    try:
        for name, latency, concurrency, share in RUNS:
            stack.control.set_latency(latency)
            reqs = order_requests(tokens, product_ids, max(1, int(options.orders * share)))
            result = load.run(stack.ours.url, reqs, concurrency, options.time_limit,
                              is_order_created)
            if result.errors or result.unsent:
                problems.append(f"order creation {name}: {result.summary()}")
            rows.append({"run": name, "latency_ms": latency, "concurrency": concurrency,
                         **result.summary()})
            print(_line(rows[-1]), flush=True)
    finally:
        stack.control.set_latency(0)
    after = stack.control.stats()
    return _summary(rows, before, after, len(tokens)), problems + _verify(rows)


def _summary(rows: list[dict], before: dict, after: dict, shoppers: int) -> dict:
    orders = sum(r["ok"] for r in rows)
    connections = after["connections_accepted"] - before["connections_accepted"]
    unified = _requests(after, "/pay/unifiedorder") - _requests(before, "/pay/unifiedorder")
    with_latency = next(r for r in rows if r["latency_ms"] and r["concurrency"] == 4)
    return {
        "runs": rows,
        "shoppers": shoppers,
        "orders_created": orders,
        "unifiedorder_calls": unified,
        "sim_connections_accepted": connections,
        "connections_per_1000_orders": round(connections * 1000 / orders, 2) if orders else None,
        "overhead_p50_ms": round(with_latency["p50_ms"] - LATENCY_MS, 2),
        "no_latency_p50_ms": rows[0]["p50_ms"],
    }


def _requests(stats: dict, path: str) -> int:
    return int(stats.get("requests", {}).get(path, 0))


def _verify(rows: list[dict]) -> list[str]:
    """Every 201 left an order with a prepay_id (and nothing else was created)."""
    from orders.models import Order

    made = Order.objects.filter(user__openid__startswith="obench-shopper-")
    ok = sum(r["ok"] for r in rows)
    total, prepaid = made.count(), made.exclude(prepay_id="").count()
    if total == prepaid == ok:
        return []
    return [f"order creation: {ok} answered 201, {total} orders exist, {prepaid} with prepay_id"]


def _line(row: dict) -> str:
    return (
        f"  order {row['run']:<22} {row['rps']:>7.1f} orders/s  p50 {row['p50_ms']:>7.2f} ms  "
        f"p99 {row['p99_ms']:>7.2f} ms  errors {row['errors']}"
    )


_JSON = {"Content-Type": "application/json"}
