"""Statuses as coloured badges, amounts as ¥ with two decimals, in lists and pages."""

import pytest

from core.display import badge
from orders.badges import order_status_badge
from orders.models import Order
from payments.badges import REFUND_STATUS
from payments.models import Refund
from tests.factories import get_ok, make_order, make_refund

pytestmark = pytest.mark.django_db


def test_a_badge_is_an_inline_styled_span_with_escaped_text():
    html = badge("<b>Paid</b>", "#1e7b34", title='say "hi"')

    assert html.startswith('<span title="say &quot;hi&quot;" style="display:inline-block;')
    assert "background:#1e7b34;color:#fff" in html
    assert "&lt;b&gt;Paid&lt;/b&gt;</span>" in html


def test_each_order_status_has_its_own_colour():
    colours = {
        order_status_badge(Order(status=s)).split("background:")[1][:7] for s in Order.Status
    }

    assert len(colours) == len(Order.Status)


def test_order_list_and_page_show_badges_and_yuan(boss_client, paid, shopper, products):
    make_order(shopper, products, n=1)

    listing = get_ok(boss_client, "/admin/orders/order/")
    page = get_ok(boss_client, f"/admin/orders/order/{paid.pk}/change/")

    assert ">Paid</span>" in listing and ">Unpaid</span>" in listing
    assert "¥45.00" in listing
    assert ">Paid</span>" in page
    assert ">Order marked paid</span>" in page  # the notification inline


def test_refund_badges_say_one_word_and_explain_on_hover(
    boss_client, paid, wxpay, refund_certificate
):
    created = make_refund(paid, 1230)

    listing = get_ok(boss_client, "/admin/payments/refund/")
    order_page = get_ok(boss_client, f"/admin/orders/order/{paid.pk}/change/")

    title = str(Refund.Status.PROCESSING.label)
    assert f'title="{title}"' in listing and ">Processing</span>" in listing
    assert ">Processing</span>" in order_page
    assert "¥12.30 refunded" not in order_page  # still processing
    assert "¥12.30 in progress; ¥32.70 refundable" in order_page
    assert set(REFUND_STATUS) == set(Refund.Status)
    assert created.out_refund_no in order_page


def test_notification_ledger_shows_outcome_badges(boss_client, paid):
    listing = get_ok(boss_client, "/admin/payments/paymentnotification/")

    assert ">Order marked paid</span>" in listing


def test_order_page_has_a_refund_button_for_paid_orders_only(boss_client, paid, shopper, products):
    unpaid = make_order(shopper, products, n=1)

    assert f"/admin/orders/order/{paid.pk}/refund/" in get_ok(
        boss_client, f"/admin/orders/order/{paid.pk}/change/"
    )
    page = get_ok(boss_client, f"/admin/orders/order/{unpaid.pk}/change/")
    assert f"/admin/orders/order/{unpaid.pk}/refund/" not in page
