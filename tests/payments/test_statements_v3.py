"""WeChat's daily trade bill through API v3's ``tradebill`` (docs/INVARIANTS.md §10): which
API a day's bill is asked through, the SHA1 WeChat states, and a bill not ready yet.

A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.
"""

import hashlib
from datetime import date, datetime, timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from core.times import shop_timezone
from orders.models import Order, PayVersion
from payments.models import Refund, Statement, StatementLine
from payments.statements import StatementOutcome, statement_import
from payments.tasks import BILL_RETRIES, import_yesterday_statement
from tests.factories import bill_payment, bill_refund, make_order, make_shopper, trade_bill
from tests.wx_v3 import BILL_DOWNLOAD, TRADEBILL
from wechat.pay_v3 import BillIntegrityError, StatementCreating

DAY = date(2026, 11, 27)
V3_DAY = "2026-11-27"


def paid_on(products, n: int, *, version: str = PayVersion.V3, fee: int = 4500, at=None) -> Order:
    """An order placed with ``version`` and paid here on DAY (Beijing) for ``fee`` fen."""
    at = at or datetime(2026, 11, 27, 10, 30, 15, tzinfo=shop_timezone()) + timedelta(seconds=n)
    return make_order(
        make_shopper(),
        products,
        n=n,
        status=Order.Status.PAID,
        transaction_id=f"42000{n:023d}",
        paid_at=at,
        paid_fee=fee,
        total_fee=fee,
        pay_version=version,
    )


def pay_row(order: Order):
    return bill_payment(order.out_trade_no, order.transaction_id, order.total_fee)


def refund_row(refund: Refund):
    order = refund.order
    return bill_refund(
        order.out_trade_no, order.transaction_id, refund.out_refund_no, refund.refund_fee
    )


def refund_of(order: Order, fee: int, *, on: datetime | None = None) -> Refund:
    refund = Refund.objects.create(
        order=order,
        out_refund_no=f"R{order.out_trade_no}"[:32],
        refund_fee=fee,
        status=Refund.Status.SUCCESS,
    )
    if on is not None:  # created_at is set on insert: move it to the day wanted
        Refund.objects.filter(pk=refund.pk).update(created_at=on, succeeded_at=on)
    return refund


def test_a_v3_day_is_asked_through_tradebill_checked_and_matched(db, products, wxpay_v3):
    order = paid_on(products, 1)
    refund = refund_of(order, 1500)
    bill = trade_bill(pay_row(order), refund_row(refund))
    wxpay_v3.bills[V3_DAY] = bill

    result = statement_import(bill_date=DAY)

    assert (result.outcome, result.created) == (StatementOutcome.IMPORTED, True)
    statement = result.statement
    assert statement.api_version == Statement.ApiVersion.V3
    assert statement.status == Statement.Status.MATCHED, statement.detail
    assert (statement.trade_count, statement.paid_total, statement.refund_total) == (2, 4500, 1500)
    lines = list(statement.lines.order_by("line_no"))
    assert [(line.order_id, line.refund_id) for line in lines] == [
        (order.pk, None),
        (order.pk, refund.pk),
    ]
    # The file kept is the uncompressed bill, byte for byte, with both hashes.
    assert statement.file.read() == bill
    assert statement.file_sha256 == hashlib.sha256(bill).hexdigest()
    assert statement.wechat_hash == hashlib.sha1(bill).hexdigest()
    (asked,) = wxpay_v3.calls(TRADEBILL)
    assert asked["path"] == "/v3/bill/tradebill?bill_date=2026-11-27&bill_type=ALL&tar_type=GZIP"
    assert len(wxpay_v3.calls(BILL_DOWNLOAD)) == 1  # signed like any GET (§9.2)

    again = statement_import(bill_date=DAY)

    assert (again.outcome, again.statement.pk) == (StatementOutcome.UNCHANGED, statement.pk)
    assert StatementLine.objects.count() == 2


def test_a_bill_whose_sha1_differs_writes_nothing_and_the_next_run_imports_it(
    db, products, wxpay_v3, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    order = paid_on(products, 2)
    wxpay_v3.bills[V3_DAY] = trade_bill(pay_row(order))
    wxpay_v3.bill_hash = "0" * 40  # damaged on the way (§9.2)

    with pytest.raises(BillIntegrityError):
        statement_import(bill_date=DAY)

    assert not Statement.objects.exists() and not StatementLine.objects.exists()
    assert not (tmp_path / "media").exists()  # no file kept either

    wxpay_v3.bill_hash = None
    result = statement_import(bill_date=DAY)

    assert result.outcome == StatementOutcome.IMPORTED
    assert result.statement.status == Statement.Status.MATCHED
    assert len(wxpay_v3.calls(TRADEBILL)) == 2  # a fresh download_url each time (§9.1)


def test_no_statement_exist_is_an_empty_day_recorded_once(db, wxpay_v3):
    first = statement_import(bill_date=DAY)
    second = statement_import(bill_date=DAY)

    assert (first.outcome, first.created) == (StatementOutcome.EMPTY, True)
    assert (second.outcome, second.created) == (StatementOutcome.EMPTY, False)
    statement = Statement.objects.get()
    assert (statement.status, statement.api_version) == (Statement.Status.EMPTY, "v3")
    assert not wxpay_v3.calls(BILL_DOWNLOAD)


def test_a_bill_still_being_made_is_asked_for_again_by_the_task(db, wxpay_v3, caplog):
    wxpay_v3.errors[TRADEBILL] = (400, "STATEMENT_CREATING")
    # The first run at 10:30 on the 28th; the retries after midnight still ask for the 27th.
    times = iter([datetime(2026, 11, 28, 10, 30, tzinfo=shop_timezone())])
    after_midnight = datetime(2026, 11, 29, 0, 30, tzinfo=shop_timezone())
    with mock.patch("django.utils.timezone.now", side_effect=lambda: next(times, after_midnight)):
        # Eagerly, retries run at once instead of half an hour apart.
        result = import_yesterday_statement.apply()

    asked = [call["path"] for call in wxpay_v3.calls(TRADEBILL)]
    assert len(asked) == BILL_RETRIES + 1
    assert {path.split("&")[0] for path in asked} == {"/v3/bill/tradebill?bill_date=2026-11-27"}
    assert isinstance(result.result, StatementCreating)  # given up after the last retry
    assert not Statement.objects.exists()  # neither empty nor anything else
    assert f"asking again in 1800 s (retry 1 of {BILL_RETRIES})" in caplog.text


def test_the_task_imports_the_bill_once_it_is_ready(db, products, wxpay_v3):
    order = paid_on(products, 3)
    wxpay_v3.bills[V3_DAY] = trade_bill(pay_row(order))
    wxpay_v3.error_queue[TRADEBILL] = [(400, "STATEMENT_CREATING")] * 2

    result = import_yesterday_statement.apply(kwargs={"bill_date": V3_DAY})

    assert result.result == StatementOutcome.IMPORTED
    assert len(wxpay_v3.calls(TRADEBILL)) == 3
    assert Statement.objects.get().status == Statement.Status.MATCHED


def test_a_v2_day_while_the_shop_is_on_v2_still_goes_through_downloadbill(
    db, products, pay_v3, wxpay_v3, wxbill
):
    pay_v3.WECHAT_PAY_VERSION = "v2"  # v3's settings kept, as after a switch back
    order = paid_on(products, 4, version=PayVersion.V2)
    # v3 orders paid, and refunded, the days before and after: other bills' business.
    paid_on(products, 5, at=datetime(2026, 11, 26, 23, 59, 59, tzinfo=shop_timezone()))
    other = paid_on(products, 6, at=datetime(2026, 11, 25, 12, tzinfo=shop_timezone()))
    refund_of(other, 100, on=datetime(2026, 11, 28, 0, 0, tzinfo=shop_timezone()))
    wxbill.body = trade_bill(pay_row(order))

    statement = statement_import(bill_date=DAY).statement

    assert statement.api_version == Statement.ApiVersion.V2
    assert statement.status == Statement.Status.MATCHED, statement.detail
    assert statement.wechat_hash == ""
    assert wxbill.requests[0]["bill_date"] == "20261127"
    assert not wxpay_v3.requests_seen


@pytest.mark.parametrize("how", ["paid", "refunded"])
def test_a_v3_day_is_asked_through_v3_after_the_shop_went_back_to_v2(
    db, products, pay_v3, wxpay_v3, wxbill, how
):
    pay_v3.WECHAT_PAY_VERSION = "v2"
    beijing = shop_timezone()
    if how == "paid":
        v3_order = paid_on(products, 7)
        rows = [pay_row(v3_order)]
    else:  # paid the day before, refunded that day
        v3_order = paid_on(products, 7, at=datetime(2026, 11, 26, 9, tzinfo=beijing))
        refund = refund_of(v3_order, 1500, on=datetime(2026, 11, 27, 0, 0, tzinfo=beijing))
        rows = [refund_row(refund)]
    v2_order = paid_on(products, 8, version=PayVersion.V2)
    # The bill is the merchant's, whatever API each order used (§9.3).
    wxpay_v3.bills[V3_DAY] = trade_bill(*rows, pay_row(v2_order))

    statement = statement_import(bill_date=DAY).statement

    assert statement.api_version == Statement.ApiVersion.V3
    assert statement.status == Statement.Status.MATCHED, statement.detail
    assert statement.lines.count() == 2
    assert len(wxpay_v3.calls(TRADEBILL)) == 1 and not wxbill.requests


def test_a_day_imported_through_v2_then_v3_is_one_statement(db, products, pay_v3, wxpay_v3, wxbill):
    """The same file through the other API changes nothing; another file replaces it."""
    order = paid_on(products, 9, version=PayVersion.V2)
    wxbill.body = trade_bill(pay_row(order))
    pay_v3.WECHAT_PAY_VERSION = "v2"
    first = statement_import(bill_date=DAY).statement
    pay_v3.WECHAT_PAY_VERSION = "v3"
    wxpay_v3.bills[V3_DAY] = wxbill.body

    again = statement_import(bill_date=DAY)

    assert (again.outcome, again.statement.pk) == (StatementOutcome.UNCHANGED, first.pk)
    wxpay_v3.bills[V3_DAY] = trade_bill(bill_payment(order.out_trade_no, "4200000555", 4500))

    corrected = statement_import(bill_date=DAY)

    assert corrected.outcome == StatementOutcome.REPLACED
    assert corrected.statement.api_version == Statement.ApiVersion.V3
    first.refresh_from_db()
    assert (first.status, first.superseded_by_id) == (
        Statement.Status.SUPERSEDED,
        corrected.statement.pk,
    )


def test_the_command_fails_on_a_damaged_v3_bill_and_records_nothing(db, products, wxpay_v3):
    wxpay_v3.bills[V3_DAY] = trade_bill(pay_row(paid_on(products, 10)))
    wxpay_v3.bill_hash = "0" * 40

    with pytest.raises(CommandError, match="import of 2026-11-27 failed: bill SHA1"):
        call_command("import_statement", "--date", V3_DAY, stdout=StringIO(), stderr=StringIO())

    assert not Statement.objects.exists()


def test_the_command_prints_a_v3_summary(db, products, wxpay_v3):
    wxpay_v3.bills[V3_DAY] = trade_bill(pay_row(paid_on(products, 11)))
    out = StringIO()

    call_command("import_statement", "--date", V3_DAY, stdout=out, stderr=StringIO())

    assert "import_statement: 2026-11-27 v3: Imported" in out.getvalue()
    assert "0 open mismatches" in out.getvalue()


def test_a_damaged_download_is_asked_for_again_by_the_task(db, products, wxpay_v3):
    wxpay_v3.bills[V3_DAY] = trade_bill(pay_row(paid_on(products, 12)))
    wxpay_v3.bill_hash = "0" * 40

    result = import_yesterday_statement.apply(kwargs={"bill_date": V3_DAY})

    assert isinstance(result.result, BillIntegrityError)  # given up after the last retry
    assert len(wxpay_v3.calls(TRADEBILL)) == len(wxpay_v3.calls(BILL_DOWNLOAD)) == BILL_RETRIES + 1
    assert not Statement.objects.exists()
