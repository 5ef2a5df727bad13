"""Statements: import and match WeChat's daily bill at 10^4, 10^5 and 10^6 lines.

``python -m bench --statements [--statement-lines 10000,100000,1000000] [--db NAME]
[--keep-db] [--no-tracemalloc]`` (or ``python -m bench.statements ...``). PostgreSQL only,
a database of its own; no servers.

For each size N: N paid orders are made in one ``INSERT … SELECT generate_series`` on their
own Beijing day, a v2 bill of N payment lines for exactly those orders (plus the summary) is
streamed to a temporary file, and a fresh child process (so ``ru_maxrss`` is that size's
alone) does three things with it:

1. parses it with ``wechat.bills.iter_trade_bill`` and nothing else: the parser's share;
2. imports it through ``payments.statements.statement_import_file`` — the download path's
   recording and matching, WeChat not called — with tracemalloc off: wall time, the
   import's own laps (store; load: the COPYs, waiting for the parser included; match: the
   INSERT … SELECTs; paid here only; summarise; commit), every SQL statement by kind, the
   CPU time of this process and of its PostgreSQL backend, and the max RSS;
3. unless ``--no-tracemalloc``, imports it again under tracemalloc for the peak of Python's
   allocations, for another day (no orders paid then, so nothing differs) inside a
   transaction that is rolled back. Its time is reported apart: tracing slows Python.

Results: bench/results/statements.json, written after every size.
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
    idempotency_key, remark, fulfilment_status, pay_version)
SELECT %(prefix)s || lpad(g::text, 10, '0'), 'ostatement', 'Oolong tea 250g',
       100 + g %% 10000, 'paid', 'MD5', '127.0.0.1', '',
       %(tx_prefix)s || lpad(g::text, 12, '0'),
       %(start)s::timestamptz + (g * %(step)s::float8) * interval '1 second', 100 + g %% 10000,
       %(start)s::timestamptz, %(start)s::timestamptz + interval '30 minutes',
       false, '', (SELECT id FROM accounts_user WHERE openid = 'ostatement'), false, '', '',
       '', 'unfulfilled', 'v2'
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


def _process_cpu(pid: int) -> float:
    """utime + stime of a process on this machine (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(db: str, n: int, day: str, bill: str, traced_day: str | None) -> dict:
    """In a fresh process: parse ``bill``, import it for ``day`` (timed, then traced for
    ``traced_day`` and rolled back); times, laps, queries and memory."""
    import logging
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
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from payments.statements import statement_import_file
    from wechat.bills import iter_trade_bill

    laps: dict[str, float] = {}

    class Laps(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            laps.update(getattr(record, "statement_laps", {}))

    log = logging.getLogger("payments.statements")
    log.addHandler(Laps())
    log.setLevel(logging.INFO)

    def rss_mib() -> float:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    def client_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    rss_before = rss_mib()
    with open(bill, "rb") as file:
        began = time.perf_counter()
        for _item in iter_trade_bill(file):
            pass
        parse_seconds = time.perf_counter() - began
    with open(bill, "rb") as file, CaptureQueriesContext(connection) as captured:
        cpu_before = client_cpu(), _process_cpu(backend)
        began = time.perf_counter()
        result = statement_import_file(bill_date=date.fromisoformat(day), file=file)
        seconds = time.perf_counter() - began
        cpu_after = client_cpu(), _process_cpu(backend)
    rss_after = rss_mib()
    kinds: dict[str, int] = {}
    for query in captured.captured_queries:
        kind = query["sql"].lstrip().split(None, 1)[0].upper()
        kinds[kind] = kinds.get(kind, 0) + 1
    statement = result.statement
    row = {
        "lines": n,
        "import_match_seconds": round(seconds, 2),
        "lines_per_second": round(n / seconds),
        "parse_only_seconds": round(parse_seconds, 2),
        "laps_seconds": {name: round(value, 2) for name, value in laps.items()},
        # CPU time, which other processes on the machine hardly change (unlike wall time):
        # this process (both its threads) and its PostgreSQL backend.
        "cpu_client_seconds": round(cpu_after[0] - cpu_before[0], 2),
        "cpu_backend_seconds": round(cpu_after[1] - cpu_before[1], 2),
        "queries": len(captured.captured_queries),
        "query_kinds": kinds,
        "max_rss_mib": rss_after,
        "rss_before_import_mib": rss_before,
        "status": statement.status,
        "trade_count": statement.trade_count,
        "mismatch_count": statement.mismatch_count,
    }
    if traced_day:
        with open(bill, "rb") as file, transaction.atomic():
            tracemalloc.start()
            began = time.perf_counter()
            statement_import_file(bill_date=date.fromisoformat(traced_day), file=file)
            row["traced_import_seconds"] = round(time.perf_counter() - began, 2)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            transaction.set_rollback(True)
        row["tracemalloc_peak_mib"] = round(peak / 2**20, 1)
    return row


def run(db: str, sizes: tuple[int, ...], keep_db: bool, traced: bool) -> tuple[dict, list[str]]:
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
            # A day without orders for the traced import: every line still finds its order.
            quiet_day = (FIRST_DAY - timedelta(days=365 + index)).isoformat()
            load_before = os.getloadavg()[0]
            out = subprocess.run(  # noqa: S603 (fixed command)
                [sys.executable, "-m", "bench.statements", "--child", str(n), "--db", db,
                 "--day", names["day"], "--bill", str(bill),
                 *(["--traced-day", quiet_day] if traced else [])],
                cwd=ROOT, capture_output=True, text=True, check=False,
            )
            if out.returncode:
                problems.append(f"statements {n}: child failed:\n{out.stderr[-2000:]}")
                break
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(bill_mib=round(size / 2**20, 1),
                       orders_fill_seconds=round(orders_seconds, 1),
                       bill_write_seconds=round(bill_seconds, 1),
                       # The machine is shared: what else ran shows in the load average.
                       load_1m_before=round(load_before, 2),
                       load_1m_after=round(os.getloadavg()[0], 2))
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


TABLE_COLUMNS = ["lines", "import_match_seconds", "lines_per_second", "parse_only_seconds",
                 "load_s", "match_s", "paid_here_only_s", "summarise_s", "commit_s",
                 "cpu_client_seconds", "cpu_backend_seconds", "queries", "max_rss_mib",
                 "tracemalloc_peak_mib", "load_1m_before"]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench --statements",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--statement-lines", "--sizes", dest="sizes",
                   default=",".join(str(s) for s in SIZES),
                   help="bill sizes in lines, comma-separated (%(default)s)")
    p.add_argument("--db", default=DEFAULT_DB, help="PostgreSQL database, recreated (%(default)s)")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--no-tracemalloc", dest="traced", action="store_false",
                   help="skip the traced import (Python's allocation peak)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--day", help=argparse.SUPPRESS)
    p.add_argument("--bill", help=argparse.SUPPRESS)
    p.add_argument("--traced-day", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.db, a.child, a.day, a.bill, a.traced_day)), flush=True)
        return 0
    data, problems = run(a.db, tuple(int(s) for s in a.sizes.split(",")), a.keep_db, a.traced)
    report.write("statements", data)
    report.table("Statements: import + match", [
        {**row, **{f"{name}_s": value for name, value in row["laps_seconds"].items()}}
        for row in data["rows"]
    ], TABLE_COLUMNS)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
