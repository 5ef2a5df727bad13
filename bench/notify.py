"""Notify throughput: N distinct signed notifies for N unpaid orders, ours vs the peer.

Both servers get byte-identical request bodies. After each run the databases are checked:
exactly N orders paid with WeChat's transaction ids, and (ours) N ledger rows; a run that
loses or double-applies anything is a failure.
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import timedelta

from bench import cpu, load, pg
from bench.config import ACCOUNT, OUR_DB, PEER_DB, Options
from bench.servers import Stack
from bench.wire import Payment, is_success_reply, notify_body

NOTIFY_PATH = "/payment/wxnotify"
HEADERS = {"Content-Type": "text/xml"}
WARMUP = 64


def shoppers(count: int, prefix: str = "bench-notify") -> list:
    """Users to own the orders (ORM, in the bench database)."""
    from django.contrib.auth.hashers import make_password

    from accounts.models import User

    users = [
        User(username=f"wx_{prefix}-{i}", openid=f"o{prefix}-{i}", password=make_password(None))
        for i in range(count)
    ]
    User.objects.bulk_create(users, ignore_conflicts=True)
    return list(User.objects.filter(openid__startswith=f"o{prefix}-"))


def make_payments(tag: str, n: int, users: list) -> list[Payment]:
    """``tag`` prefixes every out_trade_no of one run, to find its rows afterwards."""
    return [
        Payment(
            out_trade_no=f"B{tag}{i:07d}{secrets.token_hex(6)}",
            total_fee=100 + i % 900,
            openid=users[i % len(users)].openid,
            transaction_id="4200" + secrets.token_hex(10),
        )
        for i in range(n)
    ]


def seed_ours(payments: list[Payment], users: list) -> None:
    from django.utils import timezone

    from orders.models import Order

    by_openid = {user.openid: user for user in users}
    now = timezone.now()
    Order.objects.bulk_create(
        (
            Order(
                out_trade_no=p.out_trade_no, user=by_openid[p.openid], openid=p.openid,
                body="Bench tea", total_fee=p.total_fee, sign_type="MD5",
                spbill_create_ip="127.0.0.1", created_at=now, expires_at=now + timedelta(hours=2),
            )
            for p in payments
        ),
        batch_size=1000,
    )


def seed_peer(payments: list[Payment]) -> None:
    pg.insert_rows(
        PEER_DB,
        "INSERT INTO shop_order (out_trade_no, total_fee, status, transaction_id, created_at)"
        " VALUES %s",
        [(p.out_trade_no, p.total_fee) for p in payments],
        template="(%s, %s, 'unpaid', '', now())",
    )


def seed(server: str, payments: list[Payment], users: list) -> None:
    if server == "ours":
        seed_ours(payments, users)
    else:
        seed_peer(payments)


def verify(server: str, tag: str, payments: list[Payment], copies: int = 1) -> list[str]:
    if server == "ours":
        return verify_ours(tag, payments, copies)
    return verify_peer(tag, payments)


def deliver(url: str, bodies: list[bytes], concurrency: int, time_limit: float) -> load.LoadResult:
    reqs = [load.Req("POST", NOTIFY_PATH, body, HEADERS) for body in bodies]
    return load.run(url, reqs, concurrency, time_limit, is_success_reply)


def deliver_timed(
    server_pid: int, url: str, bodies: list[bytes], concurrency: int, time_limit: float
) -> tuple[load.LoadResult, dict[str, float]]:
    """``deliver``, and the CPU it cost the server, PostgreSQL and the client, per request."""
    before = cpu.snapshot(server_pid)
    result = deliver(url, bodies, concurrency, time_limit)
    return result, cpu.per_request_ms(before, cpu.snapshot(server_pid), result.sent)


def verify_ours(tag: str, payments: list[Payment], copies: int) -> list[str]:
    """N orders paid with the right transaction ids; ``copies`` x N ledger rows, of which
    N ``paid`` and the rest ``duplicate``."""
    from django.db.models import Count

    from orders.models import Order
    from payments.models import PaymentNotification

    prefix, n = f"B{tag}", len(payments)
    paid = dict(
        Order.objects.filter(out_trade_no__startswith=prefix, status="paid").values_list(
            "out_trade_no", "transaction_id"
        )
    )
    problems = _paid_problems("ours", paid, payments)
    outcomes = dict(
        PaymentNotification.objects.filter(out_trade_no__startswith=prefix)
        .values_list("outcome")
        .annotate(n=Count("pk"))
    )
    expected = {"paid": n} | ({"duplicate": n * (copies - 1)} if copies > 1 else {})
    if outcomes != expected:
        problems.append(f"ours {tag}: ledger outcomes {outcomes}, expected {expected}")
    return problems


def verify_peer(tag: str, payments: list[Payment]) -> list[str]:
    rows = pg.fetchall(
        PEER_DB,
        "SELECT out_trade_no, transaction_id FROM shop_order"
        " WHERE out_trade_no LIKE %s AND status = 'paid'",
        (f"B{tag}%",),
    )
    return _paid_problems("peer", dict(rows), payments)


def _paid_problems(server: str, paid: dict[str, str], payments: list[Payment]) -> list[str]:
    expected = {p.out_trade_no: p.transaction_id for p in payments}
    if paid == expected:
        return []
    wrong = sum(1 for k, v in paid.items() if expected.get(k) != v)
    return [f"{server}: {len(paid)} orders paid of {len(expected)}, {wrong} with a wrong id"]


def run(stack: Stack, options: Options) -> tuple[list[dict], list[str]]:
    """Every (concurrency, server) run, then the all-duplicates re-delivery."""
    rows: list[dict] = []
    problems: list[str] = []
    users = shoppers(20)
    servers = _servers(stack)
    _warm_up(servers, users, problems)
    for rep in range(options.repeat):
        for c in options.concurrencies:
            rows += _round(servers, users, f"c{c}r{rep}x", c, options, problems)
    return rows, problems


def _round(
    servers: list[tuple[str, str, int]], users: list, tag: str, c: int, options: Options,
    problems: list[str],
) -> list[dict]:
    """Fresh orders; first delivery then all duplicates, ours and the peer alternating."""
    rows = []
    payments = make_payments(tag, options.n, users)
    for name, _, _ in servers:
        seed(name, payments, users)
    bodies = [notify_body(p, ACCOUNT) for p in payments]
    for scenario, copies in (("first delivery", 1), ("all duplicates", 2)):
        for name, url, pid in servers:
            result, cpu_ms = deliver_timed(pid, url, bodies, c, options.time_limit)
            found = verify(name, tag, payments, copies)
            problems += [f"{scenario} c={c}: {p}" for p in found]
            rows.append(_row(scenario, name, c, result, not found) | cpu_ms | {"round": tag})
            print(_line(rows[-1]), flush=True)
    return rows


TABLE_STATS_SQL = """
SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd,
       (SELECT count(*) FROM pg_indexes i WHERE i.tablename = t.relname) AS indexes
FROM pg_stat_user_tables t WHERE relname = ANY(%s) ORDER BY relname
"""


def table_stats() -> list[dict]:
    """Rows written and how many updates were HOT (no index touched), per hot table.

    Cumulative over the whole run so far (warm-up and duplicates included)."""
    time.sleep(1.5)  # backends flush their statistics about once a second
    out = []
    for server, db, tables in (
        ("ours", OUR_DB, ["orders_order", "payments_paymentnotification"]),
        ("peer", PEER_DB, ["shop_order"]),
    ):
        for name, ins, upd, hot, indexes in pg.fetchall(db, TABLE_STATS_SQL, (tables,)):
            out.append({"server": server, "table": name, "indexes": indexes, "inserts": ins,
                        "updates": upd, "hot_updates": hot})
    return out


def _servers(stack: Stack) -> list[tuple[str, str, int]]:
    servers = [("ours", stack.ours.url, stack.ours.process.pid)]
    if stack.peer:
        servers.append(("peer", stack.peer.url, stack.peer.process.pid))
    return servers


def _warm_up(servers: list[tuple[str, str, int]], users: list, problems: list[str]) -> None:
    """Load the code and open connections in every worker; not measured."""
    payments = make_payments("w", WARMUP, users)
    seed_ours(payments, users)
    if any(name == "peer" for name, _, _ in servers):
        seed_peer(payments)
    bodies = [notify_body(p, ACCOUNT) for p in payments]
    for name, url, _ in servers:
        result = deliver(url, bodies, 8, 60)
        if result.errors or result.unsent:
            problems.append(f"warm-up {name}: {result.summary()}")


def _row(scenario: str, server: str, c: int, result: load.LoadResult, verified: bool) -> dict:
    """One result line; ``load_1m`` shows when something else was using the machine."""
    return {"scenario": scenario, "server": server, "concurrency": c, **result.summary(),
            "verified": verified, "load_1m": round(os.getloadavg()[0], 2)}


def _line(row: dict) -> str:
    return (
        f"  notify {row['scenario']:<15} {row['server']:<5} c={row['concurrency']:<3} "
        f"{row['rps']:>7.1f} req/s  p50 {row['p50_ms']:>7.2f} ms  p99 {row['p99_ms']:>7.2f} ms  "
        f"errors {row['errors']}  verified {row['verified']}  "
        f"CPU/req ms: server {row.get('cpu_server_ms')} pg {row.get('cpu_postgres_ms')} "
        f"client {row.get('cpu_client_ms')}"
    )


RATIO = "notify_rps_ratio_vs_persistent_peer"
PEER_DESCRIPTION = (
    "bench/peer: django-admin startproject + wechatpy 1.8.18 parse_payment_result, "
    "startproject's seven middleware, CONN_MAX_AGE=60, same gunicorn arguments"
)


def ratios(rows: list[dict]) -> list[dict]:
    """Ours relative to the peer (wechatpy, startproject's middleware, CONN_MAX_AGE=60), per
    scenario and concurrency: ``notify_rps_ratio_vs_persistent_peer`` (higher is better) and
    ``p99_ratio`` (lower is better)."""
    index = {(r["scenario"], r["server"], r["concurrency"]): r for r in rows}
    out = []
    for (scenario, server, c), ours in index.items():
        peer = index.get((scenario, "peer", c))
        if server != "ours" or peer is None:
            continue
        out.append({
            "scenario": scenario, "concurrency": c,
            "rps_ours": ours["rps"], "rps_peer": peer["rps"],
            RATIO: round(ours["rps"] / peer["rps"], 2) if peer["rps"] else None,
            "p99_ours_ms": ours["p99_ms"], "p99_peer_ms": peer["p99_ms"],
            "p99_ratio": round(ours["p99_ms"] / peer["p99_ms"], 2) if peer["p99_ms"] else None,
        })
    return out


def ratio_summary(ratios_: list[dict]) -> dict[str, float | None]:
    """``{"first delivery c=8": 1.23, …}``: the headline of notify.json."""
    return {f"{r['scenario']} c={r['concurrency']}": r[RATIO] for r in ratios_}


def round_ratios(runs: list[dict]) -> list[dict]:
    """The same ratio within each round (ours and the peer ran back to back on the same
    orders), to show its spread on a shared machine; the headline is the ratio of medians."""
    by_round: dict[tuple, dict[str, dict]] = {}
    for run in runs:
        by_round.setdefault((run["round"], run["scenario"], run["concurrency"]), {})[
            run["server"]
        ] = run
    out = []
    for (rnd, scenario, c), pair in by_round.items():
        if {"ours", "peer"} <= set(pair) and pair["peer"]["rps"]:
            out.append({"round": rnd, "scenario": scenario, "concurrency": c,
                        RATIO: round(pair["ours"]["rps"] / pair["peer"]["rps"], 2)})
    return out
