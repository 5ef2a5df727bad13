"""Closing an order gives back exactly the units it took, whatever happened to the product."""

import pytest

from orders.models import Product
from orders.services import OrderLine, order_close_local, order_create
from tests.factories import DELIVERY

pytestmark = pytest.mark.django_db


def test_closing_gives_back_the_reserved_units(shopper, products):
    order = order_create(
        user=shopper,
        lines=[OrderLine(product_id=products["tea"].pk, quantity=3)],
        client_ip="1.2.3.4",
        address=DELIVERY,
    ).order
    assert Product.objects.get(pk=products["tea"].pk).stock == 7

    order_close_local(order=order)

    assert Product.objects.get(pk=products["tea"].pk).stock == 10


def test_units_never_taken_are_not_given_back_after_the_product_got_limited_stock(
    shopper, products
):
    cup = products["cup"]  # unlimited stock when ordered: nothing is taken
    order = order_create(
        user=shopper,
        lines=[OrderLine(product_id=cup.pk, quantity=4)],
        client_ip="1.2.3.4",
        address=DELIVERY,
    ).order
    Product.objects.filter(pk=cup.pk).update(stock=5)  # staff limit it meanwhile

    order_close_local(order=order)

    assert Product.objects.get(pk=cup.pk).stock == 5
