"""Order and product pages that stay right when the page is old: an order's flag, product
stock reserved while the form was open, names WeChat cannot carry."""

import pytest

from orders.admin import OrderAdmin
from orders.models import Order, Product
from orders.services import OrderLine, order_create, order_flag
from tests.admin_forms import (
    form_data,
    order_page,
    product_page,
)
from tests.factories import (
    DELIVERY,
    make_order,
    make_shopper,
    notify_body,
    post_notify,
    reload,
)

pytestmark = pytest.mark.django_db


# -- 3. the order form saves only the acknowledgment ------------------------------------------


def during_save(monkeypatch, event) -> None:
    """Run ``event`` just after the admin has read the order to save a form: a write that
    commits while the admin holds its copy of the row."""
    read = OrderAdmin.get_object

    def get_object(self, request, object_id, from_field=None):
        order = read(self, request, object_id, from_field)
        if request.method == "POST":
            event()
        return order

    monkeypatch.setattr(OrderAdmin, "get_object", get_object)


class TestOrderForm:
    def test_a_payment_during_the_edit_is_kept(self, boss_client, shopper, products):
        order = make_order(shopper, products)
        data = form_data(boss_client, order_page(order), "order_form")
        post_notify(notify_body(order))  # WeChat pays while the page is open

        response = boss_client.post(order_page(order), data)

        assert response.status_code == 302
        saved = reload(order)
        assert saved.status == Order.Status.PAID
        assert saved.transaction_id and saved.paid_at

    def test_a_payment_while_the_admin_saves_is_kept(
        self, boss_client, shopper, products, monkeypatch
    ):
        order = make_order(shopper, products)
        data = form_data(boss_client, order_page(order), "order_form")
        during_save(monkeypatch, lambda: post_notify(notify_body(order)))

        response = boss_client.post(order_page(order), data)

        assert response.status_code == 302
        saved = reload(order)
        assert saved.status == Order.Status.PAID
        assert saved.transaction_id and saved.paid_at

    def test_a_flag_raised_while_the_admin_saves_is_kept(
        self, boss_client, shopper, products, monkeypatch
    ):
        order = make_order(shopper, products, needs_attention=True, attention_reason="Paid less")
        data = form_data(boss_client, order_page(order), "order_form")
        del data["needs_attention"]
        during_save(monkeypatch, lambda: order_flag(order=reload(order), reason="Second payment"))

        boss_client.post(order_page(order), data)

        saved = reload(order)
        assert saved.needs_attention
        assert saved.attention_reason == "Paid less\nSecond payment"

    def test_unticking_clears_the_flag_and_keeps_the_reason(self, boss_client, shopper, products):
        order = make_order(shopper, products, needs_attention=True, attention_reason="Paid less")
        data = form_data(boss_client, order_page(order), "order_form")
        del data["needs_attention"]

        response = boss_client.post(order_page(order), data)

        assert response.status_code == 302
        saved = reload(order)
        assert (saved.needs_attention, saved.attention_reason) == (False, "Paid less")

    def test_a_reason_raised_during_the_edit_keeps_the_flag(self, boss_client, shopper, products):
        order = make_order(shopper, products, needs_attention=True, attention_reason="Paid less")
        data = form_data(boss_client, order_page(order), "order_form")
        order_flag(order=reload(order), reason="Second payment")
        del data["needs_attention"]

        response = boss_client.post(order_page(order), data, follow=True)

        saved = reload(order)
        assert saved.needs_attention
        assert saved.attention_reason == "Paid less\nSecond payment"
        assert "raised while" in response.content.decode()
        assert "Second payment" in response.content.decode()

    def test_the_reason_is_not_editable(self, boss_client, shopper, products):
        order = make_order(shopper, products, needs_attention=True, attention_reason="Paid less")
        data = form_data(boss_client, order_page(order), "order_form")

        assert "attention_reason" not in data
        boss_client.post(order_page(order), {**data, "attention_reason": "nothing"})

        assert reload(order).attention_reason == "Paid less"


# -- 2. product stock composes with reservations; names XML can carry -------------------------


def reserve(product: Product, quantity: int) -> None:
    order_create(
        user=make_shopper(),
        lines=[OrderLine(product.pk, quantity)],
        client_ip="127.0.0.1",
        address=DELIVERY,
    )


class TestProductForm:
    def test_an_adjustment_adds_to_the_stock_at_saving_time(self, boss_client, products):
        tea = products["tea"]  # 10 units
        data = form_data(boss_client, product_page(tea), "product_form")
        reserve(tea, 2)  # a shopper orders while the page is open

        response = boss_client.post(
            product_page(tea), {**data, "stock_change": "5", "name": "Oolong tea 500g"}
        )

        assert response.status_code == 302
        saved = reload(tea)
        assert (saved.stock, saved.name) == (8 + 5, "Oolong tea 500g")

    def test_saving_without_an_adjustment_leaves_reservations_alone(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")
        reserve(tea, 3)

        boss_client.post(product_page(tea), {**data, "price": "4800"})

        assert (reload(tea).stock, reload(tea).price) == (7, 4800)

    def test_removing_units_stops_at_what_is_left(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")
        reserve(tea, 8)

        response = boss_client.post(product_page(tea), {**data, "stock_change": "-3"})

        assert response.status_code == 200
        assert "at most 2" in response.content.decode()
        assert reload(tea).stock == 2

    def test_removing_units(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        boss_client.post(product_page(tea), {**data, "stock_change": "-4"})

        assert reload(tea).stock == 6

    def test_stock_can_become_unlimited(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        boss_client.post(product_page(tea), {**data, "unlimited": "on"})

        assert reload(tea).stock is None

    def test_unlimited_stock_can_become_a_number(self, boss_client, products):
        cup = products["cup"]  # unlimited
        data = form_data(boss_client, product_page(cup), "product_form")
        assert data["unlimited"] == "on"
        del data["unlimited"]

        boss_client.post(product_page(cup), {**data, "stock_change": "7"})

        assert reload(cup).stock == 7

    def test_unlimited_to_a_number_needs_the_number(self, boss_client, products):
        cup = products["cup"]
        data = form_data(boss_client, product_page(cup), "product_form")
        del data["unlimited"]

        response = boss_client.post(product_page(cup), data)

        assert response.status_code == 200
        assert reload(cup).stock is None

    def test_the_stock_is_shown_but_not_typed(self, boss_client, products):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        assert "stock" not in data
        boss_client.post(product_page(tea), {**data, "stock": "1000"})

        assert reload(tea).stock == 10

    def test_a_new_product_gets_its_stock(self, boss_client, db):
        data = form_data(boss_client, "/admin/orders/product/add/", "product_form")

        boss_client.post(
            "/admin/orders/product/add/",
            {**data, "name": "Kettle", "price": "9900", "stock": "3", "active": "on"},
        )

        assert Product.objects.get(name="Kettle").stock == 3

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("Tea\x00", "Null characters are not allowed"),  # Django's own check
            ("Tea\x01cup", "control characters"),
            ("Tea\x0bcup", "control characters"),
            ("Tea\x1fcup", "control characters"),
            ("\x0cTea\x0c pot", "control characters"),
        ],
    )
    def test_a_name_xml_cannot_carry_is_refused(self, boss_client, products, name, message):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        response = boss_client.post(product_page(tea), {**data, "name": name})

        assert response.status_code == 200
        assert message in response.content.decode()
        assert reload(tea).name == "Oolong tea 250g"

    def test_a_new_product_with_such_a_name_is_refused(self, boss_client, db):
        data = form_data(boss_client, "/admin/orders/product/add/", "product_form")

        response = boss_client.post(
            "/admin/orders/product/add/", {**data, "name": "Tea\x07", "price": "100"}
        )

        assert response.status_code == 200
        assert not Product.objects.exists()
