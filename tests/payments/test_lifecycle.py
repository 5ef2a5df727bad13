"""Closing orders and reconciling them with WeChat (payments.lifecycle, reconcile_orders)."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from orders.models import Order, Product
from payments.lifecycle import ReconcileAction, Reconciled, order_reconcile
from payments.models import PaymentNotification
from tests.factories import (
    NOTIFY_SUCCESS,
    TRANSACTION_ID,
    client_for,
    delivery_address,
    make_shopper,
    notify_body,
    post_notify,
)

pytestmark = pytest.mark.django_db

PAY = "/payment/order"


def stock(products) -> int:
    return Product.objects.get(pk=products["tea"].pk).stock


def paid_trade(order: Order, **overrides) -> dict:
    fields = {
        "trade_state": "SUCCESS",
        "out_trade_no": order.out_trade_no,
        "transaction_id": TRANSACTION_ID,
        "total_fee": str(order.total_fee),
        "openid": order.openid,
        "time_end": "20261127103015",
        "trade_type": "JSAPI",
    }
    fields.update(overrides)
    return fields


def reconcile(*args) -> str:
    out = StringIO()
    call_command("reconcile_orders", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


class TestClose:
    def close(self, api, order):
        return api.post(f"/orders/{order.out_trade_no}/close")

    def test_fresh_order_closes_here_and_waits_to_close_at_wechat(
        self, api, place, products, wxpay
    ):
        order = place()
        assert stock(products) == 7

        response = self.close(api, order)

        assert response.status_code == 200
        assert response.json()["status"] == "closed"
        assert stock(products) == 10
        order.refresh_from_db()
        assert (order.status, order.close_pending_at_wechat) == ("closed", True)
        assert wxpay.calls("/pay/closeorder") == []  # WeChat refuses within 5 minutes

    def test_older_order_is_closed_at_wechat_too(self, api, place, products, wxpay):
        order = place(minutes_ago=6)

        assert self.close(api, order).status_code == 200

        assert [c["out_trade_no"] for c in wxpay.calls("/pay/closeorder")] == [order.out_trade_no]
        order.refresh_from_db()
        assert (order.status, order.close_pending_at_wechat) == ("closed", False)
        assert stock(products) == 10

    def test_closing_twice_returns_stock_once(self, api, place, products, wxpay):
        order = place()

        assert self.close(api, order).status_code == 200
        assert self.close(api, order).status_code == 200

        assert stock(products) == 10

    def test_paid_order_cannot_be_closed(self, api, place, products, wxpay):
        order = place()
        post_notify(notify_body(order))

        response = self.close(api, order)

        assert response.status_code == 409
        assert response.json()["status"] == "paid"
        assert stock(products) == 7

    def test_order_paid_meanwhile_is_recorded_paid_instead(self, api, place, products, wxpay):
        order = place(minutes_ago=6)
        wxpay.path_errors["/pay/closeorder"] = "ORDERPAID"
        wxpay.path_fields["/pay/orderquery"] = paid_trade(order)

        response = self.close(api, order)

        assert response.status_code == 409
        assert response.json()["status"] == "paid"
        order.refresh_from_db()
        assert (order.status, order.transaction_id) == ("paid", TRANSACTION_ID)
        assert stock(products) == 7

    def test_wechat_failure_leaves_the_order_open(self, api, place, products, wxpay):
        order = place(minutes_ago=6)
        wxpay.path_errors["/pay/closeorder"] = "SYSTEMERROR"

        response = self.close(api, order)

        assert response.status_code == 502
        assert response.json()["err_code"] == "SYSTEMERROR"
        order.refresh_from_db()
        assert order.status == "unpaid"
        assert stock(products) == 7

    def test_only_the_owner_can_close(self, place, wxpay):
        order = place()
        stranger = client_for(make_shopper())

        assert stranger.post(f"/orders/{order.out_trade_no}/close").status_code == 404
        assert Order.objects.get(pk=order.pk).status == "unpaid"

    def test_a_closed_order_cannot_be_paid_again(self, api, place, wxpay):
        order = place()
        self.close(api, order)

        response = api.post(PAY, {"out_trade_no": order.out_trade_no}, format="json")

        assert response.status_code == 409

    def test_payment_arriving_after_close_is_flagged_for_staff(self, api, place, wxpay):
        order = place()
        self.close(api, order)

        assert post_notify(notify_body(order)).content == NOTIFY_SUCCESS

        order.refresh_from_db()
        assert order.status == "closed"
        assert order.needs_attention
        assert order.transaction_id == TRANSACTION_ID


class TestReconcile:
    def test_payment_whose_notify_never_came_is_recorded(self, place, wxpay):
        order = place(minutes_ago=10)
        wxpay.path_fields["/pay/orderquery"] = paid_trade(order)

        output = reconcile()

        order.refresh_from_db()
        assert (order.status, order.transaction_id) == ("paid", TRANSACTION_ID)
        assert "payment recorded (paid)" in output

    def test_queried_payment_with_another_amount_is_flagged_not_paid(self, place, wxpay):
        order = place(minutes_ago=10)
        wxpay.path_fields["/pay/orderquery"] = paid_trade(order, total_fee="1")

        reconcile()

        order.refresh_from_db()
        # Recorded for a refund (closed with its transaction), never marked paid.
        assert (order.status, order.needs_attention, order.paid_fee) == ("closed", True, 1)

    def test_recent_orders_are_left_to_their_notify(self, place, wxpay):
        place(minutes_ago=1)

        reconcile()

        assert wxpay.calls("/pay/orderquery") == []

    def test_unpaid_order_within_its_time_waits(self, place, products, wxpay):
        order = place(minutes_ago=10)
        wxpay.path_fields["/pay/orderquery"] = {"trade_state": "NOTPAY"}

        assert "waiting" in reconcile()
        assert Order.objects.get(pk=order.pk).status == "unpaid"
        assert wxpay.calls("/pay/closeorder") == []

    def test_expired_unpaid_order_is_closed_at_wechat_and_here(self, place, products, wxpay):
        order = place(minutes_ago=40)
        wxpay.path_fields["/pay/orderquery"] = {"trade_state": "NOTPAY"}

        output = reconcile()

        assert "closed (expired)" in output
        assert len(wxpay.calls("/pay/closeorder")) == 1
        assert Order.objects.get(pk=order.pk).status == "closed"
        assert stock(products) == 10

    @pytest.mark.parametrize("state", ["CLOSED", "REVOKED", "PAYERROR"])
    def test_order_wechat_closed_is_closed_here(self, place, products, wxpay, state):
        order = place(minutes_ago=10)
        wxpay.path_fields["/pay/orderquery"] = {"trade_state": state}

        reconcile()

        assert Order.objects.get(pk=order.pk).status == "closed"
        assert stock(products) == 10

    def test_expired_order_that_never_reached_wechat_is_closed_without_asking(
        self, place, products, wxpay
    ):
        order = place(minutes_ago=40)
        Order.objects.filter(pk=order.pk).update(prepay_id="")

        reconcile()

        assert Order.objects.get(pk=order.pk).status == "closed"
        assert wxpay.requests_seen == []

    def test_close_left_pending_is_finished_at_wechat(self, api, place, wxpay):
        order = place()
        api.post(f"/orders/{order.out_trade_no}/close")
        Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(minutes=6))

        assert "closed at WeChat" in reconcile()

        assert len(wxpay.calls("/pay/closeorder")) == 1
        assert not Order.objects.get(pk=order.pk).close_pending_at_wechat
        reconcile()
        assert len(wxpay.calls("/pay/closeorder")) == 1

    def test_pending_close_finds_a_late_payment_and_flags_it(self, api, place, wxpay):
        order = place()
        api.post(f"/orders/{order.out_trade_no}/close")
        Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(minutes=6))
        wxpay.path_errors["/pay/closeorder"] = "ORDERPAID"
        wxpay.path_fields["/pay/orderquery"] = paid_trade(order)

        reconcile()

        order.refresh_from_db()
        assert (order.status, order.needs_attention, order.transaction_id) == (
            "closed",
            True,
            TRANSACTION_ID,
        )

    def test_running_twice_changes_nothing_more(self, place, wxpay):
        order = place(minutes_ago=10)
        wxpay.path_fields["/pay/orderquery"] = paid_trade(order)
        reconcile()
        Order.objects.filter(pk=order.pk).update(reconcile_claimed_until=None)

        output = reconcile()

        assert "0 orders looked at" in output
        assert Order.objects.get(pk=order.pk).status == "paid"

    def test_an_order_claimed_by_another_run_is_skipped(self, place, wxpay):
        order = place(minutes_ago=10)
        Order.objects.filter(pk=order.pk).update(
            reconcile_claimed_until=timezone.now() + timedelta(minutes=1)
        )

        reconcile()

        assert wxpay.calls("/pay/orderquery") == []

    def test_wechat_errors_are_counted_and_change_nothing(self, place, wxpay):
        order = place(minutes_ago=40)
        wxpay.path_errors["/pay/orderquery"] = "SYSTEMERROR"

        output = reconcile()

        assert "WeChat error (SystemBusy)" in output
        assert Order.objects.get(pk=order.pk).status == "unpaid"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_reconcile_and_notify_pay_once(products, wxpay):
    shopper = make_shopper()
    api = client_for(shopper)
    response = api.post(
        PAY,
        {
            "items": [{"product_id": products["tea"].pk, "quantity": 1}],
            "address": delivery_address(),
        },
        format="json",
    )
    order = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
    wxpay.path_fields["/pay/orderquery"] = paid_trade(order)
    body = notify_body(order)
    barrier = threading.Barrier(8)
    results = []

    def notify():
        try:
            barrier.wait()
            results.append(post_notify(body).content)
        finally:
            connection.close()

    def query():
        try:
            barrier.wait()
            results.append(order_reconcile(order=Order.objects.get(pk=order.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=notify if n % 2 else query) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    order.refresh_from_db()
    assert (order.status, order.transaction_id, order.needs_attention) == (
        "paid",
        TRANSACTION_ID,
        False,
    )
    assert results.count(NOTIFY_SUCCESS) == 4
    notified_paid = PaymentNotification.objects.filter(outcome="paid").count()
    reconciled_paid = results.count((Reconciled(ReconcileAction.PAYMENT_RECORDED, "paid"),))
    assert notified_paid + reconciled_paid == 1
    assert Product.objects.get(pk=products["tea"].pk).stock == 9
