"""The dashboard on the admin index: revenue by Beijing day, attention, latest notifies,
the 14-day chart, in a bounded number of queries (shopsite/dashboard.py)."""

import re
from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from orders.models import Order
from payments.models import PaymentNotification
from shopsite.dashboard import CHART_DAYS, dashboard_for
from tests.factories import make_order
from wechat.pay_v2 import BEIJING

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 27)


def sold(shopper, products, n: int, paid_at: datetime, total_fee: int = 4500, **fields):
    return make_order(
        shopper,
        products,
        n=n,
        status=fields.pop("status", Order.Status.PAID),
        transaction_id=f"42{n:030d}",
        paid_at=paid_at,
        total_fee=total_fee,
        **fields,
    )


def beijing(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BEIJING)


def test_revenue_counts_orders_paid_in_each_beijing_day(boss, shopper, products):
    sold(shopper, products, 1, beijing(TODAY, 0, 5), 1000)  # 16:05 UTC the day before
    sold(shopper, products, 2, beijing(TODAY, 23, 59), 234, status=Order.Status.REFUNDED)
    sold(shopper, products, 3, beijing(TODAY - timedelta(days=1), 23, 59), 5000)
    sold(shopper, products, 4, beijing(TODAY - timedelta(days=6), 12), 700)
    sold(shopper, products, 5, beijing(TODAY - timedelta(days=7), 12), 90000)  # 8th day back
    sold(shopper, products, 6, beijing(TODAY, 9), 300, status=Order.Status.CLOSED)  # flagged
    make_order(shopper, products, n=7)  # unpaid

    board = dashboard_for(boss, today=TODAY)

    assert (board.today.revenue, board.today.orders) == ("¥12.34", 2)
    assert (board.week.revenue, board.week.orders) == ("¥69.34", 4)
    bars = board.chart.bars
    assert len(bars) == CHART_DAYS
    assert [bar.label for bar in bars[-2:]] == ["11-26", "11-27"]
    assert bars[-1].today and not bars[-2].today
    assert bars[-8].tooltip.endswith("¥900.00, 1 paid order")
    assert bars[-1].tooltip.endswith("¥12.34, 2 paid orders")
    assert board.chart.peak == "¥900.00"


def test_chart_heights_scale_to_the_best_day_and_small_days_stay_visible(boss, shopper, products):
    sold(shopper, products, 1, beijing(TODAY, 10), 100_000)
    sold(shopper, products, 2, beijing(TODAY - timedelta(days=1), 10), 1)

    bars = dashboard_for(boss, today=TODAY).chart.bars

    tallest = bars[-1]
    assert tallest.y + tallest.height == bars[0].y  # all bars stand on the baseline
    assert tallest.height > 100
    assert bars[-2].height == 2  # ¥0.01 is still a visible sliver
    assert bars[0].height == 0
    assert all(isinstance(v, int) for bar in bars for v in (bar.x, bar.y, bar.width))


def test_nothing_sold_is_zero_everywhere(boss, db):
    board = dashboard_for(boss, today=TODAY)

    assert (board.today.revenue, board.week.revenue, board.attention_count) == ("¥0.00",) * 2 + (0,)
    assert {bar.height for bar in board.chart.bars} == {0}


def test_index_shows_the_dashboard_with_links(boss_client, shopper, products, paid):
    make_order(shopper, products, n=1, needs_attention=True)
    Order.objects.filter(pk=paid.pk).update(paid_at=timezone.now())
    notification = PaymentNotification.objects.get()

    text = boss_client.get("/admin/").content.decode()

    dashboard = text[text.index('id="shop-dashboard"') : text.index('id="content-main"')]
    assert "¥45.00" in dashboard
    assert "/admin/orders/order/?needs_attention__exact=1" in dashboard
    assert f"/admin/payments/paymentnotification/{notification.pk}/change/" in dashboard
    assert paid.out_trade_no in dashboard
    assert "Order marked paid" in dashboard
    assert dashboard.count('<rect class="bar') == CHART_DAYS
    assert re.search(r"<title>[^<]*: ¥45\.00, 1 paid order</title>", dashboard)
    assert re.search(
        r'shop-tile-value">1</span>\s*<span class="shop-tile-label">orders to', dashboard
    )
    # Drawn on the server: no script, nothing fetched from elsewhere.
    assert "<script" not in dashboard
    assert "http" not in dashboard.replace("http://www.w3.org/2000/svg", "")


def test_attention_link_lists_exactly_the_flagged_orders(boss_client, shopper, products):
    flagged = make_order(shopper, products, n=1, needs_attention=True)
    fine = make_order(shopper, products, n=2)

    text = boss_client.get("/admin/orders/order/?needs_attention__exact=1").content.decode()

    assert flagged.out_trade_no in text
    assert fine.out_trade_no not in text


def test_today_link_lists_the_orders_that_make_the_revenue(boss_client, shopper, products):
    today = timezone.now().astimezone(BEIJING).date()
    counted = sold(shopper, products, 1, beijing(today, 0, 1))
    earlier = sold(shopper, products, 2, beijing(today - timedelta(days=1), 23, 59))
    board = dashboard_for(User.objects.get(username="boss"))

    text = boss_client.get(board.today.url).content.decode()

    assert counted.out_trade_no in text
    assert earlier.out_trade_no not in text


def _index_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/").status_code == 200
    return len(queries)


def test_queries_do_not_grow_with_the_data(
    boss, boss_client, shopper, products, django_assert_max_num_queries
):
    sold(shopper, products, 0, timezone.now())
    PaymentNotification.objects.create(raw_body="<xml/>", out_trade_no="x")
    few = _index_queries(boss_client)
    for n in range(1, 40):
        sold(shopper, products, n, timezone.now() - timedelta(days=n % 14), needs_attention=True)
        PaymentNotification.objects.create(raw_body="<xml/>" * 1000, out_trade_no=f"o{n}")

    assert _index_queries(boss_client) == few
    # revenue by day, attention, notifications, latest statement
    with django_assert_max_num_queries(4):
        board = dashboard_for(boss)
    assert len(board.notifications) == 10


def test_staff_without_order_permission_sees_the_stock_index(products):
    clerk = User.objects.create_user("clerk", password="a-long-test-password", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_product"))
    client = Client()
    client.force_login(clerk)

    text = client.get("/admin/").content.decode()

    assert 'id="shop-dashboard"' not in text
    assert "Products" in text


def test_notifications_need_their_own_permission(products):
    clerk = User.objects.create_user("clerk", password="a-long-test-password", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_order"))

    board = dashboard_for(clerk, today=TODAY)

    assert board is not None
    assert board.notifications is None
