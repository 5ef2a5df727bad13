"""Closing and reconciling when WeChat's answers are awkward: ORDERPAID followed by an
orderquery that does not say SUCCESS, refunds started at WeChat, and orderquery answers
that do not fit the order (payments.lifecycle)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders.models import Order, Product
from tests.factories import TRANSACTION_ID

pytestmark = pytest.mark.django_db

PAY = "/payment/order"
CLOSE_ORDER = "/pay/closeorder"
ORDER_QUERY = "/pay/orderquery"
# Every trade state orderquery can answer (docs/protocol/wechat-pay-v2.md §6.1), and none at all.
NOT_PAID_STATES = ["NOTPAY", "USERPAYING", "CLOSED", "REVOKED", "PAYERROR", "ACCEPT", ""]
PAID_STATES = ["SUCCESS", "REFUND"]


def stock(products) -> int:
    return Product.objects.get(pk=products["tea"].pk).stock


def trade(order: Order, state: str, **overrides) -> dict:
    """An orderquery answer: the payment fields only for states where a payment exists."""
    fields = {"trade_state": state, "out_trade_no": order.out_trade_no}
    if state in PAID_STATES:
        fields.update(
            transaction_id=TRANSACTION_ID,
            total_fee=str(order.total_fee),
            openid=order.openid,
            time_end="20261127103015",
            trade_type="JSAPI",
        )
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def reconcile() -> str:
    out = StringIO()
    call_command("reconcile_orders", stdout=out, stderr=StringIO())
    return out.getvalue()


def close(api, order: Order):
    return api.post(f"/orders/{order.out_trade_no}/close")


class TestCloseAfterOrderPaid:
    """closeorder answers ORDERPAID: the order never ends silently closed."""

    @pytest.mark.parametrize("state", PAID_STATES)
    def test_a_paid_state_is_recorded_and_a_refund_flagged(
        self, api, place, products, wxpay, state
    ):
        order = place(minutes_ago=6)
        wxpay.path_errors[CLOSE_ORDER] = "ORDERPAID"
        wxpay.path_fields[ORDER_QUERY] = trade(order, state)

        response = close(api, order)

        assert response.status_code == 409
        assert response.json()["status"] == "paid"
        order.refresh_from_db()
        assert (order.status, order.transaction_id, order.paid_fee) == (
            "paid",
            TRANSACTION_ID,
            order.total_fee,
        )
        assert stock(products) == 7
        assert order.needs_attention == (state == "REFUND")
        if state == "REFUND":
            assert "refund" in order.attention_reason

    @pytest.mark.parametrize("state", NOT_PAID_STATES)
    def test_any_other_state_leaves_it_unpaid_open_and_flagged(
        self, api, place, products, wxpay, state
    ):
        order = place(minutes_ago=6)
        wxpay.path_errors[CLOSE_ORDER] = "ORDERPAID"
        wxpay.path_fields[ORDER_QUERY] = trade(order, state)

        response = close(api, order)

        assert response.status_code == 409
        assert response.json()["status"] == "unpaid"
        order.refresh_from_db()
        assert (order.status, order.transaction_id, order.needs_attention) == (
            "unpaid",
            None,
            True,
        )
        assert "ORDERPAID" in order.attention_reason
        assert f"orderquery says {state or 'nothing'}" in order.attention_reason
        assert stock(products) == 7

    @pytest.mark.parametrize("err_code", ["SYSTEMERROR", "ORDERNOTEXIST"])
    def test_orderquery_failing_leaves_it_unpaid_open_and_flagged(
        self, api, place, products, wxpay, err_code
    ):
        order = place(minutes_ago=6)
        wxpay.path_errors[CLOSE_ORDER] = "ORDERPAID"
        wxpay.path_errors[ORDER_QUERY] = err_code

        response = close(api, order)

        assert response.status_code == 409
        assert response.json()["status"] == "unpaid"
        order.refresh_from_db()
        assert (order.status, order.needs_attention) == ("unpaid", True)
        assert "ORDERPAID" in order.attention_reason
        assert stock(products) == 7

    def test_reconcile_keeps_asking_about_an_expired_order_wechat_says_is_paid(
        self, place, products, wxpay
    ):
        order = place(minutes_ago=40)
        wxpay.path_errors[CLOSE_ORDER] = "ORDERPAID"
        wxpay.path_fields[ORDER_QUERY] = trade(order, "NOTPAY")

        reconcile()

        order.refresh_from_db()
        assert (order.status, order.needs_attention) == ("unpaid", True)
        assert stock(products) == 7
        Order.objects.filter(pk=order.pk).update(reconcile_claimed_until=None)
        wxpay.path_fields[ORDER_QUERY] = trade(order, "SUCCESS")

        reconcile()

        assert Order.objects.get(pk=order.pk).status == "paid"


class TestPendingCloseAfterOrderPaid:
    """Closed here within WeChat's first 5 minutes; reconciliation then hears ORDERPAID."""

    def closed_pending(self, api, place) -> Order:
        order = place()
        assert close(api, order).status_code == 200
        Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(minutes=6))
        return Order.objects.get(pk=order.pk)

    @pytest.mark.parametrize("state", PAID_STATES)
    def test_a_paid_state_is_recorded_on_the_closed_order(self, api, place, wxpay, state):
        order = self.closed_pending(api, place)
        wxpay.path_errors[CLOSE_ORDER] = "ORDERPAID"
        wxpay.path_fields[ORDER_QUERY] = trade(order, state)

        reconcile()

        order.refresh_from_db()
        assert (order.status, order.transaction_id, order.needs_attention) == (
            "closed",
            TRANSACTION_ID,
            True,
        )
        assert order.has_payment
        assert not order.close_pending_at_wechat

    @pytest.mark.parametrize("state", NOT_PAID_STATES)
    def test_any_other_state_is_flagged_and_asked_again(self, api, place, wxpay, state):
        order = self.closed_pending(api, place)
        wxpay.path_errors[CLOSE_ORDER] = "ORDERPAID"
        wxpay.path_fields[ORDER_QUERY] = trade(order, state)

        reconcile()

        order.refresh_from_db()
        assert (order.needs_attention, order.close_pending_at_wechat) == (True, True)
        assert f"orderquery says {state or 'nothing'}" in order.attention_reason
        Order.objects.filter(pk=order.pk).update(reconcile_claimed_until=None)

        reconcile()

        assert len(wxpay.calls(CLOSE_ORDER)) == 2


class TestRefundStateKeepsEveryReason:
    def test_a_refund_state_with_a_wrong_amount_keeps_both_reasons(self, place, wxpay):
        order = place(minutes_ago=10)
        wxpay.path_fields[ORDER_QUERY] = trade(order, "REFUND", total_fee="1")

        reconcile()

        reason = Order.objects.get(pk=order.pk).attention_reason
        assert "amount 1" in reason
        assert "refund" in reason


class TestUnfitOrderQueryAnswers:
    """An orderquery answer is checked like a notify before anything is applied."""

    UNFIT = {
        "another order": {"out_trade_no": "20260101000000ffffffffffffffffff"},
        "no out_trade_no": {"out_trade_no": None},
        "empty transaction_id": {"transaction_id": ""},
        "transaction_id too long": {"transaction_id": "4" * 33},
        "no total_fee": {"total_fee": None},
    }

    @pytest.mark.parametrize("override", UNFIT.values(), ids=UNFIT.keys())
    def test_reconcile_does_not_apply_it(self, place, products, wxpay, override):
        order = place(minutes_ago=10)
        wxpay.path_fields[ORDER_QUERY] = trade(order, "SUCCESS", **override)

        reconcile()

        order.refresh_from_db()
        assert (order.status, order.transaction_id, order.paid_at) == ("unpaid", None, None)
        assert order.needs_attention
        assert "WeChat's answer did not fit" in order.attention_reason
        assert stock(products) == 7

    @pytest.mark.parametrize("override", UNFIT.values(), ids=UNFIT.keys())
    def test_closing_does_not_apply_it_nor_close(self, api, place, products, wxpay, override):
        order = place(minutes_ago=6)
        wxpay.path_errors[CLOSE_ORDER] = "ORDERPAID"
        wxpay.path_fields[ORDER_QUERY] = trade(order, "SUCCESS", **override)

        response = close(api, order)

        assert (response.status_code, response.json()["status"]) == (409, "unpaid")
        order.refresh_from_db()
        assert (order.status, order.transaction_id) == ("unpaid", None)
        assert "WeChat's answer did not fit" in order.attention_reason
        assert stock(products) == 7

    def test_a_closed_state_for_another_order_closes_nothing(self, place, products, wxpay):
        order = place(minutes_ago=10)
        wxpay.path_fields[ORDER_QUERY] = trade(
            order, "CLOSED", out_trade_no="20260101000000ffffffffffffffffff"
        )

        reconcile()

        assert Order.objects.get(pk=order.pk).status == "unpaid"
        assert stock(products) == 7

    def test_another_payer_in_the_answer_is_recorded_for_a_refund(self, place, products, wxpay):
        order = place(minutes_ago=10)
        wxpay.path_fields[ORDER_QUERY] = trade(order, "SUCCESS", openid="o-someone-else")

        reconcile()

        order.refresh_from_db()
        assert (order.status, order.transaction_id, order.needs_attention) == (
            "closed",
            TRANSACTION_ID,
            True,
        )
        assert "payer openid" in order.attention_reason
        assert stock(products) == 10
