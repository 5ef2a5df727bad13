"""``manage.py ship_orders <file.csv>`` (docs/INVARIANTS.md §7): one line per order, a
summary, non-zero exit when a line failed, and nothing shipped twice."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from orders.models import Order, Shipment
from tests.factories import make_order

pytestmark = pytest.mark.django_db

HEADER = "out_trade_no,logistics_type,express_company,tracking_no"


def run(path: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("ship_orders", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(path: Path) -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("ship_orders", str(path), stdout=out, stderr=StringIO())
    return out.getvalue(), str(failed.value)


def write(tmp_path: Path, *lines: str, encoding: str = "utf-8-sig") -> Path:
    path = tmp_path / "shipments.csv"
    path.write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")
    return path


def test_a_good_file_ships_every_order_and_a_second_run_ships_nothing(tmp_path, paid_orders):
    a, b = paid_orders(2)
    path = write(
        tmp_path, HEADER, f"{a.out_trade_no},express,SF,SF0001", f"{b.out_trade_no},virtual,,"
    )

    out, err = run(path)

    assert out.splitlines() == [
        f"{a.out_trade_no}: shipped",
        f"{b.out_trade_no}: shipped",
        "ship_orders: 2 lines: 2 shipped, 0 already shipped, 0 not shipped",
    ]
    assert err == ""
    assert Shipment.objects.count() == 2

    again, _ = run(path)

    assert again.splitlines() == [
        f"{a.out_trade_no}: already shipped",
        f"{b.out_trade_no}: already shipped",
        "ship_orders: 2 lines: 0 shipped, 2 already shipped, 0 not shipped",
    ]
    assert Shipment.objects.count() == 2


def test_a_bad_line_fails_the_run_after_the_others_shipped(
    tmp_path, shopper, products, paid_orders
):
    a, b = paid_orders(2)
    unpaid = make_order(shopper, products, n=50)
    path = write(
        tmp_path,
        HEADER,
        f"{a.out_trade_no},express,SF,SF0001",
        f"{a.out_trade_no},express,SF",
        "NO-SUCH-ORDER,virtual,,",
        f"{unpaid.out_trade_no},virtual,,",
        f"{b.out_trade_no},express,SF,",
        f"{b.out_trade_no},same_city,,",
    )

    out, error = run_failing(path)

    lines = out.splitlines()
    assert lines[0] == f"{a.out_trade_no}: shipped"
    assert lines[1] == f"{a.out_trade_no}: malformed line: expected 4 columns, found 3"
    assert lines[2] == "NO-SUCH-ORDER: unknown order"
    assert lines[3] == f"{unpaid.out_trade_no}: not paid: only paid orders ship"
    assert lines[4] == f"{b.out_trade_no}: Express delivery needs the tracking number."
    assert lines[5] == f"{b.out_trade_no}: shipped"
    assert lines[6] == "ship_orders: 6 lines: 2 shipped, 0 already shipped, 4 not shipped"
    assert "4 lines not shipped" in error
    assert Order.objects.filter(fulfilment_status="shipped").count() == 2


def test_a_line_shipped_otherwise_fails_the_run(tmp_path, paid_orders):
    (a,) = paid_orders(1)
    run(write(tmp_path, HEADER, f"{a.out_trade_no},express,SF,SF0001"))

    out, error = run_failing(write(tmp_path, HEADER, f"{a.out_trade_no},express,SF,SF0002"))
    assert "1 line not shipped" in error

    assert out.splitlines()[0] == (
        f"{a.out_trade_no}: already shipped as Express delivery SF SF0001; "
        "a shipment is never replaced"
    )
    assert Shipment.objects.get().tracking_no == "SF0001"


def test_a_file_without_the_header_ships_nothing(tmp_path, paid_orders):
    (a,) = paid_orders(1)
    path = write(tmp_path, f"{a.out_trade_no},virtual,,")

    out, error = run_failing(path)

    assert out == ""
    assert f"The first line must be the header {HEADER}." in error
    assert "Nothing was shipped." in error
    assert not Shipment.objects.exists()


def test_a_file_that_is_not_utf8_ships_nothing(tmp_path, paid_orders):
    (a,) = paid_orders(1)
    path = write(tmp_path, HEADER, f"{a.out_trade_no},virtual,,", "广州,virtual,,", encoding="gbk")

    _, error = run_failing(path)

    assert "UTF-8" in error
    assert not Shipment.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path, db):
    _, error = run_failing(tmp_path / "nope.csv")

    assert "nope.csv: cannot be read" in error


def test_lf_lines_and_blank_lines_are_fine(tmp_path, paid_orders):
    (a,) = paid_orders(1)
    path = tmp_path / "lf.csv"
    path.write_text(f"{HEADER}\n\n  {a.out_trade_no} ,  self_pickup ,, \n\n\n")

    out, _ = run(path)

    assert out.splitlines()[0] == f"{a.out_trade_no}: shipped"
