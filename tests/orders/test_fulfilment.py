"""Fulfilment, separate from payment: a paid order ships once, the shopper confirms receipt,
the warehouse's CSV ships many (orders/fulfilment.py; docs/INVARIANTS.md §7, §8)."""

import io
import logging
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import fulfilment
from orders.fulfilment import (
    CSV_MAX_BYTES,
    CSV_MAX_LINES,
    CsvLineStatus,
    CsvRefused,
    ReceiveOutcome,
    ReceiveRefused,
    ShipOutcome,
    ShipRefusal,
    ShipRefused,
    order_receive,
    order_ship,
    shipments_from_csv,
)
from orders.models import FulfilmentStatus, Order, Product, Shipment
from tests.factories import (
    NOTIFY_SUCCESS,
    client_for,
    make_order,
    make_refund,
    make_shopper,
    notify_refund,
    reload,
)

pytestmark = pytest.mark.django_db

HEADER = "out_trade_no,logistics_type,express_company,tracking_no"


def express(order: Order, number: str = "SF1234567890", company: str = "SF", **kwargs):
    return order_ship(
        order=order,
        logistics_type="express",
        express_company=company,
        tracking_no=number,
        **kwargs,
    )


class TestShip:
    def test_a_paid_order_ships_once_with_one_shipment(self, to_ship, boss):
        result = order_ship(
            order=to_ship,
            logistics_type=" express ",
            express_company=" sf ",
            tracking_no=" SF1234567890\t",
            shipped_by=boss,
        )

        assert result.outcome == ShipOutcome.SHIPPED
        order = reload(to_ship)
        assert (order.status, order.fulfilment_status) == ("paid", "shipped")
        assert order.shipped_at is not None
        assert to_ship.fulfilment_status == "shipped"  # the caller's copy too
        shipment = Shipment.objects.get()
        assert result.shipment == shipment
        assert (
            shipment.order_id,
            shipment.logistics_type,
            shipment.express_company,
            shipment.tracking_no,
            shipment.shipped_by,
            shipment.upload_status,
        ) == (order.pk, "express", "SF", "SF1234567890", boss, "not_required")
        assert shipment.shipped_at == order.shipped_at

    @pytest.mark.parametrize("kind", ["same_city", "virtual", "self_pickup"])
    def test_other_types_need_no_company_or_number(self, to_ship, kind):
        assert order_ship(order=to_ship, logistics_type=kind).outcome == ShipOutcome.SHIPPED
        assert Shipment.objects.get().logistics_type == kind

    def test_the_same_tracking_number_again_ships_nothing(self, shipped):
        before = reload(shipped).shipped_at

        result = express(shipped, number=" SF1234567890 ", company="sf")

        assert result.outcome == ShipOutcome.ALREADY_SHIPPED
        assert result.shipment == Shipment.objects.get()
        assert reload(shipped).shipped_at == before

    def test_the_same_non_express_type_again_ships_nothing(self, to_ship):
        order_ship(order=to_ship, logistics_type="virtual")

        again = order_ship(order=reload(to_ship), logistics_type="virtual")

        assert again.outcome == ShipOutcome.ALREADY_SHIPPED
        assert Shipment.objects.count() == 1

    def test_another_tracking_number_is_refused(self, shipped):
        with pytest.raises(ShipRefused) as refused:
            express(shipped, number="SF9999999999")

        assert refused.value.reason == ShipRefusal.SHIPPED_OTHERWISE
        assert "SF1234567890" in str(refused.value)
        assert Shipment.objects.get().tracking_no == "SF1234567890"

    def test_another_company_with_the_same_number_is_refused(self, shipped):
        with pytest.raises(ShipRefused) as refused:
            express(shipped, company="YTO")
        assert refused.value.reason == ShipRefusal.SHIPPED_OTHERWISE

    def test_another_type_after_shipping_is_refused(self, to_ship):
        order_ship(order=to_ship, logistics_type="self_pickup")

        with pytest.raises(ShipRefused) as refused:
            express(reload(to_ship))

        assert refused.value.reason == ShipRefusal.SHIPPED_OTHERWISE
        assert Shipment.objects.count() == 1

    def test_a_received_order_is_not_shipped_again(self, shipped):
        order_receive(order=shipped)

        assert express(reload(shipped)).outcome == ShipOutcome.ALREADY_SHIPPED
        assert reload(shipped).fulfilment_status == "received"
        with pytest.raises(ShipRefused):
            express(reload(shipped), number="SF0000000000")

    def test_an_unpaid_order_is_refused(self, shopper, products):
        order = make_order(shopper, products)

        with pytest.raises(ShipRefused) as refused:
            express(order)

        assert refused.value.reason == ShipRefusal.UNPAID
        assert "not paid" in str(refused.value)
        assert reload(order).fulfilment_status == "unfulfilled"
        assert not Shipment.objects.exists()

    def test_a_closed_order_is_refused(self, shopper, products):
        order = make_order(shopper, products, status=Order.Status.CLOSED)

        with pytest.raises(ShipRefused) as refused:
            order_ship(order=order, logistics_type="virtual")

        assert refused.value.reason == ShipRefusal.CLOSED
        assert not Shipment.objects.exists()

    def test_a_closed_order_with_a_payment_that_did_not_fit_is_refused(self, shopper, products):
        order = make_order(
            shopper,
            products,
            status=Order.Status.CLOSED,
            transaction_id="4200000483202001042069747825",
            paid_at=timezone.now(),
            paid_fee=1,
            needs_attention=True,
        )

        with pytest.raises(ShipRefused) as refused:
            express(order)

        assert refused.value.reason == ShipRefusal.CLOSED
        assert "refund" in str(refused.value)
        assert reload(order).fulfilment_status == "unfulfilled"

    @pytest.mark.usefixtures("refund_certificate")
    def test_a_fully_refunded_order_is_refused(self, to_ship, wxpay):
        assert notify_refund(make_refund(to_ship, 4500)).content == NOTIFY_SUCCESS
        assert reload(to_ship).status == "refunded"

        with pytest.raises(ShipRefused) as refused:
            express(reload(to_ship))

        assert refused.value.reason == ShipRefusal.REFUNDED
        assert not Shipment.objects.exists()

    @pytest.mark.usefixtures("refund_certificate")
    def test_a_partly_refunded_order_ships(self, to_ship, wxpay):
        assert notify_refund(make_refund(to_ship, 1000)).content == NOTIFY_SUCCESS
        assert reload(to_ship).status == "paid"

        assert express(reload(to_ship)).outcome == ShipOutcome.SHIPPED

    @pytest.mark.usefixtures("refund_certificate")
    def test_a_refund_after_shipping_keeps_the_fulfilment(self, shipped, wxpay):
        assert notify_refund(make_refund(shipped, 4500)).content == NOTIFY_SUCCESS

        order = reload(shipped)
        assert (order.status, order.fulfilment_status) == ("refunded", "shipped")
        assert order.shipments.get().tracking_no == "SF1234567890"
        assert express(order).outcome == ShipOutcome.ALREADY_SHIPPED

    @pytest.mark.parametrize(
        ("kind", "company", "number", "field"),
        [
            ("express", "", "SF1", "express_company"),
            ("express", "SF", "", "tracking_no"),
            ("express", " ", "1", "express_company"),
            ("air", "", "", "logistics_type"),
            ("", "", "", "logistics_type"),
            ("express", "S F", "1", "express_company"),
            ("express", "顺丰", "1", "express_company"),
            ("express", "S" * 65, "1", "express_company"),
            ("express", "SF", "1" * 65, "tracking_no"),
            ("express", "SF", "SF1\x00", "tracking_no"),
            ("express", "SF", "SF 1", "tracking_no"),
            ("express", "SF", "=1+2", "tracking_no"),
            ("virtual", "", "<b>", "tracking_no"),
        ],
    )
    def test_bad_details_are_refused_naming_the_field(self, to_ship, kind, company, number, field):
        with pytest.raises(ShipRefused) as refused:
            order_ship(
                order=to_ship, logistics_type=kind, express_company=company, tracking_no=number
            )

        assert (refused.value.reason, refused.value.field) == (ShipRefusal.INVALID, field)
        assert str(refused.value)
        assert reload(to_ship).fulfilment_status == "unfulfilled"
        assert not Shipment.objects.exists()

    def test_the_longest_details_fit(self, to_ship):
        result = express(to_ship, company="A-" * 32, number="9" * 64)
        assert (result.shipment.express_company, result.shipment.tracking_no) == (
            "A-" * 32,
            "9" * 64,
        )

    def test_the_log_names_the_order_and_the_type_and_nothing_personal(
        self, to_ship, address, caplog
    ):
        with caplog.at_level(logging.DEBUG):
            express(to_ship)
            order_receive(order=reload(to_ship))

        assert f"out_trade_no={to_ship.out_trade_no}" in caplog.text
        assert "logistics_type=express" in caplog.text
        for personal in (address["tel_number"], address["user_name"], address["detail_info"]):
            assert personal not in caplog.text


class TestReceive:
    def test_a_shipped_order_is_received(self, shipped):
        result = order_receive(order=shipped)

        assert result.outcome == ReceiveOutcome.RECEIVED
        order = reload(shipped)
        assert (order.fulfilment_status, order.status) == ("received", "paid")
        assert order.received_at is not None
        assert result.order.fulfilment_status == "received"

    def test_receiving_again_changes_nothing(self, shipped):
        order_receive(order=shipped)
        first = reload(shipped).received_at

        again = order_receive(order=reload(shipped))

        assert again.outcome == ReceiveOutcome.ALREADY_RECEIVED
        assert reload(shipped).received_at == first

    def test_an_order_not_shipped_is_refused(self, to_ship):
        with pytest.raises(ReceiveRefused) as refused:
            order_receive(order=to_ship)

        assert refused.value.fulfilment_status == FulfilmentStatus.UNFULFILLED
        assert reload(to_ship).fulfilment_status == "unfulfilled"


class TestReceiveApi:
    def test_the_shopper_confirms_receipt(self, api, shipped):
        response = api.post(f"/orders/{shipped.out_trade_no}/receive")

        assert response.status_code == 200
        body = response.json()
        assert (body["out_trade_no"], body["fulfilment_status"]) == (
            shipped.out_trade_no,
            "received",
        )
        assert body["shipments"][0]["tracking_no"] == "SF1234567890"
        assert reload(shipped).fulfilment_status == "received"

    def test_confirming_twice_answers_the_order_again(self, api, shipped):
        api.post(f"/orders/{shipped.out_trade_no}/receive")

        response = api.post(f"/orders/{shipped.out_trade_no}/receive")

        assert (response.status_code, response.json()["fulfilment_status"]) == (200, "received")

    def test_before_shipping_is_409_with_the_fulfilment_status(self, api, to_ship):
        response = api.post(f"/orders/{to_ship.out_trade_no}/receive")

        assert response.status_code == 409
        body = response.json()
        assert body["fulfilment_status"] == "unfulfilled"
        assert "not shipped" in body["detail"]
        assert reload(to_ship).fulfilment_status == "unfulfilled"

    def test_someone_elses_order_is_404(self, shipped):
        response = client_for(make_shopper()).post(f"/orders/{shipped.out_trade_no}/receive")

        assert response.status_code == 404
        assert reload(shipped).fulfilment_status == "shipped"

    def test_an_unknown_order_is_404_and_a_token_is_needed(self, api, anon, shipped):
        assert api.post("/orders/NO-SUCH-ORDER/receive").status_code == 404
        assert anon.post(f"/orders/{shipped.out_trade_no}/receive").status_code == 401
        assert reload(shipped).fulfilment_status == "shipped"


class TestOrderJson:
    def test_an_order_shows_its_address_remark_fulfilment_and_shipments(
        self, api, shipped, address
    ):
        body = api.get(f"/orders/{shipped.out_trade_no}").json()

        assert body["address"] == address  # the shopper's own: in full
        assert body["remark"] == "Please ring twice"
        assert body["fulfilment_status"] == "shipped"
        (shipment,) = body["shipments"]
        assert set(shipment) == {
            "logistics_type",
            "express_company",
            "tracking_no",
            "shipped_at",
            "upload_status",
        }
        assert (shipment["logistics_type"], shipment["express_company"]) == ("express", "SF")
        assert shipment["upload_status"] == "not_required"
        assert shipment["shipped_at"].endswith("+08:00")

    def test_an_order_without_address_or_shipment(self, api, shopper, products):
        order = make_order(shopper, products)

        body = api.get(f"/orders/{order.out_trade_no}").json()

        assert (body["address"], body["remark"], body["shipments"]) == (None, "", [])
        assert body["fulfilment_status"] == "unfulfilled"

    def test_the_list_reads_shipments_in_one_query_whatever_the_orders(self, api, paid_orders):
        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                assert api.get("/orders").status_code == 200
            return len(captured)

        for order in paid_orders(2):
            express(order, number=f"SF{order.pk}")
        few = queries()
        for order in paid_orders(10, first=3):
            express(order, number=f"SF{order.pk}")

        assert queries() == few
        body = api.get("/orders").json()
        assert all(len(order["shipments"]) == 1 for order in body["results"])


class TestCsv:
    def test_a_warehouse_file_ships_every_line(self, paid_orders):
        a, b, c, d = paid_orders(4)
        text = (
            "\ufeff" + HEADER.upper() + " \r\n"
            f" {a.out_trade_no} , express , SF , SF0001 \r\n"
            f"{b.out_trade_no},same_city,,\r\n"
            f'"{c.out_trade_no}","virtual","",""\r\n'
            f"\r\n"
            f"{d.out_trade_no},self_pickup,,\r\n"
            "\r\n\r\n"
        ).encode()

        results = shipments_from_csv(text)

        assert [(r.line, r.out_trade_no, r.status) for r in results] == [
            (2, a.out_trade_no, CsvLineStatus.SHIPPED),
            (3, b.out_trade_no, CsvLineStatus.SHIPPED),
            (4, c.out_trade_no, CsvLineStatus.SHIPPED),
            (6, d.out_trade_no, CsvLineStatus.SHIPPED),
        ]
        assert Shipment.objects.get(order=a).tracking_no == "SF0001"
        assert Order.objects.filter(fulfilment_status="shipped").count() == 4

    def test_text_streams_and_lf_files_are_read_too(self, paid_orders):
        (a,) = paid_orders(1)
        text = f"{HEADER}\n{a.out_trade_no},virtual,,\n"

        assert shipments_from_csv(io.StringIO(text))[0].status == CsvLineStatus.SHIPPED
        assert shipments_from_csv(io.BytesIO(text.encode()))[0].status == (
            CsvLineStatus.ALREADY_SHIPPED
        )
        assert shipments_from_csv(text)[0].status == CsvLineStatus.ALREADY_SHIPPED

    def test_bad_lines_are_reported_and_the_others_ship(self, shopper, products, paid_orders):
        a, b, refunded = paid_orders(3)
        Order.objects.filter(pk=refunded.pk).update(status=Order.Status.REFUNDED)
        unpaid = make_order(shopper, products, n=50)
        text = "\n".join(
            [
                HEADER,
                f"{a.out_trade_no},express,SF,SF0001",
                f"{a.out_trade_no},express,SF,SF0001",  # the same line twice
                f"{a.out_trade_no},express,SF,SF0002",  # another number
                f"{b.out_trade_no},express,SF",  # 3 columns
                f"{b.out_trade_no},express,SF,SF0003,extra",  # 5 columns
                f"{b.out_trade_no},air,,",
                f"{b.out_trade_no},express,SF,",
                f'{b.out_trade_no},"express,SF,SF0004',  # an unclosed quote
                ",virtual,,",
                "NO-SUCH-ORDER,virtual,,",
                f"{unpaid.out_trade_no},virtual,,",
                f"{refunded.out_trade_no},virtual,,",
                f"{b.out_trade_no},express,YTO,YT0005",
            ]
        )

        results = shipments_from_csv(text)

        statuses = [r.status for r in results]
        assert statuses == [
            CsvLineStatus.SHIPPED,
            CsvLineStatus.ALREADY_SHIPPED,
            *[CsvLineStatus.FAILED] * 10,
            CsvLineStatus.SHIPPED,
        ]
        reasons = [r.reason for r in results]
        assert "SF0001" in reasons[2]
        assert "4 columns" in reasons[3] and "found 3" in reasons[3]
        assert "found 5" in reasons[4]
        assert "air" in reasons[5]
        assert "tracking number" in reasons[6]
        assert "malformed" in reasons[7]
        assert "out_trade_no" in reasons[8]
        assert reasons[9] == "unknown order"
        assert "not paid" in reasons[10]
        assert "refunded" in reasons[11]
        assert results[8].label == "line 10"
        assert results[9].label == "NO-SUCH-ORDER"
        assert Shipment.objects.get(order=b).tracking_no == "YT0005"
        assert Shipment.objects.count() == 2

    def test_only_a_header_is_no_lines(self, db):
        assert shipments_from_csv(HEADER + "\r\n\r\n") == []

    @pytest.mark.parametrize(
        "content",
        [
            b"",
            b"\r\n\r\n",
            b"T1,virtual,,\n",
            b"out_trade_no,logistics_type,tracking_no\nT1,virtual,\n",
            b"order,type,company,number\nT1,virtual,,\n",
        ],
    )
    def test_a_file_without_the_header_is_refused_whole(self, paid_orders, content):
        (a,) = paid_orders(1)

        with pytest.raises(CsvRefused) as refused:
            shipments_from_csv(content + f"{a.out_trade_no},virtual,,\n".encode())

        assert HEADER in str(refused.value)
        assert not Shipment.objects.exists()

    @pytest.mark.parametrize(
        "content",
        [
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            (HEADER + "\nT1,virtual,,\n").encode("utf-16"),
            (HEADER + "\nT1,virtual,,\xe9\n").encode("latin-1"),
            (HEADER + "\nT1,virtual,\x00,\n").encode(),
        ],
    )
    def test_a_file_that_is_not_text_is_refused_whole(self, db, content):
        with pytest.raises(CsvRefused) as refused:
            shipments_from_csv(content)

        assert "UTF-8" in str(refused.value) or "text" in str(refused.value)

    def test_a_file_too_large_is_refused_whole(self, paid_orders):
        (a,) = paid_orders(1)
        content = f"{HEADER}\n{a.out_trade_no},virtual,,\n".encode()
        content += b" " * (CSV_MAX_BYTES - len(content) + 1)

        with pytest.raises(CsvRefused) as refused:
            shipments_from_csv(io.BytesIO(content))

        assert "MB" in str(refused.value)
        assert not Shipment.objects.exists()

    def test_too_many_lines_are_refused_whole(self, paid_orders):
        (a,) = paid_orders(1)
        lines = [HEADER] + [f"{a.out_trade_no},virtual,,"] * (CSV_MAX_LINES + 1)

        with pytest.raises(CsvRefused) as refused:
            shipments_from_csv("\n".join(lines))

        assert f"{CSV_MAX_LINES:,}" in str(refused.value)
        assert not Shipment.objects.exists()

    def test_the_most_lines_allowed_are_read(self, paid_orders, monkeypatch):
        monkeypatch.setattr(fulfilment, "CSV_MAX_LINES", 20)  # 10,000 orders take a while
        (a,) = paid_orders(1)
        lines = [HEADER] + [f"{a.out_trade_no},virtual,,"] * 20 + [""] * 5

        results = shipments_from_csv("\n".join(lines))

        assert len(results) == 20
        assert Shipment.objects.count() == 1
        lines.insert(1, f"{a.out_trade_no},virtual,,")
        with pytest.raises(CsvRefused):
            shipments_from_csv("\n".join(lines))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("numbers", [("SF0001", "SF0001"), ("SF0001", "SF0002")])
def test_two_staff_shipping_the_same_order_at_once_ship_it_once(numbers):
    """Two threads ship one order: one Shipment; the other is told it already shipped
    (same number) or refused (another number)."""
    shopper = make_shopper()
    tea = Product.objects.create(name="Tea", price=4500)
    order = make_order(
        shopper,
        {"tea": tea},
        status=Order.Status.PAID,
        transaction_id="4200000483202001042069747825",
        paid_at=timezone.now(),
    )
    barrier = threading.Barrier(len(numbers))
    outcomes: list[str] = []

    def ship(number: str) -> None:
        try:
            barrier.wait()
            result = express(Order.objects.get(pk=order.pk), number=number)
            outcomes.append(result.outcome)
        except ShipRefused as exc:
            outcomes.append(exc.reason)
        finally:
            connection.close()

    threads = [threading.Thread(target=ship, args=(number,)) for number in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    other = "already_shipped" if numbers[0] == numbers[1] else "shipped_otherwise"
    assert sorted(outcomes) == sorted(["shipped", other])
    assert Shipment.objects.filter(order=order).count() == 1
    assert reload(order).fulfilment_status == "shipped"
