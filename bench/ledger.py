"""The notify ledger at 10^4 and at ``--ledger-rows`` rows (10^7 for the documented run;
issue #16 item 5): is anything linear in its size, and what archiving costs.

Its own database (LEDGER_DB) and server. At each size the ledger and the orders are made
afresh in SQL (``generate_series``, in chunks of 10^6), three years of traffic in time
order: an order for every 4 rows, each order's payment notify, two duplicates and a fourth
row that is a refund result (40 %), another duplicate (30 %), a forged notify from another
address (20 %), or an unknown order, a malformed body, a flagged payment (its order
flagged) or a processing error; one row in 1,000 a reprocess. Bodies are v2 XML of the
size WeChat sends (~650 bytes; refund results ~900).

Measured at each size, concurrency 8 for notifies and 2 for admin pages (one staff member
is not 32): notify p50/p99 (400 first deliveries, checked: every order paid with its id,
one ``paid`` row each), admin's ledger list (plain, filtered, searched, page 100), a
notification's page, an order's page (its notifications inline), the dashboard; the
queries and plans of those pages (a sequential scan of the ledger is a failure); the
statements Django's stock changelist sent, explained for comparison; last, the archive
command on the oldest 30 days (``--dry-run`` and for real, then ``--verify``), checked:
rows archived = rows gone = rows in the files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench import cpu, django_env, load, notify, pg
from bench.config import ACCOUNT, DB_SUFFIX, ROOT, Options, database_url
from bench.growth import explain
from bench.queries import capture
from bench.servers import OUR_ENV, Stack, start_ours
from bench.wire import notify_body

LEDGER_DB = "wxshop_bench_ledger" + DB_SUFFIX
SIZES_ALWAYS = (10_000,)
ROWS_PER_ORDER = 4
CHUNK = 1_000_000
SPAN_DAYS = 3 * 365
ARCHIVE_DAYS = 30  # the oldest month is archived at each size
NOTIFIES = 400
PAGE_REQUESTS = 40
SHOPPERS = 1000
LARGE = 1_000_000
# A rare outcome has no index to find it by: listing it reads the ledger. Known, reported,
# and what the experiment below measures with the index that would serve it.
RARE = "ledger list, outcome=error (rare)"
KNOWN_SCANS = {RARE}
PROPOSED_INDEX = (
    "CREATE INDEX notification_to_look_at ON payments_paymentnotification"
    " (outcome, received_at DESC) WHERE outcome IN ('not_paid', 'flagged', 'rejected',"
    " 'malformed', 'unknown_order', 'unknown_refund', 'error')"
)
STAFF = "bench-ledger-staff"

USERS_SQL = """
INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email,
    is_staff, is_active, date_joined, openid, unionid, session_key, token_version)
SELECT '!', false, 'wx_oledger-' || g, '', '', '', false, true, now(), 'oledger-' || g, '', '',
       0
FROM generate_series(0, %(shoppers)s - 1) g
ON CONFLICT DO NOTHING
"""

# Order o (0-based) is the o-th of the span; its number and WeChat's id follow from o, so
# the ledger rows can name them without a join.
ORDERS_SQL = """
WITH u AS (SELECT array_agg(id ORDER BY id) AS ids FROM accounts_user
           WHERE openid LIKE 'oledger-%%'),
     s AS (SELECT o, now() - %(span)s * interval '1 day' + o * %(step)s * interval '1 second'
                  AS t, o %% 10 <> 9 AS paid
           FROM generate_series(0, %(orders)s - 1) o)
INSERT INTO orders_order (out_trade_no, openid, body, total_fee, status, sign_type, pay_version,
    spbill_create_ip, notify_url, prepay_id, prepay_expires_at, transaction_id, paid_at,
    paid_fee, idempotency_key, created_at, expires_at, closed_at, close_pending_at_wechat,
    address, remark, fulfilment_status, shipped_at, needs_attention, attention_reason, user_id)
SELECT 'L' || lpad(o::text, 10, '0') || substr(md5(o::text), 1, 21),
       'oledger-' || (o %% %(shoppers)s), 'Oolong tea 250g', 100 + o %% 10000,
       CASE WHEN paid THEN 'paid' ELSE 'closed' END, 'MD5', 'v2', '127.0.0.1',
       'https://shop.example/payment/wxnotify', 'wx' || md5(o::text), t + interval '2 hours',
       '4200L' || lpad(o::text, 23, '0'), t + interval '1 minute', 100 + o %% 10000, '',
       t, t + interval '30 minutes', CASE WHEN NOT paid THEN t + interval '31 minutes' END,
       false, NULL, '',
       CASE WHEN NOT paid THEN 'unfulfilled' WHEN t < now() - interval '10 days' THEN 'received'
            WHEN t < now() - interval '2 days' THEN 'shipped' ELSE 'unfulfilled' END,
       CASE WHEN paid AND t < now() - interval '2 days' THEN t + interval '1 day' END,
       false, '', u.ids[1 + o %% %(shoppers)s]
FROM s, u
"""

ITEMS_SQL = """
INSERT INTO orders_orderitem (product_name, unit_price, quantity, order_id, product_id,
    stock_reserved)
SELECT body, total_fee, 1, id, %(product)s, false FROM orders_order
"""

# Row g (1-based) belongs to order o = (g - 1) / 4; j = (g - 1) % 4 is its place there, and
# r = o % 100 decides what its fourth row is (r must not depend on j).
LEDGER_SQL = """
WITH s AS (
  SELECT g, (g - 1) / 4 AS o, (g - 1) %% 4 AS j, ((g - 1) / 4) %% 100 AS r,
         now() - %(span)s * interval '1 day' + g * %(gap)s * interval '1 second' AS t
  FROM generate_series(%(first)s, %(last)s) g),
k AS (
  SELECT *, CASE
      WHEN j = 0 THEN CASE WHEN o %% 10 = 9 THEN 'not_paid' ELSE 'paid' END
      WHEN j < 3 THEN 'duplicate'
      WHEN g %% 1000 = 0 THEN 'reprocess'
      WHEN r < 40 THEN 'refund_recorded'
      WHEN r < 70 THEN 'duplicate'
      WHEN r < 90 THEN 'rejected'
      WHEN r < 95 THEN 'unknown_order'
      WHEN r < 97 THEN 'malformed'
      WHEN r < 99 THEN 'flagged'
      ELSE 'error' END AS c,
    'L' || lpad(o::text, 10, '0') || substr(md5(o::text), 1, 21) AS otn,
    '4200L' || lpad(o::text, 23, '0') AS txn
  FROM s)
INSERT INTO payments_paymentnotification (kind, api_version, headers, received_at, remote_addr,
    raw_body, body_truncated, out_trade_no, transaction_id, out_refund_no, order_id, refund_id,
    reprocess_of_id, signature_valid, outcome, detail, replied, processed_at)
SELECT CASE WHEN c = 'refund_recorded' THEN 'refund' ELSE 'payment' END, 'v2', '{}'::jsonb, t,
       CASE WHEN c = 'reprocess' THEN NULL
            WHEN c IN ('rejected', 'unknown_order') THEN ('203.0.113.' || r)::inet
            ELSE ('101.226.103.' || (g %% 60))::inet END,
       CASE WHEN c = 'refund_recorded' THEN
         '<xml><return_code>SUCCESS</return_code><appid><![CDATA[wx2421b1c4370ec43b]]></appid>'
         || '<mch_id><![CDATA[10000100]]></mch_id><nonce_str><![CDATA[' || md5(g::text)
         || ']]></nonce_str><req_info><![CDATA[' || repeat(md5(otn), 22) || ']]></req_info></xml>'
       WHEN c = 'malformed' THEN '<xml><return_code>SUCCESS</return_code>'
       ELSE
         '<xml><appid><![CDATA[wx2421b1c4370ec43b]]></appid><bank_type><![CDATA[CMC]]>'
         || '</bank_type><cash_fee><![CDATA[' || (100 + o %% 10000) || ']]></cash_fee>'
         || '<fee_type><![CDATA[CNY]]></fee_type><is_subscribe><![CDATA[N]]></is_subscribe>'
         || '<mch_id><![CDATA[10000100]]></mch_id><nonce_str><![CDATA[' || md5(g::text)
         || ']]></nonce_str><openid><![CDATA[oledger-' || (o %% %(shoppers)s)
         || ']]></openid><out_trade_no><![CDATA[' || otn || ']]></out_trade_no>'
         || '<result_code><![CDATA[SUCCESS]]></result_code><return_code><![CDATA[SUCCESS]]>'
         || '</return_code><sign><![CDATA[' || upper(md5('s' || g)) || ']]></sign>'
         || '<time_end><![CDATA[' || to_char(t, 'YYYYMMDDHH24MISS') || ']]></time_end>'
         || '<total_fee>' || (100 + o %% 10000) || '</total_fee><trade_type><![CDATA[JSAPI]]>'
         || '</trade_type><transaction_id><![CDATA[' || txn || ']]></transaction_id></xml>'
       END,
       false,
       CASE WHEN c = 'malformed' THEN '' ELSE otn END,
       CASE WHEN c IN ('malformed', 'refund_recorded') THEN '' ELSE txn END,
       CASE WHEN c = 'refund_recorded' THEN 'RF' || otn ELSE '' END,
       CASE WHEN c IN ('rejected', 'unknown_order', 'malformed', 'error') THEN NULL
            ELSE %(first_order)s + o END,
       NULL,
       CASE WHEN c = 'reprocess' THEN g - 3 END,
       CASE WHEN c = 'rejected' THEN false WHEN c = 'malformed' THEN NULL ELSE true END,
       CASE WHEN c = 'reprocess' THEN 'duplicate' ELSE c END,
       CASE c WHEN 'paid' THEN 'Order marked paid.' WHEN 'rejected' THEN 'Bad signature.'
              WHEN 'error' THEN 'Processing failed: OperationalError' ELSE '' END,
       CASE WHEN c IN ('rejected', 'unknown_order', 'malformed', 'error') THEN 'FAIL'
            ELSE 'SUCCESS' END,
       t + interval '12 milliseconds'
FROM k
"""

FLAG_SQL = """
UPDATE orders_order SET needs_attention = true, attention_reason = 'Paid twice?'
WHERE id IN (SELECT order_id FROM payments_paymentnotification WHERE outcome = 'flagged')
"""


def fill(size: int, product_id: int) -> dict:
    """The ledger of ``size`` rows and its orders, from nothing; VACUUM ANALYZE."""
    began = time.perf_counter()
    pg.execute(LEDGER_DB, "TRUNCATE payments_ledgerarchive, payments_paymentnotification,"
                          " orders_orderitem, orders_order RESTART IDENTITY CASCADE")
    pg.execute(LEDGER_DB, USERS_SQL, {"shoppers": SHOPPERS})
    orders = -(-size // ROWS_PER_ORDER)
    gap = SPAN_DAYS * 86400 / size
    pg.execute(LEDGER_DB, ORDERS_SQL, {"orders": orders, "span": SPAN_DAYS, "shoppers": SHOPPERS,
                                       "step": gap * ROWS_PER_ORDER})
    pg.execute(LEDGER_DB, ITEMS_SQL, {"product": product_id})
    (first_order,), = pg.fetchall(LEDGER_DB, "SELECT min(id) FROM orders_order")
    for first in range(1, size + 1, CHUNK):
        pg.execute(LEDGER_DB, LEDGER_SQL, {
            "first": first, "last": min(size, first + CHUNK - 1), "span": SPAN_DAYS,
            "gap": gap, "shoppers": SHOPPERS, "first_order": first_order,
        })
        print(f"  ledger: {min(size, first + CHUNK - 1):,} rows", flush=True)
    pg.execute(LEDGER_DB, FLAG_SQL)
    pg.execute(LEDGER_DB, "VACUUM ANALYZE payments_paymentnotification, orders_order,"
                          " orders_orderitem")
    (rows, orders_made, table_bytes, total_bytes), = pg.fetchall(
        LEDGER_DB,
        "SELECT (SELECT count(*) FROM payments_paymentnotification),"
        " (SELECT count(*) FROM orders_order),"
        " pg_table_size('payments_paymentnotification'),"
        " pg_total_relation_size('payments_paymentnotification')",
    )
    return {"ledger_rows": rows, "orders": orders_made,
            "ledger_table_mib": round(table_bytes / 2**20),
            "ledger_with_indexes_mib": round(total_bytes / 2**20),
            "fill_seconds": round(time.perf_counter() - began, 1)}


# -- notifies ------------------------------------------------------------------------------------


def notifies(server, users: list, tag: str, time_limit: float) -> tuple[dict, list[str]]:
    payments = notify.make_payments(tag, NOTIFIES, users)
    notify.seed_ours(payments, users)
    bodies = [notify_body(p, ACCOUNT) for p in payments]
    before = cpu.snapshot(server.process.pid)
    result = notify.deliver(server.url, bodies, 8, time_limit)
    spent = _server_cpu_ms(before, server.process.pid, result.sent)
    return {**result.summary(), "cpu_server_ms": spent}, _paid_problems(tag, payments)


def _server_cpu_ms(before: cpu.Snapshot, pid: int, requests: int) -> float | None:
    """gunicorn's CPU per request: not stretched by the other processes of a shared
    machine (PostgreSQL's is left out: it counts every database on the server)."""
    return cpu.per_request_ms(before, cpu.snapshot(pid), requests).get("cpu_server_ms")


def _paid_problems(tag: str, payments: list) -> list[str]:
    """Every order paid with WeChat's id and one ``paid`` ledger row each, looked up by
    number (the notify bench's prefix LIKE would read the whole ledger)."""
    from orders.models import Order
    from payments.models import PaymentNotification

    numbers = [p.out_trade_no for p in payments]
    paid = dict(Order.objects.filter(out_trade_no__in=numbers, status="paid")
                .values_list("out_trade_no", "transaction_id"))
    rows = list(PaymentNotification.objects.filter(out_trade_no__in=numbers)
                .values_list("out_trade_no", "outcome"))
    problems = []
    if paid != {p.out_trade_no: p.transaction_id for p in payments}:
        problems.append(f"ledger {tag}: {len(paid)} of {len(payments)} orders paid right")
    if sorted(rows) != sorted((n, "paid") for n in numbers):
        problems.append(f"ledger {tag}: {len(rows)} ledger rows, expected one 'paid' each")
    return problems


# -- admin pages ---------------------------------------------------------------------------------


def staff_cookie() -> tuple[object, str]:
    """A superuser and its session (database sessions: the server reads the same row)."""
    from django.test import Client

    from accounts.models import User

    user, _ = User.objects.get_or_create(
        username=STAFF, defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client, client.cookies["sessionid"].value


def admin_pages(size: int) -> dict[str, str]:
    """name -> URL, for rows that exist at this size: the payment notify of an order in
    the middle of the ledger, its order, the newest row."""
    from payments.models import PaymentNotification

    newest = PaymentNotification.objects.order_by("-pk").values_list("pk", flat=True).first()
    middle = PaymentNotification.objects.values_list(
        "out_trade_no", "transaction_id", "order_id").get(pk=ROWS_PER_ORDER * (size // 8) + 1)
    ledger = "/admin/payments/paymentnotification/"
    return {
        "ledger list": ledger,
        "ledger list, outcome=duplicate": f"{ledger}?outcome__exact=duplicate",
        RARE: f"{ledger}?outcome__exact=error",
        "ledger list, replied=FAIL": f"{ledger}?replied=FAIL",
        "ledger list, page 100": f"{ledger}?p=100",
        "ledger search, order number": f"{ledger}?q={middle[0]}",
        "ledger search, WeChat id": f"{ledger}?q={middle[1]}",
        "notification page": f"{ledger}{newest}/change/",
        "order page (4 notifications inline)": f"/admin/orders/order/{middle[2]}/change/",
        "dashboard": "/admin/",
    }


def _is_page(status: int, body: bytes) -> bool:
    return status == 200 and b"</html>" in body


def page_latency(server, pages: dict[str, str], cookie: str, time_limit: float) -> list[dict]:
    headers = {"Cookie": f"sessionid={cookie}"}
    out = []
    for name, path in pages.items():
        # A page known to read the whole ledger gets fewer requests: each takes seconds.
        reqs = [load.Req("GET", path, None, headers)] * (
            PAGE_REQUESTS // 4 if name in KNOWN_SCANS else PAGE_REQUESTS)
        load.run(server.url, reqs[:4], 2, time_limit, _is_page)  # warm
        before = cpu.snapshot(server.process.pid)
        result = load.run(server.url, reqs, 2, time_limit, _is_page)
        spent = _server_cpu_ms(before, server.process.pid, result.sent)
        out.append({"page": name, **result.summary(), "cpu_server_ms": spent})
    return out


def page_plans(client, pages: dict[str, str], size: int) -> tuple[list[dict], list[str]]:
    """Every statement of each page, explained. A sequential scan of the ledger fails the
    run from LARGE rows on (below, it is often the planner's best choice, and cheap),
    except for the pages in KNOWN_SCANS."""
    plans, problems = [], []
    for name, path in pages.items():
        count, statements, response = capture(lambda p=path: client.get(p))
        if response.status_code != 200:
            problems.append(f"ledger: {name} answered {response.status_code}")
        for sql in statements:
            if not sql.startswith("SELECT") or "django_session" in sql:
                continue
            plan = explain(name, sql)
            plan["queries_of_page"] = count
            plans.append(plan)
            seq = "Seq Scan on payments_paymentnotification" in plan["scans"]
            if seq and size >= LARGE and name not in KNOWN_SCANS:
                problems.append(f"ledger: sequential scan of the ledger in {name}")
    return plans, problems


def stock_admin_statements() -> dict[str, str]:
    """What Django's stock changelist sent for this ledger before issue #16 (count twice,
    list every ``replied`` value, the date hierarchy's years, ``=field`` searches)."""
    from django.db import connection
    from django.db.models import Q

    from payments.models import PaymentNotification

    rows = PaymentNotification.objects.all()
    term = rows.order_by("-pk").values_list("out_trade_no", flat=True).first()
    searched = rows.filter(
        Q(out_trade_no__iexact=term) | Q(transaction_id__iexact=term)
        | Q(out_refund_no__iexact=term) | Q(remote_addr__iexact=term)
    )

    def sql(qs) -> str:
        with connection.cursor() as cursor:
            return cursor.mogrify(*qs.query.sql_with_params()).decode()

    return {
        "COUNT(*) of the ledger (twice per page)":
            "SELECT COUNT(*) FROM payments_paymentnotification",
        "every distinct 'replied' (its filter)": sql(
            rows.order_by("replied").values_list("replied").distinct()),
        "date hierarchy: every year": sql(rows.datetimes("received_at", "year")),
        "search, =field (UPPER() = UPPER())": sql(searched.order_by()),
    }


def explain_stock(statements: dict[str, str]) -> list[dict]:
    """Each statement run once under EXPLAIN ANALYZE (some read the whole ledger)."""
    from django.db import connection, transaction

    from bench.growth import _scans

    out = []
    for name, sql in statements.items():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
            plan = cursor.fetchone()[0][0]
        out.append({"query": name, "sql": sql, "execution_ms": plan.get("Execution Time"),
                    "scans": sorted(set(_scans(plan["Plan"])))})
    return out


def notify_plans(users: list) -> list[dict]:
    """Every statement of one notify, as Django sends it, explained (in a transaction
    that is rolled back): each must cost the same at 10^4 and 10^7 rows."""
    from django.test import Client

    payment = notify.make_payments("lq", 1, users)
    notify.seed_ours(payment, users)
    body = notify_body(payment[0], ACCOUNT)
    _, statements, _ = capture(
        lambda: Client().post("/payment/wxnotify", body, content_type="text/xml")
    )
    return [
        {key: value for key, value in explain(sql.split(" ", 1)[0], sql).items() if key != "plan"}
        for sql in statements
        if sql.startswith(("SELECT", "INSERT", "UPDATE", "WITH"))
    ]


def with_index(server, users: list, client, cookie: str, pages: dict[str, str], tag: str,
               time_limit: float) -> tuple[dict, list[str]]:
    """Experiment: the partial index that would serve the rare outcomes (PROPOSED_INDEX),
    made here with SQL, then the rare list and the notifies again; dropped afterwards."""
    began = time.perf_counter()
    pg.execute(LEDGER_DB, PROPOSED_INDEX)
    pg.execute(LEDGER_DB, "ANALYZE payments_paymentnotification")
    (index_bytes,), = pg.fetchall(
        LEDGER_DB, "SELECT pg_relation_size('notification_to_look_at')")
    try:
        out = {"index": PROPOSED_INDEX, "build_seconds": round(time.perf_counter() - began, 1),
               "index_mib": round(index_bytes / 2**20, 1)}
        rare = {RARE: pages[RARE]}
        out["page"] = page_latency(server, rare, cookie, time_limit)[0]
        out["plans"], problems = page_plans(client, rare, 0)
        out["notify"], found = notifies(server, users, tag, time_limit)
    finally:
        pg.execute(LEDGER_DB, "DROP INDEX IF EXISTS notification_to_look_at")
    return out, problems + found


# -- archiving -----------------------------------------------------------------------------------


def archive_run(media_root: str) -> tuple[dict, list[str]]:
    """archive_notifications on the oldest ARCHIVE_DAYS: dry run, run, verify; timed."""
    from datetime import datetime, timedelta
    from datetime import time as midnight

    from django.db.models import Q
    from django.utils import timezone

    from core.times import shop_timezone
    from payments.models import LedgerArchive, PaymentNotification

    oldest = PaymentNotification.objects.order_by("received_at").values_list(
        "received_at", flat=True).first()
    before = timezone.localtime(oldest + timedelta(days=ARCHIVE_DAYS)).date()
    count_before = _ledger_count()
    cut_off = datetime.combine(before, midnight.min, tzinfo=shop_timezone())
    # The rows of every group (a row and its reprocesses) whose first row is older.
    older = PaymentNotification.objects.filter(
        Q(received_at__lt=cut_off, reprocess_of__isnull=True)
        | Q(reprocess_of__received_at__lt=cut_off)
    ).count()
    env = {**os.environ, **OUR_ENV, "DATABASE_URL": database_url(LEDGER_DB),
           "MEDIA_ROOT": media_root}
    out: dict = {"before": str(before), "rows_older": older}
    problems: list[str] = []
    for step, args in (("dry run", ["--dry-run"]), ("run", []), ("verify", ["--verify"])):
        command = ["archive_notifications", *(["--before", str(before)] if step != "verify"
                                                else []), *args]
        began = time.perf_counter()
        done = subprocess.run(  # noqa: S603 (fixed command)
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=3600, check=False,
        )
        out[f"{step}_seconds"] = round(time.perf_counter() - began, 2)
        out[f"{step}_output"] = done.stdout.strip()
        if done.returncode:
            problems.append(f"ledger archive {step}: exit {done.returncode}: {done.stderr[-300:]}")
    archived = sum(a.rows for a in LedgerArchive.objects.all())
    gone = count_before - _ledger_count()
    # The summary's "N kept: reason" lines: every old row is either archived or kept.
    kept = sum(int(line.split()[0]) for line in out["run_output"].splitlines()
               if line.split()[1:2] == ["kept:"])
    out["kept"] = kept
    if archived + kept != older:
        problems.append(f"ledger archive: {archived} archived + {kept} kept, {older} older")
    files = [os.path.join(media_root, a.file.name) for a in LedgerArchive.objects.all()]
    out.update(archived=archived, files=len(files),
               archive_bytes=sum(os.path.getsize(f) for f in files))
    if archived != gone or not archived:
        problems.append(f"ledger archive: {archived} rows in files, {gone} left the ledger")
    out["rows_per_second"] = round(archived / out["run_seconds"]) if out["run_seconds"] else None
    out["bytes_per_row"] = round(out["archive_bytes"] / archived, 1) if archived else None
    return out, problems


def _ledger_count() -> int:
    return pg.fetchall(LEDGER_DB, "SELECT count(*) FROM payments_paymentnotification")[0][0]


# -- the phase -----------------------------------------------------------------------------------


def run(stack: Stack, options: Options) -> tuple[list[dict], list[str]]:
    from orders.models import Product

    pg.recreate([LEDGER_DB])
    pg.migrate([(ROOT, LEDGER_DB, {"DJANGO_SECRET_KEY": "migrate"})])
    django_env.use_database(LEDGER_DB)
    server = start_ours(stack.sim, stack.log_dir, DATABASE_URL=database_url(LEDGER_DB))
    steps, problems = [], []
    media_root = tempfile.mkdtemp(prefix="wxshop-bench-ledger-")
    try:
        product_id = Product.objects.create(name="Ledger oolong", price=4500, stock=None).pk
        for index, size in enumerate(sorted({*SIZES_ALWAYS, options.ledger_rows})):
            step = fill(size, product_id)
            print(f"  ledger: filled {step}", flush=True)
            if step["ledger_rows"] != size:
                problems.append(f"ledger fill: {step['ledger_rows']} rows, expected {size}")
            users = notify.shoppers(20, prefix="bench-ledger")
            warm = notify.make_payments(f"lw{index}", notify.WARMUP, users)
            notify.seed_ours(warm, users)
            notify.deliver(server.url, [notify_body(p, ACCOUNT) for p in warm], 8, 60)
            step["notify"], found = notifies(server, users, f"l{index}x", options.time_limit)
            problems += found
            client, cookie = staff_cookie()
            pages = admin_pages(size)
            step["pages"] = page_latency(server, pages, cookie, options.time_limit)
            problems += [f"ledger {size} {p['page']}: {p['errors']} errors, {p['unsent']} unsent"
                         for p in step["pages"] if p["errors"] or p["unsent"]]
            step["plans"], found = page_plans(client, pages, size)
            problems += found
            step["notify_plans"] = notify_plans(users)
            step["stock_admin"] = explain_stock(stock_admin_statements())
            step["experiment"], found = with_index(server, users, client, cookie, pages,
                                                   f"l{index}i", options.time_limit)
            problems += found
            step["archive"], found = archive_run(media_root)
            problems += found
            steps.append(step)
            _print(step)
    finally:
        server.stop()
        if not options.keep_db:  # the archive files go with the database they came from
            shutil.rmtree(media_root, ignore_errors=True)
    return steps, problems


def summary_rows(steps: list[dict]) -> list[dict]:
    """One row per (size, what): p50/p99 of notifies and pages."""
    rows = []
    for step in steps:
        size = step["ledger_rows"]
        rows.append({"ledger_rows": size, "what": "notify (first delivery), c=8",
                     "p50_ms": step["notify"]["p50_ms"], "p99_ms": step["notify"]["p99_ms"],
                     "cpu_server_ms": step["notify"]["cpu_server_ms"],
                     "errors": step["notify"]["errors"]})
        rows += [{"ledger_rows": size, "what": f"{p['page']}, c=2", "p50_ms": p["p50_ms"],
                  "p99_ms": p["p99_ms"], "cpu_server_ms": p["cpu_server_ms"],
                  "errors": p["errors"]} for p in step["pages"]]
        trial = step["experiment"]
        rows += [{"ledger_rows": size, "what": f"+ index notification_to_look_at: {name}",
                  "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "cpu_server_ms": r["cpu_server_ms"],
                  "errors": r["errors"]}
                 for name, r in ((RARE, trial["page"]), ("notify", trial["notify"]))]
    return rows


def _print(step: dict) -> None:
    print(f"  ledger {step['ledger_rows']:>10,} rows: notify p50 {step['notify']['p50_ms']} "
          f"p99 {step['notify']['p99_ms']} ms", flush=True)
    for page in step["pages"]:
        print(f"    {page['page']:<40} p50 {page['p50_ms']:>8} ms  p99 {page['p99_ms']:>8} ms",
              flush=True)
    for stock in step["stock_admin"]:
        print(f"    stock admin: {stock['query']:<42} {stock['execution_ms']:>10} ms  "
              f"{stock['scans']}", flush=True)
    trial = step["experiment"]
    print(f"    with the proposed index ({trial['index_mib']} MiB, built in "
          f"{trial['build_seconds']} s): rare list p50 {trial['page']['p50_ms']} ms, "
          f"notify p50 {trial['notify']['p50_ms']} ms, CPU {trial['notify']['cpu_server_ms']} "
          f"ms/notify", flush=True)
    archive = step["archive"]
    print(f"    archive (before {archive['before']}): {archive['archived']} rows in "
          f"{archive['files']} files, {archive['run_seconds']} s "
          f"({archive['rows_per_second']} rows/s, {archive['bytes_per_row']} bytes/row); "
          f"dry run {archive['dry run_seconds']} s, verify {archive['verify_seconds']} s",
          flush=True)
