"""CSV export of orders in admin: a date range, or the selected orders (orders/admin/export.py)."""

import csv
import io
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from orders.models import OrderItem
from tests.factories import make_order
from wechat.pay_v2 import BEIJING

pytestmark = pytest.mark.django_db

EXPORT = "/admin/orders/order/export/"


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=BEIJING)


def rows(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")  # for Excel
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_range_export_streams_the_orders_of_those_beijing_days(boss_client, november):
    response = boss_client.get(EXPORT, {"from": "2026-11-01", "to": "2026-11-30"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="orders-2026-11-01-to-2026-11-30.csv"'
    )
    lines = rows(response)
    assert [r["out_trade_no"] for r in lines] == [
        november[k].out_trade_no for k in ("first", "mid", "last")
    ]
    assert lines[1] == {
        "out_trade_no": november["mid"].out_trade_no,
        "status": "paid",
        "total_yuan": "1234.56",
        "openid": november["mid"].openid,
        "created_at": "2026-11-15T12:00:00+08:00",
        "paid_at": "2026-11-15T13:00:00+08:00",
        "transaction_id": "4200000483202001042069747825",
        "items": "Tea x 1; Tea cup x 3",
        "needs_attention": "true",
        # Fulfilment and address columns: tests/orders/test_admin_shipping.py.
        "fulfilment_status": "unfulfilled",
        "shipped_at": "",
        "recipient": "",
        "phone": "",
        "address": "",
        "postal_code": "",
        "remark": "",
    }
    assert (lines[0]["total_yuan"], lines[0]["paid_at"], lines[0]["transaction_id"]) == (
        "0.05",
        "",
        "",
    )
    assert lines[0]["created_at"] == "2026-11-01T00:10:00+08:00"


def test_one_day_range(boss_client, november):
    lines = rows(boss_client.get(EXPORT, {"from": "2026-11-15", "to": "2026-11-15"}))

    assert [r["out_trade_no"] for r in lines] == [november["mid"].out_trade_no]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "2026-11-31", "to": "2026-12-01"}, "Enter a valid date"),
        ({"from": "yesterday", "to": "2026-12-01"}, "Enter a valid date"),
        ({"from": "2026-11-01"}, "This field is required"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "The first day comes after the last"),
        ({"from": "2026-11-01'; drop table x", "to": "2026-11-02"}, "Enter a valid date"),
    ],
)
def test_bad_dates_are_a_400_page_with_the_reason(boss_client, query, message):
    response = boss_client.get(EXPORT, query)

    assert response.status_code == 400
    text = response.content.decode()
    assert message in text
    assert 'name="from"' in text  # the form again, to correct it


def test_without_dates_the_page_offers_this_month(boss_client):
    response = boss_client.get(EXPORT)

    assert response.status_code == 200
    text = response.content.decode()
    assert 'type="date" name="from"' in text
    assert "Download CSV" in text


def test_the_order_list_links_to_the_export(boss_client):
    assert f'href="{EXPORT}"' in boss_client.get("/admin/orders/order/").content.decode()


def test_export_needs_view_permission_on_orders(november):
    clerk = User.objects.create_user("clerk", password="a-long-test-password", is_staff=True)
    client = Client()
    client.force_login(clerk)
    query = {"from": "2026-11-01", "to": "2026-11-30"}

    assert client.get(EXPORT, query).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_order"))
    assert client.get(EXPORT, query).status_code == 200
    assert Client().get(EXPORT, query).status_code == 302  # to the login page


def test_export_selected_action(boss_client, november):
    chosen = [november["last"], november["first"]]

    response = boss_client.post(
        "/admin/orders/order/",
        {"action": "export_selected_action", "_selected_action": [o.pk for o in chosen]},
    )

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="orders-selected-')
    assert [r["out_trade_no"] for r in rows(response)] == [
        november["first"].out_trade_no,
        november["last"].out_trade_no,
    ]


def test_a_cell_that_looks_like_a_formula_is_defused(boss_client, shopper, products):
    order = make_order(shopper, products, created_at=at(2))
    OrderItem.objects.filter(order=order).update(product_name='=HYPERLINK("http://x","y")')

    [line] = rows(boss_client.get(EXPORT, {"from": "2026-11-02", "to": "2026-11-02"}))

    assert line["items"].startswith("'=HYPERLINK")


def test_queries_do_not_grow_with_the_orders(
    boss_client, shopper, products, django_assert_max_num_queries
):
    for n in range(60):
        make_order(shopper, products, n=n, created_at=at(3) + timedelta(minutes=n))
    response = boss_client.get(EXPORT, {"from": "2026-11-03", "to": "2026-11-03"})

    with django_assert_max_num_queries(2):  # the orders, their items
        assert len(rows(response)) == 60
