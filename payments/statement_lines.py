"""A bill's lines into the database, matched against our orders and refunds
(docs/INVARIANTS.md §10; the file's facts are in docs/protocol/wechat-pay-v2.md §14).

Two ways to the same rows, chosen by the database (payments/statements.py):

- PostgreSQL: payments/statement_copy.py, ``COPY`` and one ``INSERT … SELECT`` a batch.
- Any other database (SQLite in development and tests), here: ``bulk_create`` in batches,
  then one UPDATE per link and per kind of mismatch.

What both share is here too: the rules, their words, and which lines cannot be stored as
read. Either way the number of queries does not grow with the lines (the batches aside), no
Python loop runs over orders, and a mismatch is decided by the first rule that applies,
in this order: unreadable; a payment line whose order is unknown, not paid here, paid with
another transaction, of another amount; a refund line whose refund is unknown, of another
amount, failed or closed here though WeChat made it.
"""

from __future__ import annotations

from time import perf_counter
from typing import BinaryIO

from django.db import models
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Coalesce, Concat

from orders.models import Order
from payments.models import Refund, Statement, StatementLine
from wechat.bills import BillLine, BillLineError, BillSummary, iter_trade_bill

Mismatch = StatementLine.Mismatch

# Lines inserted per INSERT (the backend may split further: SQLite allows 999 parameters).
BATCH_SIZE = 2000
# The bill's 交易状态 of a payment row and of a refund row (§14.7).
PAID = "SUCCESS"
REFUNDED = "REFUND"
# 退款状态 of a refund WeChat made (§14.5).
REFUND_SUCCESS = "SUCCESS"
# What WeChat's refund status in the bill (a snapshot at generation) contradicts here.
REFUND_NOT_MADE_HERE = (Refund.Status.FAILED, Refund.Status.CLOSED)
UNREADABLE = "unreadable line"

# What staff read for each mismatch (the amounts' details are built from the two numbers).
UNKNOWN_ORDER_DETAIL = "no order with this number here"
NO_PAYMENT_HERE_DETAIL = (
    "WeChat took the money; no payment is recorded here (a lost notify reconcile did not catch)"
)
OTHER_TRANSACTION_DETAIL = "the order is paid here with another WeChat transaction"
REFUND_UNKNOWN_DETAIL = "no refund with this number here (made in the merchant platform?)"
REFUND_STATE_DETAIL = "WeChat's bill says refunded; here the refund failed or was closed"


def lines_insert_and_match(
    statement: Statement, stream: BinaryIO, laps: dict[str, float]
) -> tuple[BillSummary, int]:
    """Insert the bill's lines for ``statement`` and match them, inside the caller's
    transaction; the bill's summary and the last detail line's number. ``laps`` gets the
    seconds of "load" and "match", for the import's log line and the benchmark."""
    began = perf_counter()
    summary, last = _insert_lines(statement, stream)
    laps["load"] = perf_counter() - began
    began = perf_counter()
    _match(statement)
    laps["match"] = perf_counter() - began
    return summary, last


def unreadable_detail(item: BillLineError) -> str:
    # Kept and flagged, never a reason to stop: staff see the raw text (NUL shown as �:
    # PostgreSQL's text cannot hold it).
    raw = item.raw[:500].replace("\x00", "\N{REPLACEMENT CHARACTER}")
    return f"{UNREADABLE}: {item.reason}\n{raw}"


def storable(item: BillLine | BillLineError) -> BillLine | BillLineError:
    """``item``, or an unreadable line when its values do not fit their columns: a value
    longer than its column, an amount beyond a 64-bit integer, a NUL character. Without
    this one odd line would fail the whole day's import (on PostgreSQL; SQLite stores
    what it is given), every time it is tried again."""
    if isinstance(item, BillLineError):
        return item
    if (
        len(item.out_trade_no) > _ID_LENGTH
        or len(item.transaction_id) > _ID_LENGTH
        or len(item.out_refund_no) > _ID_LENGTH
        or len(item.wechat_refund_id) > _ID_LENGTH
        or len(item.trade_state) > _STATE_LENGTH
        or len(item.refund_status) > _STATE_LENGTH
    ):
        return BillLineError(item.line_no, "a value is longer than its column", item.raw)
    if max(abs(item.total_fee), abs(item.refund_fee), abs(item.fee)) > _MAX_AMOUNT:
        return BillLineError(item.line_no, "an amount too large to be real", item.raw)
    if "\x00" in item.raw:
        return BillLineError(item.line_no, "a NUL character", item.raw)
    return item


def _length(*names: str) -> int:
    # The shortest of the columns (today they are alike): a value that fits it fits all.
    return min(StatementLine._meta.get_field(name).max_length for name in names)


_MAX_AMOUNT = 2**63 - 1  # fen, the BigIntegerField's largest
_ID_LENGTH = _length("out_trade_no", "transaction_id", "out_refund_no", "wechat_refund_id")
_STATE_LENGTH = _length("trade_state", "refund_status")


def plain_id(value: str) -> str:
    # A payment row has "0" in the refund id columns (§14.5).
    return "" if value in ("", "0") else value


# --- any database: bulk_create, then UPDATEs ----------------------------------------------

def _line_from(statement: Statement, item: BillLine | BillLineError) -> StatementLine:
    item = storable(item)
    if isinstance(item, BillLineError):
        return StatementLine(
            statement=statement,
            line_no=item.line_no,
            mismatch=Mismatch.UNREADABLE,
            mismatch_detail=unreadable_detail(item),
        )
    return StatementLine(
        statement=statement,
        line_no=item.line_no,
        trade_time=item.trade_time,
        out_trade_no=plain_id(item.out_trade_no),
        transaction_id=plain_id(item.transaction_id),
        trade_state=item.trade_state,
        total_fee=item.total_fee,
        out_refund_no=plain_id(item.out_refund_no),
        wechat_refund_id=plain_id(item.wechat_refund_id),
        refund_fee=item.refund_fee,
        refund_status=item.refund_status,
        fee=item.fee,
    )


def _insert_lines(statement: Statement, stream: BinaryIO) -> tuple[BillSummary, int]:
    batch: list[StatementLine] = []
    summary: BillSummary | None = None
    last = 0
    for item in iter_trade_bill(stream):
        if isinstance(item, BillSummary):
            summary = item
            continue
        batch.append(_line_from(statement, item))
        last = max(last, item.line_no)
        if len(batch) >= BATCH_SIZE:
            StatementLine.objects.bulk_create(batch)
            batch = []
    if batch:
        StatementLine.objects.bulk_create(batch)
    return complete(summary), last


def complete(summary: BillSummary | None) -> BillSummary:
    if summary is None:  # the parser refuses a bill without one; never import it half
        raise ValueError("trade bill without its summary: truncated download")
    return summary


def _match(statement: Statement) -> None:
    """Link lines to orders and refunds and flag what differs, in set operations: each
    UPDATE touches only the lines no earlier one flagged (``open_lines`` is re-evaluated)."""
    lines = StatementLine.objects.filter(statement=statement)
    lines.exclude(out_trade_no="").update(
        order_id=Subquery(
            Order.objects.filter(out_trade_no=OuterRef("out_trade_no")).values("pk")[:1]
        )
    )
    lines.exclude(out_refund_no="").update(
        refund_id=Subquery(
            Refund.objects.filter(out_refund_no=OuterRef("out_refund_no")).values("pk")[:1]
        )
    )
    open_lines = lines.filter(mismatch="")
    payments = open_lines.filter(trade_state=PAID)
    payments.filter(order__isnull=True).update(
        mismatch=Mismatch.UNKNOWN_ORDER, mismatch_detail=UNKNOWN_ORDER_DETAIL
    )
    no_payment_here = Q(order__transaction_id__isnull=True) | Q(order__transaction_id="")
    payments.filter(order__isnull=False).filter(no_payment_here).update(
        mismatch=Mismatch.NOT_PAID_HERE, mismatch_detail=NO_PAYMENT_HERE_DETAIL
    )
    payments.filter(order__isnull=False).exclude(no_payment_here).exclude(
        order__transaction_id=F("transaction_id")
    ).update(mismatch=Mismatch.NOT_PAID_HERE, mismatch_detail=OTHER_TRANSACTION_DETAIL)
    recorded = Coalesce(F("order__paid_fee"), F("order__total_fee"))
    payments.filter(order__isnull=False).exclude(total_fee=recorded).update(
        mismatch=Mismatch.AMOUNT,
        mismatch_detail=Concat(
            Value("WeChat "),
            Cast("total_fee", models.CharField()),
            Value(" fen, recorded here "),
            Cast(_order_value(Coalesce("paid_fee", "total_fee")), models.CharField()),
            Value(" fen"),
        ),
    )
    refunds = open_lines.filter(trade_state=REFUNDED)
    refunds.filter(refund__isnull=True).update(
        mismatch=Mismatch.REFUND_UNKNOWN, mismatch_detail=REFUND_UNKNOWN_DETAIL
    )
    refunds.filter(refund__isnull=False).exclude(refund_fee=F("refund__refund_fee")).update(
        mismatch=Mismatch.REFUND_AMOUNT,
        mismatch_detail=Concat(
            Value("WeChat "),
            Cast("refund_fee", models.CharField()),
            Value(" fen, recorded here "),
            Cast(
                Subquery(Refund.objects.filter(pk=OuterRef("refund_id")).values("refund_fee")[:1]),
                models.CharField(),
            ),
            Value(" fen"),
        ),
    )
    refunds.filter(
        refund__isnull=False, refund_status=REFUND_SUCCESS, refund__status__in=REFUND_NOT_MADE_HERE
    ).update(mismatch=Mismatch.REFUND_STATE, mismatch_detail=REFUND_STATE_DETAIL)


def _order_value(expression) -> Subquery:
    return Subquery(
        Order.objects.filter(pk=OuterRef("order_id")).annotate(v=expression).values("v")[:1]
    )
