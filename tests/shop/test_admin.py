"""Staff pages render with real data and never show a secret (docs/INVARIANTS.md §6.3)."""

import pytest
from django.test import Client

from accounts.models import User
from orders.models import Order
from payments.models import PaymentNotification
from tests.factories import SESSION_KEY, get_ok, make_order, notify_body, post_notify

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    admin = User.objects.create_superuser("boss", "boss@example.com", "a-long-test-password")
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def paid_order(shopper, products):
    User.objects.filter(pk=shopper.pk).update(session_key=SESSION_KEY)
    order = make_order(shopper, products)
    post_notify(notify_body(order))
    return Order.objects.get(pk=order.pk)


def test_order_list_shows_yuan_status_and_finds_by_every_id(staff, paid_order):
    text = get_ok(staff, "/admin/orders/order/")
    assert "¥45.00" in text
    for term in (paid_order.out_trade_no, paid_order.transaction_id, paid_order.openid, "Tea"):
        assert paid_order.out_trade_no in get_ok(staff, f"/admin/orders/order/?q={term}")
    assert paid_order.out_trade_no in get_ok(staff, "/admin/orders/order/?status__exact=paid")


def test_order_page_shows_items_and_notifications_read_only(staff, paid_order):
    text = get_ok(staff, f"/admin/orders/order/{paid_order.pk}/change/")
    assert paid_order.transaction_id in text
    assert "¥45.00" in text
    assert "Order marked paid" in text
    assert 'name="status"' not in text  # payment state is not editable
    assert 'name="transaction_id"' not in text


def test_flagged_orders_are_one_click_away(staff, shopper, products):
    order = make_order(shopper, products)
    post_notify(notify_body(order, total_fee=1))

    text = get_ok(staff, "/admin/orders/order/?needs_attention__exact=1")
    assert order.out_trade_no in text


def test_notification_ledger_is_read_only_evidence(staff, paid_order):
    row = PaymentNotification.objects.get()
    text = get_ok(staff, f"/admin/payments/paymentnotification/{row.pk}/change/")
    assert paid_order.out_trade_no in text
    assert "<textarea" not in text
    assert staff.post(f"/admin/payments/paymentnotification/{row.pk}/delete/").status_code == 403
    assert get_ok(staff, "/admin/payments/paymentnotification/?outcome__exact=paid")


def test_user_pages_never_show_the_session_key(staff, paid_order):
    get_ok(staff, "/admin/accounts/user/")
    text = get_ok(staff, f"/admin/accounts/user/{paid_order.user_id}/change/")
    assert paid_order.openid in text


def test_product_pages_render(staff, products):
    assert "¥45.00" in get_ok(staff, "/admin/orders/product/")
    get_ok(staff, f"/admin/orders/product/{products['tea'].pk}/change/")
    get_ok(staff, "/admin/")
