"""A bill's lines into PostgreSQL, matched against our orders and refunds, fast: a
million lines cost about 20 s of Python and 20 s of PostgreSQL CPU, which overlap
(docs/PERFORMANCE.md, "Statements"; docs/INVARIANTS.md §10).

Batch by batch, the parsed lines stream into a temporary table with ``COPY … FROM STDIN``
(text made by a parser thread a batch ahead: never the whole file, nor every row, in
memory), then one ``INSERT … SELECT`` looks their orders and refunds up and writes each
line once, linked and with its mismatch — the same rows, rules and words as the
``bulk_create`` + UPDATE path of payments/statement_lines.py, which the tests hold it to.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterator
from time import perf_counter
from typing import BinaryIO

from django.db import connection

from orders.models import Order
from payments.models import Refund, Statement, StatementLine
from payments.statement_lines import (
    NO_PAYMENT_HERE_DETAIL,
    OTHER_TRANSACTION_DETAIL,
    PAID,
    REFUND_NOT_MADE_HERE,
    REFUND_STATE_DETAIL,
    REFUND_SUCCESS,
    REFUND_UNKNOWN_DETAIL,
    REFUNDED,
    UNKNOWN_ORDER_DETAIL,
    complete,
    plain_id,
    storable,
    unreadable_detail,
)
from wechat.bills import BillLine, BillLineError, BillSummary, iter_trade_bill

Mismatch = StatementLine.Mismatch

_LOADED = "statement_lines_loaded"
# The temporary table's columns, in COPY's order: the parsed line, and the mismatch of an
# unreadable one. Text without length limits: the INSERT into the real columns checks them.
_LOADED_COLUMNS = (
    ("line_no", "integer NOT NULL"),
    ("trade_time", "timestamptz"),
    ("out_trade_no", "text NOT NULL"),
    ("transaction_id", "text NOT NULL"),
    ("trade_state", "text NOT NULL"),
    ("total_fee", "bigint NOT NULL"),
    ("out_refund_no", "text NOT NULL"),
    ("wechat_refund_id", "text NOT NULL"),
    ("refund_fee", "bigint NOT NULL"),
    ("refund_status", "text NOT NULL"),
    ("fee", "bigint NOT NULL"),
    ("mismatch", "text NOT NULL"),
    ("mismatch_detail", "text NOT NULL"),
)
_TABS = len(_LOADED_COLUMNS) - 1
# Characters COPY's text format gives a meaning to (and NUL, which text cannot hold).
_COPY_SPECIAL = re.compile(r"[\\\r\n\x00]")
_COPY_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\N{REPLACEMENT CHARACTER}"}
)
_NULL = "\\N"
# Lines per chunk of COPY text (about 170 KiB) and per COPY + INSERT … SELECT. The parser
# runs up to a batch ahead, so memory is bounded by these, never by the bill; smaller
# batches overlap more (the first batch's parsing and the last one's INSERT do not), at
# three statements each.
_CHUNK_LINES = 2000
_BATCH_LINES = 20_000


class _Reading:
    """What the parser learnt on the way: the summary, the last line."""

    summary: BillSummary | None = None
    last_line: int = 0


def lines_copy_and_match(
    statement: Statement, stream: BinaryIO, laps: dict[str, float]
) -> tuple[BillSummary, int]:
    """Batches of lines: COPY into the temporary table, INSERT … SELECT into the real one.

    The parsing (Python, holding the GIL) runs in a thread of its own while this one waits
    on PostgreSQL (which releases it): on two cores the bill's parsing and the database's
    inserting overlap instead of adding up. The foreign keys are checked at the end of each
    INSERT (SET CONSTRAINTS … IMMEDIATE) rather than all at the commit, so that work
    overlaps the parsing too and the server's queue of pending checks stays one batch long.

    ``laps``: "load" (the COPYs, waiting for the parser included), "match" (the INSERTs).
    """
    laps["load"] = laps["match"] = 0.0
    reading = _Reading()
    parser = _Parser(stream, reading)
    parser.start()
    try:
        with connection.cursor() as cursor:
            # DROP first: inside an outer transaction (a test's) ON COMMIT has not come yet.
            cursor.execute(f"DROP TABLE IF EXISTS {_LOADED}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {_LOADED} ("
                + ", ".join(f"{name} {kind}" for name, kind in _LOADED_COLUMNS)
                + ") ON COMMIT DROP"
            )
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # For the rest of the import's transaction: compiling these statements (JIT,
            # chosen for their estimated cost) took 0.4 s a batch and saved nothing.
            cursor.execute("SET LOCAL jit = off")
            began = perf_counter()
            while (batch := parser.batch()) is not None:
                _copy_batch(cursor, batch)
                laps["load"] += perf_counter() - began
                began = perf_counter()
                _insert_matched(cursor, statement)
                cursor.execute(f"TRUNCATE {_LOADED}")
                laps["match"] += perf_counter() - began
                began = perf_counter()
            # Back to Django's default for its foreign keys: checked at the commit.
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            cursor.execute(f"DROP TABLE {_LOADED}")
    finally:
        parser.stop()
    return complete(reading.summary), reading.last_line


_DONE = object()


class _Parser(threading.Thread):
    """Reads the bill and turns its lines into COPY text, chunk by chunk, into a bounded
    queue; an exception (a truncated bill) is queued too, for the reader to raise."""

    def __init__(self, stream: BinaryIO, reading: _Reading) -> None:
        super().__init__(name="statement-parser", daemon=True)
        self.stream, self.reading = stream, reading
        # Room for a batch and a little more: the parser runs a batch ahead, no further.
        self.chunks: queue.Queue = queue.Queue(maxsize=_BATCH_LINES // _CHUNK_LINES + 2)
        self.stopped = threading.Event()
        self.finished = False  # set by the reading thread once it took the last chunk

    def run(self) -> None:
        try:
            for chunk in _copy_chunks(self.stream, self.reading):
                if not self._put(chunk):
                    return
            self._put(_DONE)
        except BaseException as exc:  # raised again in the reading thread
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self.stopped.is_set():
            try:
                self.chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def batch(self) -> Iterator[str] | None:
        """The next batch's chunks of COPY text, or None when the bill is done."""
        first = self._take()
        return None if first is None else self._batch(first)

    def _batch(self, first: tuple[str, int]) -> Iterator[str]:
        text, lines = first
        yield text
        while lines < _BATCH_LINES and (item := self._take()) is not None:
            text, count = item
            lines += count
            yield text

    def _take(self) -> tuple[str, int] | None:
        if self.finished:
            return None
        item = self.chunks.get()
        if item is _DONE:
            self.finished = True
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def _copy_batch(cursor, chunks: Iterator[str]) -> None:
    """COPY a batch of lines into the temporary table."""
    columns = ", ".join(name for name, _type in _LOADED_COLUMNS)
    copy = f"COPY {_LOADED} ({columns}) FROM STDIN"
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if is_psycopg3:
        with cursor.copy(copy) as sending:
            for chunk in chunks:
                sending.write(chunk)
        return
    reader = _ChunkReader(chunks)
    try:
        cursor.copy_expert(copy, reader)
    except Exception:
        if reader.error is not None:  # the parser's, not the server's
            raise reader.error from None
        raise


class _ChunkReader:
    """The file psycopg2's ``copy_expert`` reads from: each ``read`` is the next chunk.

    psycopg2 turns an exception in ``read`` into the server's "COPY from stdin failed"
    (and aborts the COPY): the original is kept here to be raised instead, so a truncated
    bill fails as ``BillFormatError`` on every database."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self.chunks = chunks
        self.error: Exception | None = None

    def read(self, size: int = -1) -> str:
        try:
            return next(self.chunks, "")
        except Exception as exc:
            self.error = exc
            raise


def _copy_chunks(stream: BinaryIO, reading: _Reading) -> Iterator[tuple[str, int]]:
    """(COPY text, its number of lines) for every ``_CHUNK_LINES`` lines of the bill."""
    rows: list[str] = []
    for item in iter_trade_bill(stream):
        if isinstance(item, BillSummary):
            reading.summary = item
            continue
        rows.append(_copy_row(item))
        reading.last_line = item.line_no  # the parser numbers lines in increasing order
        if len(rows) >= _CHUNK_LINES:
            yield "".join(rows), len(rows)
            rows = []
    if rows:
        yield "".join(rows), len(rows)


def _copy_row(item: BillLine | BillLineError) -> str:
    item = storable(item)
    if isinstance(item, BillLineError):
        return _escaped_row(
            (str(item.line_no), None, "", "", "", "0", "", "", "0", "", "0",
             Mismatch.UNREADABLE.value, unreadable_detail(item))
        )
    values = (
        str(item.line_no),
        None if item.trade_time is None else item.trade_time.isoformat(),
        plain_id(item.out_trade_no),
        plain_id(item.transaction_id),
        item.trade_state,
        str(item.total_fee),
        plain_id(item.out_refund_no),
        plain_id(item.wechat_refund_id),
        str(item.refund_fee),
        item.refund_status,
        str(item.fee),
        "",
        "",
    )
    if values[1] is None:
        return _escaped_row(values)
    row = "\t".join(values)
    # Nearly every row: plain ids and states. A value holding a tab, a backslash or a line
    # break is escaped field by field instead.
    if row.count("\t") != _TABS or _COPY_SPECIAL.search(row):
        return _escaped_row(values)
    return row + "\n"


def _escaped_row(values: tuple[str | None, ...]) -> str:
    return (
        "\t".join(_NULL if value is None else value.translate(_COPY_ESCAPES) for value in values)
        + "\n"
    )


def _insert_matched(cursor, statement: Statement) -> None:
    """The loaded batch into ``StatementLine`` in one statement: each line linked to its
    order (by ``out_trade_no``) and refund (by ``out_refund_no``), its mismatch decided by a
    CASE whose branches are the UPDATEs of payments/statement_lines.py, in the same order.

    The joins are LATERAL lookups through the unique indexes on those numbers, a nested
    loop the planner cannot turn into a hash join: its cost follows the batch, not the
    shop's history. A hash join read every order once per batch (2.2 million orders: 2.0 s
    for a batch of 100,000 lines; the lookups, 0.5 s). The numbers are unique, so LIMIT 1
    changes nothing and no join multiplies a line."""
    line, order, refund = (m._meta.db_table for m in (StatementLine, Order, Refund))
    reasons = (
        (Mismatch.UNKNOWN_ORDER, UNKNOWN_ORDER_DETAIL),
        (Mismatch.NOT_PAID_HERE, NO_PAYMENT_HERE_DETAIL),
        (Mismatch.NOT_PAID_HERE, OTHER_TRANSACTION_DETAIL),
        (Mismatch.AMOUNT, ""),
        (Mismatch.REFUND_UNKNOWN, REFUND_UNKNOWN_DETAIL),
        (Mismatch.REFUND_AMOUNT, ""),
        (Mismatch.REFUND_STATE, REFUND_STATE_DETAIL),
    )
    params: dict[str, object] = {
        "statement": statement.pk,
        "paid": PAID,
        "refunded": REFUNDED,
        "refund_success": REFUND_SUCCESS,
        "not_made_here": list(REFUND_NOT_MADE_HERE),
    }
    kinds, details = [], []
    for n, (kind, detail) in enumerate(reasons, start=1):
        params[f"kind{n}"], params[f"detail{n}"] = str(kind), detail
        kinds.append(f"WHEN {n} THEN %(kind{n})s")
        details.append(f"WHEN {n} THEN %(detail{n})s")
    sql = f"""
        INSERT INTO {line} (statement_id, line_no, trade_time, out_trade_no, transaction_id,
            trade_state, total_fee, out_refund_no, wechat_refund_id, refund_fee,
            refund_status, fee, order_id, refund_id, mismatch, mismatch_detail,
            resolution_note)
        SELECT %(statement)s, line_no, trade_time, out_trade_no, transaction_id,
            trade_state, total_fee, out_refund_no, wechat_refund_id, refund_fee,
            refund_status, fee, order_id, refund_id,
            CASE reason WHEN 0 THEN mismatch {" ".join(kinds)} END,
            CASE reason
                WHEN 0 THEN mismatch_detail
                WHEN 4 THEN 'WeChat ' || total_fee || ' fen, recorded here '
                    || recorded_fee || ' fen'
                WHEN 6 THEN 'WeChat ' || refund_fee || ' fen, recorded here '
                    || recorded_refund_fee || ' fen'
                {" ".join(details)}
            END,
            ''
        FROM (
            SELECT l.*, o.id AS order_id, r.id AS refund_id,
                COALESCE(o.paid_fee, o.total_fee) AS recorded_fee,
                r.refund_fee AS recorded_refund_fee,
                CASE
                    WHEN l.mismatch <> '' THEN 0
                    WHEN l.trade_state = %(paid)s THEN CASE
                        WHEN o.id IS NULL THEN 1
                        WHEN o.transaction_id IS NULL OR o.transaction_id = '' THEN 2
                        WHEN o.transaction_id <> l.transaction_id THEN 3
                        WHEN l.total_fee <> COALESCE(o.paid_fee, o.total_fee) THEN 4
                        ELSE 0 END
                    WHEN l.trade_state = %(refunded)s THEN CASE
                        WHEN r.id IS NULL THEN 5
                        WHEN l.refund_fee <> r.refund_fee THEN 6
                        WHEN l.refund_status = %(refund_success)s
                            AND r.status = ANY(%(not_made_here)s) THEN 7
                        ELSE 0 END
                    ELSE 0
                END AS reason
            FROM {_LOADED} l
            LEFT JOIN LATERAL (
                SELECT id, transaction_id, paid_fee, total_fee FROM {order}
                WHERE l.out_trade_no <> '' AND out_trade_no = l.out_trade_no LIMIT 1
            ) o ON true
            LEFT JOIN LATERAL (
                SELECT id, refund_fee, status FROM {refund}
                WHERE l.out_refund_no <> '' AND out_refund_no = l.out_refund_no LIMIT 1
            ) r ON true
        ) AS matched
    """  # noqa: S608 (names from the models, values as parameters)
    cursor.execute(sql, params)
