"""What-ifs that need no production change: each variant is a fresh server, warmed up,
then N notifies at concurrency 8, checked like the main runs.

- ours with Django's connection health check off (a settings override in bench/);
- the peer as startproject leaves it (CONN_MAX_AGE=0, a connection per request) and as
  the main runs have it (CONN_MAX_AGE=60).
"""

from __future__ import annotations

from bench import notify
from bench.config import ACCOUNT, Options
from bench.servers import PeerServer, Stack, start_ours
from bench.wire import notify_body

CONCURRENCY = 8
VARIANTS: list[tuple[str, str, dict[str, str]]] = [
    ("ours as shipped", "ours", {}),
    ("ours, CONN_HEALTH_CHECKS off", "ours",
     {"DJANGO_SETTINGS_MODULE": "bench.settings_no_health_check"}),
    ("peer as in startproject (CONN_MAX_AGE=0)", "peer", {"CONN_MAX_AGE": "0"}),
    ("peer, CONN_MAX_AGE=60", "peer", {"CONN_MAX_AGE": "60"}),
]


def _start(stack: Stack, server: str, env: dict[str, str]):
    if server == "ours":
        return start_ours(stack.sim, stack.log_dir, **env)
    return PeerServer(stack.log_dir / "gunicorn-peer-variant.log", extra_env=env).start()


def run(stack: Stack, options: Options) -> tuple[list[dict], list[str]]:
    """Every variant once per round (rounds alternate the variants, against drift)."""
    users = notify.shoppers(20)
    rows, problems = [], []
    for rep in range(options.repeat):
        for index, variant in enumerate(VARIANTS):
            row, found = _one(stack, options, users, variant, f"e{rep}v{index}")
            rows.append(row)
            problems += found
    return rows, problems


def _one(
    stack: Stack, options: Options, users: list, variant: tuple[str, str, dict[str, str]],
    tag: str,
) -> tuple[dict, list[str]]:
    name, server, env = variant
    process = _start(stack, server, env)
    try:
        for run_tag, count in ((f"{tag}w", notify.WARMUP), (f"{tag}x", options.n)):
            payments = notify.make_payments(run_tag, count, users)
            notify.seed(server, payments, users)
            bodies = [notify_body(p, ACCOUNT) for p in payments]
            result, cpu_ms = notify.deliver_timed(
                process.process.pid, process.url, bodies, CONCURRENCY, options.time_limit
            )
        found = notify.verify(server, run_tag, payments)
    finally:
        process.stop()
    row = {"variant": name, **result.summary(), "verified": not found, **cpu_ms}
    print(f"  {name:<42} {row['rps']:>7.1f} req/s  p50 {row['p50_ms']} ms  "
          f"p99 {row['p99_ms']} ms  errors {row['errors']}", flush=True)
    return row, [f"experiment {name}: {p}" for p in found]
