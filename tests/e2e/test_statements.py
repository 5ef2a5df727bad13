"""WeChat's daily trade bill through real processes (docs/INVARIANTS.md §10): a purchase and a
partial refund on gunicorn and the simulator, then ``manage.py import_statement`` run as its
own process on the same database, as cron runs it, against the simulator's bill of that day.
"""

import time
from datetime import date, timedelta

import pytest

from orders.models import Order
from payments.models import Refund, Statement, StatementLine
from payments.refunds import refund_create, refund_submit

pytestmark = pytest.mark.django_db(transaction=True)


def bought_and_partly_refunded(phone, tea, sim) -> tuple[Order, Refund, date]:
    """A paid order of 45.00 with 15.00 refunded, and the Beijing day WeChat bills it on."""
    placed = phone.order([{"product_id": tea.pk, "quantity": 1}])
    phone.request_payment(placed["payment"])
    phone.wait_for_status(placed["out_trade_no"])
    order = Order.objects.get(out_trade_no=placed["out_trade_no"])
    refund = refund_submit(
        refund=refund_create(order=order, refund_fee=1500, reason="damaged").refund
    )
    deadline = time.monotonic() + 10
    while (refund := Refund.objects.get(pk=refund.pk)).status in ("pending", "processing"):
        assert time.monotonic() < deadline, f"refund still {refund.status}"
        time.sleep(0.1)
    assert refund.status == "success"
    # The simulator's own Beijing day of the payment: never a day off around midnight.
    time_end = sim.control("GET", f"/sim/trades/{order.out_trade_no}").json()["time_end"]
    return order, refund, date(int(time_end[:4]), int(time_end[4:6]), int(time_end[6:8]))


def test_a_days_bill_is_imported_matched_kept_and_replaced_when_corrected(
    phone, tea, fresh_sim, refund_settings, import_statement, tmp_path
):
    order, refund, day = bought_and_partly_refunded(phone, tea, fresh_sim)

    run = import_statement(day)

    assert run.returncode == 0, run.stderr
    statement = Statement.objects.get()
    assert statement.status == Statement.Status.MATCHED, statement.detail
    assert (statement.trade_count, statement.paid_total, statement.refund_total) == (2, 4500, 1500)
    lines = list(statement.lines.order_by("line_no"))
    assert [(line.order_id, line.refund_id, line.mismatch) for line in lines] == [
        (order.pk, None, ""),
        (order.pk, refund.pk, ""),
    ]
    assert "0 open mismatches" in run.stdout
    # The raw file as WeChat sent it (BOM and all), in the command's MEDIA_ROOT.
    kept = (tmp_path / "media" / statement.file.name).read_bytes()
    assert kept.startswith(b"\xef\xbb\xbf")
    assert order.out_trade_no.encode() in kept

    again = import_statement(day)

    assert again.returncode == 0, again.stderr
    assert "Already imported: the same file" in again.stdout
    assert (Statement.objects.count(), StatementLine.objects.count()) == (1, 2)

    fresh_sim.control(
        "POST", "/sim/bills/faults", {"date": f"{day:%Y%m%d}", "amount": {order.out_trade_no: 4400}}
    )
    corrected = import_statement(day)

    assert corrected.returncode == 0, corrected.stderr
    assert "replaces an earlier bill" in corrected.stdout
    old, new = Statement.objects.order_by("pk")
    assert (old.status, old.superseded_by_id) == (Statement.Status.SUPERSEDED, new.pk)
    assert new.status == Statement.Status.MISMATCHED
    flagged = new.lines.exclude(mismatch="").get()
    assert (flagged.order_id, flagged.mismatch, flagged.total_fee) == (
        order.pk,
        StatementLine.Mismatch.AMOUNT,
        4400,
    )
    assert flagged.mismatch_detail == "WeChat 4400 fen, recorded here 4500 fen"
    assert "1 open mismatches" in corrected.stdout


def test_a_day_without_trades_is_recorded_once_as_empty(fresh_sim, import_statement):
    quiet_day = date.today() - timedelta(days=3)

    run = import_statement(quiet_day)
    again = import_statement(quiet_day)

    assert run.returncode == 0, run.stderr
    assert "No bill for this day" in run.stdout
    assert again.returncode == 0, again.stderr
    statement = Statement.objects.get()
    assert (statement.bill_date, statement.status) == (quiet_day, Statement.Status.EMPTY)
    assert not statement.lines.exists()


def test_a_bad_date_exits_non_zero_and_records_nothing(import_statement):
    run = import_statement("2026-13-40")

    assert run.returncode != 0
    assert "is not a date" in run.stderr
    assert not Statement.objects.exists()


def test_the_days_disagreements_are_flagged_and_nothing_else(
    phone, tea, fresh_sim, import_statement
):
    """The issue's "done when": a payment whose notify was lost, an amount WeChat's bill
    states otherwise, a refund made outside the shop, next to one plain payment."""

    def paid(*, notify_lost: bool = False) -> Order:
        placed = phone.order([{"product_id": tea.pk, "quantity": 1}])
        phone.request_payment(placed["payment"])
        if notify_lost:
            # The simulator took the money; the notify never came, and no reconcile ran.
            assert phone.wait_for_status(placed["out_trade_no"], timeout=1)["status"] == "unpaid"
        else:
            assert phone.wait_for_status(placed["out_trade_no"])["status"] == "paid"
        return Order.objects.get(out_trade_no=placed["out_trade_no"])

    plain = paid()
    altered = paid()
    refunded_elsewhere = paid()
    fresh_sim.control("POST", "/sim/faults", {"notify": "drop", "count": 1})
    lost = paid(notify_lost=True)
    days = {
        fresh_sim.control("GET", f"/sim/trades/{order.out_trade_no}").json()["time_end"][:8]
        for order in (plain, altered, refunded_elsewhere, lost)
    }
    assert len(days) == 1, days
    (bill_day,) = days
    day = date(int(bill_day[:4]), int(bill_day[4:6]), int(bill_day[6:8]))
    fresh_sim.control(
        "POST",
        "/sim/bills/faults",
        {
            "date": bill_day,
            "amount": {altered.out_trade_no: altered.total_fee + 100},
            "extra_refund": {
                "out_trade_no": refunded_elsewhere.out_trade_no,
                "refund_fee": 1000,
                "out_refund_no": "MCHPLATFORM0001",
            },
        },
    )

    run = import_statement(day)

    assert run.returncode == 0, run.stderr
    statement = Statement.objects.get()
    assert statement.status == Statement.Status.MISMATCHED
    assert statement.mismatch_count == 3
    flagged = sorted(
        (line.order_id, line.out_refund_no, line.mismatch)
        for line in statement.lines.exclude(mismatch="")
    )
    assert flagged == sorted(
        [
            (lost.pk, "", StatementLine.Mismatch.NOT_PAID_HERE),
            (altered.pk, "", StatementLine.Mismatch.AMOUNT),
            (refunded_elsewhere.pk, "MCHPLATFORM0001", StatementLine.Mismatch.REFUND_UNKNOWN),
        ]
    )
    # The two other lines: the payments of the plain order and of the one refunded elsewhere.
    matched = statement.lines.filter(mismatch="").values_list("order_id", flat=True)
    assert sorted(matched) == sorted([plain.pk, refunded_elsewhere.pk])
    assert "3 open mismatches" in run.stdout
