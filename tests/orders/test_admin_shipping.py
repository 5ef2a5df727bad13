"""Shipping in admin (orders/admin/shipping.py): "Ship…" on an order's page, "Ship from
CSV…" on the list, what the order page, the list, the export and the dashboard show of
fulfilment, and who sees a shopper's phone number in full."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.privacy import mask_phone
from orders.fulfilment import order_ship
from orders.models import Order, Shipment
from shopsite.dashboard import dashboard_for
from tests.admin_forms import CHANGELIST, form_data, order_page, staff_with
from tests.factories import (
    NOTIFY_SUCCESS,
    get_ok,
    make_order,
    make_refund,
    notify_refund,
    reload,
)

pytestmark = pytest.mark.django_db

HEADER = "out_trade_no,logistics_type,express_company,tracking_no"
SHIP_CSV = "/admin/orders/order/ship-csv/"


def ship_page(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/ship/"


def ship_form(client, order: Order, **fields) -> dict[str, str]:
    """The "Ship…" page's form as a browser would submit it, with ``fields`` typed in."""
    return {**form_data(client, ship_page(order), "ship_form"), **fields}


def express(**fields) -> dict[str, str]:
    return {
        "logistics_type": "express",
        "express_company": "SF",
        "tracking_no": "SF1234567890",
        **fields,
    }


def upload(client, content: bytes, name: str = "shipments.csv"):
    return client.post(SHIP_CSV, {"file": SimpleUploadedFile(name, content, "text/csv")})


class TestOrderPage:
    def test_staff_who_ship_see_the_address_in_full_and_a_ship_button(
        self, boss_client, to_ship, address
    ):
        text = get_ok(boss_client, order_page(to_ship))

        assert address["tel_number"] in text
        assert address["detail_info"] in text
        assert "Please ring twice" in text
        assert "Not shipped" in text
        assert ship_page(to_ship) in text
        assert 'id="ship-link"' in text

    def test_staff_who_only_look_see_the_phone_masked_and_cannot_ship(self, to_ship, address):
        clerk = staff_with("view_order")

        text = get_ok(clerk, order_page(to_ship))

        assert address["tel_number"] not in text
        assert "138****5678" in text
        assert address["detail_info"] in text
        assert 'id="ship-link"' not in text
        assert clerk.get(ship_page(to_ship)).status_code == 403
        forged = {**express(), "shown_state": "paid:unfulfilled"}
        assert clerk.post(ship_page(to_ship), forged).status_code == 403
        assert not Shipment.objects.exists()
        assert 'id="ship-csv"' not in get_ok(clerk, CHANGELIST)
        assert clerk.get(SHIP_CSV).status_code == 403
        assert upload(
            clerk, f"{HEADER}\n{to_ship.out_trade_no},virtual,,\n".encode()
        ).status_code == (403)
        assert not Shipment.objects.exists()

    def test_no_ship_button_for_unpaid_or_shipped_orders(
        self, boss_client, shopper, products, shipped
    ):
        unpaid = make_order(shopper, products, n=5)

        assert 'id="ship-link"' not in get_ok(boss_client, order_page(unpaid))
        assert 'id="ship-link"' not in get_ok(boss_client, order_page(shipped))

    def test_shipments_show_read_only_below_the_order(self, boss_client, shipped):
        text = get_ok(boss_client, order_page(shipped))

        assert 'id="shipments-group"' in text
        assert "SF1234567890" in text
        assert "Shipped" in text
        assert 'name="shipments-0-tracking_no"' not in text

    def test_an_order_without_address_shows_a_dash(self, boss_client, shopper, products):
        order = make_order(shopper, products, n=5)

        text = get_ok(boss_client, order_page(order))

        field = text[text.index("field-address_display") :]
        assert field[: field.index("</div>", field.index("readonly"))].endswith("—")


class TestShipPage:
    def test_shipping_from_the_page_records_who_shipped(self, boss, boss_client, to_ship):
        data = ship_form(boss_client, to_ship, **express(express_company=" sf "))

        response = boss_client.post(ship_page(to_ship), data, follow=True)

        assert response.redirect_chain[-1][0] == order_page(to_ship)
        assert "shipped: Express delivery SF SF1234567890" in response.content.decode()
        shipment = Shipment.objects.get()
        assert (shipment.order_id, shipment.express_company, shipment.shipped_by) == (
            to_ship.pk,
            "SF",
            boss,
        )
        assert reload(to_ship).fulfilment_status == "shipped"

    def test_the_page_shows_the_order_and_where_it_goes(self, boss_client, to_ship, address):
        text = get_ok(boss_client, ship_page(to_ship))

        assert to_ship.out_trade_no in text
        assert address["tel_number"] in text  # staff who ship see the number
        assert "Please ring twice" in text
        assert 'name="shown_state" value="paid:unfulfilled"' in text

    def test_a_page_submitted_twice_ships_once(self, boss_client, to_ship):
        data = ship_form(boss_client, to_ship, **express())
        boss_client.post(ship_page(to_ship), data)

        again = boss_client.post(ship_page(to_ship), data, follow=True)

        assert "nothing was shipped twice" in again.content.decode()
        assert Shipment.objects.count() == 1

    @pytest.mark.usefixtures("refund_certificate")
    def test_a_page_opened_before_a_full_refund_is_refused(self, boss_client, to_ship, wxpay):
        data = ship_form(boss_client, to_ship, **express())
        assert notify_refund(make_refund(to_ship, 4500)).content == NOTIFY_SUCCESS

        response = boss_client.post(ship_page(to_ship), data, follow=True)

        text = response.content.decode()
        assert "changed while the page was open" in text
        assert "nothing was shipped" in text
        assert not Shipment.objects.exists()
        assert reload(to_ship).fulfilment_status == "unfulfilled"

    def test_a_page_opened_before_someone_else_shipped_is_refused(self, boss_client, to_ship):
        data = ship_form(boss_client, to_ship, **express())
        order_ship(
            order=to_ship, logistics_type="express", express_company="YTO", tracking_no="YT1"
        )

        response = boss_client.post(ship_page(to_ship), data, follow=True)

        text = response.content.decode()
        assert "changed while the page was open" in text
        assert "YT1" in text
        assert Shipment.objects.get().tracking_no == "YT1"

    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            (express(tracking_no=""), "needs the tracking number"),
            (express(express_company=""), "needs the express company"),
            (express(tracking_no="SF 1/2"), "letters, digits and dashes"),
            ({"logistics_type": "drone"}, "Select a valid choice"),
        ],
    )
    def test_bad_details_are_shown_on_the_page(self, boss_client, to_ship, fields, error):
        data = ship_form(boss_client, to_ship, **fields)

        response = boss_client.post(ship_page(to_ship), data)

        assert response.status_code == 200
        assert error in response.content.decode()
        assert not Shipment.objects.exists()

    def test_a_form_without_its_state_ships_nothing(self, boss_client, to_ship):
        response = boss_client.post(ship_page(to_ship), express())

        assert response.status_code == 200
        assert not Shipment.objects.exists()

    def test_an_unpaid_order_has_no_ship_page_and_a_forged_post_ships_nothing(
        self, boss_client, shopper, products
    ):
        unpaid = make_order(shopper, products, n=5)

        page = boss_client.get(ship_page(unpaid), follow=True)
        forged = boss_client.post(
            ship_page(unpaid), {**express(), "shown_state": "unpaid:unfulfilled"}, follow=True
        )

        assert page.redirect_chain[-1][0] == order_page(unpaid)
        assert "cannot be shipped" in page.content.decode()
        assert "not paid" in forged.content.decode()
        assert not Shipment.objects.exists()

    def test_an_unknown_order_is_404(self, boss_client, db):
        assert boss_client.get("/admin/orders/order/999999/ship/").status_code == 404


class TestShipFromCsv:
    def test_the_list_links_to_the_upload_page(self, boss_client, db):
        assert SHIP_CSV in get_ok(boss_client, CHANGELIST)
        assert HEADER in get_ok(boss_client, SHIP_CSV)

    def test_an_upload_ships_the_good_lines_and_reports_every_line(
        self, boss, boss_client, paid_orders
    ):
        a, b = paid_orders(2)
        content = "\r\n".join(
            [
                HEADER,
                f"{a.out_trade_no},express,SF,SF0001",
                f"{b.out_trade_no},express,SF",
                "NO-SUCH-ORDER,virtual,,",
                f"{b.out_trade_no},virtual,,",
            ]
        ).encode("utf-8-sig")

        response = upload(boss_client, content)

        assert response.status_code == 200
        text = response.content.decode()
        results = text[text.index('id="ship-results"') :]
        assert "4 lines: 2 shipped, 0 already shipped, 2 not shipped." in results
        assert "expected 4 columns, found 3" in results
        assert "unknown order" in results
        assert "2 lines were not shipped" in text
        assert {s.shipped_by for s in Shipment.objects.all()} == {boss}
        assert Shipment.objects.count() == 2

        again = upload(boss_client, content).content.decode()
        assert "4 lines: 0 shipped, 2 already shipped, 2 not shipped." in again
        assert Shipment.objects.count() == 2

    @pytest.mark.parametrize(
        ("content", "error"),
        [
            (b"T1,virtual,,\n", "The first line must be the header"),
            (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
            (b"", "The submitted file is empty"),
        ],
    )
    def test_a_file_refused_whole_says_why(self, boss_client, paid_orders, content, error):
        (a,) = paid_orders(1)

        response = upload(
            boss_client, content + f"{a.out_trade_no},virtual,,\n".encode() * bool(content)
        )

        assert response.status_code == 200
        assert error in response.content.decode()
        assert 'id="ship-results"' not in response.content.decode()
        assert not Shipment.objects.exists()


def test_shipping_reads_in_chinese(boss_client, to_ship):
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}

    listing = boss_client.get(CHANGELIST, **zh).content.decode()
    page = boss_client.get(ship_page(to_ship), **zh).content.decode()
    shipped = boss_client.post(
        ship_page(to_ship), ship_form(boss_client, to_ship, **express()), follow=True, **zh
    ).content.decode()
    upload_page = boss_client.get(SHIP_CSV, **zh).content.decode()

    assert "未发货" in listing and "从 CSV 发货…" in listing
    assert "快递公司" in page and "配送方式" in page
    assert f"{to_ship.out_trade_no} 已发货" in shipped and "快递 SF SF1234567890" in shipped
    assert "发货记录" in shipped and "收货地址" in shipped
    assert "仓库文件" in upload_page


class TestListAndExport:
    def test_the_list_shows_and_filters_by_fulfilment(self, boss_client, shipped, paid_orders):
        (waiting,) = paid_orders(1, first=7)

        everything = get_ok(boss_client, CHANGELIST)
        only_shipped = get_ok(boss_client, f"{CHANGELIST}?fulfilment_status__exact=shipped")

        assert "Shipped" in everything and "Not shipped" in everything
        assert shipped.out_trade_no in only_shipped
        assert waiting.out_trade_no not in only_shipped

    def test_the_export_masks_the_phone_and_has_the_fulfilment(self, boss_client, shipped, address):
        response = boss_client.post(
            CHANGELIST, {"action": "export_selected_action", "_selected_action": [shipped.pk]}
        )
        text = b"".join(response.streaming_content).decode("utf-8")

        (row,) = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
        assert address["tel_number"] not in text
        assert row["phone"] == "138****5678"
        assert row["recipient"] == "张三"
        assert row["address"] == "广东省 广州市 海珠区 新港中路397号"
        assert (row["postal_code"], row["remark"]) == ("510000", "Please ring twice")
        assert row["fulfilment_status"] == "shipped"
        assert row["shipped_at"].endswith("+08:00")

    def test_shopper_text_cannot_run_as_a_formula(self, boss_client, paid_orders):
        (order,) = paid_orders(1)
        Order.objects.filter(pk=order.pk).update(
            remark="=HYPERLINK(1)", address={"user_name": "+cmd", "tel_number": "1"}
        )
        response = boss_client.post(
            CHANGELIST, {"action": "export_selected_action", "_selected_action": [order.pk]}
        )
        text = b"".join(response.streaming_content).decode("utf-8")

        (row,) = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
        assert (row["remark"], row["recipient"], row["phone"]) == (
            "'=HYPERLINK(1)",
            "'+cmd",
            "****",
        )


class TestDashboard:
    def test_the_tile_counts_paid_orders_waiting_and_the_oldest_wait(
        self, boss, boss_client, shopper, products, paid_orders
    ):
        waiting = paid_orders(3, first=71)  # paid 71, 72, 73 hours ago
        shipped_one = paid_orders(1, first=100)[0]
        order_ship(order=shipped_one, logistics_type="virtual")
        make_order(shopper, products, n=5)  # unpaid

        board = dashboard_for(boss)

        assert (board.to_ship.count, board.to_ship.oldest, board.to_ship.late) == (
            3,
            "3\xa0days",
            True,
        )
        text = get_ok(boss_client, "/admin/")
        tile = text[text.index('id="to-ship"') :][:600]
        assert "paid orders, oldest waiting 3\xa0days" in tile
        assert (
            "shop-tile-alert" in text[text.index('id="to-ship"') - 40 : text.index('id="to-ship"')]
        )
        listed = get_ok(boss_client, board.to_ship.url)
        assert all(order.out_trade_no in listed for order in waiting)
        assert shipped_one.out_trade_no not in listed

    def test_nothing_waiting_is_all_shipped(self, boss, boss_client, shipped):
        board = dashboard_for(boss)

        assert (board.to_ship.count, board.to_ship.oldest, board.to_ship.late) == (0, "", False)
        assert "all shipped" in get_ok(boss_client, "/admin/")

    def test_recent_orders_are_not_late(self, boss, paid_orders):
        paid_orders(2, first=1)

        board = dashboard_for(boss)

        assert (board.to_ship.count, board.to_ship.oldest, board.to_ship.late) == (
            2,
            "2\xa0hours",
            False,
        )

    def test_the_dashboard_stays_at_three_queries(
        self, boss, paid_orders, django_assert_max_num_queries
    ):
        paid_orders(30)
        Order.objects.filter(pk__in=Order.objects.values("pk")[:5]).update(needs_attention=True)

        # revenue by day, orders to watch, notifications, the latest statement (§10)
        with django_assert_max_num_queries(4):
            board = dashboard_for(boss)

        assert (board.attention_count, board.to_ship.count) == (5, 30)


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        (" 138 1234 5678 ", "138****5678"),
        ("+8613812345678", "+86****5678"),
        ("020-8123456", "020****3456"),  # the area code says no more than the city
        ("81234567", "****4567"),
        ("1234", "****"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone_keeps_only_the_last_four_digits(phone, masked):
    assert mask_phone(phone) == masked
