"""Refunds in the admin: the "Refund…" confirmation page, the other order actions, and the
read-only refund pages (docs/INVARIANTS.md §1.5, §6.3)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import secrets

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from orders.models import Order
from payments.models import Refund
from tests.factories import get_ok, make_order, make_refund, notify_refund

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("refund_certificate")]


CHANGELIST = "/admin/orders/order/"
REFUND = "/secapi/pay/refund"


def refund_page(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/refund/"


def submit(boss_client: Client, order: Order, amount: str, reason: str = "Broken cup"):
    # request_key: the page's one-time key, as a browser sends it back (a fresh page each time).
    data = {"amount": amount, "reason": reason, "request_key": secrets.token_urlsafe(32)}
    return boss_client.post(refund_page(order), data)


def run_action(boss_client: Client, action: str, *orders: Order):
    data = {"action": action, "_selected_action": [o.pk for o in orders]}
    return boss_client.post(CHANGELIST, data, follow=True)


class TestRefundPage:
    def test_the_action_leads_to_a_confirmation_page(self, boss_client, paid, wxpay):
        response = boss_client.post(
            CHANGELIST, {"action": "refund_action", "_selected_action": [paid.pk]}
        )

        assert response.status_code == 302
        assert response["Location"] == refund_page(paid)
        text = get_ok(boss_client, refund_page(paid))
        assert paid.out_trade_no in text
        assert "csrfmiddlewaretoken" in text
        assert 'value="45.00"' in text  # the whole refundable remainder by default
        assert 'name="reason"' in text
        assert wxpay.requests_seen == []

    def test_page_shows_what_is_already_refunded_and_defaults_to_the_rest(
        self, boss_client, paid, wxpay
    ):
        notify_refund(make_refund(paid, 1000))
        make_refund(paid, 230)

        text = get_ok(boss_client, refund_page(paid))

        assert "¥10.00" in text  # refunded
        assert "¥2.30" in text  # in progress
        assert 'value="32.70"' in text

    def test_a_valid_amount_is_refunded_through_wechat(self, boss_client, paid, wxpay):
        response = submit(boss_client, paid, "12.30")

        assert response.status_code == 302
        assert response["Location"] == f"/admin/orders/order/{paid.pk}/change/"
        created = Refund.objects.get()
        assert (created.refund_fee, created.status, created.reason) == (
            1230,
            Refund.Status.PROCESSING,
            "Broken cup",
        )
        assert created.requested_by.username == "boss"
        [call] = wxpay.calls(REFUND)
        assert (call["refund_fee"], call["refund_desc"]) == ("1230", "Broken cup")
        text = get_ok(boss_client, response["Location"])
        assert "accepted by WeChat" in text
        assert created.out_refund_no in text  # the refund inline
        assert "¥12.30" in text

    @pytest.mark.parametrize(
        ("amount", "message"),
        [
            ("0", "greater than or equal to 0.01"),
            ("-1", "greater than or equal to 0.01"),
            ("1.234", "no more than 2 decimal places"),
            ("0.001", "no more than 2 decimal places"),
            ("abc", "Enter a number"),
            ("NaN", "Enter a number"),
            ("45.01", "At most ¥45.00 can still be refunded"),
        ],
    )
    def test_bad_amounts_are_refused_with_a_message(
        self, boss_client, paid, wxpay, amount, message
    ):
        response = submit(boss_client, paid, amount)

        assert response.status_code == 200
        assert message in response.content.decode()
        assert not Refund.objects.exists()
        assert wxpay.requests_seen == []

    def test_amount_converts_to_fen_without_float_rounding(self, boss_client, paid, wxpay):
        submit(boss_client, paid, "0.29")  # 0.29 * 100 is 28.999999999999996 in float

        assert Refund.objects.get().refund_fee == 29

    def test_unpaid_order_is_refused_with_a_message(self, boss_client, shopper, products, wxpay):
        order = make_order(shopper, products)

        response = submit(boss_client, order, "1.00")

        assert "only paid orders can be refunded" in response.content.decode()
        assert not Refund.objects.exists()

    def test_wechat_refusal_is_reported(self, boss_client, paid, wxpay):
        wxpay.path_error_queue[REFUND] = ["NOTENOUGH"]

        submit(boss_client, paid, "45.00")

        text = get_ok(boss_client, f"/admin/orders/order/{paid.pk}/change/")

        assert "refused by WeChat" in text
        assert "NOTENOUGH" in text
        assert Refund.objects.get().status == Refund.Status.FAILED

    def test_no_answer_is_reported_as_retried_later(self, boss_client, paid, wxpay):
        wxpay.path_error_queue[REFUND] = ["SYSTEMERROR"]

        data = {"amount": "45", "request_key": secrets.token_urlsafe(32)}
        response = boss_client.post(refund_page(paid), data, follow=True)

        assert "sent again automatically with the same refund number" in (response.content.decode())
        assert Refund.objects.get().status == Refund.Status.PENDING

    def test_missing_certificate_is_a_message_not_a_crash(self, boss_client, paid, wxpay, settings):
        settings.WECHAT_CERT_PATH = ""

        response = submit(boss_client, paid, "1.00")

        assert response.status_code == 200
        assert "WECHAT_CERT_PATH" in response.content.decode()
        assert not Refund.objects.exists()

    def test_choosing_several_orders_asks_for_one(self, boss_client, paid, shopper, products):
        other = make_order(shopper, products, n=1)

        response = run_action(boss_client, "refund_action", paid, other)

        assert "Choose exactly one order to refund." in response.content.decode()

    def test_staff_without_refund_permission_cannot_refund(self, paid, wxpay):
        clerk = User.objects.create_user("clerk", password="a-long-test-password", is_staff=True)
        clerk.user_permissions.add(Permission.objects.get(codename="view_order"))
        client = Client()
        client.force_login(clerk)

        assert client.get(refund_page(paid)).status_code == 403
        assert client.post(refund_page(paid), {"amount": "1"}).status_code == 403
        assert not Refund.objects.exists()


class TestOtherActions:
    def test_ask_wechat_now_settles_a_processing_refund(self, boss_client, paid, wxpay):
        created = make_refund(paid, 4500)
        wxpay.path_fields["/pay/refundquery"] = {
            "out_refund_no_0": created.out_refund_no,
            "refund_id_0": created.refund_id,
            "refund_fee_0": "4500",
            "refund_status_0": "SUCCESS",
            "refund_success_time_0": "2026-11-27 12:00:05",
        }

        response = run_action(boss_client, "reconcile_action", paid)

        assert "refund result recorded (success)" in response.content.decode()
        assert Order.objects.get(pk=paid.pk).status == Order.Status.REFUNDED

    def test_ask_wechat_now_queries_an_unpaid_order(self, boss_client, shopper, products, wxpay):
        order = make_order(shopper, products, prepay_id="wx1")
        wxpay.path_fields["/pay/orderquery"] = {"trade_state": "NOTPAY"}

        response = run_action(boss_client, "reconcile_action", order)

        assert f"{order.out_trade_no}: waiting" in response.content.decode()
        assert len(wxpay.calls("/pay/orderquery")) == 1

    def test_ask_wechat_now_says_what_it_did_in_the_staff_members_language(
        self, boss_client, shopper, products, wxpay
    ):
        order = make_order(shopper, products, prepay_id="wx1")
        wxpay.path_fields["/pay/orderquery"] = {"trade_state": "NOTPAY"}
        data = {"action": "reconcile_action", "_selected_action": [order.pk]}

        response = boss_client.post(CHANGELIST, data, follow=True, HTTP_ACCEPT_LANGUAGE="zh-hans")

        # Chinese punctuation: a full-width colon.
        assert f"{order.out_trade_no}\uff1a等待中" in response.content.decode()

    def test_close_closes_unpaid_orders_and_explains_paid_ones(
        self, boss_client, paid, shopper, products, wxpay
    ):
        unpaid = make_order(shopper, products, n=1)

        text = run_action(boss_client, "close_action", unpaid, paid).content.decode()

        assert f"{unpaid.out_trade_no}: closed" in text
        assert "cannot be closed" in text
        assert Order.objects.get(pk=unpaid.pk).status == Order.Status.CLOSED
        assert Order.objects.get(pk=paid.pk).status == Order.Status.PAID


class TestRefundAdmin:
    def test_refund_list_shows_yuan_and_finds_by_every_number(self, boss_client, paid, wxpay):
        created = make_refund(paid, 1230)

        assert "¥12.30" in get_ok(boss_client, "/admin/payments/refund/")
        for term in (created.out_refund_no, created.refund_id, paid.out_trade_no):
            assert created.out_refund_no in get_ok(boss_client, f"/admin/payments/refund/?q={term}")
        filtered = get_ok(boss_client, "/admin/payments/refund/?status__exact=processing")
        assert created.out_refund_no in filtered
        assert created.out_refund_no not in get_ok(
            boss_client, "/admin/payments/refund/?status__exact=success"
        )

    def test_refund_page_is_read_only_evidence(self, boss_client, paid, wxpay):
        created = make_refund(paid, 1230)

        text = get_ok(boss_client, f"/admin/payments/refund/{created.pk}/change/")

        assert created.refund_id in text
        assert 'name="status"' not in text
        assert 'name="refund_fee"' not in text
        assert boss_client.post(f"/admin/payments/refund/{created.pk}/delete/").status_code == 403
        assert boss_client.get("/admin/payments/refund/add/").status_code == 403

    def test_refund_notifications_are_in_the_ledger(self, boss_client, paid, wxpay):
        created = make_refund(paid, 4500)
        notify_refund(created)

        text = get_ok(boss_client, "/admin/payments/paymentnotification/?kind__exact=refund")

        assert created.out_refund_no in text
        assert "Refund result recorded" in get_ok(
            boss_client, f"/admin/orders/order/{paid.pk}/change/"
        )
