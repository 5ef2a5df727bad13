"""A bounded asyncio load generator (aiohttp): fixed concurrency, a count and a time limit.

Each of ``concurrency`` workers takes the next request from the list until the list is
exhausted or the time limit passes; every reply is checked by ``check(status, body)``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

Check = Callable[[int, bytes], bool]


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadResult:
    requests: int  # planned
    sent: int = 0
    ok: int = 0
    errors: int = 0  # non-2xx/3xx, failed check, transport error or timeout
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, every sent request
    error_samples: list[str] = field(default_factory=list)

    @property
    def unsent(self) -> int:
        return self.requests - self.sent

    @property
    def rps(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))  # nearest rank
        return ordered[index] * 1000

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "unsent": self.unsent,
            "seconds": round(self.elapsed, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile_ms(50), 2),
            "p90_ms": round(self.percentile_ms(90), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "max_ms": round(max(self.latencies, default=0) * 1000, 2),
            "error_samples": self.error_samples[:5],
        }


def run(
    base_url: str, reqs: Sequence[Req], concurrency: int, time_limit: float, check: Check
) -> LoadResult:
    if urlsplit(base_url).hostname not in ("127.0.0.1", "localhost"):
        raise ValueError("benchmarks only target 127.0.0.1")
    return asyncio.run(_run(base_url, reqs, concurrency, time_limit, check))


async def _run(
    base_url: str, reqs: Sequence[Req], concurrency: int, time_limit: float, check: Check
) -> LoadResult:
    result = LoadResult(requests=len(reqs))
    pending = iter(reqs)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:
        start = time.perf_counter()
        deadline = start + time_limit
        workers = [_worker(http, pending, deadline, check, result) for _ in range(concurrency)]
        await asyncio.gather(*workers)
        result.elapsed = time.perf_counter() - start
    return result


async def _worker(
    http: aiohttp.ClientSession, pending, deadline: float, check: Check, result: LoadResult
) -> None:
    for req in pending:
        if time.perf_counter() > deadline:
            return
        result.sent += 1
        began = time.perf_counter()
        try:
            async with http.request(
                req.method, req.path, data=req.body, headers=req.headers
            ) as response:
                body = await response.read()
                good = check(response.status, body)
                detail = f"{response.status} {body[:120]!r}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            good, detail = False, f"{type(exc).__name__}: {exc}"
        result.latencies.append(time.perf_counter() - began)
        if good:
            result.ok += 1
        else:
            result.errors += 1
            result.error_samples.append(f"{req.method} {req.path}: {detail}")
