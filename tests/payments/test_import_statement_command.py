"""``python manage.py import_statement`` (docs/INVARIANTS.md §7, §10)."""

from datetime import date, datetime
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from core.times import shop_timezone
from payments.models import Statement
from tests.factories import NO_BILL, bill_payment, trade_bill


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_statement", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_imports_the_given_day_and_prints_a_summary(db, wxbill):
    wxbill.body = trade_bill(bill_payment("NOSUCHORDER", "4200000999", 1234))

    out, err = run("--date", "2026-11-27")

    assert wxbill.requests[0]["bill_date"] == "20261127"
    assert "downloading the bill of 2026-11-27" in err
    assert "1 lines" in out and "paid ¥12.34" in out
    assert "1 open mismatches" in out and "No such order here" in out
    assert Statement.objects.get().status == Statement.Status.MISMATCHED


def test_default_is_yesterday_in_beijing(db, wxbill):
    # 00:30 in Beijing is still the day before in UTC: yesterday is Beijing's.
    now = datetime(2026, 11, 28, 0, 30, tzinfo=shop_timezone())
    with mock.patch("django.utils.timezone.now", return_value=now):
        run()

    assert wxbill.requests[0]["bill_date"] == "20261127"
    assert Statement.objects.get().bill_date == date(2026, 11, 27)


def test_unchanged_and_empty_exit_zero(db, wxbill):
    wxbill.body = NO_BILL
    assert "No bill for this day" in run("--date", "2026-11-27")[0]
    assert "No bill for this day" in run("--date", "2026-11-27")[0]
    wxbill.body = trade_bill(bill_payment("NOSUCHORDER", "4200000999", 100))
    run("--date", "2026-11-26")
    assert "Already imported" in run("--date", "2026-11-26")[0]
    assert Statement.objects.count() == 2


def test_wechat_unavailable_exits_non_zero(db, wxbill):
    wxbill.status = 502

    with pytest.raises(CommandError, match="import of 2026-11-27 failed"):
        run("--date", "2026-11-27")

    assert not Statement.objects.exists()


def test_a_bad_date_is_refused(db, wxbill):
    with pytest.raises(CommandError, match="not a date"):
        run("--date", "27/11/2026")
    assert wxbill.requests == []
