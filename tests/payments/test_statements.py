"""Importing WeChat's daily trade bill and matching it (docs/INVARIANTS.md §10)."""

from datetime import date, datetime, timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.times import shop_timezone
from orders.models import Order
from payments.models import Refund, Statement, StatementLine
from payments.statements import StatementOutcome, statement_import
from payments.tasks import BILL_RETRIES, import_yesterday_statement
from tests.factories import (
    NO_BILL,
    bill_payment,
    bill_refund,
    make_order,
    make_shopper,
    trade_bill,
)
from wechat.pay_v2 import BillNotReady, BillPermissionDenied, WxPayError

DAY = date(2026, 11, 27)
Mismatch = StatementLine.Mismatch


def bill_failure(message: str, code: str = "") -> bytes:
    """downloadbill's failure XML (docs/protocol/wechat-pay-v2.md §14.8)."""
    error_code = f"<error_code>{code}</error_code>" if code else ""
    return (
        f"<xml><return_code><![CDATA[FAIL]]></return_code>"
        f"<return_msg><![CDATA[{message}]]></return_msg>{error_code}</xml>"
    ).encode()


def paid_on(products, n: int, fee: int = 4500, at: datetime | None = None, **fields) -> Order:
    """An order paid here on DAY (Beijing) for ``fee`` fen."""
    at = at or datetime(2026, 11, 27, 10, 30, 15, tzinfo=shop_timezone()) + timedelta(seconds=n)
    defaults = {
        "status": Order.Status.PAID,
        "transaction_id": f"42000{n:023d}",
        "paid_at": at,
        "paid_fee": fee,
        "total_fee": fee,
    }
    defaults.update(fields)
    return make_order(make_shopper(), products, n=n, **defaults)


def pay_row(order: Order, fen: int | None = None):
    return bill_payment(
        order.out_trade_no, order.transaction_id, order.total_fee if fen is None else fen
    )


def refund_of(order: Order, fee: int, status=Refund.Status.SUCCESS, **fields) -> Refund:
    return Refund.objects.create(
        order=order,
        out_refund_no=f"R{order.out_trade_no}"[:32],
        refund_fee=fee,
        status=status,
        **fields,
    )


def mismatches(statement) -> dict[str, str]:
    return dict(statement.lines.exclude(mismatch="").values_list("out_trade_no", "mismatch"))


def test_a_bill_that_matches_our_books(db, products, wxbill):
    first, second = paid_on(products, 1), paid_on(products, 2, fee=1200)
    refund = refund_of(first, 4500)
    wxbill.body = trade_bill(
        pay_row(first),
        pay_row(second),
        bill_refund(first.out_trade_no, first.transaction_id, refund.out_refund_no, 4500),
    )

    result = statement_import(bill_date=DAY)

    assert (result.outcome, result.created) == (StatementOutcome.IMPORTED, True)
    statement = result.statement
    assert statement.status == Statement.Status.MATCHED
    assert statement.mismatch_count == 0
    assert (statement.trade_count, statement.paid_total, statement.refund_total) == (3, 5700, 4500)
    assert statement.api_version == "v2" and len(statement.file_sha256) == 64
    lines = list(statement.lines.order_by("line_no"))
    assert [line.order_id for line in lines] == [first.pk, second.pk, first.pk]
    assert lines[2].refund_id == refund.pk and lines[0].refund_id is None
    assert statement.file.read().startswith(b"\xef\xbb\xbf")
    assert wxbill.requests[0]["bill_date"] == "20261127"
    assert wxbill.requests[0]["bill_type"] == "ALL"


def test_each_payment_mismatch_is_flagged(db, products, wxbill):
    unpaid = make_order(make_shopper(), products, n=3)  # a lost notify
    other_amount = paid_on(products, 4)
    other_tx = paid_on(products, 5)
    wxbill.body = trade_bill(
        bill_payment("NOSUCHORDER", "4200000999", 100),
        bill_payment(unpaid.out_trade_no, "4200000777", 4500),
        pay_row(other_amount, fen=4400),
        bill_payment(other_tx.out_trade_no, "4200000888", 4500),
    )

    statement = statement_import(bill_date=DAY).statement

    assert mismatches(statement) == {
        "NOSUCHORDER": Mismatch.UNKNOWN_ORDER,
        unpaid.out_trade_no: Mismatch.NOT_PAID_HERE,
        other_amount.out_trade_no: Mismatch.AMOUNT,
        other_tx.out_trade_no: Mismatch.NOT_PAID_HERE,
    }
    amount = statement.lines.get(mismatch=Mismatch.AMOUNT)
    assert amount.mismatch_detail == "WeChat 4400 fen, recorded here 4500 fen"
    assert statement.status == Statement.Status.MISMATCHED
    assert statement.mismatch_count == 4


def test_refund_mismatches_and_a_refund_unknown_here(db, products, wxbill):
    order = paid_on(products, 6)
    short = refund_of(order, 1000)
    failed = Refund.objects.create(
        order=order, out_refund_no="RFAILED", refund_fee=500, status=Refund.Status.FAILED
    )
    wxbill.body = trade_bill(
        pay_row(order),
        bill_refund(order.out_trade_no, order.transaction_id, short.out_refund_no, 1500),
        bill_refund(order.out_trade_no, order.transaction_id, "RFAILED", 500),
        bill_refund(order.out_trade_no, order.transaction_id, "RPLATFORM", 200),
    )

    statement = statement_import(bill_date=DAY).statement

    found = dict(statement.lines.exclude(mismatch="").values_list("out_refund_no", "mismatch"))
    assert found == {
        short.out_refund_no: Mismatch.REFUND_AMOUNT,
        failed.out_refund_no: Mismatch.REFUND_STATE,
        "RPLATFORM": Mismatch.REFUND_UNKNOWN,
    }
    assert statement.lines.get(out_refund_no="RPLATFORM").order_id == order.pk


def test_the_first_rule_that_applies_decides_each_line(db, products, wxbill):
    """Every kind in one bill, and lines that break two rules at once: the earlier rule
    wins, on SQLite (one UPDATE per kind) and PostgreSQL (one INSERT … SELECT) alike."""
    good = paid_on(products, 30)
    two_faults = paid_on(products, 31)  # WeChat: another transaction and another amount
    other_amount = paid_on(products, 32)
    unpaid = make_order(make_shopper(), products, n=33)
    matching = refund_of(good, 1000)
    failed = Refund.objects.create(
        order=good, out_refund_no="RFAILED", refund_fee=500, status=Refund.Status.FAILED
    )
    closed = Refund.objects.create(
        order=good, out_refund_no="RCLOSED", refund_fee=300, status=Refund.Status.CLOSED
    )
    revoked, fen, _ = bill_payment("NOSUCHORDER2", "4200000444", 100)

    def refund_row(number, fee, status="SUCCESS"):
        return bill_refund(good.out_trade_no, good.transaction_id, number, fee, status=status)

    wxbill.body = trade_bill(
        pay_row(good),  # 1
        bill_payment(two_faults.out_trade_no, "4200000555", 100),  # 2
        bill_payment(unpaid.out_trade_no, "4200000666", 1),  # 3
        bill_payment("NOSUCHORDER", "4200000777", 100),  # 4
        "`broken",  # 5
        refund_row(matching.out_refund_no, 1000),  # 6
        refund_row(failed.out_refund_no, 400),  # 7: amount and state differ
        refund_row(closed.out_refund_no, 300),  # 8
        refund_row(closed.out_refund_no, 300, status="PROCESSING"),  # 9
        refund_row("RNOSUCH", 100),  # 10
        pay_row(other_amount, fen=4400),  # 11
        (revoked.replace("`SUCCESS,", "`REVOKED,"), fen, 0),  # 12: neither kind of row
    )

    statement = statement_import(bill_date=DAY).statement

    found = {
        line.line_no: (line.mismatch, line.mismatch_detail, line.order_id, line.refund_id)
        for line in statement.lines.all()
    }
    unreadable = found.pop(5)
    assert unreadable[0] == Mismatch.UNREADABLE and unreadable[2:] == (None, None)
    assert found == {
        1: ("", "", good.pk, None),
        2: (Mismatch.NOT_PAID_HERE, "the order is paid here with another WeChat transaction",
            two_faults.pk, None),
        3: (Mismatch.NOT_PAID_HERE, "WeChat took the money; no payment is recorded here "
            "(a lost notify reconcile did not catch)", unpaid.pk, None),
        4: (Mismatch.UNKNOWN_ORDER, "no order with this number here", None, None),
        6: ("", "", good.pk, matching.pk),
        7: (Mismatch.REFUND_AMOUNT, "WeChat 400 fen, recorded here 500 fen", good.pk, failed.pk),
        8: (Mismatch.REFUND_STATE,
            "WeChat's bill says refunded; here the refund failed or was closed",
            good.pk, closed.pk),
        9: ("", "", good.pk, closed.pk),
        10: (Mismatch.REFUND_UNKNOWN,
             "no refund with this number here (made in the merchant platform?)", good.pk, None),
        11: (Mismatch.AMOUNT, "WeChat 4400 fen, recorded here 4500 fen", other_amount.pk, None),
        12: ("", "", None, None),
    }
    assert statement.mismatch_count == 8 and statement.status == Statement.Status.MISMATCHED


def test_paid_here_but_not_at_wechat_gets_a_line_of_its_own(db, products, wxbill):
    in_bill = paid_on(products, 7)
    missing = paid_on(products, 8, fee=1200)
    # Paid the day before or after (Beijing): another bill's business.
    paid_on(products, 9, at=datetime(2026, 11, 26, 23, 59, 59, tzinfo=shop_timezone()))
    paid_on(products, 10, at=datetime(2026, 11, 28, 0, 0, 0, tzinfo=shop_timezone()))
    make_order(make_shopper(), products, n=11)  # unpaid: nothing to miss
    wxbill.body = trade_bill(pay_row(in_bill))

    statement = statement_import(bill_date=DAY).statement

    line = statement.lines.get(mismatch=Mismatch.NOT_PAID_AT_WECHAT)
    assert (line.line_no, line.order_id, line.out_trade_no) == (2, missing.pk, missing.out_trade_no)
    assert line.transaction_id == missing.transaction_id and line.trade_time == missing.paid_at
    assert "1200 fen" in line.mismatch_detail
    assert statement.mismatch_count == 1 and statement.status == Statement.Status.MISMATCHED
    # The bill's own summary is still the bill's.
    assert statement.trade_count == 1


def test_the_same_file_twice_changes_nothing(db, products, wxbill):
    order = paid_on(products, 12)
    wxbill.body = trade_bill(pay_row(order))
    first = statement_import(bill_date=DAY)

    again = statement_import(bill_date=DAY)

    assert (again.outcome, again.created) == (StatementOutcome.UNCHANGED, False)
    assert again.statement.pk == first.statement.pk
    assert Statement.objects.count() == 1 and StatementLine.objects.count() == 1


def test_a_corrected_file_supersedes_the_earlier_one(db, products, wxbill):
    order = paid_on(products, 13)
    wxbill.body = trade_bill(pay_row(order, fen=1))
    old = statement_import(bill_date=DAY).statement
    wxbill.body = trade_bill(pay_row(order))

    result = statement_import(bill_date=DAY)

    assert (result.outcome, result.created) == (StatementOutcome.REPLACED, True)
    old.refresh_from_db()
    assert old.status == Statement.Status.SUPERSEDED
    assert old.superseded_by == result.statement
    assert result.statement.status == Statement.Status.MATCHED
    # Another day is left alone.
    wxbill.body = NO_BILL
    assert statement_import(bill_date=DAY - timedelta(days=1)).outcome == StatementOutcome.EMPTY
    assert Statement.objects.filter(status=Statement.Status.SUPERSEDED).count() == 1


def test_no_bill_is_an_empty_day_recorded_once(db, wxbill):
    wxbill.body = NO_BILL

    first = statement_import(bill_date=DAY)
    second = statement_import(bill_date=DAY)

    assert (first.outcome, first.created) == (StatementOutcome.EMPTY, True)
    assert (second.outcome, second.created) == (StatementOutcome.EMPTY, False)
    assert Statement.objects.get().status == Statement.Status.EMPTY


def test_an_unreadable_line_is_kept_and_flagged_the_rest_imported(db, products, wxbill):
    first, second = paid_on(products, 14), paid_on(products, 15)
    wxbill.body = trade_bill(pay_row(first), "`broken,`line", pay_row(second))

    statement = statement_import(bill_date=DAY).statement

    lines = list(statement.lines.order_by("line_no"))
    assert [line.order_id for line in lines] == [first.pk, None, second.pk]
    assert [line.mismatch for line in lines] == ["", StatementLine.Mismatch.UNREADABLE, ""]
    assert lines[1].mismatch_detail.startswith("unreadable line")
    assert "`broken,`line" in lines[1].mismatch_detail
    assert statement.mismatch_count == 1


def test_wechat_unavailable_fails_and_writes_nothing(db, wxbill):
    wxbill.status = 500

    with pytest.raises(WxPayError):
        statement_import(bill_date=DAY)

    assert not Statement.objects.exists()


def test_a_truncated_bill_fails_and_writes_nothing(db, products, wxbill):
    order = paid_on(products, 16)
    wxbill.body = trade_bill(pay_row(order)).rsplit(b"\r\n", 3)[0]

    with pytest.raises(ValueError):
        statement_import(bill_date=DAY)

    assert not Statement.objects.exists() and not StatementLine.objects.exists()


def _import_queries(products, wxbill, n: int, day: date) -> list[str]:
    rows = [bill_payment(f"X{day:%d}{i:08d}", f"42{i:010d}", 100) for i in range(n)]
    wxbill.body = trade_bill(pay_row(paid_on(products, 100 + day.day)), *rows)
    with CaptureQueriesContext(connection) as captured:
        statement = statement_import(bill_date=day).statement
    assert statement.lines.count() == n + 1
    return [q["sql"] for q in captured.captured_queries]


def test_queries_per_import_do_not_grow_with_the_lines(db, products, wxbill):
    def is_line_insert(sql: str) -> bool:
        return sql.startswith('INSERT INTO "payments_statementline"')

    few = _import_queries(products, wxbill, 10, DAY)
    many = _import_queries(products, wxbill, 1000, DAY + timedelta(days=1))

    others = [sql for sql in many if not is_line_insert(sql)]
    assert len(others) == len([sql for sql in few if not is_line_insert(sql)])
    # Lines go in batches: one INSERT per batch (SQLite caps a query at 999 parameters).
    inserts = sum(map(is_line_insert, many))
    assert inserts <= (1 if connection.vendor == "postgresql" else 1001 // 50)


@pytest.mark.postgres
def test_matching_on_postgresql_is_the_same(db, products, wxbill):
    good, unpaid, missing = (
        paid_on(products, 20),
        make_order(make_shopper(), products, n=21),
        paid_on(products, 22),
    )
    wxbill.body = trade_bill(
        pay_row(good),
        bill_payment(unpaid.out_trade_no, "4200000777", 4500),
        bill_payment("NOSUCHORDER", "4200000999", 100),
    )

    statement = statement_import(bill_date=DAY).statement

    assert mismatches(statement) == {
        unpaid.out_trade_no: Mismatch.NOT_PAID_HERE,
        "NOSUCHORDER": Mismatch.UNKNOWN_ORDER,
        missing.out_trade_no: Mismatch.NOT_PAID_AT_WECHAT,
    }


def test_the_daily_task_imports_yesterday_and_is_idempotent(db, wxbill, settings):
    now = datetime(2026, 11, 28, 10, 30, tzinfo=shop_timezone())
    wxbill.body = trade_bill(bill_payment("NOSUCHORDER", "4200000999", 100))
    with mock.patch("django.utils.timezone.now", return_value=now):
        assert import_yesterday_statement() == StatementOutcome.IMPORTED
        assert import_yesterday_statement() == StatementOutcome.UNCHANGED
    assert Statement.objects.get().bill_date == DAY
    entry = settings.CELERY_BEAT_SCHEDULE["payments-import-statement"]
    assert entry["task"] == import_yesterday_statement.name
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({10}, {30})


def test_a_bill_still_being_made_is_asked_for_again_later_never_recorded(db, wxbill, caplog):
    wxbill.body = bill_failure("Bill Creating")
    # The first run at 10:30 on the 28th; the retries after midnight still ask for the 27th.
    times = iter([datetime(2026, 11, 28, 10, 30, tzinfo=shop_timezone())])
    after_midnight = datetime(2026, 11, 29, 0, 30, tzinfo=shop_timezone())
    with mock.patch("django.utils.timezone.now", side_effect=lambda: next(times, after_midnight)):
        # Eagerly, retries run at once instead of half an hour apart.
        result = import_yesterday_statement.apply()

    assert [r["bill_date"] for r in wxbill.requests] == ["20261127"] * (BILL_RETRIES + 1)
    assert isinstance(result.result, BillNotReady)  # given up after the last retry
    assert not Statement.objects.exists()  # neither empty nor anything else
    assert f"asking again in 1800 s (retry 1 of {BILL_RETRIES})" in caplog.text


def test_a_refusal_that_retrying_cannot_change_fails_the_run_at_once(db, wxbill):
    wxbill.body = bill_failure("当前商户号账单API权限已经关闭", "20007")

    result = import_yesterday_statement.apply()

    assert isinstance(result.result, BillPermissionDenied)
    assert len(wxbill.requests) == 1 and not Statement.objects.exists()
