"""Order creation under a slow WeChat, one gunicorn serving model against another (issue
#16 item 2).

Every ``POST /payment/order`` waits on ``unifiedorder``; with the simulator adding
LATENCY_MS to every WeChat answer, a sync worker spends most of an order waiting. Each
model below serves the same orders at CONCURRENCY on the same 2 cores: a fresh gunicorn
on its own database (SERVING_DB), warmed up, then ``--orders`` orders, checked. Rounds
run every model once, in alternating order against drift; medians are reported.

Per run: orders/s, p50/p99, the most PostgreSQL connections the server held at once
(``pg_stat_activity``, sampled every 50 ms), the simulator's accepted connections (one
kept-alive connection per WeChat client session, more when a pool throws connections
away), the CPU per order of everything an order runs on (``CpuTotal``) and the server's
memory. The orders table is emptied before every run, so
every model starts from the same rows. Requests carry ``Connection: close``, as nginx's
``proxy_pass`` talks to gunicorn by default (docs/DEPLOY.md §5).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from bench import checkout, cpu, django_env, load, pg
from bench.config import OUR_DB, ROOT, SERVING_DB, Options, database_url
from bench.servers import OUR_ENV, Stack
from demo.stack import ShopServer, free_port, wait_for

LATENCY_MS = 30
CONCURRENCY = 64
SHOPPERS = 200


@dataclass(frozen=True)
class Model:
    """A gunicorn configuration: ``threads`` 1 is the sync worker class, more is gthread."""

    name: str
    workers: int
    threads: int = 1

    @property
    def worker_class(self) -> str:
        return "sync" if self.threads == 1 else "gthread"

    @property
    def slots(self) -> int:
        """Requests served at once, and Django's database connections at most (one per
        thread while CONN_MAX_AGE keeps them)."""
        return self.workers * self.threads


BASELINE = Model("sync, 4 workers (as deployed)", 4)
# What docs/DEPLOY.md recommends after these measurements: one worker per core (Python runs
# one thread at a time per process), threads to cover the waits on WeChat.
CHOSEN = Model("gthread, 2 workers x 16 threads", 2, 16)
MODELS = (
    BASELINE,
    Model("sync, 16 workers", 16),
    Model("gthread, 4 workers x 4 threads", 4, 4),
    Model("gthread, 4 workers x 8 threads", 4, 8),
    CHOSEN,
)


@dataclass
class ModelServer(ShopServer):
    """``demo.stack.ShopServer`` under a ``Model``: its workers, worker class and threads,
    and a longer wait for 16 workers importing Django on a busy machine."""

    model: Model = BASELINE
    app: str = "shopsite.wsgi:application"

    def start(self) -> ModelServer:
        self.port = free_port()
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 (lives with the process)
        self.process = subprocess.Popen(  # noqa: S603 (fixed command)
            [sys.executable, "-m", "gunicorn", self.app,
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.model.workers),
             "--worker-class", self.model.worker_class, "--threads", str(self.model.threads),
             "--timeout", "30"],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_for(f"{self.url}/healthz", self.process, timeout=START_SECONDS)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise
        return self


START_SECONDS = 120


def start(
    stack: Stack, model: Model, log_name: str, app: str = "shopsite.wsgi:application",
    **extra_env: str,
) -> ModelServer:
    """Our server (``app``) under ``model`` on SERVING_DB, with the bench's settings
    (OUR_ENV)."""
    return ModelServer(
        stack.sim,
        database_url(SERVING_DB),
        log_path=stack.log_dir / log_name,
        extra_env={**OUR_ENV, **extra_env},
        model=model,
        app=app,
    ).start()


class ConnectionPeak:
    """The most connections to ``dbname`` at once while it runs (pg_stat_activity), from
    its own connection to the ``postgres`` database, which is not counted."""

    def __init__(self, dbname: str, interval: float = 0.05):
        self.dbname, self.interval = dbname, interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ConnectionPeak:
        from django.db import connections

        # The bench process's own connection to the database is not the server's.
        connections.close_all()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        with pg.connect() as conn, conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                            [self.dbname])
                self.peak = max(self.peak, cur.fetchone()[0])
                self._stop.wait(self.interval)


def shoppers(prefix: str, count: int) -> list[str]:
    """Bearer tokens for ``count`` shoppers made straight in SERVING_DB (the bench process
    signs with the servers' DJANGO_SECRET_KEY, so no login round trip is needed)."""
    from accounts.models import User
    from accounts.tokens import token_issue

    User.objects.bulk_create(
        [User(username=f"wx_{prefix}{i}", openid=f"{prefix}{i}") for i in range(count)],
        ignore_conflicts=True,
    )
    users = User.objects.filter(openid__startswith=prefix).order_by("pk")
    return [token_issue(user=user) for user in users]


def empty_orders() -> None:
    """Every order and what hangs on it gone: each run starts from the same rows."""
    pg.execute(SERVING_DB, "TRUNCATE orders_order CASCADE")


def closing(reqs: list[load.Req]) -> list[load.Req]:
    """``Connection: close`` on every request, as nginx proxies by default."""
    return [load.Req(r.method, r.path, r.body, {**r.headers, "Connection": "close"})
            for r in reqs]


def run(stack: Stack, options: Options) -> tuple[list[dict], list[str]]:
    django_env.use_database(SERVING_DB)
    try:
        tokens = shoppers("obench-serving-", SHOPPERS)
        product_ids = checkout.products()
        rows, problems = [], []
        for rep in range(options.repeat):
            order = MODELS if rep % 2 == 0 else tuple(reversed(MODELS))
            for model in order:
                row, found = _one(stack, options, model, tokens, product_ids, f"r{rep}")
                rows.append(row)
                problems += found
    finally:
        stack.control.set_latency(0)
        django_env.use_database(OUR_DB)
    return rows, problems


def _one(
    stack: Stack, options: Options, model: Model, tokens: list[str], product_ids: list[int],
    tag: str,
) -> tuple[dict, list[str]]:
    empty_orders()
    stack.control.set_latency(LATENCY_MS)
    server = start(stack, model, f"gunicorn-serving-{model.worker_class}-{model.slots}.log")
    try:
        warm = closing(checkout.order_requests(tokens, product_ids, max(128, 2 * model.slots)))
        warmed = load.run(server.url, warm, CONCURRENCY, options.time_limit,
                          checkout.is_order_created)
        reqs = closing(checkout.order_requests(tokens, product_ids, options.orders))
        before = stack.control.stats()
        cpu_before = CpuTotal.now(server.process.pid, stack.sim.process.pid)
        with ConnectionPeak(SERVING_DB) as connections:
            result = load.run(server.url, reqs, CONCURRENCY, options.time_limit,
                              checkout.is_order_created)
        cpu_ms = CpuTotal.now(server.process.pid, stack.sim.process.pid).minus(
            cpu_before, result.sent)
        after = stack.control.stats()
        rss_mib = _rss_mib(server.process.pid)
    finally:
        server.stop()
        stack.control.set_latency(0)
    unified = _count(after, "/pay/unifiedorder") - _count(before, "/pay/unifiedorder")
    sim_connections = after["connections_accepted"] - before["connections_accepted"]
    found = _verify(model, warmed, result, unified)
    row = {
        "model": model.name, "worker_class": model.worker_class, "workers": model.workers,
        "threads": model.threads, "round": tag, "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY, **result.summary(),
        "db_connections_peak": connections.peak,
        "sim_connections": sim_connections,
        "sim_connections_per_1000": round(sim_connections * 1000 / max(result.ok, 1), 2),
        "unifiedorder_calls": unified,
        "rss_mib": rss_mib,
        **cpu_ms,
        # What the 2 cores could serve if nothing else ran: the run's own CPU per order.
        "cpu_bound_orders_per_s": round(2000 / cpu_ms["cpu_total_ms"], 1)
        if cpu_ms.get("cpu_total_ms") else None,
        "load_1m": round(os.getloadavg()[0], 2),
        "verified": not found,
    }
    print(f"  {model.name:<34} {row['rps']:>7.1f} orders/s  p50 {row['p50_ms']:>7.2f} ms  "
          f"p99 {row['p99_ms']:>7.2f} ms  db conns {connections.peak:>3}  "
          f"sim conns {sim_connections:>4}  errors {row['errors']}", flush=True)
    return row, [f"serving {model.name} {tag}: {p}" for p in found]


@dataclass(frozen=True)
class CpuTotal:
    """CPU seconds so far of everything an order runs on: the gunicorn master and
    workers, the simulator, SERVING_DB's PostgreSQL backends and this process (the load
    generator). Unlike the wall time, these hardly depend on what else shares the cores."""

    seconds: dict[str, float]
    backends: dict[int, float]

    @classmethod
    def now(cls, server_pid: int, sim_pid: int) -> CpuTotal:
        here = cpu.snapshot(server_pid)
        pids = pg.fetchall("postgres", "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                           [SERVING_DB])
        return cls(
            {"server": here.server, "sim": cpu._cpu_seconds(sim_pid), "client": here.client},
            {pid: cpu._cpu_seconds(pid) for (pid,) in pids},
        )

    def minus(self, before: CpuTotal, requests: int) -> dict[str, float]:
        """Milliseconds per request since ``before``; a backend that connected meanwhile
        counts whole."""
        if not requests:
            return {}
        spent = {name: value - before.seconds[name] for name, value in self.seconds.items()}
        spent["postgres"] = sum(value - before.backends.get(pid, 0.0)
                                for pid, value in self.backends.items())
        out = {f"cpu_{name}_ms": round(value * 1000 / requests, 2)
               for name, value in spent.items()}
        out["cpu_total_ms"] = round(sum(spent.values()) * 1000 / requests, 2)
        return out


def _rss_mib(pid: int) -> float:
    """Resident memory of the gunicorn master and its workers (counts shared pages in
    each: an upper bound)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    kib = 0
    for p in [pid, *map(int, children)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        kib += int(next(line.split()[1] for line in status.splitlines()
                        if line.startswith("VmRSS:")))
    return round(kib / 1024, 1)


def _count(stats: dict, path: str) -> int:
    return int(stats.get("requests", {}).get(path, 0))


def _verify(model: Model, warmed: load.LoadResult, result: load.LoadResult,
            unified: int) -> list[str]:
    """Every request answered 201 with a paySign, every 201 left exactly one order with
    its prepay_id, and each measured order made exactly one unifiedorder call."""
    from orders.models import Order

    found = []
    for name, res in (("warm-up", warmed), ("run", result)):
        if res.errors or res.unsent:
            found.append(f"{name}: {json.dumps(res.summary()['error_samples'])[:300]} "
                         f"({res.errors} errors, {res.unsent} unsent)")
    ok = warmed.ok + result.ok
    total, prepaid = Order.objects.count(), Order.objects.exclude(prepay_id="").count()
    if not total == prepaid == ok:
        found.append(f"{ok} answered 201, {total} orders exist, {prepaid} with a prepay_id")
    if unified != result.ok:
        found.append(f"{result.ok} orders made {unified} unifiedorder calls")
    return found


def ratios(rows: list[dict]) -> list[dict]:
    """Each model's medians against the sync baseline's."""
    base = next(r for r in rows if r["model"] == BASELINE.name)
    return [
        {"model": r["model"], "rps_ratio": round(r["rps"] / base["rps"], 2),
         "p99_ratio": round(r["p99_ms"] / base["p99_ms"], 2)}
        for r in rows
    ]
