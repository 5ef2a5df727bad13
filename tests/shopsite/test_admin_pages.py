"""Staff pages render with real data and never show a secret (docs/INVARIANTS.md §6.3)."""

import pytest

from payments.models import PaymentNotification
from tests.factories import get_ok, make_order, notify_body, post_notify

pytestmark = pytest.mark.django_db


def test_order_list_shows_yuan_status_and_finds_by_every_id(boss_client, paid):
    text = get_ok(boss_client, "/admin/orders/order/")
    assert "¥45.00" in text
    for term in (paid.out_trade_no, paid.transaction_id, paid.openid, "Tea"):
        assert paid.out_trade_no in get_ok(boss_client, f"/admin/orders/order/?q={term}")
    assert paid.out_trade_no in get_ok(boss_client, "/admin/orders/order/?status__exact=paid")


def test_order_page_shows_items_and_notifications_read_only(boss_client, paid):
    text = get_ok(boss_client, f"/admin/orders/order/{paid.pk}/change/")
    assert paid.transaction_id in text
    assert "¥45.00" in text
    assert "Order marked paid" in text
    assert 'name="status"' not in text  # payment state is not editable
    assert 'name="transaction_id"' not in text


def test_flagged_orders_are_one_click_away(boss_client, shopper, products):
    order = make_order(shopper, products)
    post_notify(notify_body(order, total_fee=1))

    text = get_ok(boss_client, "/admin/orders/order/?needs_attention__exact=1")
    assert order.out_trade_no in text


def test_notification_ledger_is_read_only_evidence(boss_client, paid):
    row = PaymentNotification.objects.get()
    text = get_ok(boss_client, f"/admin/payments/paymentnotification/{row.pk}/change/")
    assert paid.out_trade_no in text
    assert "<textarea" not in text
    assert (
        boss_client.post(f"/admin/payments/paymentnotification/{row.pk}/delete/").status_code == 403
    )
    assert get_ok(boss_client, "/admin/payments/paymentnotification/?outcome__exact=paid")


def test_user_pages_never_show_the_session_key(boss_client, paid):
    get_ok(boss_client, "/admin/accounts/user/")
    text = get_ok(boss_client, f"/admin/accounts/user/{paid.user_id}/change/")
    assert paid.openid in text


def test_product_pages_render(boss_client, products):
    assert "¥45.00" in get_ok(boss_client, "/admin/orders/product/")
    get_ok(boss_client, f"/admin/orders/product/{products['tea'].pk}/change/")
    get_ok(boss_client, "/admin/")
