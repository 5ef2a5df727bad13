"""Growth: notify and order-list latency as orders_order grows (10^4, then --growth rows),
and the plans of the hot queries (``EXPLAIN (ANALYZE, BUFFERS)``), seq scans flagged.

Runs on its own database (GROWTH_DB) with its own instance of our server, so that the
sizes are the table's real sizes whatever the other phases inserted.

Rows are made with ``generate_series`` straight in SQL: GROWTH_USERS shoppers share them
evenly; 70 % paid, 25 % closed, 5 % unpaid, one item each, created 20 s apart back in time.
"""

from __future__ import annotations

import time

from bench import django_env, load, notify, pg
from bench.config import ACCOUNT, GROWTH_DB, Options, database_url
from bench.queries import capture
from bench.servers import Stack, start_ours
from bench.wire import notify_body

GROWTH_USERS = 1000
SIZES_ALWAYS = (10_000,)

USERS_SQL = """
INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email,
    is_staff, is_active, date_joined, openid, unionid, session_key, token_version)
SELECT '!', false, 'wx_ogrow-' || g, '', '', '', false, true, now(), 'ogrow-' || g, '', '', 0
FROM generate_series(0, %(users)s - 1) g
ON CONFLICT DO NOTHING
"""

ORDERS_SQL = """
WITH u AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(openid ORDER BY id) AS oids
           FROM accounts_user WHERE openid LIKE 'ogrow-%%'),
     s AS (SELECT g, now() - g * interval '20 seconds' AS t,
                  CASE WHEN g %% 20 < 14 THEN 'paid' WHEN g %% 20 < 19 THEN 'closed'
                       ELSE 'unpaid' END AS st
           FROM generate_series(%(first)s, %(last)s) g)
INSERT INTO orders_order (out_trade_no, openid, body, total_fee, status, sign_type,
    spbill_create_ip, prepay_id, transaction_id, paid_at, created_at, expires_at, closed_at,
    needs_attention, attention_reason, user_id, close_pending_at_wechat, notify_url,
    idempotency_key, paid_fee, remark, fulfilment_status, pay_version)
SELECT 'G' || lpad(g::text, 10, '0') || substr(md5(g::text), 1, 21),
       u.oids[1 + g %% %(users)s], 'Oolong tea 250g', 100 + g %% 10000, st, 'MD5', '127.0.0.1',
       'wx' || md5(g::text), CASE WHEN st = 'paid' THEN '4200G' || lpad(g::text, 12, '0') END,
       CASE WHEN st = 'paid' THEN t + interval '1 minute' END, t, t + interval '30 minutes',
       CASE WHEN st = 'closed' THEN t + interval '31 minutes' END,
       false, '', u.ids[1 + g %% %(users)s], false, '', '',
       CASE WHEN st = 'paid' THEN 100 + g %% 10000 END, '', 'unfulfilled', 'v2'
FROM s, u
"""

ITEMS_SQL = """
INSERT INTO orders_orderitem (product_name, unit_price, quantity, order_id, product_id,
    stock_reserved)
SELECT body, total_fee, 1, id, %(product)s, false FROM orders_order
WHERE id > %(after_id)s AND out_trade_no LIKE 'G%%'
"""


def grow_to(size: int, product_id: int) -> dict:
    """Add generated orders until orders_order has ``size`` rows; VACUUM ANALYZE."""
    began = time.perf_counter()
    pg.execute(GROWTH_DB, USERS_SQL, {"users": GROWTH_USERS})
    (count, max_id, generated), = pg.fetchall(
        GROWTH_DB,
        "SELECT count(*), coalesce(max(id), 0), count(*) FILTER (WHERE out_trade_no LIKE 'G%')"
        " FROM orders_order",
    )
    if size > count:
        bounds = {"first": generated, "last": generated + size - count - 1}
        pg.execute(GROWTH_DB, ORDERS_SQL, {**bounds, "users": GROWTH_USERS})
        pg.execute(GROWTH_DB, ITEMS_SQL, {"product": product_id, "after_id": max_id})
    pg.execute(GROWTH_DB, "VACUUM ANALYZE orders_order, orders_orderitem")
    rows = pg.fetchall(GROWTH_DB, "SELECT count(*) FROM orders_order")[0][0]
    return {"orders": rows, "fill_seconds": round(time.perf_counter() - began, 1)}


def measure(url: str, options: Options, users: list, tag: str) -> tuple[dict, list[str]]:
    """Notify and list latency at the current size, at concurrency 8."""
    payments = notify.make_payments(tag, options.growth_probe, users)
    notify.seed_ours(payments, users)
    bodies = [notify_body(p, ACCOUNT) for p in payments]
    notified = notify.deliver(url, bodies, 8, options.time_limit)
    problems = notify.verify_ours(tag, payments, 1)
    listed = load.run(url, _list_requests(options.growth_probe), 8, options.time_limit,
                      _is_full_page)
    if listed.errors or listed.unsent:
        problems.append(f"growth {tag} list: {listed.summary()}")
    return {"notify": notified.summary(), "order_list": listed.summary()}, problems


def _list_requests(count: int) -> list[load.Req]:
    from accounts.models import User
    from accounts.tokens import token_issue

    tokens = [token_issue(user=user) for user in User.objects.filter(openid__startswith="ogrow-")]
    return [
        load.Req("GET", "/orders", None, {"Authorization": f"Bearer {tokens[i % len(tokens)]}"})
        for i in range(count)
    ]


def _is_full_page(status: int, body: bytes) -> bool:
    return status == 200 and body.count(b'"out_trade_no"') >= 1


def explain_hot_queries(users: list) -> list[dict]:
    """The SQL Django really sends for the order list and the notify, explained."""
    from django.test import Client

    from accounts.models import User
    from accounts.tokens import token_issue

    client = Client()
    shopper = User.objects.filter(openid__startswith="ogrow-").order_by("pk").first()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token_issue(user=shopper)}"}
    _, list_sql, _ = capture(lambda: client.get("/orders", **auth))
    payment = notify.make_payments("xq", 1, users)
    notify.seed_ours(payment, users)
    body = notify_body(payment[0], ACCOUNT)
    _, notify_sql, _ = capture(
        lambda: client.post("/payment/wxnotify", body, content_type="text/xml")
    )
    picks = {
        "notify: order by out_trade_no FOR UPDATE": _find(notify_sql, "FOR UPDATE"),
        "order list: COUNT(*) of the user's orders": _find(list_sql, "COUNT(*)"),
        "order list: page (ids first: IN (… LIMIT 20))": _find(list_sql, " LIMIT "),
        "order list: items of the page (prefetch)": _find(list_sql, "IN (", "orders_orderitem"),
    }
    return [explain(name, sql) for name, sql in picks.items() if sql]


def _find(statements: list[str], needle: str, table: str = "orders_order") -> str | None:
    """The first statement reading ``table`` that contains ``needle``."""
    return next((s for s in statements if needle in s and f'FROM "{table}"' in s), None)


def explain(name: str, sql: str) -> dict:
    """EXPLAIN ANALYZE in a transaction that is rolled back (FOR UPDATE takes a lock)."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
            plan = cursor.fetchone()[0][0]
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            text = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    scans = sorted(set(_scans(plan["Plan"])))
    return {
        "query": name,
        "sql": sql,
        "execution_ms": plan.get("Execution Time"),
        "scans": scans,
        "seq_scan": any(s.startswith("Seq Scan") for s in scans),
        "plan": text,
    }


def _scans(node: dict):
    if "Relation Name" in node:
        index = f" using {node['Index Name']}" if node.get("Index Name") else ""
        yield f"{node['Node Type']} on {node['Relation Name']}{index}"
    for child in node.get("Plans", []):
        yield from _scans(child)


def run(stack: Stack, options: Options) -> tuple[list[dict], list[str]]:
    from orders.models import Product

    django_env.use_database(GROWTH_DB)
    server = start_ours(stack.sim, stack.log_dir, DATABASE_URL=database_url(GROWTH_DB))
    try:
        users = notify.shoppers(20)
        product_id = Product.objects.create(name="Growth oolong", price=4500, stock=None).pk
        warm = notify.make_payments("gw", notify.WARMUP, users)
        notify.seed_ours(warm, users)
        notify.deliver(server.url, [notify_body(p, ACCOUNT) for p in warm], 8, 60)
        steps, problems = [], []
        for size in sorted({*SIZES_ALWAYS, options.growth}):
            step = grow_to(size, product_id)
            measured, found = measure(server.url, options, users, f"g{len(steps)}x")
            step.update(measured, explain=explain_hot_queries(users))
            steps.append(step)
            problems += found
            print(_line(step), flush=True)
    finally:
        server.stop()
    return steps, problems


def summary_rows(steps: list[dict]) -> list[dict]:
    return [
        {
            "orders": step["orders"],
            "notify_p50_ms": step["notify"]["p50_ms"],
            "notify_p99_ms": step["notify"]["p99_ms"],
            "list_p50_ms": step["order_list"]["p50_ms"],
            "list_p99_ms": step["order_list"]["p99_ms"],
            "seq_scans": ", ".join(e["query"] for e in step["explain"] if e["seq_scan"]) or "none",
        }
        for step in steps
    ]


def _line(step: dict) -> str:
    seq = [e["query"] for e in step["explain"] if e["seq_scan"]]
    return (
        f"  growth {step['orders']:>8} orders (filled in {step['fill_seconds']} s): "
        f"notify p50 {step['notify']['p50_ms']} p99 {step['notify']['p99_ms']} ms, "
        f"list p50 {step['order_list']['p50_ms']} p99 {step['order_list']['p99_ms']} ms, "
        f"seq scans: {seq or 'none'}"
    )
