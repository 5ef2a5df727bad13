"""WeChat's daily trade bill through API v3, with real processes (docs/INVARIANTS.md §10): a
purchase and a partial refund on a v3 server and the simulator, then ``manage.py
import_statement`` as its own process on the same database, which asks ``tradebill`` for the
day's bill, downloads it and checks its SHA1 (docs/protocol/wechat-pay-v3.md §9).
"""

import hashlib
import subprocess
import sys
import time
from datetime import date

import pytest

from demo.miniprogram import MiniProgram
from demo.stack import ROOT, ShopServer
from orders.models import Order, Product
from payments.models import Refund, Statement, StatementLine

pytestmark = pytest.mark.django_db(transaction=True)


def import_statement(server: ShopServer, day: date, media, **env) -> subprocess.CompletedProcess:
    """``manage.py import_statement --date <day>`` in ``server``'s environment (and ``env``),
    the bill files kept under ``media``, as cron runs it."""
    return subprocess.run(
        [sys.executable, "manage.py", "import_statement", "--date", str(day)],
        cwd=ROOT,
        env={**server.env(), "MEDIA_ROOT": str(media), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def requests_seen(sim, path: str) -> int:
    return sim.control("GET", "/sim/stats").json()["requests"].get(path, 0)


def bought_and_partly_refunded(
    phone: MiniProgram, tea: Product, sim, admin
) -> tuple[Order, Refund, date]:
    """A v3 order of 45.00 paid, 15.00 of it refunded from admin through v3, and the Beijing
    day WeChat bills it on."""
    placed = phone.order([{"product_id": tea.pk, "quantity": 1}])
    phone.request_payment(placed["payment"])
    assert phone.wait_for_status(placed["out_trade_no"])["status"] == "paid"
    order = Order.objects.get(out_trade_no=placed["out_trade_no"])
    assert order.pay_version == "v3"
    assert "accepted by WeChat" in admin.refund(order, amount="15.00", reason="dented")
    deadline = time.monotonic() + 10
    while (refund := Refund.objects.get(order=order)).status in ("pending", "processing"):
        assert time.monotonic() < deadline, f"refund still {refund.status}"
        time.sleep(0.1)
    assert refund.status == "success"
    # The simulator's own Beijing day of the payment: never a day off around midnight.
    time_end = sim.control("GET", f"/sim/trades/{order.out_trade_no}").json()["time_end"]
    return order, refund, date(int(time_end[:4]), int(time_end[4:6]), int(time_end[6:8]))


def test_a_v3_days_bill_is_downloaded_checked_and_matched(
    v3_shop, v3_phone, tea, fresh_sim, shop_admin, tmp_path
):
    order, refund, day = bought_and_partly_refunded(v3_phone, tea, fresh_sim, shop_admin(v3_shop))

    run = import_statement(v3_shop, day, tmp_path / "media")

    assert run.returncode == 0, run.stderr
    assert f"{day} v3: Imported" in run.stdout
    statement = Statement.objects.get()
    assert statement.api_version == Statement.ApiVersion.V3
    assert statement.status == Statement.Status.MATCHED, statement.detail
    assert (statement.trade_count, statement.paid_total, statement.refund_total) == (2, 4500, 1500)
    lines = list(statement.lines.order_by("line_no"))
    assert [(line.order_id, line.refund_id, line.mismatch) for line in lines] == [
        (order.pk, None, ""),
        (order.pk, refund.pk, ""),
    ]
    assert "0 open mismatches" in run.stdout
    # The raw file, uncompressed, kept in the command's MEDIA_ROOT: the one WeChat's SHA1
    # vouched for.
    kept = (tmp_path / "media" / statement.file.name).read_bytes()
    assert kept.startswith(b"\xef\xbb\xbf") and order.out_trade_no.encode() in kept
    assert statement.wechat_hash == hashlib.sha1(kept).hexdigest()
    assert statement.file_sha256 == hashlib.sha256(kept).hexdigest()
    assert requests_seen(fresh_sim, "/v3/bill/tradebill") == 1
    assert requests_seen(fresh_sim, "/v3/billdownload/file") == 1
    assert requests_seen(fresh_sim, "/pay/downloadbill") == 0

    # The shop went back to v2, v3's settings kept: the day's orders were v3, so is its bill.
    again = import_statement(v3_shop, day, tmp_path / "media", WECHAT_PAY_VERSION="v2")

    assert again.returncode == 0, again.stderr
    assert "Already imported: the same file" in again.stdout
    assert (Statement.objects.count(), StatementLine.objects.count()) == (1, 2)
    assert requests_seen(fresh_sim, "/v3/bill/tradebill") == 2
    assert requests_seen(fresh_sim, "/pay/downloadbill") == 0
