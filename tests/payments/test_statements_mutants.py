"""The daily statement's edges that its mutants showed unpinned (payments/statements.py,
payments/statement_lines.py): what the summary says, which orders our books count, the
empty day, the import of a file at hand, the log line, resolving and the latest bill."""

import hashlib
import io
import logging
import re
from datetime import date, datetime
from unittest import mock

import pytest
from django.core.files.storage import default_storage
from django.db.models.fields.files import FieldFile

from core.times import shop_timezone
from orders.models import Order
from payments.models import Refund, Statement, StatementLine
from payments.statement_lines import (
    BATCH_SIZE,
    _length,
    complete,
    plain_id,
    storable,
    unreadable_detail,
)
from payments.statements import (
    LinesAlreadyResolved,
    StatementOutcome,
    _HashingWriter,
    _record_empty,
    statement_api_version,
    statement_import,
    statement_import_file,
    statement_latest,
    statement_lines_resolve,
    statement_mismatches,
)
from tests.factories import (
    NO_BILL,
    bill_payment,
    bill_refund,
    make_order,
    make_shopper,
    refund_id_for,
    trade_bill,
)
from wechat.bills import BillLine, BillLineError

DAY = date(2026, 11, 27)
Mismatch = StatementLine.Mismatch


def paid_at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=shop_timezone())


def paid(products, n: int, fee: int = 4500, **fields) -> Order:
    defaults = {"status": Order.Status.PAID, "transaction_id": f"42000{n:023d}",
                "paid_at": paid_at(27), "paid_fee": fee, "total_fee": fee}
    return make_order(make_shopper(), products, n=n, **{**defaults, **fields})


def row(order: Order, fen: int, fee: str = "0.00000"):
    text, paid_fen, _ = bill_payment(order.out_trade_no, order.transaction_id, fen)
    return text.replace("`0.00000,", f"`{fee},"), paid_fen, 0


# -- the summary staff read -------------------------------------------------------------------

def test_the_detail_names_the_summary_the_lines_and_our_books_and_what_differs(
    db, products, wxbill
):
    first = paid(products, 1, fee=4400, total_fee=4500)  # paid less than the order's total
    second = paid(products, 2, fee=None, total_fee=1200)  # no paid_fee: its total counts
    paid(products, 3, paid_at=paid_at(26, 23, 59))  # the day before and after: not ours
    paid(products, 4, paid_at=datetime(2026, 11, 28, tzinfo=shop_timezone()))
    paid(products, 5, transaction_id="", status=Order.Status.CLOSED)  # no transaction
    paid(products, 6, transaction_id=None, status=Order.Status.CLOSED)
    refund = Refund.objects.create(order=first, out_refund_no="RF1", refund_fee=1000,
                                   status=Refund.Status.SUCCESS)
    refund_row = bill_refund(first.out_trade_no, first.transaction_id, refund.out_refund_no,
                             1000)
    wxbill.body = trade_bill(row(first, 4400, fee="0.27000"), row(second, 1200, fee="0.07000"),
                             refund_row, summary="`4,`99.00,`20.00,`0.00,`0.35000,`99.00,`20.00")

    statement = statement_import(bill_date=DAY).statement

    assert statement.detail == (
        "Bill summary: 4 trades, paid ¥99.00, refunded ¥20.00, fees ¥0.35.\n"
        "Lines add up to: 3 lines, paid ¥56.00, refunded ¥10.00, fees ¥0.34.\n"
        "Our books: 2 payments that day, ¥56.00.\n"
        "The summary does not match its lines: trades, paid, refunded."
    )
    assert (statement.mismatch_count, statement.status) == (0, Statement.Status.MISMATCHED)
    assert (statement.trade_count, statement.paid_total, statement.refund_total,
            statement.fee_total) == (4, 9900, 2000, 35)
    statement.refresh_from_db()
    assert statement.status == Statement.Status.MISMATCHED and statement.fee_total == 35


def test_a_bill_without_lines_on_a_day_without_payments_adds_up_to_zero(db, wxbill):
    wxbill.body = trade_bill()

    statement = statement_import(bill_date=DAY).statement

    assert statement.detail == (
        "Bill summary: 0 trades, paid ¥0.00, refunded ¥0.00, fees ¥0.00.\n"
        "Lines add up to: 0 lines, paid ¥0.00, refunded ¥0.00, fees ¥0.00.\n"
        "Our books: 0 payments that day, ¥0.00."
    )
    assert statement.status == Statement.Status.MATCHED


def test_orders_paid_here_and_missing_from_the_bill_come_in_order_of_payment(
    db, products, wxbill
):
    refunded_only = paid(products, 1, fee=3000, paid_at=paid_at(27, 9))
    later = paid(products, 2, fee=None, total_fee=1200, paid_at=paid_at(27, 12))
    earlier = paid(products, 3, fee=800, total_fee=900, paid_at=paid_at(27, 11))
    paid(products, 4, transaction_id="", status=Order.Status.CLOSED)
    paid(products, 5, transaction_id=None, status=Order.Status.CLOSED)
    refund = Refund.objects.create(order=refunded_only, out_refund_no="RF1", refund_fee=100,
                                   status=Refund.Status.SUCCESS)
    wxbill.body = trade_bill(bill_refund(refunded_only.out_trade_no,
                                         refunded_only.transaction_id, refund.out_refund_no, 100))

    statement = statement_import(bill_date=DAY).statement

    added = statement.lines.filter(line_no__gt=1).order_by("line_no")
    assert [(line.line_no, line.order_id, line.mismatch_detail) for line in added] == [
        (2, refunded_only.pk, "paid here (3000 fen); not in WeChat's bill"),
        (3, earlier.pk, "paid here (800 fen); not in WeChat's bill"),
        (4, later.pk, "paid here (1200 fen); not in WeChat's bill"),
    ]
    assert all(line.mismatch == Mismatch.NOT_PAID_AT_WECHAT for line in added)


# -- the empty day ----------------------------------------------------------------------------

def test_an_empty_day_says_wechat_has_no_bill_once_through_either_api(db, wxbill, settings):
    wxbill.body = NO_BILL
    other_day = statement_import(bill_date=date(2026, 11, 26)).statement
    first = statement_import(bill_date=DAY)
    assert (first.statement.detail, first.statement.file_sha256) == ("WeChat has no bill.", "")
    assert first.statement.status == Statement.Status.EMPTY and first.statement != other_day

    again = _record_empty(DAY, Statement.ApiVersion.V3)
    assert (again.statement, again.created, again.outcome) == (
        first.statement, False, StatementOutcome.EMPTY)


def test_an_empty_answer_through_the_other_api_after_a_bill_is_a_new_empty_statement(
    db, wxbill
):
    wxbill.body = NO_BILL
    empty = statement_import(bill_date=DAY).statement
    wxbill.body = trade_bill(bill_payment("NOSUCHORDER", "4200000999", 100))
    statement_import(bill_date=DAY)

    again = _record_empty(DAY, Statement.ApiVersion.V3)

    assert again.created and again.statement != empty
    assert again.statement.status == Statement.Status.EMPTY


def test_an_empty_day_after_a_bill_is_an_empty_statement_of_its_own(db, wxbill):
    wxbill.body = trade_bill(bill_payment("NOSUCHORDER", "4200000999", 100))
    bill = statement_import(bill_date=DAY).statement
    wxbill.body = NO_BILL

    empty = statement_import(bill_date=DAY)

    assert empty.created and empty.statement != bill and empty.statement.file_sha256 == ""


# -- a file at hand ---------------------------------------------------------------------------

def test_a_file_at_hand_is_hashed_whole_and_imported_as_v2(db, products):
    order = paid(products, 1)
    data = trade_bill(row(order, 4500)) + b"\r\n" * 40000  # longer than one read
    file = io.BytesIO(data)
    file.seek(100)

    result = statement_import_file(bill_date=DAY, file=file)

    statement = result.statement
    assert (result.outcome, result.created) == (StatementOutcome.IMPORTED, True)
    assert statement.file_sha256 == hashlib.sha256(data).hexdigest()
    assert (statement.bill_date, statement.api_version) == (DAY, Statement.ApiVersion.V2)
    # Django's storage adds _ and 7 characters to a name already taken.
    name = rf"statements/20261127-v2-{statement.file_sha256[:16]}(_[0-9A-Za-z]{{7}})?\.csv"
    assert re.fullmatch(name, statement.file.name)
    assert statement.file.read() == data and statement.wechat_hash == ""
    assert statement.lines.get().order_id == order.pk


def test_the_same_file_on_another_day_is_another_statement(db, products):
    data = trade_bill(bill_payment("NOSUCHORDER", "4200000999", 100))
    first = statement_import_file(bill_date=DAY, file=io.BytesIO(data))
    other = statement_import_file(bill_date=date(2026, 11, 26), file=io.BytesIO(data))
    assert other.created and other.statement != first.statement
    first.statement.refresh_from_db()
    assert first.statement.status != Statement.Status.SUPERSEDED


def test_the_import_logs_its_lines_status_and_laps(db, products, caplog):
    data = trade_bill(bill_payment("NOSUCHORDER", "4200000999", 100))
    with caplog.at_level(logging.INFO, logger="payments.statements"):
        statement = statement_import_file(bill_date=DAY, file=io.BytesIO(data)).statement
    (record,) = [r for r in caplog.records if r.name == "payments.statements"]
    laps = record.statement_laps
    assert list(laps) == ["store", "load", "match", "paid_here_only", "summarise", "commit"]
    assert all(0 <= seconds < 60 for seconds in laps.values())
    assert record.statement_lines == 1
    assert record.getMessage() == (
        f"statement {statement.pk} of 2026-11-27 imported: 1 lines (mismatched), "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in laps.items())
    )


# -- which API, resolving, the latest ---------------------------------------------------------

@pytest.mark.parametrize(
    ("placed", "refund_created", "refund_succeeded", "api"),
    [
        (paid_at(27), None, None, "v3"),
        (paid_at(26), None, None, "v2"),
        (paid_at(28), None, None, "v2"),
        (paid_at(20), paid_at(26), None, "v2"),
        (paid_at(20), paid_at(26), paid_at(27), "v3"),
        (paid_at(20), paid_at(26), paid_at(26), "v2"),
        (paid_at(20), paid_at(27), paid_at(28), "v3"),
    ],
)
def test_the_api_is_v3_when_a_v3_order_was_paid_or_refunded_that_day(
    db, products, placed, refund_created, refund_succeeded, api
):
    order = paid(products, 1, paid_at=placed, pay_version="v3")
    if refund_created:
        refund = Refund.objects.create(order=order, out_refund_no="RF1", refund_fee=100,
                                       status=Refund.Status.SUCCESS,
                                       succeeded_at=refund_succeeded)
        Refund.objects.filter(pk=refund.pk).update(created_at=refund_created)
    assert statement_api_version(DAY) == api


def lines_of(statement, *mismatches_by_line, first=1):
    return [StatementLine.objects.create(statement=statement, line_no=n, mismatch=mismatch,
                                         out_trade_no=f"T{n}")
            for n, mismatch in enumerate(mismatches_by_line, start=first)]


def a_statement(bill_date=DAY, status=Statement.Status.MISMATCHED) -> Statement:
    return Statement.objects.create(bill_date=bill_date, api_version="v2", status=status,
                                    file_sha256=f"{bill_date:%d}{status}")


def test_resolving_needs_a_note_and_touches_only_mismatching_lines(db, django_user_model):
    boss = django_user_model.objects.create(username="boss")
    statement = a_statement()
    flagged, fine = lines_of(statement, Mismatch.AMOUNT, "", first=7)
    with pytest.raises(ValueError, match=r"^a resolution note is required$"):
        statement_lines_resolve(line_ids=[flagged.pk], user=boss, note="  ")

    assert statement_lines_resolve(line_ids=[flagged.pk, fine.pk], user=boss,
                                   note=" checked ") == 1
    flagged.refresh_from_db()
    assert (flagged.resolution_note, flagged.resolved_by) == ("checked", boss)
    with pytest.raises(LinesAlreadyResolved) as caught:
        statement_lines_resolve(line_ids=[fine.pk, flagged.pk], user=boss, note="again")
    assert (caught.value.line_nos, str(caught.value)) == ([7], "already resolved: [7]")


def test_open_mismatches_are_counted_by_kind_for_one_statement(db, django_user_model):
    statement, other = a_statement(), a_statement(bill_date=date(2026, 11, 26))
    lines_of(other, Mismatch.AMOUNT)
    amount, _, _, _ = lines_of(statement, Mismatch.AMOUNT, Mismatch.AMOUNT, "",
                               Mismatch.UNKNOWN_ORDER)
    StatementLine.objects.filter(pk=amount.pk).update(resolved_at=paid_at(28))
    assert statement_mismatches(statement=statement) == {Mismatch.AMOUNT: 1,
                                                         Mismatch.UNKNOWN_ORDER: 1}


def test_the_latest_statement_in_force_counts_only_open_mismatches(db):
    a_statement(bill_date=date(2026, 11, 28), status=Statement.Status.SUPERSEDED)
    older = a_statement(bill_date=date(2026, 11, 26))
    latest = a_statement()
    assert older.pk < latest.pk
    lines_of(older, Mismatch.AMOUNT)
    resolved, resolved_too, *_ = lines_of(latest, Mismatch.AMOUNT, Mismatch.AMOUNT,
                                          Mismatch.UNKNOWN_ORDER, "", "")
    StatementLine.objects.filter(pk__in=[resolved.pk, resolved_too.pk]).update(
        resolved_at=paid_at(28))

    found = statement_latest()

    assert (found, found.open_mismatches) == (latest, 1)


def test_the_latest_statement_is_the_latest_day_not_the_latest_import(db):
    latest_day = a_statement(bill_date=date(2026, 11, 28))
    a_statement()
    assert statement_latest() == latest_day


# -- statement_lines ----------------------------------------------------------------------------

def bill_line(**values) -> BillLine:
    fields = {"line_no": 1, "trade_time": None, "appid": "", "mch_id": "", "transaction_id": "",
              "out_trade_no": "", "openid": "", "trade_type": "", "trade_state": "SUCCESS",
              "total_fee": 0, "wechat_refund_id": "", "out_refund_no": "", "refund_fee": 0,
              "refund_status": "", "fee": 0, "raw": "`raw"}
    return BillLine(**{**fields, **values})


@pytest.mark.parametrize(
    "field", ["out_trade_no", "transaction_id", "out_refund_no", "wechat_refund_id"]
)
def test_an_id_fits_up_to_its_column_and_one_character_more_is_unreadable(field):
    size = StatementLine._meta.get_field(field).max_length
    assert storable(bill_line(**{field: "x" * size})).line_no == 1
    assert isinstance(storable(bill_line(**{field: "x" * size})), BillLine)
    assert storable(bill_line(**{field: "x" * (size + 1)})) == BillLineError(
        1, "a value is longer than its column", "`raw")


@pytest.mark.parametrize("field", ["trade_state", "refund_status"])
def test_a_state_fits_up_to_its_column_and_one_character_more_is_unreadable(field):
    size = StatementLine._meta.get_field(field).max_length
    assert isinstance(storable(bill_line(**{field: "x" * size})), BillLine)
    assert storable(bill_line(**{field: "x" * (size + 1)})) == BillLineError(
        1, "a value is longer than its column", "`raw")


@pytest.mark.parametrize("field", ["total_fee", "refund_fee", "fee"])
def test_an_amount_fits_up_to_a_64_bit_integer(field):
    assert isinstance(storable(bill_line(**{field: -(2**63 - 1)})), BillLine)
    assert storable(bill_line(**{field: 2**63})) == BillLineError(
        1, "an amount too large to be real", "`raw")


def test_a_batch_of_exactly_batch_size_lines_is_one_insert(db, products):
    rows = [bill_payment(f"X{i:08d}", f"42{i:010d}", 100) for i in range(BATCH_SIZE + 1)]
    statement = statement_import_file(bill_date=DAY, file=io.BytesIO(trade_bill(*rows))).statement
    assert statement.lines.count() == BATCH_SIZE + 1


def test_the_shortest_column_is_the_one_that_bounds_them(db):
    assert _length("out_trade_no") == StatementLine._meta.get_field("out_trade_no").max_length
    assert _length("trade_state", "refund_status") == min(
        StatementLine._meta.get_field(name).max_length for name in ("trade_state", "refund_status"))


def test_a_filler_zero_or_empty_id_is_stored_empty():
    assert (plain_id(""), plain_id("0"), plain_id("RF1")) == ("", "", "RF1")


def test_an_unreadable_line_shows_at_most_500_characters_with_nul_replaced():
    detail = unreadable_detail(BillLineError(3, "not UTF-8", "\x00" + "x" * 600))
    assert detail == "unreadable line: not UTF-8\n\N{REPLACEMENT CHARACTER}" + "x" * 499


def test_the_parser_never_gives_a_bill_without_its_summary():
    with pytest.raises(ValueError, match=r"^trade bill without its summary: truncated download$"):
        complete(None)


def test_a_refund_line_keeps_its_time_fee_and_wechat_refund_id(db, products, wxbill):
    order = paid(products, 1)
    refund = Refund.objects.create(order=order, out_refund_no="RF1", refund_fee=1000,
                                   status=Refund.Status.SUCCESS)
    text, _, refunded = bill_refund(order.out_trade_no, order.transaction_id,
                                    refund.out_refund_no, 1000)
    wxbill.body = trade_bill(row(order, 4500), (text.replace("`0.00000,", "`-0.06000,"), 0,
                                                refunded))

    line = statement_import(bill_date=DAY).statement.lines.get(line_no=2)

    assert (line.refund_id, line.fee, line.wechat_refund_id) == (
        refund.pk, -6, refund_id_for("RF1"))
    assert line.trade_time == datetime(2026, 11, 27, 12, 0, 5, tzinfo=shop_timezone())
    assert line.mismatch == ""


def test_an_order_without_a_transaction_is_not_paid_here(db, products, wxbill):
    closed = paid(products, 1, transaction_id="", status=Order.Status.CLOSED)
    wxbill.body = trade_bill(bill_payment(closed.out_trade_no, "4200000777", 4500))

    line = statement_import(bill_date=DAY).statement.lines.get()

    assert (line.mismatch, line.mismatch_detail) == (
        Mismatch.NOT_PAID_HERE,
        "WeChat took the money; no payment is recorded here (a lost notify reconcile did not "
        "catch)")


@pytest.mark.parametrize(("paid_fee", "shown"), [(4400, 4400), (None, 4500)])
def test_an_amount_mismatch_shows_what_was_paid_here(db, products, wxbill, paid_fee, shown):
    order = paid(products, 1, fee=paid_fee, total_fee=4500)
    wxbill.body = trade_bill(row(order, 100))

    line = statement_import(bill_date=DAY).statement.lines.get()

    assert line.mismatch_detail == f"WeChat 100 fen, recorded here {shown} fen"


# -- imports that meet another ----------------------------------------------------------------

def test_an_import_that_loses_the_race_for_its_file_gives_the_winner(db, products):
    data = trade_bill(bill_payment("NOSUCHORDER", "4200000999", 100))
    sha = hashlib.sha256(data).hexdigest()
    statement_import_file(bill_date=date(2026, 11, 28), file=io.BytesIO(data))  # another day
    statement_import_file(bill_date=DAY, file=io.BytesIO(trade_bill()))  # an earlier file
    stored, real_save = [], FieldFile.save

    def save_while_another_import_commits(self, name, content, save=True):
        stored.append(Statement.objects.create(bill_date=DAY, api_version="v2", file_sha256=sha,
                                               status=Statement.Status.MATCHED))
        real_save(self, name, content, save)
        stored.append(self.name)

    with mock.patch.object(FieldFile, "save", save_while_another_import_commits):
        result = statement_import_file(bill_date=DAY, file=io.BytesIO(data))

    winner, name = stored
    assert (result.statement, result.created, result.outcome) == (
        winner, False, StatementOutcome.UNCHANGED)
    assert not default_storage.exists(name)  # our copy of the file is not left behind


def test_a_statement_superseded_once_keeps_pointing_at_its_successor(db):
    first, second, third = (
        statement_import_file(bill_date=DAY, file=io.BytesIO(trade_bill(summary=summary)))
        .statement
        for summary in ("`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00",
                        "`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.01",
                        "`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.02")
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.superseded_by, second.superseded_by) == (second, third)


def test_the_writer_the_bill_streams_into_is_a_writable_file_that_hashes_it():
    file = io.BytesIO()
    writer = _HashingWriter(file)
    assert writer.writable() is True
    assert writer.write(b"bill") == 4 and file.getvalue() == b"bill"
    assert writer.sha256.hexdigest() == hashlib.sha256(b"bill").hexdigest()
