"""Fixed parameters shared by every benchmark: one gunicorn configuration, one database server."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from demo.stack import WeChatAccount

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
# BENCH_RESULTS_DIR: somewhere else than bench/results (a trial run).
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR") or BENCH_DIR / "results")
PEER_DIR = BENCH_DIR / "peer"

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
# BENCH_DB_SUFFIX: a second run on the same PostgreSQL server at the same time gets databases
# of its own (the benchmark drops and recreates its databases when it starts).
DB_SUFFIX = os.environ.get("BENCH_DB_SUFFIX", "")
OUR_DB, PEER_DB = "wxshop_bench" + DB_SUFFIX, "wxshop_bench_peer" + DB_SUFFIX
GROWTH_DB = "wxshop_bench_growth" + DB_SUFFIX  # its own database and server: sizes start from zero
# Issue #16: the serving models and the flash sale, each run on a fresh server and emptied
# orders table (bench/serving.py, bench/flash_sale.py).
SERVING_DB = "wxshop_bench_serving" + DB_SUFFIX

# ONE gunicorn configuration for both servers. ShopServer (demo/stack.py) runs
# `gunicorn --workers N --timeout 30`, whose default worker class is sync; the peer is
# started with exactly these arguments too.
GUNICORN_WORKERS = 4
GUNICORN_ARGS = ["--workers", str(GUNICORN_WORKERS), "--worker-class", "sync", "--timeout", "30"]

ACCOUNT = WeChatAccount()  # the simulator's demo credentials, for both servers
# Shared by the shop's workers and this process, so tokens issued here are accepted there.
SECRET_KEY = "bench-" + secrets.token_urlsafe(40)


def database_url(name: str) -> str:
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


@dataclass(frozen=True)
class Options:
    n: int = 2000  # notifies per (server, concurrency) run
    concurrencies: tuple[int, ...] = (8, 32)
    orders: int = 1000  # POST /payment/order per run (latency 30 ms)
    shoppers: int = 100
    growth: int = 100_000  # largest table size of the growth step (10^4 always runs)
    growth_probe: int = 400  # requests per growth measurement
    reads_orders: int = 100_000  # orders of the reads phase (10^6 documented; bench/reads.py)
    ledger_rows: int = 100_000  # largest ledger of the ledger phase (10^7 documented)
    profile_seconds: float = 8.0
    time_limit: float = 120.0  # seconds, per load run
    repeat: int = 1  # rounds of the notify runs and experiments; medians are reported
    keep_db: bool = False
    phases: tuple[str, ...] = ("queries", "notify", "profile", "experiments", "orders", "growth",
                               "serving", "flash", "reads", "ledger")
