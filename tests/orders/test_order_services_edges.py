"""orders.services at its edges: what mutation testing found no test for (docs/RELIABILITY.md,
"Mutation testing"). Each test pins one rule a changed line would break unnoticed."""

import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.times import compact_timestamp
from orders.models import Order, OrderItem, Product
from orders.services import (
    MAX_TOTAL_FEE,
    IdempotencyKeyReused,
    OrderLine,
    OutOfStock,
    PaidIfFits,
    ProductUnavailable,
    order_attention_acknowledge,
    order_claim_for_reconcile,
    order_clear_close_pending,
    order_close_local,
    order_create,
    order_flag,
    order_mark_paid,
    order_mark_paid_if_fits,
    order_mark_refunded,
    order_pay_if_fits,
    order_record_unexpected_payment,
    order_set_prepay,
    out_trade_no_new,
    product_stock_adjust,
    product_stock_limit,
    product_stock_unlimit,
)
from tests.factories import (
    DELIVERY,
    TRANSACTION_ID,
    make_order,
    make_shopper,
    notify_body,
    post_notify,
    reload,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def jars(db) -> tuple[Product, Product]:
    return (
        Product.objects.create(name="Jar", price=100, stock=5),
        Product.objects.create(name="Other jar", price=100, stock=5),
    )


class TestStockAdjust:
    def test_nothing_to_add_is_done_at_once(self, jars):
        jar, _ = jars
        before = jar.updated_at

        assert product_stock_adjust(product_id=jar.pk, by=0) is True

        assert (reload(jar).stock, reload(jar).updated_at) == (5, before)

    def test_units_go_to_this_product_only_and_it_is_dated(self, jars):
        jar, other = jars
        before = timezone.now()

        assert product_stock_adjust(product_id=jar.pk, by=3) is True

        assert (reload(jar).stock, reload(other).stock) == (8, 5)
        assert reload(jar).updated_at >= before

    def test_every_unit_left_can_be_removed_and_no_more(self, jars):
        jar, _ = jars

        assert product_stock_adjust(product_id=jar.pk, by=-6) is False
        assert reload(jar).stock == 5
        assert product_stock_adjust(product_id=jar.pk, by=-5) is True
        assert reload(jar).stock == 0

    def test_units_can_be_added_to_an_empty_shelf(self, jars):
        jar, _ = jars
        Product.objects.filter(pk=jar.pk).update(stock=0)

        assert product_stock_adjust(product_id=jar.pk, by=2) is True
        assert reload(jar).stock == 2

    def test_unlimited_stock_is_not_adjusted(self, jars):
        jar, _ = jars
        Product.objects.filter(pk=jar.pk).update(stock=None)

        assert product_stock_adjust(product_id=jar.pk, by=2) is False
        assert reload(jar).stock is None


class TestStockLimits:
    def test_limiting_unlimited_stock_touches_this_product_and_dates_it(self, jars):
        jar, other = jars
        Product.objects.update(stock=None)
        before = timezone.now()

        assert product_stock_limit(product_id=jar.pk, stock=7) is True

        assert (reload(jar).stock, reload(other).stock) == (7, None)
        assert reload(jar).updated_at >= before

    def test_stock_limited_meanwhile_is_left_alone(self, jars):
        jar, _ = jars

        assert product_stock_limit(product_id=jar.pk, stock=7) is False
        assert reload(jar).stock == 5

    def test_unlimiting_dates_the_product(self, jars):
        jar, _ = jars
        before = timezone.now()

        product_stock_unlimit(product_id=jar.pk)

        assert (reload(jar).stock, reload(jar).updated_at >= before) == (None, True)


class TestAcknowledgingAttention:
    def test_only_this_flagged_order_is_cleared_and_it_is_logged(self, shopper, products, caplog):
        order, other = make_order(shopper, products, n=1), make_order(shopper, products, n=2)
        for each in (order, other):
            order_flag(order=each, reason="check it")

        with caplog.at_level(logging.INFO, logger="orders.services"):
            assert order_attention_acknowledge(order_id=order.pk, shown_reason="check it") is True

        assert (reload(order).needs_attention, reload(other).needs_attention) == (False, True)
        assert f"order attention acknowledged pk={order.pk}" in [
            r.getMessage() for r in caplog.records
        ]

    def test_an_order_not_flagged_is_not_acknowledged(self, shopper, products):
        order = make_order(shopper, products, attention_reason="check it")

        assert order_attention_acknowledge(order_id=order.pk, shown_reason="check it") is False


def test_clearing_a_pending_close_tells_the_caller(shopper, products):
    order = make_order(shopper, products, status="closed", close_pending_at_wechat=True)

    order_clear_close_pending(order=order)

    assert order.close_pending_at_wechat is False
    assert reload(order).close_pending_at_wechat is False


class TestUnexpectedPayments:
    def test_an_open_order_paid_wrongly_is_closed_now(self, shopper, products):
        order = make_order(shopper, products)
        before = timezone.now()

        post_notify(notify_body(order, total_fee=1, cash_fee=1))

        order = reload(order)
        assert (order.status, order.transaction_id) == (Order.Status.CLOSED, TRANSACTION_ID)
        assert order.closed_at >= before

    def test_a_closed_order_paid_keeps_when_it_closed(self, shopper, products):
        closed_at = timezone.now() - timedelta(hours=1)
        order = make_order(shopper, products, status="closed", closed_at=closed_at)

        post_notify(notify_body(order))

        assert reload(order).closed_at == closed_at


def test_too_little_stock_names_the_product_and_what_was_wanted(jars):
    jar, _ = jars

    with pytest.raises(OutOfStock) as refused:
        order_create(
            user=make_shopper(),
            lines=[OrderLine(product_id=jar.pk, quantity=6)],
            client_ip="127.0.0.1",
            address=DELIVERY,
        )

    assert (refused.value.product_id, refused.value.wanted) == (jar.pk, 6)
    assert str(refused.value) == "Not enough stock for 'Jar': 5 left."


class TestClosingHere:
    def test_closing_records_when_and_tells_the_caller(self, shopper, products):
        order = make_order(shopper, products)
        before = timezone.now()

        assert order_close_local(order=order) is True

        assert (order.status, order.close_pending_at_wechat) == (Order.Status.CLOSED, False)
        stored = reload(order)
        assert stored.closed_at >= before
        assert (stored.closed_at, stored.close_pending_at_wechat) == (order.closed_at, False)

    def test_a_close_left_for_wechat_says_so(self, shopper, products):
        order = make_order(shopper, products)

        order_close_local(order=order, pending_at_wechat=True)

        assert order.close_pending_at_wechat is True
        assert reload(order).close_pending_at_wechat is True

    def test_an_order_no_longer_unpaid_is_not_closed_and_the_caller_learns_why(
        self, shopper, products
    ):
        order = make_order(shopper, products)
        Order.objects.filter(pk=order.pk).update(
            status="paid", transaction_id=TRANSACTION_ID, paid_at=timezone.now(), paid_fee=4500
        )

        assert order_close_local(order=order) is False
        assert order.status == Order.Status.PAID

    def test_only_reserved_units_of_this_orders_limited_products_go_back(self, shopper, jars):
        jar, other = jars
        unlimited = Product.objects.create(name="Leaflet", price=1, stock=None)
        order = make_order(shopper, {"tea": jar})  # one jar, its stock taken at checkout
        OrderItem.objects.filter(order=order).update(stock_reserved=True)
        OrderItem.objects.create(
            order=order,
            product=unlimited,
            product_name="Leaflet",
            unit_price=1,
            quantity=3,
            stock_reserved=True,
        )
        OrderItem.objects.create(
            order=order,
            product=other,
            product_name="Other jar",
            unit_price=100,
            quantity=2,
            stock_reserved=False,
        )

        order_close_local(order=order)

        assert (reload(jar).stock, reload(other).stock, reload(unlimited).stock) == (6, 5, None)

    def test_a_product_unlimited_since_checkout_is_not_written_to(self, shopper, jars):
        """Unlimited products are never locked: giving units back writes (and so locks)
        only the limited products' rows, even for a line whose units were reserved before
        its product became unlimited."""
        jar, _ = jars
        order = make_order(shopper, {"tea": jar})
        OrderItem.objects.filter(order=order).update(stock_reserved=True)
        Product.objects.filter(pk=jar.pk).update(stock=None)

        with CaptureQueriesContext(connection) as queries:
            order_close_local(order=order)

        table = Product._meta.db_table
        assert [q["sql"] for q in queries if q["sql"].startswith(f'UPDATE "{table}"')] == []
        assert (reload(order).status, reload(jar).stock) == (Order.Status.CLOSED, None)

    def test_a_product_made_unlimited_while_units_go_back_is_not_written_to(
        self, shopper, jars
    ):
        jar, _ = jars
        order = make_order(shopper, {"tea": jar})
        OrderItem.objects.filter(order=order).update(stock_reserved=True)
        table = Product._meta.db_table
        written = []

        def unlimited_just_before(execute, sql, params, many, context):
            if not sql.startswith(f'UPDATE "{table}"') or written:
                return execute(sql, params, many, context)
            written.append(None)  # staff make it unlimited in between
            Product.objects.filter(pk=jar.pk).update(stock=None)
            result = execute(sql, params, many, context)
            written[0] = context["cursor"].rowcount
            return result

        with connection.execute_wrapper(unlimited_just_before):
            order_close_local(order=order)

        assert (written, reload(jar).stock) == ([0], None)


class TestFlags:
    def test_reasons_are_kept_one_per_line_and_once(self, shopper, products):
        order = make_order(shopper, products)

        for reason in ("first", "second", "first"):
            order_flag(order=order, reason=reason)

        assert reload(order).attention_reason == "first\nsecond"
        assert (order.needs_attention, order.attention_reason) == (True, "first\nsecond")


def test_refunding_in_full_tells_the_caller(paid):
    assert order_mark_refunded(order=paid) is True
    assert paid.status == Order.Status.REFUNDED

    assert order_mark_refunded(order=paid) is False


def test_a_claim_lasts_the_seconds_asked_for(shopper, products):
    order = make_order(shopper, products)
    before = timezone.now()

    assert order_claim_for_reconcile(order=order, seconds=60) is True

    claimed_until = reload(order).reconcile_claimed_until
    assert before + timedelta(seconds=60) <= claimed_until <= timezone.now() + timedelta(seconds=60)
    assert order_claim_for_reconcile(order=order, seconds=60) is False


def test_each_change_to_an_order_is_one_log_line(shopper, products, caplog):
    order = make_order(shopper, products)

    with caplog.at_level(logging.INFO, logger="orders.services"):
        order_flag(order=order, reason="look")
        order_close_local(order=order)

    number = order.out_trade_no
    assert [r.getMessage() for r in caplog.records if r.name == "orders.services"] == [
        f"order flagged out_trade_no={number} reason=look",
        f"order closed out_trade_no={number}",
    ]


def test_refunding_is_one_log_line(paid, caplog):
    with caplog.at_level(logging.INFO, logger="orders.services"):
        order_mark_refunded(order=paid)

    assert f"order refunded out_trade_no={paid.out_trade_no}" in [
        r.getMessage() for r in caplog.records
    ]


class TestUnexpectedPaymentRecording:
    def record(self, order: Order, transaction_id: str = TRANSACTION_ID) -> bool:
        return order_record_unexpected_payment(
            order=order,
            transaction_id=transaction_id,
            paid_at=timezone.now(),
            paid_fee=1,
            reason="did not fit",
        )

    def test_only_this_order_gets_the_transaction(self, shopper, products):
        order, other = make_order(shopper, products, n=1), make_order(shopper, products, n=2)

        assert self.record(order) is True

        assert reload(other).transaction_id is None

    def test_a_close_pending_at_wechat_is_over(self, shopper, products):
        order = make_order(shopper, products, status="closed", close_pending_at_wechat=True)

        self.record(order)

        assert reload(order).close_pending_at_wechat is False

    def test_an_order_with_a_transaction_or_paid_is_left_alone(self, shopper, products, paid):
        closed = make_order(shopper, products, n=3, status="closed", transaction_id="42-first")

        assert self.record(closed, "42-second") is False
        assert reload(closed).transaction_id == "42-first"
        assert self.record(paid, "42-third") is False
        assert reload(paid).transaction_id == TRANSACTION_ID


class TestIdempotencyKeys:
    def place(self, shopper, jar, remark: str = "") -> Order:
        return order_create(
            user=shopper,
            lines=[OrderLine(product_id=jar.pk, quantity=1)],
            client_ip="127.0.0.1",
            idempotency_key="checkout-1",
            address=DELIVERY,
            remark=remark,
        ).order

    def test_a_retry_is_answered_with_the_first_order_and_logged(self, shopper, jars, caplog):
        first = self.place(shopper, jars[0])

        with caplog.at_level(logging.INFO, logger="orders.services"):
            again = self.place(shopper, jars[0])

        assert again == first
        assert f"order replayed out_trade_no={first.out_trade_no} for its Idempotency-Key" in [
            r.getMessage() for r in caplog.records
        ]

    def test_the_same_key_with_another_remark_says_what_differs(self, shopper, jars):
        first = self.place(shopper, jars[0])

        with pytest.raises(IdempotencyKeyReused) as refused:
            self.place(shopper, jars[0], remark="ring twice")

        assert str(refused.value) == (
            f"This Idempotency-Key was used for order {first.out_trade_no} with another "
            "address or remark; send a new key for a new order."
        )


class TestCheckout:
    def test_stock_is_taken_from_the_ordered_product_only(self, shopper, jars):
        jar, other = jars

        order_create(
            user=shopper,
            lines=[OrderLine(product_id=jar.pk, quantity=2)],
            client_ip="127.0.0.1",
            address=DELIVERY,
        )

        assert (reload(jar).stock, reload(other).stock) == (3, 5)

    def test_the_unpaid_cap_counts_orders_not_their_lines(self, shopper, jars, settings):
        settings.ORDER_MAX_UNPAID_PER_SHOPPER = 2
        jar, other = jars
        two_lines = [OrderLine(product_id=jar.pk, quantity=1), OrderLine(other.pk, quantity=1)]
        order_create(user=shopper, lines=two_lines, client_ip="127.0.0.1", address=DELIVERY)

        second = order_create(
            user=shopper, lines=two_lines, client_ip="127.0.0.1", address=DELIVERY
        )

        assert second.created

    def test_characters_no_bill_can_carry_are_left_out_of_the_body(self, shopper):
        tea = Product.objects.create(name="Tea\uffff\ufffe\x07 leaves", price=100, stock=None)

        order = order_create(
            user=shopper,
            lines=[OrderLine(product_id=tea.pk, quantity=1)],
            client_ip="127.0.0.1",
            address=DELIVERY,
        ).order

        assert order.body == "Tea leaves"


def test_recording_an_unexpected_payment_tells_the_caller_and_the_log(shopper, products, caplog):
    order = make_order(shopper, products, status="closed", close_pending_at_wechat=True)

    with caplog.at_level(logging.INFO, logger="orders.services"):
        order_record_unexpected_payment(
            order=order,
            transaction_id=TRANSACTION_ID,
            paid_at=timezone.now(),
            paid_fee=1,
            reason="did not fit",
        )

    stored = reload(order)
    assert (order.closed_at, order.close_pending_at_wechat) == (stored.closed_at, False)
    assert order.closed_at is not None
    assert f"order unexpected payment recorded out_trade_no={order.out_trade_no}" in [
        r.getMessage() for r in caplog.records
    ]


class TestOrderCreateDetails:
    def place(self, shopper, product, quantity=1, **fields) -> Order:
        return order_create(
            user=shopper,
            lines=[OrderLine(product_id=product.pk, quantity=quantity)],
            client_ip="203.0.113.7",
            **fields,
        ).order

    def test_what_the_order_keeps_and_logs(self, shopper, caplog):
        voucher = Product.objects.create(
            name="Voucher", price=100, stock=None, requires_shipping=False
        )

        with caplog.at_level(logging.INFO, logger="orders.services"):
            order = self.place(shopper, voucher)

        assert (order.spbill_create_ip, order.remark, order.created_at.microsecond) == (
            "203.0.113.7",
            "",
            0,
        )
        assert (
            f"order created out_trade_no={order.out_trade_no} openid={shopper.openid} total_fee=100"
        ) in [r.getMessage() for r in caplog.records]

    def test_the_largest_total_is_accepted(self, shopper):
        dear = Product.objects.create(
            name="Dear", price=MAX_TOTAL_FEE, stock=None, requires_shipping=False
        )

        assert self.place(shopper, dear).total_fee == MAX_TOTAL_FEE

    def test_the_unit_cap_counts_only_units_held(self, shopper, settings):
        settings.ORDER_MAX_UNPAID_UNITS_PER_SHOPPER = 2
        voucher = Product.objects.create(
            name="Voucher", price=100, stock=None, requires_shipping=False
        )

        assert self.place(shopper, voucher, quantity=2).total_fee == 200

    def test_an_order_number_clash_is_tried_again_once_logged(self, shopper, caplog):
        voucher = Product.objects.create(
            name="Voucher", price=100, stock=None, requires_shipping=False
        )
        earlier = self.place(shopper, voucher)  # an order without an Idempotency-Key
        clashes = []

        def one_clash(execute, sql, params, many, context):
            if sql.startswith("INSERT") and "orders_order" in sql and not clashes:
                clashes.append(sql)
                raise IntegrityError("UNIQUE constraint failed: orders_order.out_trade_no")
            return execute(sql, params, many, context)

        with connection.execute_wrapper(one_clash):
            order = self.place(shopper, voucher)

        assert order.pk != earlier.pk
        assert Order.objects.count() == 2
        assert "order number clash, retrying" in [r.getMessage() for r in caplog.records]

    def test_three_clashes_in_a_row_give_up_with_the_clash(self, shopper, caplog):
        voucher = Product.objects.create(
            name="Voucher", price=100, stock=None, requires_shipping=False
        )
        tries = []

        def always_clash(execute, sql, params, many, context):
            if sql.startswith("INSERT") and "orders_order" in sql:
                tries.append(sql)
                raise IntegrityError("UNIQUE constraint failed: orders_order.out_trade_no")
            return execute(sql, params, many, context)

        with connection.execute_wrapper(always_clash), pytest.raises(IntegrityError):
            self.place(shopper, voucher)

        assert len(tries) == 3
        retried = [r for r in caplog.records if r.getMessage() == "order number clash, retrying"]
        assert len(retried) == 2
        assert not Order.objects.exists()

    def test_the_order_numbers_time_is_the_orders_creation_to_the_second(
        self, shopper, monkeypatch
    ):
        """However long placing it takes (here each reading of the clock a second later)."""
        voucher = Product.objects.create(
            name="Voucher", price=100, stock=None, requires_shipping=False
        )
        start, ticks = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), itertools.count()
        monkeypatch.setattr(timezone, "now", lambda: start + timedelta(seconds=next(ticks)))

        order = self.place(shopper, voucher)

        assert order.out_trade_no[:14] == compact_timestamp(order.created_at)


def test_a_prepay_id_is_stored_on_its_own_order(shopper, products):
    order, other = make_order(shopper, products, n=1), make_order(shopper, products, n=2)

    assert order_set_prepay(order=order, prepay_id="wx-1", expires_at=timezone.now()) is True

    assert (reload(order).prepay_id, reload(other).prepay_id) == ("wx-1", "")


def test_a_name_keeps_every_letter_it_can(shopper):
    xtea = Product.objects.create(name="XL Tea", price=100, stock=None, requires_shipping=False)

    order = order_create(
        user=shopper, lines=[OrderLine(product_id=xtea.pk, quantity=1)], client_ip="127.0.0.1"
    ).order

    assert order.body == "XL Tea"


def test_a_payment_is_one_log_line(shopper, products, caplog):
    order_to_pay = make_order(shopper, products)
    with caplog.at_level(logging.INFO, logger="orders.services"):
        order_mark_paid(
            order=order_to_pay,
            transaction_id=TRANSACTION_ID,
            paid_at=timezone.now(),
            paid_fee=4500,
        )

    assert f"order paid out_trade_no={order_to_pay.out_trade_no}" in [
        r.getMessage() for r in caplog.records
    ]


def test_a_payment_is_recorded_on_its_own_order_only(shopper, products):
    order_to_pay, other = make_order(shopper, products, n=1), make_order(shopper, products, n=2)

    assert order_mark_paid(
        order=order_to_pay, transaction_id=TRANSACTION_ID, paid_at=timezone.now(), paid_fee=4500
    )

    assert (reload(order_to_pay).status, reload(order_to_pay).transaction_id) == (
        Order.Status.PAID,
        TRANSACTION_ID,
    )
    assert (reload(other).status, reload(other).transaction_id) == (Order.Status.UNPAID, None)


class TestStockChangedWhileCheckingOut:
    """Staff change a product between checkout's read and its stock UPDATE: the refusal or
    the reservation follows the product as the UPDATE finds it."""

    @staticmethod
    def just_before_the_stock_update(change):
        """An execute wrapper running ``change()`` once, right before the first UPDATE of a
        product's stock."""
        table = Product._meta.db_table
        done = []

        def wrapper(execute, sql, params, many, context):
            if sql.startswith(f'UPDATE "{table}"') and not done:
                done.append(True)
                change()
            return execute(sql, params, many, context)

        return wrapper

    def place(self, shopper, *products):
        return order_create(
            user=shopper,
            lines=[OrderLine(product_id=p.pk, quantity=1) for p in products],
            client_ip="127.0.0.1",
            address=DELIVERY,
        ).order

    def test_a_product_deleted_meanwhile_is_named(self, shopper, jars):
        jar, _ = jars

        def delete():
            # Raw, past PROTECT (the new order's line is not committed for anyone else).
            table = Product._meta.db_table
            with connection.cursor() as cursor:
                cursor.execute(f'DELETE FROM "{table}" WHERE id = %s', [jar.pk])  # noqa: S608

        with (
            connection.execute_wrapper(self.just_before_the_stock_update(delete)),
            pytest.raises(ProductUnavailable) as refused,
        ):
            self.place(shopper, jar)

        assert str(refused.value) == f"Product {jar.pk} does not exist or is not on sale."

    def test_only_this_orders_line_of_a_product_made_unlimited_is_not_reserved(
        self, shopper, jars
    ):
        jar, other = jars
        earlier = self.place(make_shopper(), jar)  # its unit reserved

        def unlimit():
            Product.objects.filter(pk=jar.pk).update(stock=None)

        with connection.execute_wrapper(self.just_before_the_stock_update(unlimit)):
            order = self.place(shopper, jar, other)

        def reserved(of):
            return dict(of.items.values_list("product_id", "stock_reserved"))

        assert reserved(order) == {jar.pk: False, other.pk: True}
        assert reserved(earlier) == {jar.pk: True}
        assert (reload(jar).stock, reload(other).stock) == (None, 4)


def test_an_order_number_starts_with_the_moment_it_is_given_in_beijing_time():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # 11:04:05 in Beijing

    number = out_trade_no_new(moment)

    assert number[:14] == "20260102110405"
    assert len(number) == 32


def test_paying_at_once_says_which_order_and_whether_it_had_the_payment(shopper, products):
    order = make_order(shopper, products)

    def pay(transaction_id: str):
        return order_pay_if_fits(
            out_trade_no=order.out_trade_no,
            transaction_id=transaction_id,
            paid_at=timezone.now(),
            paid_fee=4500,
            openid=order.openid,
        )

    assert order_mark_paid_if_fits(pay(TRANSACTION_ID)) == PaidIfFits(order.pk, already=False)
    assert order_mark_paid_if_fits(pay(TRANSACTION_ID)) == PaidIfFits(order.pk, already=True)
    assert order_mark_paid_if_fits(pay("4200000000000000000000000999")) is None
    assert reload(order).transaction_id == TRANSACTION_ID
