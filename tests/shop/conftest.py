import pytest
from django.test import Client

from accounts.models import User
from orders.models import Order
from tests.factories import make_order, notify_body, post_notify


@pytest.fixture
def boss(db) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", "a-long-test-password")


@pytest.fixture
def boss_client(boss) -> Client:
    client = Client()
    client.force_login(boss)
    return client


@pytest.fixture
def paid(shopper, products) -> Order:
    """¥45.00, paid through a notify at 2026-11-27 10:30:15 Beijing time."""
    order = make_order(shopper, products)
    post_notify(notify_body(order))
    return Order.objects.get(pk=order.pk)
