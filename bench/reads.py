"""Reads at scale (issue #16 item 4): ``GET /products`` over 10^4 products and ``GET /orders``
over ``--reads-orders`` orders (10^6 for the documented run), through gunicorn over HTTP.

Its own database (READS_DB) and servers. Rows are made in SQL with ``generate_series``:
10^4 products (1 in 20 off sale, half with a picture), READS_SHOPPERS ordinary shoppers
who share nine orders in ten evenly, and one heavy shopper who has every tenth order
(10^5 at 10^6: 5,000 pages of 20). Orders are 70 % paid / 25 % closed / 5 % unpaid, with
1 to 3 items each and, for a third of the paid ones, a shipment, created 20 s apart back in
time, so the heavy shopper's rows are spread over the whole table.

One server per page size (10, 20, 50; the API's is 20, ``bench/settings_page_size.py``
changes only that), the catalogue's shared cache off (every answer from the database).
Per page size: p50/p99 of each request kind at concurrency 4 (= workers), every reply
checked; then exact pages checked against SQL; queries per request counted in this
process (they must not depend on the page size); and at page size 20 every statement
explained (``EXPLAIN (ANALYZE, BUFFERS)``): a sequential scan on an order, item, shipment
or product table is a failure. Last, the heavy shopper's deep pages side by side: the
page query as it was (``OFFSET`` on the index) and as it is (the page's ids first).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable

import requests

from bench import cpu, django_env, load, pg
from bench.config import DB_SUFFIX, ROOT, Options, database_url
from bench.growth import explain
from bench.queries import capture
from bench.servers import Stack, start_ours

READS_DB = "wxshop_bench_reads" + DB_SUFFIX
PRODUCTS = 10_000
READS_SHOPPERS = 20_000
HEAVY = "oread-heavy"
PAGE_SIZES = (10, 20, 50)
API_PAGE_SIZE = 20
CONCURRENCY = 4
REQUESTS = 300  # per request kind and page size
WATCHED = ("orders_order", "orders_orderitem", "orders_shipment", "orders_product")

PRODUCTS_SQL = """
INSERT INTO orders_product (name, price, stock, active, created_at, updated_at, description,
    image, requires_shipping)
SELECT 'Tea no. ' || g, 100 + (g * 37) %% 50000, CASE WHEN g %% 4 = 0 THEN 1000 END,
       g %% 20 <> 0, now() - g * interval '1 minute', now(),
       'Picked in spring on the hills of Fujian, lot ' || g || '.',
       CASE WHEN g %% 2 = 0 THEN 'products/tea-' || g || '.png' ELSE '' END, g %% 10 <> 0
FROM generate_series(1, %(products)s) g
"""

USERS_SQL = """
INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email,
    is_staff, is_active, date_joined, openid, unionid, session_key, token_version)
SELECT '!', false, 'wx_' || o, '', '', '', false, true, now(), o, '', '', 0
FROM (SELECT 'oread-' || g AS o FROM generate_series(0, %(shoppers)s - 1) g
      UNION ALL SELECT %(heavy)s) s
"""

ADDRESS = json.dumps({
    "user_name": "张三", "tel_number": "13812345678", "province_name": "广东省",
    "city_name": "广州市", "county_name": "海珠区", "detail_info": "新港中路397号",
    "postal_code": "510000",
}, ensure_ascii=False)

# Order g (1..size) belongs to the heavy shopper when g % 10 = 0; the others go round the
# ordinary shoppers in turn (k counts the ordinary orders).
ORDERS_SQL = """
WITH u AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(openid ORDER BY id) AS oids
           FROM accounts_user WHERE openid LIKE 'oread-%%' AND openid <> %(heavy)s),
     h AS (SELECT id, openid FROM accounts_user WHERE openid = %(heavy)s),
     s AS (SELECT g, now() - g * interval '20 seconds' AS t, g %% 10 = 0 AS heavy,
                  (g - g / 10 - 1) %% %(shoppers)s AS k,
                  CASE WHEN g %% 20 < 14 THEN 'paid' WHEN g %% 20 < 19 THEN 'closed'
                       ELSE 'unpaid' END AS st
           FROM generate_series(1, %(size)s) g)
INSERT INTO orders_order (out_trade_no, openid, body, total_fee, status, sign_type, pay_version,
    spbill_create_ip, notify_url, prepay_id, prepay_expires_at, transaction_id, paid_at,
    paid_fee, idempotency_key, created_at, expires_at, closed_at, close_pending_at_wechat,
    address, remark, fulfilment_status, shipped_at, needs_attention, attention_reason, user_id)
SELECT 'R' || lpad(g::text, 10, '0') || substr(md5(g::text), 1, 21),
       CASE WHEN heavy THEN h.openid ELSE u.oids[1 + k] END,
       'Oolong tea 250g', 100 + g %% 10000, st, 'MD5', 'v2', '127.0.0.1',
       'https://shop.example/payment/wxnotify', 'wx' || md5(g::text), t + interval '2 hours',
       CASE WHEN st = 'paid' THEN '4200R' || lpad(g::text, 12, '0') END,
       CASE WHEN st = 'paid' THEN t + interval '1 minute' END,
       CASE WHEN st = 'paid' THEN 100 + g %% 10000 END, '',
       t, t + interval '30 minutes', CASE WHEN st = 'closed' THEN t + interval '31 minutes' END,
       false, %(address)s::jsonb, CASE WHEN g %% 7 = 0 THEN 'Please knock twice.' ELSE '' END,
       CASE WHEN st = 'paid' AND g %% 3 = 0 THEN 'shipped' ELSE 'unfulfilled' END,
       CASE WHEN st = 'paid' AND g %% 3 = 0 THEN t + interval '1 day' END, false, '',
       CASE WHEN heavy THEN h.id ELSE u.ids[1 + k] END
FROM s, u, h
"""

ITEMS_SQL = """
INSERT INTO orders_orderitem (product_name, unit_price, quantity, order_id, product_id,
    stock_reserved)
SELECT 'Tea no. ' || p, 100 + (p * 37) %% 50000, 1 + i %% 2, o.id, %(first_product)s + p - 1,
       false
FROM orders_order o, generate_series(1, 1 + o.id %% 3) i,
     LATERAL (SELECT 1 + (o.id * 7 + i * 131) %% %(products)s AS p) x
"""

SHIPMENTS_SQL = """
INSERT INTO orders_shipment (logistics_type, express_company, tracking_no, shipped_at,
    upload_status, upload_error, order_id, upload_attempts, uploaded_at)
SELECT 'express', 'SF', 'SF' || lpad(id::text, 12, '0'), shipped_at, 'uploaded', '', id, 1,
       shipped_at
FROM orders_order WHERE fulfilment_status = 'shipped'
"""


def fill(db: str, size: int) -> dict:
    """Products, shoppers, ``size`` orders with their items and shipments; VACUUM ANALYZE."""
    began = time.perf_counter()
    pg.execute(db, PRODUCTS_SQL, {"products": PRODUCTS})
    pg.execute(db, USERS_SQL, {"shoppers": READS_SHOPPERS, "heavy": HEAVY})
    pg.execute(db, ORDERS_SQL, {"size": size, "shoppers": READS_SHOPPERS, "heavy": HEAVY,
                                "address": ADDRESS})
    (first_product,), = pg.fetchall(db, "SELECT min(id) FROM orders_product")
    pg.execute(db, ITEMS_SQL, {"first_product": first_product, "products": PRODUCTS})
    pg.execute(db, SHIPMENTS_SQL)
    pg.execute(db, "VACUUM ANALYZE")
    counts = {table: pg.fetchall(db, f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608
              for table in WATCHED}
    return {"fill_seconds": round(time.perf_counter() - began, 1), **counts}


# -- what is asked -----------------------------------------------------------------------------


class Shelf:
    """Who and what is in the database, read once after the fill (the checks' truth)."""

    def __init__(self, db: str):
        self.db = db
        self.products = pg.fetchall(db, "SELECT count(*) FROM orders_product WHERE active")[0][0]
        rows = pg.fetchall(
            db,
            "SELECT u.id, u.openid, count(o.id) FROM accounts_user u"
            " JOIN orders_order o ON o.user_id = u.id WHERE u.openid LIKE 'oread-%'"
            " GROUP BY u.id, u.openid ORDER BY u.id",
        )
        self.orders_of = {openid: n for _, openid, n in rows}
        self.user_ids = {openid: pk for pk, openid, _ in rows}
        self.ordinary = [openid for openid in self.orders_of if openid != HEAVY]

    def order_page(self, openid: str, page: int, size: int) -> list[str]:
        return [r[0] for r in pg.fetchall(
            self.db,
            "SELECT out_trade_no FROM orders_order WHERE user_id = %s"
            " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
            (self.user_ids[openid], size, (page - 1) * size),
        )]

    def product_page(self, page: int, size: int) -> list[int]:
        return [r[0] for r in pg.fetchall(
            self.db, "SELECT id FROM orders_product WHERE active ORDER BY id LIMIT %s OFFSET %s",
            (size, (page - 1) * size),
        )]


def _last(count: int, size: int) -> int:
    return max(1, -(-count // size))


def _tokens(openids: list[str]) -> dict[str, str]:
    from accounts.models import User
    from accounts.tokens import token_issue

    return {u.openid: token_issue(user=u) for u in User.objects.filter(openid__in=openids)}


def request_kinds(shelf: Shelf, size: int, tokens: dict[str, str]) -> dict[str, tuple]:
    """name -> (requests, expected count or None): REQUESTS of each kind."""
    def auth(openid: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[openid]}"}

    def orders(openid: str, page: int) -> load.Req:
        return load.Req("GET", f"/orders?page={page}", None, auth(openid))

    last_product = _last(shelf.products, size)
    heavy_last = _last(shelf.orders_of[HEAVY], size)
    sample = shelf.ordinary[: REQUESTS]
    return {
        "GET /products, page 1": (
            [load.Req("GET", "/products?page=1")] * REQUESTS, shelf.products),
        "GET /products, every page": (
            [load.Req("GET", f"/products?page={1 + i * last_product // REQUESTS}")
             for i in range(REQUESTS)], shelf.products),
        "GET /orders, shoppers, every page": (
            [orders(o, 1 + i % _last(shelf.orders_of[o], size)) for i, o in enumerate(sample)],
            None),
        "GET /orders, heavy shopper, page 1": (
            [orders(HEAVY, 1)] * REQUESTS, shelf.orders_of[HEAVY]),
        "GET /orders, heavy shopper, every page": (
            [orders(HEAVY, 1 + i * heavy_last // REQUESTS) for i in range(REQUESTS)],
            shelf.orders_of[HEAVY]),
        "GET /orders, heavy shopper, last page": (
            [orders(HEAVY, heavy_last)] * REQUESTS, shelf.orders_of[HEAVY]),
    }


def page_check(size: int, count: int | None) -> load.Check:
    """200, the expected count, a full page unless it is the last, every order with items."""
    def check(status: int, body: bytes) -> bool:
        if status != 200:
            return False
        page = json.loads(body)
        results = page["results"]
        if count is not None and page["count"] != count:
            return False
        if len(results) != size if page["next"] else not 1 <= len(results) <= size:
            return False
        return all(r["items"] for r in results if "out_trade_no" in r)
    return check


def exact_pages(url: str, shelf: Shelf, size: int, tokens: dict[str, str]) -> list[str]:
    """Pages over HTTP against the rows in SQL: first, middle and last, products and orders."""
    problems = []
    http = requests.Session()
    last_product = _last(shelf.products, size)
    for page in sorted({1, last_product // 2 or 1, last_product}):
        got = http.get(f"{url}/products?page={page}", timeout=30).json()
        if [p["id"] for p in got["results"]] != shelf.product_page(page, size):
            problems.append(f"reads size {size}: /products?page={page} is not the right page")
    for openid in [HEAVY, *shelf.ordinary[:5]]:
        last = _last(shelf.orders_of[openid], size)
        for page in sorted({1, last // 2 or 1, last}):
            got = http.get(f"{url}/orders?page={page}", timeout=30,
                           headers={"Authorization": f"Bearer {tokens[openid]}"}).json()
            if ([o["out_trade_no"] for o in got["results"]] != shelf.order_page(openid, page, size)
                    or got["count"] != shelf.orders_of[openid]):
                problems.append(f"reads size {size}: {openid} /orders?page={page} is wrong")
    http.close()
    return problems


# -- in this process: queries per request, plans ---------------------------------------------


def _in_process(shelf: Shelf, size: int, tokens: dict[str, str]) -> dict[str, Callable]:
    from django.test import Client

    client = Client()
    heavy_last = _last(shelf.orders_of[HEAVY], size)
    shopper = shelf.ordinary[0]

    def orders(openid: str, page: int) -> Callable:
        auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens[openid]}"}
        return lambda: client.get(f"/orders?page={page}", **auth)

    return {
        "GET /products?page=1": lambda: client.get("/products?page=1"),
        "GET /products (last page)": lambda: client.get(
            f"/products?page={_last(shelf.products, size)}"),
        "GET /orders?page=1 (shopper)": orders(shopper, 1),
        "GET /orders (shopper, last page)": orders(shopper, _last(shelf.orders_of[shopper], size)),
        "GET /orders?page=1 (heavy)": orders(HEAVY, 1),
        "GET /orders (heavy, middle page)": orders(HEAVY, heavy_last // 2),
        "GET /orders (heavy, last page)": orders(HEAVY, heavy_last),
    }


def count_queries(shelf: Shelf, tokens: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Queries of each request at each page size; they must all be equal per endpoint."""
    from django.test import override_settings
    from rest_framework.pagination import PageNumberPagination

    rows, problems = [], []
    kept = PageNumberPagination.page_size
    try:
        with override_settings(CATALOGUE_CACHE_SECONDS=0):
            for size in PAGE_SIZES:
                PageNumberPagination.page_size = size
                for name, call in _in_process(shelf, size, tokens).items():
                    call()  # warm
                    count, _, response = capture(call)
                    rows.append({"request": name, "page_size": size, "queries": count,
                                 "status": response.status_code})
    finally:
        PageNumberPagination.page_size = kept
    for endpoint in ("/products", "/orders"):
        counts = {r["queries"] for r in rows if endpoint in r["request"]}
        if len(counts) != 1 or any(r["status"] != 200 for r in rows):
            problems.append(f"reads: queries of GET {endpoint} vary with page size or depth: "
                            f"{sorted(counts)}")
    return rows, problems


def explain_all(shelf: Shelf, tokens: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Every statement of each request at the API's page size, explained."""
    from django.test import override_settings

    plans, problems = [], []
    with override_settings(CATALOGUE_CACHE_SECONDS=0):
        for name, call in _in_process(shelf, API_PAGE_SIZE, tokens).items():
            _, statements, _ = capture(call)
            for sql in statements:
                if not sql.startswith("SELECT"):
                    continue
                plan = explain(name, sql)
                plan["seq_scan"] = any(
                    s.startswith("Seq Scan") and s.split(" on ")[1] in WATCHED
                    for s in plan["scans"]
                )
                plans.append(plan)
                if plan["seq_scan"]:
                    problems.append(f"reads: sequential scan in {name}: {plan['scans']}")
    return plans, problems


def deep_pages(shelf: Shelf, size: int = API_PAGE_SIZE, rounds: int = 5) -> list[dict]:
    """The heavy shopper's page query, plain OFFSET (Django's paginator) and ids first
    (orders.views.IdsFirstPaginator), same page, same indexes: median execution time."""
    from django.db import connection

    from orders.selectors import order_list_for_user

    listed = order_list_for_user(user=shelf.user_ids[HEAVY]).prefetch_related(None)
    last = _last(shelf.orders_of[HEAVY], size)
    out = []
    for page in sorted({1, last // 10, last // 2, last}):
        bottom = (page - 1) * size
        variants = {
            "plain OFFSET": listed[bottom:bottom + size],
            "ids first": listed.filter(pk__in=listed.values("pk")[bottom:bottom + size]),
        }
        row = {"page": page, "offset": bottom}
        for name, qs in variants.items():
            with connection.cursor() as cursor:
                sql = cursor.mogrify(*qs.query.sql_with_params()).decode()
            plans = [explain(name, sql) for _ in range(rounds)]
            row[f"{name} ms"] = round(statistics.median(p["execution_ms"] for p in plans), 2)
            row[f"{name} scans"] = ", ".join(plans[0]["scans"])
        out.append(row)
    return out


# -- the phase -----------------------------------------------------------------------------------


def run(stack: Stack, options: Options) -> tuple[dict, list[str]]:
    pg.recreate([READS_DB])
    pg.migrate([(ROOT, READS_DB, {"DJANGO_SECRET_KEY": "migrate"})])
    filled = fill(READS_DB, options.reads_orders)
    print(f"  reads: filled {filled}", flush=True)
    shelf = Shelf(READS_DB)
    problems = _fill_problems(filled, shelf, options.reads_orders)
    django_env.use_database(READS_DB)
    tokens = _tokens(list(shelf.orders_of))
    runs = []
    for size in PAGE_SIZES:
        server = start_ours(
            stack.sim, stack.log_dir, DATABASE_URL=database_url(READS_DB),
            DJANGO_SETTINGS_MODULE="bench.settings_page_size", BENCH_PAGE_SIZE=str(size),
            CATALOGUE_CACHE_SECONDS="0",
        )
        try:
            kinds = request_kinds(shelf, size, tokens)
            for reqs, count in kinds.values():  # warm every worker: not measured
                load.run(server.url, reqs[:40], CONCURRENCY, 60, page_check(size, count))
            for _ in range(options.repeat):
                for name, (reqs, count) in kinds.items():
                    before = cpu.snapshot(server.process.pid)
                    result = load.run(server.url, reqs, CONCURRENCY, options.time_limit,
                                      page_check(size, count))
                    spent = _server_cpu_ms(before, server.process.pid, result.sent)
                    found = [f"reads size {size} {name}: {result.summary()}"] if (
                        result.errors or result.unsent) else []
                    found += exact_pages(server.url, shelf, size, tokens)
                    problems += found
                    runs.append({"page_size": size, "request": name, **result.summary(),
                                 "cpu_server_ms": spent, "verified": not found,
                                 "load_1m": round(os.getloadavg()[0], 2)})
                    print(_line(runs[-1]), flush=True)
        finally:
            server.stop()
    queries, found = count_queries(shelf, tokens)
    problems += found
    plans, found = explain_all(shelf, tokens)
    problems += found
    deep = deep_pages(shelf)
    for row in deep:
        print(f"  deep page {row['page']:>5} (offset {row['offset']:>6}): plain OFFSET "
              f"{row['plain OFFSET ms']} ms, ids first {row['ids first ms']} ms", flush=True)
    return {"fill": filled, "runs": runs, "queries": queries, "explain": plans,
            "deep_pages": deep}, problems


def _server_cpu_ms(before: cpu.Snapshot, pid: int, requests: int) -> float | None:
    """gunicorn's CPU per request: unlike latency, not stretched by the other processes
    of a shared machine (PostgreSQL's CPU is left out: it counts every database here)."""
    return cpu.per_request_ms(before, cpu.snapshot(pid), requests).get("cpu_server_ms")


def _fill_problems(filled: dict, shelf: Shelf, size: int) -> list[str]:
    """The rows the SQL was meant to make: every order, product and item, the heavy
    shopper's share, and no order without a shopper of the bench."""
    (items,), = pg.fetchall(shelf.db, "SELECT sum(1 + id % 3) FROM orders_order")
    expected = {"orders_order": size, "orders_product": PRODUCTS, "orders_orderitem": items}
    problems = [f"reads fill: {table} has {filled[table]} rows, expected {n}"
                for table, n in expected.items() if filled[table] != n]
    if shelf.orders_of.get(HEAVY) != size // 10:
        problems.append(f"reads fill: the heavy shopper has {shelf.orders_of.get(HEAVY)} orders")
    if sum(shelf.orders_of.values()) != size:
        problems.append("reads fill: orders and shoppers do not add up")
    return problems


def _line(row: dict) -> str:
    return (f"  reads page {row['page_size']:>2} {row['request']:<40} {row['rps']:>7.1f} req/s  "
            f"p50 {row['p50_ms']:>7.2f} ms  p99 {row['p99_ms']:>7.2f} ms  "
            f"CPU {row['cpu_server_ms']} ms/req  errors {row['errors']}"
            f"  verified {row['verified']}")
