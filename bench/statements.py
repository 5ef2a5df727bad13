"""Statements: import and match WeChat's daily bill at 10^4, 10^5 and 10^6 lines.

``python -m bench --statements [--sizes 10000,100000,1000000] [--db NAME] [--keep-db]``
(or ``python -m bench.statements ...``). PostgreSQL only, a database of its own; no servers.

For each size N: N paid orders are made in one ``INSERT … SELECT generate_series`` on their
own Beijing day, a v2 bill of N payment lines for exactly those orders (plus the summary) is
streamed to a temporary file, and a fresh child process imports it through
``payments.statements.statement_import_file`` — the download path's recording and matching,
WeChat not called. The child reports the import + match wall time, the queries it ran,
tracemalloc's peak (Python allocations; tracing is on during the timed import, so the time
includes its overhead) and the process's max RSS. A child per size, so ``ru_maxrss`` is that
size's alone. Results: bench/results/statements.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench import pg, report
from bench.config import ROOT, database_url

DEFAULT_DB = "h22bench"
SIZES = (10_000, 100_000, 1_000_000)
FIRST_DAY = date(2026, 1, 1)  # one Beijing day per size, so no size sees another's orders

USERS_SQL = """
INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email,
    is_staff, is_active, date_joined, openid, unionid, session_key, token_version)
VALUES ('!', false, 'wx_ostatement', '', '', '', false, true, now(), 'ostatement', '', '', 0)
ON CONFLICT DO NOTHING
"""

# Paid at day start + g * step seconds, Beijing; the bill below uses the same numbers.
ORDERS_SQL = """
INSERT INTO orders_order (out_trade_no, openid, body, total_fee, status, sign_type,
    spbill_create_ip, prepay_id, transaction_id, paid_at, paid_fee, created_at, expires_at,
    needs_attention, attention_reason, user_id, close_pending_at_wechat, notify_url,
    idempotency_key, remark, fulfilment_status)
SELECT %(prefix)s || lpad(g::text, 10, '0'), 'ostatement', 'Oolong tea 250g',
       100 + g %% 10000, 'paid', 'MD5', '127.0.0.1', '',
       %(tx_prefix)s || lpad(g::text, 12, '0'),
       %(start)s::timestamptz + (g * %(step)s::float8) * interval '1 second', 100 + g %% 10000,
       %(start)s::timestamptz, %(start)s::timestamptz + interval '30 minutes',
       false, '', (SELECT id FROM accounts_user WHERE openid = 'ostatement'), false, '', '',
       '', 'unfulfilled'
FROM generate_series(0, %(n)s - 1) g
"""

ALL_COLUMNS = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
)
SUMMARY_COLUMNS = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


def _yuan(fen: int, places: int = 2) -> str:
    whole, cents = divmod(fen, 100)
    return f"{whole}.{cents:02d}" + "0" * (places - 2)


def _names(n: int, index: int) -> dict[str, str]:
    return {
        "day": (FIRST_DAY + timedelta(days=index)).isoformat(),
        "prefix": f"S{index}",
        "tx_prefix": f"4200S{index}",
        "step": str(86400 / n),
    }


def write_bill(path: Path, n: int, names: dict[str, str]) -> int:
    """Stream an N-payment-line v2 bill (§14.4) for the orders ORDERS_SQL made; its size."""
    day = date.fromisoformat(names["day"])
    step = float(names["step"])
    paid_total = fee_total = 0
    with path.open("wb") as out:
        out.write(b"\xef\xbb\xbf" + ALL_COLUMNS.encode() + b"\r\n")
        base = time.mktime(day.timetuple())  # only for formatting: seconds since the day began
        for g in range(n):
            fen = 100 + g % 10000
            fee = (fen * 6 + 500) // 1000
            paid_total += fen
            fee_total += fee
            seconds = int(g * step)
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(base + seconds))
            row = (
                at, "wxdemoappid", "1900000109", "0", "", f"{names['tx_prefix']}{g:012d}",
                f"{names['prefix']}{g:010d}", "ostatement", "JSAPI", "SUCCESS", "OTHERS", "CNY",
                _yuan(fen), "0.00", "0", "0", "0.00", "0.00", "", "", "Oolong tea 250g", "",
                _yuan(fee, 5), "0.60%", _yuan(fen), "0.00", "",
            )
            out.write(",".join("`" + v for v in row).encode() + b"\r\n")
        out.write(SUMMARY_COLUMNS.encode() + b"\r\n")
        summary = (str(n), _yuan(paid_total), "0.00", "0.00", _yuan(fee_total, 5),
                   _yuan(paid_total), "0.00")
        out.write(",".join("`" + v for v in summary).encode() + b"\r\n")
    return path.stat().st_size


def child(db: str, n: int, day: str, bill: str) -> dict:
    """In a fresh process: import ``bill`` for ``day``; time, queries and memory."""
    import resource
    import tracemalloc

    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "shopsite.settings",
        "DJANGO_SECRET_KEY": "bench-statements",
        "DATABASE_URL": database_url(db),
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="wxshop-statements-media-"),
        "LOG_LEVEL": "WARNING",
    })
    import django

    django.setup()
    from django.db import connection

    from payments.statements import statement_import_file

    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    connection.ensure_connection()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(bill, "rb") as file, connection.execute_wrapper(count):
        tracemalloc.start()
        began = time.perf_counter()
        result = statement_import_file(bill_date=date.fromisoformat(day), file=file)
        seconds = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    statement = result.statement
    return {
        "lines": n,
        "import_match_seconds": round(seconds, 2),
        "lines_per_second": round(n / seconds),
        "queries": queries,
        "tracemalloc_peak_mib": round(peak / 2**20, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_import_mib": round(rss_before / 1024, 1),
        "status": statement.status,
        "trade_count": statement.trade_count,
        "mismatch_count": statement.mismatch_count,
    }


def run(db: str, sizes: tuple[int, ...], keep_db: bool) -> tuple[dict, list[str]]:
    pg.recreate([db])
    pg.migrate([(ROOT, db, {"DJANGO_SECRET_KEY": "migrate"})])
    pg.execute(db, USERS_SQL)
    rows, problems = [], []
    machine = report.machine()
    workdir = Path(tempfile.mkdtemp(prefix="wxshop-statements-"))
    try:
        for index, n in enumerate(sizes):
            names = _names(n, index)
            began = time.perf_counter()
            pg.execute(db, ORDERS_SQL, {**names, "n": n,
                                        "start": f"{names['day']} 00:00:00+08:00"})
            pg.execute(db, "VACUUM ANALYZE orders_order")
            orders_seconds = time.perf_counter() - began
            bill = workdir / f"bill-{n}.csv"
            began = time.perf_counter()
            size = write_bill(bill, n, names)
            bill_seconds = time.perf_counter() - began
            out = subprocess.run(  # noqa: S603 (fixed command)
                [sys.executable, "-m", "bench.statements", "--child", str(n), "--db", db,
                 "--day", names["day"], "--bill", str(bill)],
                cwd=ROOT, capture_output=True, text=True, check=False,
            )
            if out.returncode:
                problems.append(f"statements {n}: child failed:\n{out.stderr[-2000:]}")
                break
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(bill_mib=round(size / 2**20, 1),
                       orders_fill_seconds=round(orders_seconds, 1),
                       bill_write_seconds=round(bill_seconds, 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
            # Written after every size: a long 10^6 run that is stopped keeps the smaller ones.
            report.write("statements", {"machine": machine, "rows": rows, "problems": problems})
            if (row["status"], row["trade_count"], row["mismatch_count"]) != ("matched", n, 0):
                problems.append(f"statements {n}: expected matched, {n} trades, 0 mismatches")
            bill.unlink()
    finally:
        if not keep_db:
            pg.drop([db])
    return {"machine": machine, "rows": rows, "problems": problems}, problems


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench --statements",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    p.add_argument("--db", default=DEFAULT_DB, help="PostgreSQL database, recreated (%(default)s)")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--day", help=argparse.SUPPRESS)
    p.add_argument("--bill", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.db, a.child, a.day, a.bill)), flush=True)
        return 0
    data, problems = run(a.db, tuple(int(s) for s in a.sizes.split(",")), a.keep_db)
    report.write("statements", data)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
