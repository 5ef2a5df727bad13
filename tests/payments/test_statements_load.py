"""How a bill's lines get into the database: the same rows on SQLite (bulk_create + UPDATEs,
payments/statement_lines.py) and PostgreSQL (COPY in batches, a parser thread, one
INSERT … SELECT per batch, payments/statement_copy.py), whatever the values hold and
however the import ends."""

import threading
from datetime import date, datetime

import pytest
from django.db import OperationalError, connection

from core.times import shop_timezone
from orders.models import Order
from payments import statement_copy
from payments.models import Refund, Statement, StatementLine
from payments.statements import statement_import
from tests.factories import bill_payment, make_order, make_shopper, trade_bill

DAY = date(2026, 11, 27)
Mismatch = StatementLine.Mismatch


def paid(products, n: int, fee: int = 4500) -> Order:
    return make_order(
        make_shopper(),
        products,
        n=n,
        status=Order.Status.PAID,
        transaction_id=f"42000{n:023d}",
        paid_at=datetime(2026, 11, 27, 9, 0, n, tzinfo=shop_timezone()),
        paid_fee=fee,
        total_fee=fee,
    )


def row(order: Order, fen: int | None = None):
    return bill_payment(order.out_trade_no, order.transaction_id, fen or order.total_fee)


def parser_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "statement-parser" and t.is_alive()]


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 3 lines in chunks of 1 on PostgreSQL, so a 10-line bill takes four COPYs
    and four INSERTs and the parser fills its queue (5 chunks) before the reader."""
    monkeypatch.setattr(statement_copy, "_BATCH_LINES", 3)
    monkeypatch.setattr(statement_copy, "_CHUNK_LINES", 1)


def test_values_with_copys_special_characters_are_kept_exactly(db, products, wxbill):
    # Tabs, backslashes and carriage returns separate or escape COPY's text; a line
    # without a trade time becomes NULL.
    odd, fen, _ = bill_payment("A\\B\tC\rD", "42\\N\t1", 100, when="")
    wxbill.body = trade_bill((odd, fen, 0), "`broken\\line\twith\rcontrol\\N")

    statement = statement_import(bill_date=DAY).statement

    first, second = statement.lines.order_by("line_no")
    assert (first.out_trade_no, first.transaction_id) == ("A\\B\tC\rD", "42\\N\t1")
    assert first.trade_time is None and first.mismatch == Mismatch.UNKNOWN_ORDER
    assert second.mismatch == Mismatch.UNREADABLE
    assert second.mismatch_detail.endswith("\n`broken\\line\twith\rcontrol\\N")


def test_a_line_whose_values_do_not_fit_is_flagged_the_rest_imported(db, products, wxbill):
    good = paid(products, 1)
    too_long, fen, _ = bill_payment("X" * 65, "4200000999", 100)
    huge, _, _ = bill_payment("NOSUCHORDER", "4200000998", 100)
    huge = huge.replace("`1.00,", "`99999999999999999999.00,")
    nul, _, _ = bill_payment("NOSUCHORDER2", "4200000997", 100)
    nul = nul.replace("`Tea,", "`Te\x00a,")
    wxbill.body = trade_bill(row(good), (too_long, fen, 0), (huge, 0, 0), (nul, fen, 0))

    statement = statement_import(bill_date=DAY).statement

    lines = list(statement.lines.order_by("line_no"))
    assert [line.mismatch for line in lines] == ["", *[Mismatch.UNREADABLE] * 3]
    assert lines[0].order_id == good.pk
    reasons = [line.mismatch_detail.split("\n")[0] for line in lines[1:]]
    assert reasons == [
        "unreadable line: a value is longer than its column",
        "unreadable line: an amount too large to be real",
        "unreadable line: a NUL character",
    ]
    # Shown with the replacement character: PostgreSQL's text cannot hold a NUL.
    assert "Te\N{REPLACEMENT CHARACTER}a" in lines[3].mismatch_detail


def test_a_bill_of_many_batches_is_matched_as_one(db, products, wxbill, small_batches):
    orders = [paid(products, n) for n in range(1, 10)]
    missing = paid(products, 20)  # paid here, not in the bill
    wxbill.body = trade_bill(
        *(row(order) for order in orders[:4]),
        bill_payment("NOSUCHORDER", "4200000999", 100),
        "`broken",
        *(row(order) for order in orders[4:8]),
        row(orders[8], fen=1),
    )

    statement = statement_import(bill_date=DAY).statement

    lines = {line.line_no: line for line in statement.lines.all()}
    assert sorted(lines) == list(range(1, 13))
    assert [lines[n].order_id for n in (1, 2, 3, 4, 7, 8, 9, 10, 11)] == [o.pk for o in orders]
    assert {n: line.mismatch for n, line in lines.items() if line.mismatch} == {
        5: Mismatch.UNKNOWN_ORDER,
        6: Mismatch.UNREADABLE,
        11: Mismatch.AMOUNT,
        12: Mismatch.NOT_PAID_AT_WECHAT,
    }
    assert lines[12].order_id == missing.pk
    assert (statement.trade_count, statement.mismatch_count) == (11, 4)


def test_a_truncated_bill_of_many_batches_writes_nothing(db, products, wxbill, small_batches):
    orders = [paid(products, n) for n in range(1, 11)]
    wxbill.body = trade_bill(*(row(order) for order in orders)).rsplit(b"\r\n", 3)[0]

    with pytest.raises(ValueError, match="truncated"):
        statement_import(bill_date=DAY)

    assert not Statement.objects.exists() and not StatementLine.objects.exists()
    assert parser_threads() == []


@pytest.mark.postgres
def test_a_database_failure_mid_import_stops_the_parser(db, products, wxbill, small_batches):
    orders = [paid(products, n) for n in range(1, 21)]
    wxbill.body = trade_bill(*(row(order) for order in orders))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '200ms'")
    # Another session holds the refunds table: the first INSERT … SELECT cannot read it,
    # while the parser, 20 lines long, waits for room in its queue of 5.
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        with other.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Refund._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(OperationalError, match="lock timeout"):
            statement_import(bill_date=DAY)
    finally:
        other.rollback()
        other.close()

    assert parser_threads() == []


def test_a_bill_without_lines_still_finds_what_was_paid_here(db, products, wxbill):
    missing = paid(products, 1)
    wxbill.body = trade_bill()

    statement = statement_import(bill_date=DAY).statement

    line = statement.lines.get()
    assert (line.line_no, line.order_id, line.mismatch) == (
        1, missing.pk, Mismatch.NOT_PAID_AT_WECHAT
    )
    assert (statement.trade_count, statement.mismatch_count) == (0, 1)
