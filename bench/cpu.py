"""CPU time of the processes under test, read from /proc (Linux), to see who burns the 2 cores."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int, reaped: bool = False) -> float:
    """utime + stime, plus with ``reaped`` the time of its exited, waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass
class Snapshot:
    server: float
    postgres: float
    client: float


def snapshot(server_pid: int) -> Snapshot:
    """CPU seconds so far of the gunicorn master and workers, all PostgreSQL processes
    (with the postmaster's reaped children: the peer's backends live one request), and
    this process (the load generator)."""
    server = sum(_cpu_seconds(p) for p in [server_pid, *_children(server_pid)])
    postgres = sum(_cpu_seconds(p, reaped=True) for p in _postgres_pids())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(server, postgres, usage.ru_utime + usage.ru_stime)


def per_request_ms(before: Snapshot, after: Snapshot, requests: int) -> dict[str, float]:
    if not requests:
        return {}
    return {
        f"cpu_{name}_ms": round((getattr(after, name) - getattr(before, name)) * 1000 / requests, 3)
        for name in ("server", "postgres", "client")
    }
