"""The order page's payment actions stay right when a page is old, submitted twice or typed
oddly, and only staff who may change orders use them: refunds, "Ask WeChat now"."""

import threading

import pytest
from django.db import connection

from orders.models import Order
from payments.models import Refund
from payments.refunds import RefundError, RefundRequest, refund_create
from tests.admin_forms import (
    CHANGELIST,
    action_choices,
    order_page,
    paid_other,
    refund_form,
    refund_page,
    staff_with,
)
from tests.factories import (
    get_ok,
    make_order,
    reload,
    staff_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("refund_certificate")]

REFUND = "/secapi/pay/refund"


# -- 1. one confirmation page, at most one refund ------------------------------------------------


class TestRefundSubmittedTwice:
    def test_the_page_carries_a_one_time_key(self, boss_client, paid, wxpay):
        first = refund_form(boss_client, paid)
        second = refund_form(boss_client, paid)

        assert len(first["request_key"]) >= 32
        assert first["request_key"] != second["request_key"]

    def test_the_same_form_posted_twice_refunds_once(self, boss_client, paid, wxpay):
        data = refund_form(boss_client, paid, amount="12.30")

        first = boss_client.post(refund_page(paid), data)
        second = boss_client.post(refund_page(paid), data, follow=True)

        assert first.status_code == 302
        refund = Refund.objects.get()
        assert (refund.refund_fee, refund.status) == (1230, Refund.Status.PROCESSING)
        assert refund.request_key == data["request_key"]
        assert len(wxpay.calls(REFUND)) == 1
        text = second.content.decode()
        assert "already submitted" in text
        assert refund.out_refund_no in text

    def test_a_resubmitted_form_changed_meanwhile_still_refunds_once(
        self, boss_client, paid, wxpay
    ):
        data = refund_form(boss_client, paid, amount="10.00")
        boss_client.post(refund_page(paid), data)

        boss_client.post(refund_page(paid), {**data, "amount": "20.00"})

        assert Refund.objects.get().refund_fee == 1000
        assert len(wxpay.calls(REFUND)) == 1

    def test_a_pending_refund_is_not_sent_again_by_the_resubmitted_form(
        self, boss_client, paid, wxpay
    ):
        wxpay.path_error_queue[REFUND] = ["SYSTEMERROR"]
        data = refund_form(boss_client, paid, amount="45.00")
        boss_client.post(refund_page(paid), data)

        response = boss_client.post(refund_page(paid), data, follow=True)

        assert Refund.objects.get().status == Refund.Status.PENDING
        assert len(wxpay.calls(REFUND)) == 1  # reconciliation sends it again, once
        assert "already submitted" in response.content.decode()

    def test_a_form_without_its_key_refunds_nothing(self, boss_client, paid, wxpay):
        data = refund_form(boss_client, paid)
        del data["request_key"]

        response = boss_client.post(refund_page(paid), data)

        assert response.status_code == 200
        assert "open it again" in response.content.decode()
        assert not Refund.objects.exists()
        assert wxpay.requests_seen == []

    def test_the_service_returns_the_refund_already_made_with_a_key(self, paid, wxpay):
        first = refund_create(order=paid, refund_fee=100, reason="", request_key="k" * 40)
        again = refund_create(order=paid, refund_fee=4500, reason="", request_key="k" * 40)

        assert (first.created, again.created) == (True, False)
        assert again.refund.pk == first.refund.pk
        assert not hasattr(again.refund, "replayed")
        assert Refund.objects.count() == 1

    def test_the_service_refuses_a_key_used_for_another_order(self, paid, shopper, products, wxpay):
        other = paid_other(shopper, products)
        refund_create(order=paid, refund_fee=100, reason="", request_key="k" * 40)

        with pytest.raises(RefundError, match="another order"):
            refund_create(order=other, refund_fee=100, reason="", request_key="k" * 40)
        assert Refund.objects.count() == 1


def _at_once(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = []

    def run(n):
        try:
            barrier.wait()
            results.append(work(n))
        except Exception as exc:  # the test asserts on what came out
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_posts_of_one_form_at_once_refund_once(paid, boss, wxpay):
    clients = [staff_client(boss), staff_client(boss)]
    data = refund_form(clients[0], paid, amount="45.00")

    statuses = _at_once(2, lambda n: clients[n].post(refund_page(paid), data).status_code)

    assert statuses == [302, 302]
    assert Refund.objects.count() == 1
    assert len(wxpay.calls(REFUND)) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_key_for_two_orders_at_once_makes_one_refund(paid, shopper, products, wxpay):
    other = paid_other(shopper, products)
    orders = [paid, other]

    def refund(n):
        return refund_create(order=orders[n], refund_fee=100, reason="", request_key="k" * 40)

    results = _at_once(2, refund)

    made = [r for r in results if isinstance(r, RefundRequest)]
    refused = [r for r in results if isinstance(r, RefundError)]
    assert (len(made), len(refused)) == (1, 1)
    assert "another order" in str(refused[0])
    assert Refund.objects.count() == 1


# -- 6. a reason WeChat's XML cannot carry ---------------------------------------------------


class TestRefundReason:
    def test_a_control_character_is_a_form_error(self, boss_client, paid, wxpay):
        data = refund_form(boss_client, paid, amount="1.00", reason="Broken\x1bcup")

        response = boss_client.post(refund_page(paid), data)

        assert response.status_code == 200
        assert "control characters" in response.content.decode()
        assert not Refund.objects.exists()
        assert wxpay.requests_seen == []

    @pytest.mark.parametrize("reason", ["\x1b", "a\x00b", "tab\x0bbed", "\ufffe"])
    def test_the_service_refuses_it_too(self, paid, wxpay, reason):
        with pytest.raises(RefundError, match="control characters"):
            refund_create(order=paid, refund_fee=100, reason=reason)
        assert not Refund.objects.exists()

    def test_tabs_and_newlines_are_fine(self, paid, wxpay):
        made = refund_create(order=paid, refund_fee=100, reason="a\tb\nc")
        assert made.refund.reason == "a\tb\nc"


# -- 4. refunding needs add_refund and change_order ----------------------------------------


class TestRefundPermission:
    def test_add_refund_alone_is_not_enough(self, paid, wxpay):
        clerk = staff_with("add_refund")

        assert clerk.get(refund_page(paid)).status_code == 403
        assert clerk.post(refund_page(paid), {"amount": "1"}).status_code == 403
        assert not Refund.objects.exists()

    def test_viewing_orders_does_not_offer_the_action(self, paid, wxpay):
        clerk = staff_with("add_refund", "view_order")

        assert 'value="refund_action"' not in action_choices(clerk)
        assert "refund-link" not in get_ok(clerk, order_page(paid))
        assert clerk.get(refund_page(paid)).status_code == 403
        response = clerk.post(
            CHANGELIST, {"action": "refund_action", "_selected_action": [paid.pk]}
        )
        assert response.status_code != 302 or "/refund/" not in response["Location"]
        assert not Refund.objects.exists()

    def test_change_order_alone_is_not_enough(self, paid, wxpay):
        clerk = staff_with("change_order")

        assert 'value="refund_action"' not in action_choices(clerk)
        assert clerk.get(refund_page(paid)).status_code == 403

    def test_both_permissions_refund(self, paid, wxpay):
        clerk = staff_with("add_refund", "change_order")

        assert 'value="refund_action"' in action_choices(clerk)
        data = refund_form(clerk, paid, amount="1.00")
        assert clerk.post(refund_page(paid), data).status_code == 302
        assert Refund.objects.get().refund_fee == 100


# -- 5. "Ask WeChat now" changes state: it needs change permission -----------------------------


class TestReconcilePermission:
    def test_view_only_staff_cannot_ask_wechat(self, shopper, products, wxpay):
        expired = make_order(shopper, products, n=60, prepay_id="wx1")
        clerk = staff_with("view_order")

        assert 'value="reconcile_action"' not in action_choices(clerk)
        clerk.post(CHANGELIST, {"action": "reconcile_action", "_selected_action": [expired.pk]})

        assert wxpay.requests_seen == []
        assert reload(expired).status == Order.Status.UNPAID

    def test_change_permission_may(self, shopper, products, wxpay):
        expired = make_order(shopper, products, n=60, prepay_id="wx1")
        wxpay.path_fields["/pay/orderquery"] = {"trade_state": "NOTPAY"}
        clerk = staff_with("change_order")

        assert 'value="reconcile_action"' in action_choices(clerk)
        clerk.post(CHANGELIST, {"action": "reconcile_action", "_selected_action": [expired.pk]})

        assert reload(expired).status == Order.Status.CLOSED
