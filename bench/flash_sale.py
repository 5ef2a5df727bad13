"""A flash sale (issue #16 item 3): one product, SALE_UNITS units, SHOPPERS shoppers each
placing ORDERS_EACH orders of one unit at once, at serving.CONCURRENCY, WeChat answering
in serving.LATENCY_MS. Exactly SALE_UNITS orders must succeed and the rest get the 409 of
out of stock, the stock must end at 0, and no transaction may deadlock.

Next to it, the same crowd ordering one product with unlimited stock: every order must
succeed, and none takes a lock on the product (orders/services.py), so none waits for
another; and once more with the products locked as every order locked them before #16
(bench/wsgi_products_locked.py), for the difference.

The shop runs with its production caps (ORDER_THROTTLE_RATE, ORDER_MAX_UNPAID_PER_SHOPPER,
ORDER_MAX_UNPAID_UNITS_PER_SHOPPER at their defaults): ORDERS_EACH orders of one unit stay
under them, so every refusal is the stock's, which the check confirms from each 409's
detail. Each scenario runs on a fresh server of the sync baseline and of the chosen
gthread model (bench/serving.py), rounds alternating, medians reported; the data are
checked after every run.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter

from bench import checkout, django_env, load, pg, serving
from bench.config import OUR_DB, SERVING_DB, Options
from bench.servers import Stack

SALE_UNITS = 500
SHOPPERS = 300
ORDERS_EACH = 2  # 600 orders of one unit for 500 units: 500 succeed, 100 are refused
OUT_OF_STOCK = "Not enough stock for "
# The production defaults (shopsite/settings.py), set explicitly: bench/servers.py's
# OUR_ENV lifts them for the other phases.
CAPS_ENV = {
    "ORDER_THROTTLE_RATE": "30/min",
    "ORDER_MAX_UNPAID_PER_SHOPPER": "5",
    "ORDER_MAX_UNPAID_UNITS_PER_SHOPPER": "200",
}
SHIPPED_APP = "shopsite.wsgi:application"
# (name, units or None for unlimited, the WSGI application)
SCENARIOS = (
    ("flash sale: 500 units", SALE_UNITS, SHIPPED_APP),
    ("popular product, unlimited stock", None, SHIPPED_APP),
    # The same, with every product locked as orders did before #16 (bench/wsgi_products_locked.py).
    ("popular product, unlimited, locked as before", None,
     "bench.wsgi_products_locked:application"),
)
MODELS = (serving.BASELINE, serving.CHOSEN)


def run(stack: Stack, options: Options) -> tuple[list[dict], list[str]]:
    django_env.use_database(SERVING_DB)
    try:
        tokens = serving.shoppers("obench-flash-", SHOPPERS)
        rows, problems = [], []
        for rep in range(options.repeat):
            models = MODELS if rep % 2 == 0 else tuple(reversed(MODELS))
            for model in models:
                for scenario in SCENARIOS:
                    row, found = _one(stack, options, model, scenario, tokens, f"r{rep}")
                    rows.append(row)
                    problems += found
    finally:
        stack.control.set_latency(0)
        django_env.use_database(OUR_DB)
    return rows, problems


def _product(stock: int | None) -> int:
    from orders.models import Product

    return Product.objects.create(name="Flash sale tea", price=9900, stock=stock).pk


def _requests(tokens: list[str], product_id: int) -> list[load.Req]:
    body = json.dumps(
        {"items": [{"product_id": product_id, "quantity": 1}], "address": checkout.ADDRESS}
    ).encode()
    reqs = [
        load.Req("POST", checkout.ORDER_PATH, body,
                 {"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                  "Connection": "close"})
        for token in tokens
        for _ in range(ORDERS_EACH)
    ]
    random.Random(16).shuffle(reqs)  # one shopper's two orders land anywhere in the crowd
    return reqs


def _one(
    stack: Stack, options: Options, model: serving.Model,
    scenario: tuple[str, int | None, str], tokens: list[str], tag: str,
) -> tuple[dict, list[str]]:
    name, stock, app = scenario
    serving.empty_orders()
    product_id = _product(stock)
    outcomes: Counter = Counter()

    def check(status: int, body: bytes) -> bool:
        if checkout.is_order_created(status, body):
            outcomes["sold"] += 1
            return True
        if status == 409 and json.loads(body).get("detail", "").startswith(OUT_OF_STOCK):
            outcomes["out_of_stock"] += 1
            return True
        outcomes[f"other {status}"] += 1
        return False

    stack.control.set_latency(serving.LATENCY_MS)
    server = serving.start(stack, model, f"gunicorn-flash-{model.worker_class}.log", app=app,
                           **CAPS_ENV)
    try:
        deadlocks_before = _deadlocks()
        before = stack.control.stats()
        with serving.ConnectionPeak(SERVING_DB) as connections:
            result = load.run(server.url, _requests(tokens, product_id), serving.CONCURRENCY,
                              options.time_limit, check)
        after = stack.control.stats()
        deadlocks = _deadlocks() - deadlocks_before
    finally:
        server.stop()
        stack.control.set_latency(0)
    unified = (after["requests"].get("/pay/unifiedorder", 0)
               - before["requests"].get("/pay/unifiedorder", 0))
    found = _verify(stock, product_id, result, outcomes, unified, deadlocks)
    row = {
        "scenario": name, "model": model.name, "round": tag, "shoppers": len(tokens),
        "concurrency": serving.CONCURRENCY, "latency_ms": serving.LATENCY_MS,
        **result.summary(), "sold": outcomes["sold"], "out_of_stock": outcomes["out_of_stock"],
        "orders_per_s": round(outcomes["sold"] / result.elapsed, 1) if result.elapsed else 0.0,
        "deadlocks": deadlocks, "db_connections_peak": connections.peak,
        "load_1m": round(os.getloadavg()[0], 2), "verified": not found,
    }
    print(f"  {name:<34} {model.name:<34} {row['rps']:>7.1f} req/s  "
          f"sold {row['sold']:>3}  409 {row['out_of_stock']:>3}  p50 {row['p50_ms']:>7.2f} ms  "
          f"p99 {row['p99_ms']:>7.2f} ms  deadlocks {deadlocks}  errors {row['errors']}",
          flush=True)
    return row, [f"flash sale {name}, {model.name} {tag}: {p}" for p in found]


def _deadlocks() -> int:
    return int(pg.fetchall("postgres", "SELECT deadlocks FROM pg_stat_database "
                                       "WHERE datname = %s", [SERVING_DB])[0][0])


def _verify(
    stock: int | None, product_id: int, result: load.LoadResult, outcomes: Counter,
    unified: int, deadlocks: int,
) -> list[str]:
    """The answers and the rows say the same: exactly the units sold, the rest refused
    for stock, nothing oversold, nothing left over, no deadlock."""
    from django.db.models import Count, Sum

    from orders.models import Order, OrderItem, Product

    attempts = SHOPPERS * ORDERS_EACH
    sold = attempts if stock is None else min(stock, attempts)
    found = []
    if result.unsent or result.errors:
        found.append(f"{result.unsent} unsent, {result.errors} errors: "
                     f"{json.dumps(result.summary()['error_samples'])[:300]}")
    if (outcomes["sold"], outcomes["out_of_stock"]) != (sold, attempts - sold):
        found.append(f"answers {dict(outcomes)}, expected {sold} sold and "
                     f"{attempts - sold} out of stock")
    left = Product.objects.get(pk=product_id).stock
    if left != (None if stock is None else stock - sold):
        found.append(f"stock left {left}")
    items = OrderItem.objects.filter(product_id=product_id)
    units = items.aggregate(units=Sum("quantity"))["units"] or 0
    orders, prepaid = Order.objects.count(), Order.objects.exclude(prepay_id="").count()
    if not units == orders == prepaid == outcomes["sold"]:
        found.append(f"{outcomes['sold']} answered 201; {orders} orders, {prepaid} with a "
                     f"prepay_id, {units} units ordered")
    if items.filter(stock_reserved=stock is None).exists():
        found.append("an item's stock_reserved does not match the product's stock")
    most = Order.objects.values("user").annotate(n=Count("pk")).order_by("-n").first()
    if most and most["n"] > ORDERS_EACH:
        found.append(f"a shopper has {most['n']} orders")
    if unified != outcomes["sold"]:
        found.append(f"{outcomes['sold']} orders made {unified} unifiedorder calls")
    if deadlocks:
        found.append(f"{deadlocks} deadlocks")
    return found
