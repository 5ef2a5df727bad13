"""The benchmark's own PostgreSQL databases: create, migrate, drop; plain SQL helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras

from bench.config import PG_HOST, PG_PORT, PG_USER, database_url


@contextmanager
def connect(dbname: str = "postgres", autocommit: bool = True):
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname)
    conn.autocommit = autocommit
    try:
        yield conn
    finally:
        conn.close()


def recreate(names: Iterable[str]) -> None:
    with connect() as conn, conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')


def drop(names: Iterable[str]) -> None:
    with connect() as conn, conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(projects: Sequence[tuple[Path, str, dict[str, str]]]) -> None:
    """``manage.py migrate`` for each (project dir, database, extra env), in parallel."""
    running = []
    for cwd, dbname, extra in projects:
        env = {**os.environ, **extra, "DATABASE_URL": database_url(dbname)}
        running.append(
            subprocess.Popen(  # noqa: S603 (fixed command)
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
        )
    for process in running:
        out, _ = process.communicate(timeout=300)
        if process.returncode:
            raise RuntimeError(f"migrate failed:\n{out.decode(errors='replace')}")


def execute(dbname: str, sql: str, params: Any = None) -> None:
    with connect(dbname) as conn, conn.cursor() as cur:
        cur.execute(sql, params)


def fetchall(dbname: str, sql: str, params: Any = None) -> list[tuple]:
    with connect(dbname) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def insert_rows(dbname: str, sql: str, rows: Sequence[tuple], template: str | None = None) -> None:
    """Bulk INSERT; ``sql`` has one ``VALUES %s``."""
    with connect(dbname) as conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(cur, sql, rows, template=template, page_size=1000)


def server_version() -> str:
    return fetchall("postgres", "SHOW server_version")[0][0]
