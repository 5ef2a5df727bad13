"""The warehouse's CSV file at its edges: what mutation testing found no test for
(docs/RELIABILITY.md, "Mutation testing"). Staff read every message here, so each is pinned."""

import io
import logging

import pytest
from django.db import OperationalError, connection

from orders.fulfilment import (
    CSV_MAX_BYTES,
    CSV_MAX_LINES,
    CsvLineStatus,
    CsvRefused,
    ReceiveOutcome,
    ReceiveRefused,
    ShipRefusal,
    ShipRefused,
    order_receive,
    order_ship,
    shipment_details_clean,
    shipments_from_csv,
)
from orders.models import FulfilmentStatus, Order, Shipment
from orders.signals import shipment_recorded
from tests.factories import make_order

pytestmark = pytest.mark.django_db

HEADER = "out_trade_no,logistics_type,express_company,tracking_no"
HEADER_MESSAGE = (
    "The first line must be the header out_trade_no,logistics_type,express_company,tracking_no."
)


def refused(source) -> str:
    with pytest.raises(CsvRefused) as refusal:
        shipments_from_csv(source)
    return str(refusal.value)


class TestWholeFileRefused:
    def test_a_file_without_its_header_says_which_header(self, paid_orders):
        [order] = paid_orders(1)

        assert refused(f"{order.out_trade_no},express,SF,SF1\n") == HEADER_MESSAGE

    @pytest.mark.parametrize("text", ["", "\n\n  \n"])
    def test_an_empty_file_says_which_header(self, text):
        assert refused(text) == HEADER_MESSAGE

    def test_a_header_not_readable_as_csv_is_no_header(self):
        assert refused('"out_trade_no,logistics_type\n') == HEADER_MESSAGE

    def test_a_header_in_capitals_is_the_header(self, paid_orders):
        [order] = paid_orders(1)

        [result] = shipments_from_csv(f"{HEADER.upper()}\n{order.out_trade_no},express,SF,SF1\n")

        assert result.status == CsvLineStatus.SHIPPED

    def test_a_file_of_exactly_the_limit_is_read_and_one_byte_more_refused(self):
        padding = " " * (CSV_MAX_BYTES - len(HEADER) - 1)
        assert shipments_from_csv((HEADER + "\n" + padding).encode()) == []

        assert refused((HEADER + "\n" + padding + " ").encode()) == (
            "The file is larger than 5 MB: split it into smaller files."
        )

    def test_a_file_read_from_an_upload_stops_after_the_limit(self):
        upload = io.BytesIO((HEADER + "\n").encode() + b" " * CSV_MAX_BYTES)

        assert refused(upload) == "The file is larger than 5 MB: split it into smaller files."
        assert upload.tell() == CSV_MAX_BYTES + 1  # no more read than needed to know

    def test_a_file_that_is_not_utf8_says_how_to_save_it(self):
        assert refused("out_trade_no,类型\n".encode("gbk")) == (
            "The file is not UTF-8 text: save it as “CSV UTF-8” and upload it again."
        )

    def test_a_binary_file_says_it_is_not_text(self):
        assert refused(HEADER + "\n\x00\x01") == (
            "The file is not text: upload the warehouse's CSV file."
        )

    def test_only_a_leading_byte_order_mark_is_dropped(self, paid_orders):
        [order] = paid_orders(1)
        text = f"\ufeff{HEADER}\n{order.out_trade_no},express,SF,SF1\n"

        assert shipments_from_csv(text)[0].status == CsvLineStatus.SHIPPED
        assert refused(f"{HEADER}\ufeff\n") == HEADER_MESSAGE

    def test_a_file_with_too_many_lines_says_the_limit(self):
        text = HEADER + "\n" + "x,express,SF,1\n" * (CSV_MAX_LINES + 1)

        assert refused(text) == "The file has more than 10,000 lines: split it into smaller files."

    def test_a_file_of_exactly_the_line_limit_is_read(self):
        # Lines that fail before any query: the limit is on lines, not on orders.
        text = HEADER + "\n" + ",express,SF,1\n" * CSV_MAX_LINES

        assert len(shipments_from_csv(text)) == CSV_MAX_LINES


class TestOneLineFailing:
    def test_a_line_not_readable_as_csv_says_why(self):
        [result] = shipments_from_csv(f'{HEADER}\n"T1,express,SF,SF1\n')

        assert (result.line, result.out_trade_no, result.status) == (2, "", CsvLineStatus.FAILED)
        assert result.reason == "malformed line: not readable as CSV (a quote not closed?)"

    def test_text_after_a_closing_quote_is_not_readable(self):
        [result] = shipments_from_csv(f'{HEADER}\n"T1"x,express,SF,SF1\n')

        assert result.reason == "malformed line: not readable as CSV (a quote not closed?)"

    def test_a_line_without_an_order_number_says_so(self):
        [result] = shipments_from_csv(f"{HEADER}\n,express,SF,SF1\n")

        assert result.reason == "malformed line: no out_trade_no"

    def test_columns_missing_name_the_order_cut_to_64_characters(self):
        [result] = shipments_from_csv(f"{HEADER}\n{'T' * 80},express\n")

        assert (result.out_trade_no, result.reason) == (
            "T" * 64,
            "malformed line: expected 4 columns, found 2",
        )

    def test_an_unknown_order_is_named_cut_to_64_characters(self):
        [result] = shipments_from_csv(f"{HEADER}\n{'T' * 80},express,SF,SF1\n")

        assert (result.out_trade_no, result.reason) == ("T" * 64, "unknown order")

    def test_a_database_failure_fails_that_line_and_is_logged(self, paid_orders, caplog):
        [order] = paid_orders(1)

        def fail_shipments(execute, sql, params, many, context):
            if sql.startswith("INSERT") and "orders_shipment" in sql:
                raise OperationalError("lock timeout")
            return execute(sql, params, many, context)

        with connection.execute_wrapper(fail_shipments):
            [result] = shipments_from_csv(f"{HEADER}\n{order.out_trade_no},express,SF,SF1\n")

        assert (result.out_trade_no, result.status, result.reason) == (
            order.out_trade_no,
            CsvLineStatus.FAILED,
            "database error: nothing shipped, try this line again",
        )
        [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert record.getMessage() == f"shipping failed out_trade_no={order.out_trade_no}"
        assert record.exc_info is not None


def one_write_first(sql_start: str, then: str, pk: int):
    """An execute wrapper: just before our ``sql_start`` statement, another writer's
    ``then`` lands on the order (where SQLite's row lock is a no-op, this can happen)."""

    def wrapper(execute, sql, params, many, context):
        if sql.startswith(sql_start) and "orders_order" in sql and "fulfilment_status" in sql:
            execute(then, [pk], False, context)
        return execute(sql, params, many, context)

    return wrapper


class TestShippingAgainstAnotherWriter:
    def test_an_order_refunded_meanwhile_does_not_ship(self, to_ship):
        with (
            connection.execute_wrapper(
                one_write_first(
                    "UPDATE",
                    "UPDATE orders_order SET status = 'refunded' WHERE id = %s",
                    to_ship.pk,
                )
            ),
            pytest.raises(ShipRefused) as refused,
        ):
            order_ship(
                order=to_ship, logistics_type="express", express_company="SF", tracking_no="SF1"
            )

        assert refused.value.reason == ShipRefusal.REFUNDED
        assert not Shipment.objects.exists()

    def test_an_order_shipped_meanwhile_is_not_shipped_again(self, to_ship):
        with (
            connection.execute_wrapper(
                one_write_first(
                    "UPDATE",
                    "UPDATE orders_order SET fulfilment_status = 'shipped' WHERE id = %s",
                    to_ship.pk,
                )
            ),
            pytest.raises(ShipRefused) as refused,
        ):
            order_ship(
                order=to_ship, logistics_type="express", express_company="SF", tracking_no="SF1"
            )

        assert refused.value.reason == ShipRefusal.SHIPPED_OTHERWISE
        assert not Shipment.objects.exists()


class TestShipRefusals:
    def test_an_order_marked_shipped_without_a_shipment_says_so(self, to_ship):
        Order.objects.filter(pk=to_ship.pk).update(fulfilment_status="shipped")

        with pytest.raises(ShipRefused) as refused:
            order_ship(
                order=to_ship, logistics_type="express", express_company="SF", tracking_no="SF1"
            )

        assert refused.value.reason == ShipRefusal.SHIPPED_OTHERWISE
        assert str(refused.value) == "already marked shipped, without a shipment here"

    def test_a_refusal_that_is_not_about_the_details_names_no_field(self, shopper, products):
        unpaid = make_order(shopper, products)

        with pytest.raises(ShipRefused) as refused:
            order_ship(order=unpaid, logistics_type="virtual")

        assert (refused.value.reason, refused.value.field) == (ShipRefusal.UNPAID, "")


class TestReceipt:
    def test_only_this_order_is_received(self, shipped, paid_orders):
        [other] = paid_orders(1, first=7)
        order_ship(order=other, logistics_type="express", express_company="SF", tracking_no="SF2")

        order_receive(order=shipped)

        assert Order.objects.get(pk=other.pk).fulfilment_status == FulfilmentStatus.SHIPPED

    def test_receiving_again_answers_with_the_order(self, shipped):
        order_receive(order=shipped)

        again = order_receive(order=shipped)

        assert (again.outcome, again.order) == (ReceiveOutcome.ALREADY_RECEIVED, shipped)

    def test_receipt_is_one_log_line(self, shipped, caplog):
        with caplog.at_level(logging.INFO, logger="orders.fulfilment"):
            order_receive(order=shipped)

        assert [r.getMessage() for r in caplog.records if r.name == "orders.fulfilment"] == [
            f"order received out_trade_no={shipped.out_trade_no}"
        ]

    def test_an_order_not_shipped_says_when_to_confirm(self, to_ship):
        with pytest.raises(ReceiveRefused) as refused:
            order_receive(order=to_ship)

        assert str(refused.value) == (
            "The order has not shipped yet: confirm receipt once it has arrived."
        )
        assert refused.value.extra() == {"fulfilment_status": "unfulfilled"}


# Every refusal of shipment details, as staff read it (admin, ship_orders): field and words.
INVALID_DETAILS = {
    "unknown-type": (
        {"logistics_type": "drone"},
        "logistics_type",
        "Unknown logistics type “drone”: express, same_city, virtual or self_pickup.",
    ),
    "no-type": (
        {"logistics_type": None},
        "logistics_type",
        "Unknown logistics type “”: express, same_city, virtual or self_pickup.",
    ),
    "express-without-company": (
        {"logistics_type": "express", "tracking_no": "SF1"},
        "express_company",
        "Express delivery needs the express company (WeChat's code, e.g. SF).",
    ),
    "express-without-number": (
        {"logistics_type": "express", "express_company": "SF"},
        "tracking_no",
        "Express delivery needs the tracking number.",
    ),
    "company-not-a-code": (
        {"logistics_type": "express", "express_company": "S F", "tracking_no": "SF1"},
        "express_company",
        "The express company is WeChat's code for it (e.g. SF, YTO, ZTO): at most 64 letters, "
        "digits or dashes.",
    ),
    "number-not-a-code": (
        {"logistics_type": "express", "express_company": "SF", "tracking_no": "=1+1"},
        "tracking_no",
        "The tracking number may only have letters, digits and dashes, at most 64.",
    ),
}


@pytest.mark.parametrize("case", INVALID_DETAILS)
def test_every_refusal_of_the_details_names_the_field_and_says_why(to_ship, case):
    details, field, message = INVALID_DETAILS[case]

    with pytest.raises(ShipRefused) as refused:
        order_ship(order=to_ship, **details)

    assert (refused.value.reason, refused.value.field) == (ShipRefusal.INVALID, field)
    assert str(refused.value) == message


def test_a_type_that_needs_no_details_ships_without_them(to_ship):
    result = order_ship(order=to_ship, logistics_type="virtual")

    assert (result.shipment.express_company, result.shipment.tracking_no) == ("", "")


# Every order that cannot ship, as staff read it.
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "refunded"}, "refunded in full: it does not ship"),
        (
            {"status": "closed"},
            "closed: its payment did not fit the order (see why it needs attention); refund "
            "it rather than ship it",
        ),
        ({"status": "closed", "transaction_id": None}, "closed: it was never paid"),
    ],
)
def test_an_order_that_cannot_ship_says_why(to_ship, changes, message):
    Order.objects.filter(pk=to_ship.pk).update(**changes)

    with pytest.raises(ShipRefused) as refused:
        order_ship(order=to_ship, logistics_type="virtual")

    assert str(refused.value) == message


class TestShipped:
    def test_the_callers_order_says_shipped_and_when(self, to_ship):
        result = order_ship(order=to_ship, logistics_type="virtual")

        assert (to_ship.fulfilment_status, to_ship.shipped_at) == (
            FulfilmentStatus.SHIPPED,
            result.shipment.shipped_at,
        )

    def test_a_shipment_is_announced_after_the_commit(
        self, to_ship, django_capture_on_commit_callbacks
    ):
        heard = []

        def listener(sender, shipment, **kwargs):
            heard.append((sender, shipment))

        shipment_recorded.connect(listener)
        try:
            with django_capture_on_commit_callbacks(execute=True):
                result = order_ship(order=to_ship, logistics_type="virtual")
        finally:
            shipment_recorded.disconnect(listener)

        assert heard == [(Shipment, result.shipment)]

    def test_shipping_is_one_log_line(self, to_ship, caplog):
        with caplog.at_level(logging.INFO, logger="orders.fulfilment"):
            order_ship(order=to_ship, logistics_type="same_city")

        assert [r.getMessage() for r in caplog.records if r.name == "orders.fulfilment"] == [
            f"order shipped out_trade_no={to_ship.out_trade_no} logistics_type=same_city"
        ]


def test_details_not_given_are_empty():
    details = shipment_details_clean(logistics_type="virtual")

    assert (details.express_company, details.tracking_no) == ("", "")
