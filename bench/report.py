"""Results: plain-text tables on stdout, JSON files in bench/results/."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime

from bench import pg
from bench.config import GUNICORN_ARGS, RESULTS_DIR


def write(name: str, data: object) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"  wrote {path.relative_to(RESULTS_DIR.parent.parent)}")


def table(title: str, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """A fixed-width table of ``columns`` from ``rows``."""
    cells = [[_fmt(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  " + "  ".join("-" * w for w in widths))
    for r in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def medians(runs: Sequence[dict], keys: Sequence[str]) -> list[dict]:
    """One row per distinct ``keys``: the median of each number, errors summed,
    ``verified`` only if every run was; first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in keys), []).append(run)
    out = []
    for key, group in groups.items():
        row = dict(zip(keys, key, strict=True))
        for name, value in group[0].items():
            if name in keys or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            values = [g[name] for g in group]
            row[name] = sum(values) if name in ("errors", "unsent") else statistics.median(values)
        row["verified"] = all(g.get("verified", True) for g in group)
        row["rounds"] = len(group)
        out.append(row)
    return out


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def machine() -> dict:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "postgresql": pg.server_version(),
        "gunicorn": " ".join(GUNICORN_ARGS),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
        "git": _git_head(),
    }


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 (read-only)
            capture_output=True, text=True, timeout=10, check=False,
        )
    except OSError:
        return ""
    return out.stdout.strip()
