"""``python -m bench``: every benchmark of issue #6 in one bounded run.

Creates its own PostgreSQL databases, starts the WeChat simulator, our shop and the
wechatpy peer under one gunicorn configuration, runs the phases, prints tables, writes
bench/results/*.json, stops everything and drops the databases. Exit status 1 when any
check failed (lost or double-applied data, failed requests).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import (
    checkout,
    django_env,
    experiments,
    flash_sale,
    growth,
    ledger,
    notify,
    pg,
    profiling,
    queries,
    reads,
    report,
    servers,
    serving,
)
from bench.config import GROWTH_DB, OUR_DB, PEER_DB, PEER_DIR, ROOT, SERVING_DB, Options
from bench.servers import Stack


def parse_args(argv: list[str]) -> Options:
    defaults = Options()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=defaults.n, help="notifies per run (%(default)s)")
    p.add_argument("--concurrency", default="8,32", help="notify concurrencies (%(default)s)")
    p.add_argument("--orders", type=int, default=defaults.orders, help="(%(default)s)")
    p.add_argument("--shoppers", type=int, default=defaults.shoppers, help="(%(default)s)")
    p.add_argument("--growth", type=int, default=defaults.growth,
                   help="largest orders_order size; 10^4 always runs (%(default)s)")
    p.add_argument("--profile-seconds", type=float, default=defaults.profile_seconds)
    p.add_argument("--time-limit", type=float, default=defaults.time_limit,
                   help="seconds per load run (%(default)s)")
    p.add_argument("--repeat", type=int, default=defaults.repeat,
                   help="rounds of notify runs and experiments, medians reported (%(default)s)")
    p.add_argument("--only", default=",".join(defaults.phases), help="phases (%(default)s)")
    p.add_argument("--reads-orders", type=int, default=defaults.reads_orders,
                   help="orders of the reads phase (%(default)s)")
    p.add_argument("--ledger-rows", type=int, default=defaults.ledger_rows,
                   help="largest notify ledger; 10^4 always runs (%(default)s)")
    p.add_argument("--keep-db", action="store_true", help="do not drop the databases")
    a = p.parse_args(argv)
    unknown = set(a.only.split(",")) - set(PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}; known: {','.join(PHASES)}")
    return Options(
        n=a.n, concurrencies=tuple(int(c) for c in a.concurrency.split(",")),
        orders=a.orders, shoppers=a.shoppers, growth=a.growth,
        reads_orders=a.reads_orders, ledger_rows=a.ledger_rows,
        profile_seconds=a.profile_seconds, time_limit=a.time_limit, keep_db=a.keep_db,
        repeat=max(1, a.repeat),
        phases=tuple(a.only.split(",")),
    )


def prepare_databases() -> None:
    pg.recreate([OUR_DB, PEER_DB, GROWTH_DB, SERVING_DB])
    pg.migrate([
        (ROOT, OUR_DB, {"DJANGO_SECRET_KEY": "migrate"}),
        (ROOT, GROWTH_DB, {"DJANGO_SECRET_KEY": "migrate"}),
        (ROOT, SERVING_DB, {"DJANGO_SECRET_KEY": "migrate"}),
        (PEER_DIR, PEER_DB, servers.peer_env()),
    ])


def start(log_dir: Path, with_peer: bool) -> Stack:
    started: list = []
    try:
        sim = servers.start_simulator(log_dir)
        started.append(sim)
        ours = servers.start_ours(sim, log_dir)
        started.append(ours)
        peer = servers.PeerServer(log_dir / "gunicorn-peer.log").start() if with_peer else None
    except BaseException:
        for process in reversed(started):
            process.stop()
        raise
    return Stack(sim, ours, peer, servers.SimControl(sim), log_dir)


def stop(stack: Stack) -> None:
    stack.control.close()
    for process in (stack.peer, stack.ours, stack.sim):
        if process is not None:
            process.stop()


def phase_queries(stack: Stack, options: Options) -> list[str]:
    rows, sql = queries.measure(stack.control)
    report.table("Queries per request", rows, QUERY_COLUMNS)
    report.write("queries", {"rows": rows, "sql": sql})
    return []


def phase_notify(stack: Stack, options: Options) -> list[str]:
    runs, problems = notify.run(stack, options)
    rows = report.medians(runs, ["scenario", "server", "concurrency"])
    ratios = notify.ratios(rows)
    tables = notify.table_stats()
    report.table(f"Notify throughput (median of {options.repeat})", rows, NOTIFY_COLUMNS)
    report.table("Ours / peer with CONN_MAX_AGE=60 (rps: higher is better; p99: lower is "
                 "better)", ratios, RATIO_COLUMNS)
    report.table("Rows written during the notify runs", tables, list(tables[0]))
    report.write("notify", {
        notify.RATIO: notify.ratio_summary(ratios),
        "peer": notify.PEER_DESCRIPTION,
        "rows": rows, "ratios": ratios, "round_ratios": notify.round_ratios(runs),
        "tables": tables, "runs": runs,
    })
    return problems


def phase_profile(stack: Stack, options: Options) -> list[str]:
    report.write("profile", profiling.run(stack, options))
    return []


def phase_experiments(stack: Stack, options: Options) -> list[str]:
    runs, problems = experiments.run(stack, options)
    rows = report.medians(runs, ["variant"])
    report.table(f"Experiments (concurrency 8, median of {options.repeat})", rows,
                 EXPERIMENT_COLUMNS)
    report.write("experiments", {"rows": rows, "runs": runs})
    return problems


def phase_orders(stack: Stack, options: Options) -> list[str]:
    summary, problems = checkout.run(stack, options)
    report.table("Order creation", summary["runs"], ORDER_COLUMNS)
    report.write("orders", summary)
    return problems


def phase_growth(stack: Stack, options: Options) -> list[str]:
    steps, problems = growth.run(stack, options)
    report.table("Growth (concurrency 8)", growth.summary_rows(steps), GROWTH_COLUMNS)
    report.write(f"growth-{options.growth}", steps)
    return problems


def phase_serving(stack: Stack, options: Options) -> list[str]:
    runs, problems = serving.run(stack, options)
    rows = report.medians(runs, ["model"])
    ratios = serving.ratios(rows)
    report.table(f"Order creation, +{serving.LATENCY_MS} ms WeChat, c={serving.CONCURRENCY} "
                 f"(median of {options.repeat})", rows, SERVING_COLUMNS)
    report.table("Against sync, 4 workers (rps: higher is better; p99: lower is better)",
                 ratios, ["model", "rps_ratio", "p99_ratio"])
    report.write("serving", {"rows": rows, "ratios": ratios, "runs": runs})
    return problems


def phase_flash(stack: Stack, options: Options) -> list[str]:
    runs, problems = flash_sale.run(stack, options)
    rows = report.medians(runs, ["scenario", "model"])
    report.table(f"Flash sale, c={serving.CONCURRENCY} (median of {options.repeat})", rows,
                 FLASH_COLUMNS)
    report.write("flash-sale", {"rows": rows, "runs": runs})
    return problems


def phase_reads(stack: Stack, options: Options) -> list[str]:
    try:
        result, problems = reads.run(stack, options)
    finally:
        _leave(reads.READS_DB, options)
    rows = report.medians(result["runs"], ["page_size", "request"])
    report.table(f"Reads at {result['fill']['orders_order']:,} orders, c={reads.CONCURRENCY}",
                 rows, READS_COLUMNS)
    report.table("Queries per request by page size", result["queries"],
                 ["request", "page_size", "queries", "status"])
    report.table("Heavy shopper's page query: plain OFFSET vs ids first", result["deep_pages"],
                 list(result["deep_pages"][0]))
    report.write(f"reads-{options.reads_orders}", {**result, "rows": rows})
    return problems


def phase_ledger(stack: Stack, options: Options) -> list[str]:
    try:
        steps, problems = ledger.run(stack, options)
    finally:
        _leave(ledger.LEDGER_DB, options)
    report.table("Notify ledger growth", ledger.summary_rows(steps),
                 ["ledger_rows", "what", "p50_ms", "p99_ms", "cpu_server_ms", "errors"])
    report.write(f"ledger-{options.ledger_rows}", steps)
    return problems


def _leave(db: str, options: Options) -> None:
    """Back to the main bench database; drop the phase's own one unless kept."""
    django_env.use_database(OUR_DB)
    if not options.keep_db:
        pg.drop([db])


PHASES = {
    "queries": ("queries per request", phase_queries),
    "notify": ("notify throughput, ours vs peer", phase_notify),
    "profile": ("profile (py-spy) of the notify under load", phase_profile),
    "experiments": ("experiments (no production change)", phase_experiments),
    "orders": ("order creation", phase_orders),
    "growth": ("growth", phase_growth),
    "serving": ("order creation under a slow WeChat: serving models (issue #16)", phase_serving),
    "flash": ("flash sale (issue #16)", phase_flash),
    "reads": ("reads at scale: GET /products, GET /orders (issue #16)", phase_reads),
    "ledger": ("the notify ledger at scale, archiving (issue #16)", phase_ledger),
}


def run_phases(stack: Stack, options: Options) -> list[str]:
    problems: list[str] = []
    machine = report.machine()
    for name in options.phases:
        title, phase = PHASES[name]
        print(f"\n== {title}", flush=True)
        problems += phase(stack, options)
    report.write("run", {"machine": machine, "options": options.__dict__, "problems": problems,
                         "load_average_at_end": os.getloadavg()})
    return problems


NOTIFY_COLUMNS = ["scenario", "server", "concurrency", "requests", "rps", "p50_ms", "p99_ms",
                  "errors", "verified", "cpu_server_ms", "cpu_postgres_ms", "cpu_client_ms",
                  "load_1m"]
QUERY_COLUMNS = ["server", "request", "queries", "statements", "status"]
RATIO_COLUMNS = ["scenario", "concurrency", "notify_rps_ratio_vs_persistent_peer", "p99_ratio"]
GROWTH_COLUMNS = ["orders", "notify_p50_ms", "notify_p99_ms", "list_p50_ms", "list_p99_ms",
                  "seq_scans"]
EXPERIMENT_COLUMNS = ["variant", "rps", "p50_ms", "p99_ms", "errors", "verified"]
ORDER_COLUMNS = ["run", "requests", "rps", "p50_ms", "p99_ms", "errors"]
SERVING_COLUMNS = ["model", "requests", "rps", "p50_ms", "p99_ms", "errors", "verified",
                   "db_connections_peak", "sim_connections", "cpu_total_ms",
                   "cpu_bound_orders_per_s", "rss_mib", "load_1m"]
FLASH_COLUMNS = ["scenario", "model", "requests", "sold", "out_of_stock", "rps", "orders_per_s",
                 "p50_ms", "p99_ms", "errors", "deadlocks", "verified", "db_connections_peak"]
READS_COLUMNS = ["page_size", "request", "requests", "rps", "p50_ms", "p99_ms", "cpu_server_ms",
                 "errors", "verified"]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--statements"]:
        # Its own run (bench/statements.py): one database, no servers.
        from bench import statements

        return statements.main(argv[1:])
    options = parse_args(argv)
    began = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="wxshop-bench-"))
    print(f"logs in {log_dir}", flush=True)
    stack = None
    try:
        prepare_databases()
        stack = start(log_dir, with_peer=bool({"notify", "profile"} & set(options.phases)))
        django_env.setup(stack.sim.url, stack.ours.url)
        problems = run_phases(stack, options)
    finally:
        django_env.close()
        if stack is not None:
            stop(stack)
        if not options.keep_db:
            pg.drop([OUR_DB, PEER_DB, GROWTH_DB, SERVING_DB])
    print(f"\nwall time {time.monotonic() - began:.0f} s")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
