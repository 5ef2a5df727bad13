"""The access_token across processes, for real (docs/INVARIANTS.md §8; docs/protocol/
miniprogram-server-api.md §1.4): two app servers and a worker — two separate Python processes
and this one — share one Redis and one WeChat (the simulator). 1,000 uses at once, spread over
96 threads in the three processes, ask stable_token once; so do 1,000 uses of a token with
less than 5 minutes left, and 1,000 calls after WeChat stops accepting the token. The
simulator counts the requests it received.

Run with ``-s`` to see the measurements."""

import threading
import time
from collections import Counter

from shipping.access_token import (
    CachedToken,
    access_token,
    cache_token,
    cached_token,
    with_access_token,
)

USES = 1000
THREADS = 32  # per process
TOKEN_PATH = "/cgi-bin/stable_token"
MANAGED_PATH = "/wxa/sec/order/is_trade_managed"


def in_this_process(
    uses: int, call: str, signal, go_key: str
) -> tuple[threading.Thread, dict]:
    """This process's share (the worker): ``uses`` uses on THREADS threads after the signal."""
    got: dict[str, list] = {"tokens": [], "errors": [], "latencies": []}

    def use_once() -> str:
        if call == "token":
            return access_token()
        return with_access_token(lambda client, token: client.is_trade_managed(token) and token)

    def work(n: int) -> None:
        while not signal.exists(go_key):
            time.sleep(0.002)
        for _ in range(n):
            started = time.monotonic()
            try:
                got["tokens"].append(use_once())
            except Exception as exc:
                got["errors"].append(repr(exc))
            got["latencies"].append(time.monotonic() - started)

    share = [uses // THREADS + (i < uses % THREADS) for i in range(THREADS)]
    threads = [threading.Thread(target=work, args=(n,)) for n in share]

    def run() -> None:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return threading.Thread(target=run), got


def all_at_once(token_processes, token_signal, go_key: str, call: str) -> tuple[list, float]:
    """USES uses of ``call`` started at one signal in three processes; what each got."""
    start, finish = token_processes
    servers = [start(uses=333, threads=THREADS, call=call, go_key=go_key) for _ in range(2)]
    worker, got_here = in_this_process(USES - 2 * 333, call, token_signal, go_key)
    worker.start()
    began = time.monotonic()
    token_signal.set(go_key, 1, ex=300)
    results = [finish(server) for server in servers]
    worker.join()
    elapsed = time.monotonic() - began
    return [*results, got_here], elapsed


def report(label: str, results: list[dict], elapsed: float, fetches: int) -> None:
    latencies = sorted(x for r in results for x in r["latencies"])
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(
        f"\n{label}: {len(latencies)} uses in 3 processes x {THREADS} threads, "
        f"{elapsed:.2f} s wall; stable_token requests: {fetches}; "
        f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
    )


def stats(sim) -> Counter:
    return Counter(sim.control("GET", "/sim/stats").json()["requests"])


def test_a_thousand_uses_at_once_in_three_processes_fetch_one_token(
    fresh_sim, token_cache, token_signal, token_processes
):
    results, elapsed = all_at_once(token_processes, token_signal, f"{token_cache}:go", "token")

    requests = stats(fresh_sim)
    report("first token", results, elapsed, requests[TOKEN_PATH])
    assert [r["errors"] for r in results] == [[], [], []]
    tokens = Counter(token for r in results for token in r["tokens"])
    current = fresh_sim.control("GET", "/sim/tokens").json()["current"]
    assert tokens == {current: USES}
    assert requests[TOKEN_PATH] == 1


def test_a_token_wechat_stops_accepting_is_renewed_once_for_a_thousand_calls(
    fresh_sim, token_cache, token_signal, token_processes
):
    first = access_token()  # shared by all three processes
    fresh_sim.control("POST", "/sim/tokens/stale", {"access_token": first, "errcode": 40001})
    before = stats(fresh_sim)

    results, elapsed = all_at_once(token_processes, token_signal, f"{token_cache}:go", "call")

    after = stats(fresh_sim)
    fetches = after[TOKEN_PATH] - before[TOKEN_PATH]
    report("renewal after 40001", results, elapsed, fetches)
    assert [r["errors"] for r in results] == [[], [], []]
    tokens = Counter(token for r in results for token in r["tokens"])
    seen = fresh_sim.control("GET", "/sim/tokens").json()
    assert len(tokens) == 1 and first not in tokens
    assert tokens == {seen["current"]: USES}
    assert fetches == 1
    assert seen["force_refreshes"] == 0  # the normal mode gave a new token: no force used
    # Every call that met the refused token was sent again once, with the new one.
    assert USES <= after[MANAGED_PATH] - before[MANAGED_PATH] <= 2 * USES


def test_a_token_near_its_expiry_is_renewed_once_while_the_others_keep_using_it(
    fresh_sim, token_cache, token_signal, token_processes
):
    first = access_token()
    # Less than 5 minutes left, as if 6,900 s had passed: due for renewal, still valid.
    cache_token(CachedToken(token=first, expires_at=time.time() + 299, renew_at=time.time() - 1))
    before = stats(fresh_sim)

    results, elapsed = all_at_once(token_processes, token_signal, f"{token_cache}:go", "token")

    fetches = stats(fresh_sim)[TOKEN_PATH] - before[TOKEN_PATH]
    report("early renewal", results, elapsed, fetches)
    assert [r["errors"] for r in results] == [[], [], []]
    assert sum(len(r["tokens"]) for r in results) == USES
    assert fetches == 1
    assert cached_token().fresh(time.time())  # renewed: fresh for everyone again
