"""Where the time goes: py-spy samples every gunicorn worker while notifies are delivered
at concurrency 8, twice per server: "wall" (idle threads included, so time spent waiting
on PostgreSQL shows) and "gil" (only samples holding the GIL: Python running, psycopg2's
waits excluded, as it releases the GIL); plus
micro-benchmarks of the parse and signature steps of both servers.

Without py-spy (or with BENCH_PROFILER=cprofile), cProfile inside every worker instead
(bench/cprofile_hooks.py), on a fresh server per (server, scenario, timer): "wall"
(time.perf_counter, waits on PostgreSQL included) and "cpu" (time.process_time), each
function's own time put in a category, a builtin's shared out among its callers.
cProfile's own cost inflates the Python categories (every call is timed); the shares,
ours against the peer's, are what to read.
"""

from __future__ import annotations

import linecache
import os
import pstats
import re
import subprocess
import sys
import time
import timeit
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import load, notify
from bench.config import ACCOUNT, BENCH_DIR, PEER_DIR, ROOT, Options
from bench.servers import PeerServer, Stack, start_ours
from bench.wire import Payment, is_success_reply, notify_body

CONCURRENCY = 8
PY_SPY = Path(sys.executable).with_name("py-spy")
IN_REQUEST = "SyncWorker.handle_request ("
IN_DJANGO_RE = r"^WSGIHandler\.__call__ \("
APP_FILES = {"ours": ("payments/", "orders/", "shopsite/"), "peer": ("shop/",)}

Stack_ = list[str]
Matcher = Callable[[Stack_], bool]


def _leaf(pattern: str) -> Matcher:
    regex = re.compile(pattern)
    return lambda frames: bool(frames) and bool(regex.search(frames[-1]))


def _on_stack(pattern: str) -> Matcher:
    regex = re.compile(pattern)
    return lambda frames: any(regex.search(f) for f in frames)


# Exclusive: each sample goes to the first category that matches. The "waiting" ones are
# samples whose innermost Python frame is blocked in psycopg2 (a round trip to PostgreSQL:
# its work, the network and the wait for a CPU on this 2-core machine).
CATEGORIES: list[tuple[str, Matcher]] = [
    ("PostgreSQL round trip: SQL statement", _leaf(r"^CursorWrapper\._execute ")),
    ("PostgreSQL round trip: COMMIT", _leaf(r"^BaseDatabaseWrapper\._commit ")),
    ("PostgreSQL round trip: health check SELECT 1", _leaf(r"^DatabaseWrapper\.is_usable ")),
    ("PostgreSQL: new connection + session setup", _on_stack(r"^BaseDatabaseWrapper\.connect ")),
    ("PostgreSQL: closing the connection", _on_stack(r"^DatabaseWrapper\._close ")),
    ("Python: XML parse", _on_stack(r"^(from_xml \((wechat|payments)|parse \(xmltodict)")),
    ("Python: signature", _on_stack(r"\((wechat/pay_v2/signing|wechatpy/pay/utils)\.py")),
    ("Python: logging", _on_stack(r"\(logging/__init__\.py")),
    ("Python: ORM (building SQL, models)", _on_stack(r"\(django/db/")),
    ("Python: gunicorn (accept, read, write)", lambda f: not _on_stack(IN_DJANGO_RE)(f)),
    ("Python: rest of Django and the view", lambda f: True),
]


def record(pid: int, seconds: float, out: Path, idle: bool) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 (fixed command)
        [str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
         *(["--idle"] if idle else ["--gil"]),
         "--format", "raw", "--output", str(out), "--duration", str(int(seconds))],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def parse_raw(path: Path) -> list[tuple[Stack_, int]]:
    """py-spy's raw (collapsed) stacks: ``process ..;frame;frame count``, root first."""
    samples = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        samples.append((frames, int(count)))
    return samples


def analyse(samples: list[tuple[Stack_, int]], server: str) -> dict:
    in_request = [(f, n) for f, n in samples if any(x.startswith(IN_REQUEST) for x in f)]
    total = sum(n for _, n in in_request) or 1
    worker_total = sum(n for f, n in samples if any("SyncWorker.run " in x for x in f)) or 1

    counts: Counter[str] = Counter()
    for frames, n in in_request:
        counts[next(name for name, match in CATEGORIES if match(frames))] += n
    categories = {name: round(100 * counts[name] / total, 1) for name, _ in CATEGORIES}
    return {
        "samples_in_requests": total,
        "workers_busy_pct": round(100 * total / worker_total, 1),
        "categories_pct": categories,
        "lines_pct": _lines(in_request, total, server),
        "self_by_file_pct": _self_by_file(in_request, total),
    }


def _lines(in_request: list[tuple[Stack_, int]], total: int, server: str) -> list[dict]:
    """Inclusive share of each line of the app's own code on the stack."""
    counts: Counter[str] = Counter()
    for frames, n in in_request:
        for frame in set(frames):
            if any(f"({prefix}" in frame for prefix in APP_FILES[server]):
                counts[frame] += n
    base = ROOT if server == "ours" else PEER_DIR
    rows = []
    for frame, n in counts.most_common(18):
        match = re.search(r"\((.+):(\d+)\)$", frame)
        source = linecache.getline(str(base / match[1]), int(match[2])).strip() if match else ""
        rows.append({"frame": frame, "pct": round(100 * n / total, 1), "source": source})
    return rows


def _self_by_file(in_request: list[tuple[Stack_, int]], total: int) -> list[dict]:
    counts: Counter[str] = Counter()
    for frames, n in in_request:
        match = re.search(r"\(([^:]+):\d+\)$", frames[-1]) if frames else None
        counts[match[1] if match else "?"] += n
    return [{"file": k, "pct": round(100 * v / total, 1)} for k, v in counts.most_common(12)]


def profile_server(stack: Stack, server: str, options: Options, users: list, mode: str) -> dict:
    process = stack.ours if server == "ours" else stack.peer
    count = int(600 * (options.profile_seconds + 3))
    payments = notify.make_payments(f"p{server[0]}{mode}x", count, users)
    notify.seed(server, payments, users)
    bodies = [notify_body(p, ACCOUNT) for p in payments]
    out = stack.log_dir / f"py-spy-{server}-{mode}.raw"
    spy = record(process.process.pid, options.profile_seconds, out, idle=mode == "wall")
    time.sleep(1.0)  # attach
    result = notify.deliver(process.url, bodies, CONCURRENCY, options.profile_seconds + 2)
    spy.communicate(timeout=60)
    analysis = analyse(parse_raw(out), server)
    return {"load_under_profiler": result.summary(), **analysis, "raw": str(out)}


def micro() -> dict[str, float]:
    """µs per call of each server's parse and signature steps on one real notify body."""
    from wechatpy.pay import WeChatPay
    from xmltodict import parse

    from wechat.pay_v2 import from_xml, verify

    body = notify_body(Payment("Bmicro0001", 4500, "o-micro", "4200000001"), ACCOUNT)
    fields = from_xml(body)
    peer = WeChatPay(ACCOUNT.appid, ACCOUNT.mch_key, ACCOUNT.mch_id)
    steps = {
        "ours: from_xml (defusedxml + checks)": lambda: from_xml(body),
        "ours: verify (MD5)": lambda: verify(fields, ACCOUNT.mch_key, "MD5"),
        "peer: xmltodict.parse": lambda: parse(body),
        "peer: WeChatPay.parse_payment_result (parse + MD5)": lambda: peer.parse_payment_result(
            body
        ),
    }
    return {name: round(min(timeit.repeat(fn, number=2000, repeat=5)) / 2000 * 1e6, 1)
            for name, fn in steps.items()}


def run(stack: Stack, options: Options) -> dict:
    users = notify.shoppers(20)
    if os.environ.get("BENCH_PROFILER") == "cprofile" or not PY_SPY.exists():
        return run_cprofile(stack, options, users)
    result: dict = {"micro_us": micro()}
    for server in ("ours", "peer") if stack.peer else ("ours",):
        for mode in ("wall", "gil"):
            result[f"{server}_{mode}"] = profile_server(stack, server, options, users, mode)
            _print(f"{server} ({mode})", result[f"{server}_{mode}"])
    for name, us in result["micro_us"].items():
        print(f"  {name:<55} {us:>7.1f} µs")
    return result


def _print(server: str, data: dict) -> None:
    load = data["load_under_profiler"]
    print(f"  {server}: {data['samples_in_requests']} samples in requests "
          f"({data['workers_busy_pct']} % of the workers' samples), "
          f"{load['rps']} req/s under the profiler")
    for name, pct in data["categories_pct"].items():
        if pct:
            print(f"    {pct:>5.1f} %  {name}")


# -- cProfile inside the workers, when py-spy is not installed ---------------------------------

# Exclusive, by the file of the function whose own time it is (first match).
CPROFILE_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("Python: XML parse", ("xml/etree/", "pyexpat", "defusedxml/", "xmltodict", "pay_v2/xml.py")),
    ("Python: signature", ("hashlib", "hmac", "pay_v2/signing.py", "wechatpy/pay/utils")),
    ("Python: logging", ("logging/",)),
    ("Python: ORM and database layer", ("django/db/", "psycopg2/")),
    ("Python: gunicorn", ("gunicorn/",)),
    ("Python: Django request, response, middleware", ("django/",)),
    ("Python: the app's own code", ("/payments/", "/orders/", "/shop/", "/core/", "/wechat/")),
]
# psycopg2's calls that wait for PostgreSQL, by what they are for.
ROUND_TRIPS = [
    ("'execute'", "PostgreSQL round trip: SQL statement"),
    ("'commit'", "PostgreSQL round trip: COMMIT"),
    ("'rollback'", "PostgreSQL round trip: ROLLBACK"),
    ("connect", "PostgreSQL: new connection"),
]
HEALTH_CHECK = "PostgreSQL round trip: health check SELECT 1"

Key = tuple[str, int, str]


def cprofile_category(key: Key, caller: Key | None = None) -> str:
    """The category of ``key``'s own time (``caller``: the call site, for a builtin)."""
    filename, _, name = key
    if filename == "~" and "psycopg2" in name:
        for word, category in ROUND_TRIPS:
            if word in name:
                if category.endswith("SQL statement") and caller and caller[2] == "is_usable":
                    return HEALTH_CHECK
                return category
        return "Python: ORM and database layer"
    for category, parts in CPROFILE_CATEGORIES:
        if any(part in filename for part in parts):
            return category
    return "Python: other"


def analyse_cprofile(stats: pstats.Stats) -> dict:
    """Each function's own time in its category. A builtin's (no file of its own) goes to
    its callers' categories, each caller's share as timed at that call site; psycopg2's
    waits have categories of their own."""
    counts: Counter[str] = Counter()
    for key, (_, _, own, _, callers) in stats.stats.items():
        if key[0] != "~":
            counts[cprofile_category(key)] += own
            continue
        for caller, (_, _, at_caller, _) in callers.items():
            if "psycopg2" in key[2]:
                counts[cprofile_category(key, caller)] += at_caller
            else:
                counts[cprofile_category(caller)] += at_caller
    total = sum(counts.values()) or 1
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    top = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:15]
    return {
        "profiled_seconds": round(total, 3),
        "categories_pct": {name: round(100 * v / total, 1) for name, v in ordered},
        "top_own_time_pct": [
            {"function": f"{k[2]} ({Path(k[0]).name}:{k[1]})", "pct": round(100 * v[2] / total, 1)}
            for k, v in top
        ],
    }


def cprofile_server(
    stack: Stack, server: str, options: Options, users: list, scenario: str, timer: str
) -> dict:
    """A fresh ``server`` with cProfile in its workers: 64 notifies to warm it up, and for
    "all duplicates" ``options.n`` first deliveries, none of them profiled; then the
    ``options.n`` notifies of ``scenario``, profiled."""
    out = stack.log_dir / f"cprofile-{server}-{scenario.replace(' ', '-')}-{timer}"
    out.mkdir()
    env = {"GUNICORN_CMD_ARGS": f"--config {BENCH_DIR / 'cprofile_hooks.py'}",
           "BENCH_CPROFILE_DIR": str(out), "BENCH_CPROFILE_TIMER": timer}
    process = (start_ours(stack.sim, stack.log_dir, **env) if server == "ours"
               else PeerServer(stack.log_dir / "gunicorn-peer-cprofile.log", extra_env=env).start())
    try:
        tag = f"k{server[0]}{scenario[0]}{timer[0]}"
        warm = notify.make_payments(f"{tag}w", notify.WARMUP, users)
        payments = notify.make_payments(f"{tag}x", options.n, users)
        notify.seed(server, warm + payments, users)
        bodies = [notify_body(p, ACCOUNT) for p in payments]
        notify.deliver(process.url, [notify_body(p, ACCOUNT) for p in warm], CONCURRENCY, 60)
        if scenario == "all duplicates":
            notify.deliver(process.url, bodies, CONCURRENCY, options.time_limit)
        profiled = [load.Req("POST", notify.NOTIFY_PATH, body, PROFILED) for body in bodies]
        result = load.run(process.url, profiled, CONCURRENCY, options.time_limit, is_success_reply)
    finally:
        process.stop()  # the workers write their profiles as they exit
    files = sorted(str(f) for f in out.glob("*.prof"))
    if not files:
        return {"load_under_profiler": result.summary(), "error": "no profile written"}
    return {"load_under_profiler": result.summary(), **analyse_cprofile(pstats.Stats(*files)),
            "files": files}


PROFILED = {**notify.HEADERS, "X-Bench-Profile": "1"}


def run_cprofile(stack: Stack, options: Options, users: list) -> dict:
    result: dict = {"profiler": "cProfile in each worker (py-spy is not installed)",
                    "micro_us": micro()}
    for server in ("ours", "peer") if stack.peer else ("ours",):
        for scenario in ("first delivery", "all duplicates"):
            for timer in ("wall", "cpu"):
                name = f"{server} {scenario} ({timer})"
                result[name] = data = cprofile_server(stack, server, options, users, scenario,
                                                      timer)
                load_ = data["load_under_profiler"]
                print(f"  {name}: {data.get('profiled_seconds')} s profiled, "
                      f"{load_['rps']} req/s under the profiler")
                for category, pct in data.get("categories_pct", {}).items():
                    print(f"    {pct:>5.1f} %  {category}")
    return result
