"""The purchase under API v3, end to end through the shop's API, services, admin and command:
placing and paying again, closing, reconciling, refunds; and every order keeping the API it
was placed with after WECHAT_PAY_VERSION changes (docs/INVARIANTS.md §9). WeChat is
tests/wx_v3.py's FakeWxPayV3 (``wxpay_v3``) and, for v2 orders, tests/wx.py's FakeWxPay."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import base64
from datetime import datetime, timedelta
from io import StringIO

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.core.management import call_command
from django.utils import timezone

from core.config import WeChatNotConfigured
from orders.models import Order, Product
from payments.lifecycle import ReconcileAction, Reconciled, order_reconcile, refund_reconcile
from payments.models import Refund
from payments.refunds import RefundError, refund_create, refund_submit
from payments.services import payment_prepare, payment_require_configured
from tests.admin_forms import CHANGELIST, order_page
from tests.factories import delivery_address, get_ok, orderquery_paid, reload
from tests.wx_v3 import (
    CLOSE,
    JSAPI,
    QUERY,
    REFUND,
    REFUND_QUERY,
    prepay_id_for,
    v3_refund_id_for,
)
from wechat.pay_v3 import BEIJING

pytestmark = pytest.mark.django_db

PAY = "/payment/order"
V3_NOTIFY_URL = "https://shop.example.com/payment/v3/wxnotify"
V3_REFUND_NOTIFY_URL = "https://shop.example.com/payment/v3/refundnotify"
PAID_AT = datetime(2026, 11, 27, 10, 30, 15, tzinfo=BEIJING)


def place(api, products, quantity: int = 1) -> Order:
    response = api.post(
        PAY,
        {
            "items": [{"product_id": products["tea"].pk, "quantity": quantity}],
            "address": delivery_address(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return Order.objects.get(out_trade_no=response.json()["out_trade_no"])


def pay_again(api, order: Order):
    return api.post(PAY, {"out_trade_no": order.out_trade_no}, format="json")


def age(order: Order, minutes: int) -> Order:
    """Make ``order`` look placed ``minutes`` ago (it expires 30 minutes after)."""
    past = timezone.now() - timedelta(minutes=minutes)
    Order.objects.filter(pk=order.pk).update(
        created_at=past, expires_at=past + timedelta(minutes=30)
    )
    return reload(order)


def paid_v3(api, products, wxpay_v3) -> Order:
    """A v3 order the payer paid, recorded by reconciliation (its notify never came)."""
    order = place(api, products)
    wxpay_v3.pay(order.out_trade_no)
    assert order_reconcile(order=order) == (Reconciled(ReconcileAction.PAYMENT_RECORDED, "paid"),)
    return reload(order)


def tea_stock() -> int:
    return Product.objects.get(name="Oolong tea 250g").stock


def assert_rsa_pay_sign(payment: dict, merchant_key, appid: str) -> None:
    """paySign checked as the phone's WeChat does (§5.2), with the merchant's public key."""
    message = (
        f"{appid}\n{payment['timeStamp']}\n{payment['nonceStr']}\n{payment['package']}\n"
    ).encode()
    merchant_key.public_key().verify(
        base64.b64decode(payment["paySign"]), message, padding.PKCS1v15(), hashes.SHA256()
    )


class TestPlacingAndPaying:
    def test_a_new_order_is_placed_with_v3_and_answered_in_the_same_shape(
        self, api, products, wxpay_v3, merchant_key, pay_v3
    ):
        response = api.post(
            PAY,
            {
                "items": [{"product_id": products["tea"].pk, "quantity": 1}],
                "address": delivery_address(),
            },
            format="json",
        )

        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"out_trade_no", "total_fee", "payment"}
        payment = body["payment"]
        assert set(payment) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
        assert payment["signType"] == "RSA"
        assert payment["package"] == f"prepay_id={prepay_id_for(body['out_trade_no'])}"
        assert_rsa_pay_sign(payment, merchant_key, pay_v3.WECHAT_APPID)
        order = Order.objects.get(out_trade_no=body["out_trade_no"])
        assert (order.pay_version, order.notify_url) == ("v3", V3_NOTIFY_URL)
        [sent] = wxpay_v3.calls(JSAPI)
        assert sent["body"]["notify_url"] == V3_NOTIFY_URL
        assert sent["body"]["description"] == order.body

    def test_paying_again_reuses_the_prepay_id_with_fresh_parameters(
        self, api, products, wxpay_v3, merchant_key, pay_v3
    ):
        order = place(api, products)
        first = payment_prepare(order=reload(order))

        response = pay_again(api, order)

        assert response.status_code == 200
        again = response.json()["payment"]
        assert again["package"] == first["package"]
        assert again["nonceStr"] != first["nonceStr"]
        assert_rsa_pay_sign(again, merchant_key, pay_v3.WECHAT_APPID)
        assert len(wxpay_v3.calls(JSAPI)) == 1

    def test_a_dying_prepay_id_is_asked_for_again_with_the_same_parameters(
        self, api, products, wxpay_v3
    ):
        order = place(api, products)
        Order.objects.filter(pk=order.pk).update(
            prepay_expires_at=timezone.now() + timedelta(minutes=1)
        )

        response = pay_again(api, order)

        assert response.status_code == 200
        first, again = wxpay_v3.calls(JSAPI)
        assert again["body"] == first["body"]  # a re-entry (§4.3)
        assert reload(order).prepay_id == prepay_id_for(order.out_trade_no)

    @pytest.mark.parametrize(
        ("status", "code"), [(403, "NO_AUTH"), (500, "SYSTEM_ERROR"), (401, "SIGN_ERROR")]
    )
    def test_wechat_refusing_is_502_with_its_code(self, api, products, wxpay_v3, status, code):
        wxpay_v3.errors[JSAPI] = (status, code)

        response = api.post(
            PAY,
            {
                "items": [{"product_id": products["tea"].pk, "quantity": 1}],
                "address": delivery_address(),
            },
            format="json",
        )

        assert response.status_code == 502
        order = Order.objects.get()
        assert response.json()["err_code"] == code
        assert response.json()["out_trade_no"] == order.out_trade_no
        assert (order.status, order.prepay_id) == ("unpaid", "")

    def test_no_answer_is_502_without_a_code(self, api, products, wxpay_v3):
        wxpay_v3.errors[JSAPI] = (502, "")

        response = api.post(
            PAY,
            {
                "items": [{"product_id": products["tea"].pk, "quantity": 1}],
                "address": delivery_address(),
            },
            format="json",
        )

        assert response.status_code == 502
        assert "err_code" not in response.json()  # WeChat gave none (empty fields left out)

    def test_the_payment_check_follows_the_api_in_use(self, pay_v3):
        pay_v3.WECHAT_MCH_KEY = ""  # v2's key: v3 does not need it
        payment_require_configured()

        pay_v3.WECHAT_API_V3_KEY = ""
        with pytest.raises(WeChatNotConfigured, match="WECHAT_API_V3_KEY"):
            payment_require_configured()

        pay_v3.WECHAT_PAY_VERSION = "v2"
        with pytest.raises(WeChatNotConfigured, match="WECHAT_MCH_KEY"):
            payment_require_configured()

    def test_a_v3_order_cannot_be_paid_without_the_v3_settings(
        self, api, products, wxpay_v3, pay_v3
    ):
        order = place(api, products)
        Order.objects.filter(pk=order.pk).update(prepay_id="")
        pay_v3.WECHAT_MCH_PRIVATE_KEY_PATH = ""

        with pytest.raises(WeChatNotConfigured, match="WECHAT_MCH_PRIVATE_KEY_PATH"):
            payment_prepare(order=reload(order))
        assert len(wxpay_v3.calls(JSAPI)) == 1  # the first payment only


class TestClosing:
    def test_the_owner_closes_an_order_at_wechat(self, api, products, wxpay_v3):
        order = age(place(api, products), 10)

        response = api.post(f"/orders/{order.out_trade_no}/close")

        assert response.status_code == 200
        assert reload(order).status == "closed"
        assert wxpay_v3.trades[order.out_trade_no]["transaction"]["trade_state"] == "CLOSED"
        assert tea_stock() == 10

    def test_within_five_minutes_it_is_closed_here_and_at_wechat_by_reconciliation(
        self, api, products, wxpay_v3
    ):
        order = place(api, products)

        assert api.post(f"/orders/{order.out_trade_no}/close").status_code == 200
        order = reload(order)
        assert (order.status, order.close_pending_at_wechat) == ("closed", True)
        assert wxpay_v3.calls(CLOSE) == []

        assert order_reconcile(order=age(order, 10)) == (
            Reconciled(ReconcileAction.CLOSED_AT_WECHAT),
        )
        assert len(wxpay_v3.calls(CLOSE)) == 1
        assert reload(order).close_pending_at_wechat is False

    def test_paid_while_closing_records_the_payment(self, api, products, wxpay_v3):
        order = age(place(api, products), 10)
        wxpay_v3.pay(order.out_trade_no)

        response = api.post(f"/orders/{order.out_trade_no}/close")

        assert response.status_code == 409
        assert response.json()["status"] == "paid"
        order = reload(order)
        assert (order.status, order.transaction_id, order.paid_at, order.paid_fee) == (
            "paid",
            "4200002501202501018123456789",
            PAID_AT,
            4500,
        )
        assert [r["operation"] for r in wxpay_v3.requests_seen[-2:]] == [CLOSE, QUERY]
        assert tea_stock() == 9

    def test_order_paid_that_the_query_cannot_confirm_stays_open_and_flagged(
        self, api, products, wxpay_v3
    ):
        order = age(place(api, products), 10)
        wxpay_v3.errors[CLOSE] = (400, "ORDER_PAID")

        response = api.post(f"/orders/{order.out_trade_no}/close")

        assert response.status_code == 409
        order = reload(order)
        assert (order.status, order.needs_attention) == ("unpaid", True)
        assert "orderquery says NOTPAY" in order.attention_reason
        assert tea_stock() == 9

    def test_wechat_failing_is_502(self, api, products, wxpay_v3):
        order = age(place(api, products), 10)
        wxpay_v3.errors[CLOSE] = (500, "SYSTEM_ERROR")

        response = api.post(f"/orders/{order.out_trade_no}/close")

        assert response.status_code == 502
        assert response.json()["err_code"] == "SYSTEM_ERROR"
        assert reload(order).status == "unpaid"


class TestReconciling:
    def test_a_payment_whose_notify_never_came_is_recorded(self, api, products, wxpay_v3):
        order = paid_v3(api, products, wxpay_v3)

        assert (order.status, order.transaction_id, order.paid_at, order.paid_fee) == (
            "paid",
            "4200002501202501018123456789",
            PAID_AT,
            4500,
        )
        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.NOTHING_TO_DO),)

    def test_a_payment_of_another_amount_is_recorded_and_flagged(self, api, products, wxpay_v3):
        order = place(api, products)
        wxpay_v3.pay(order.out_trade_no)
        wxpay_v3.trades[order.out_trade_no]["transaction"]["amount"]["total"] = 1

        assert order_reconcile(order=order) == (
            Reconciled(ReconcileAction.PAYMENT_RECORDED, "flagged"),
        )
        order = reload(order)
        assert (order.paid_fee, order.needs_attention) == (1, True)

    def test_an_unpaid_order_waits_until_it_expires_then_is_closed_at_wechat(
        self, api, products, wxpay_v3
    ):
        order = age(place(api, products), 10)
        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.WAITING),)

        assert order_reconcile(order=age(order, 40)) == (
            Reconciled(ReconcileAction.CLOSED_EXPIRED),
        )
        assert reload(order).status == "closed"
        assert wxpay_v3.trades[order.out_trade_no]["transaction"]["trade_state"] == "CLOSED"

    def test_an_order_wechat_never_had_is_closed_once_expired(self, api, products, wxpay_v3):
        order = age(place(api, products), 40)
        wxpay_v3.trades.clear()

        assert order_reconcile(order=order) == (Reconciled(ReconcileAction.CLOSED_EXPIRED),)

    def test_wechat_errors_are_counted_by_the_command(self, api, products, wxpay_v3):
        age(place(api, products), 10)
        wxpay_v3.errors[QUERY] = (500, "SYSTEM_ERROR")
        out = StringIO()

        call_command("reconcile_orders", stdout=out, stderr=StringIO())

        assert "WeChat error (SystemBusy)" in out.getvalue()

    def test_ask_wechat_now_in_admin_reports_wechats_error(
        self, api, products, wxpay_v3, boss_client
    ):
        order = age(place(api, products), 10)
        wxpay_v3.errors[QUERY] = (429, "FREQUENCY_LIMITED")

        response = boss_client.post(
            CHANGELIST,
            {"action": "reconcile_action", "_selected_action": [order.pk]},
            follow=True,
        )

        assert "FREQUENCY_LIMITED" in response.content.decode()


class TestRefunds:
    def test_a_refund_needs_no_certificate_and_names_the_v3_refund_notify(
        self, api, products, wxpay_v3, settings
    ):
        settings.WECHAT_CERT_PATH = settings.WECHAT_KEY_PATH = ""
        order = paid_v3(api, products, wxpay_v3)

        refund = refund_submit(
            refund=refund_create(order=order, refund_fee=1000, reason="破损").refund
        )

        assert (refund.status, refund.refund_id) == (
            Refund.Status.PROCESSING,
            v3_refund_id_for(refund.out_refund_no),
        )
        [sent] = wxpay_v3.calls(REFUND)
        assert sent["body"]["notify_url"] == V3_REFUND_NOTIFY_URL
        assert sent["body"]["amount"] == {"refund": 1000, "total": 4500, "currency": "CNY"}

    def test_a_refund_whose_notify_never_came_is_settled_by_its_query(
        self, api, products, wxpay_v3
    ):
        order = paid_v3(api, products, wxpay_v3)
        refund = refund_submit(refund=refund_create(order=order, refund_fee=4500, reason="").refund)
        assert refund_reconcile(refund=refund, query_after=timedelta(0)) == Reconciled(
            ReconcileAction.REFUND_STILL_OPEN, "PROCESSING"
        )
        wxpay_v3.refund_settle(refund.out_refund_no)

        assert refund_reconcile(refund=refund, query_after=timedelta(0)) == Reconciled(
            ReconcileAction.REFUND_RECORDED, "success"
        )
        refund = reload(refund)
        assert (refund.status, refund.recv_account) == (Refund.Status.SUCCESS, "支付用户零钱")
        assert refund.succeeded_at is not None
        assert reload(order).status == "refunded"
        assert len(wxpay_v3.calls(REFUND_QUERY)) == 2

    @pytest.mark.parametrize(
        ("error", "status", "last_error"),
        [
            (
                (500, "SYSTEM_ERROR"),
                Refund.Status.PENDING,
                "SystemBusy: WeChat Pay answered HTTP 500 SYSTEM_ERROR: test",
            ),
            ((429, "FREQUENCY_LIMITED"), Refund.Status.PENDING, "RateLimited: "),
            ((502, ""), Refund.Status.PENDING, "WxPayV3Unavailable: "),
            ((401, "SIGN_ERROR"), Refund.Status.PENDING, "RequestSignatureRejected: "),
            ((403, "NOT_ENOUGH"), Refund.Status.FAILED, "NotEnough: "),
            ((403, "USER_ACCOUNT_ABNORMAL"), Refund.Status.FAILED, "WxPayV3ApiError: "),
            ((404, "RESOURCE_NOT_EXISTS"), Refund.Status.FAILED, "ResourceNotExists: "),
        ],
    )
    def test_wechats_answer_decides_whether_it_is_sent_again(
        self, api, products, wxpay_v3, error, status, last_error
    ):
        order = paid_v3(api, products, wxpay_v3)
        wxpay_v3.error_queue[REFUND] = [error]

        refund = refund_submit(refund=refund_create(order=order, refund_fee=100, reason="").refund)

        assert refund.status == status
        assert refund.last_error.startswith(last_error)
        assert refund.refund_id == ""
        sent = refund_reconcile(refund=refund)
        if status == Refund.Status.PENDING:  # the same number again (§8.3)
            assert sent == Reconciled(ReconcileAction.REFUND_SENT_AGAIN, "processing")
            numbers = {c["body"]["out_refund_no"] for c in wxpay_v3.calls(REFUND)}
            assert numbers == {refund.out_refund_no}
        else:
            assert sent == Reconciled(ReconcileAction.NOTHING_TO_DO)
            assert len(wxpay_v3.calls(REFUND)) == 1

    @pytest.mark.parametrize("reason", ["broken 🍵", "破损" * 14])
    def test_a_reason_v3_cannot_carry_is_refused_before_anything_is_recorded(
        self, api, products, wxpay_v3, reason
    ):
        order = paid_v3(api, products, wxpay_v3)

        with pytest.raises(RefundError):
            refund_create(order=order, refund_fee=100, reason=reason)
        assert not Refund.objects.exists()


class TestAnOrderKeepsItsApi:
    def test_a_v2_order_is_paid_queried_closed_and_refunded_with_v2_after_the_switch(
        self, api, products, wxpay, wxpay_v3, pay_v3, refund_certificate
    ):
        pay_v3.WECHAT_PAY_VERSION = "v2"
        kept = place(api, products)
        closing = place(api, products)
        assert (kept.pay_version, closing.pay_version) == ("v2", "v2")
        pay_v3.WECHAT_PAY_VERSION = "v3"

        # Paid again: the v2 prepay_id reused, then a fresh one from v2 unifiedorder.
        response = pay_again(api, kept)
        assert response.json()["payment"]["signType"] == "MD5"
        Order.objects.filter(pk=kept.pk).update(prepay_expires_at=timezone.now())
        assert pay_again(api, kept).json()["payment"]["signType"] == "MD5"
        assert len(wxpay.calls("/pay/unifiedorder")) == 3
        # Closed with v2 closeorder.
        closing = age(closing, 10)
        assert api.post(f"/orders/{closing.out_trade_no}/close").status_code == 200
        assert [c["out_trade_no"] for c in wxpay.calls("/pay/closeorder")] == [closing.out_trade_no]
        # Queried with v2 orderquery, and its payment recorded.
        wxpay.path_fields["/pay/orderquery"] = orderquery_paid(kept)
        assert order_reconcile(order=kept) == (
            Reconciled(ReconcileAction.PAYMENT_RECORDED, "paid"),
        )
        # Refunded with v2 (the certificate), its refund queried with v2 refundquery.
        refund = refund_submit(
            refund=refund_create(order=reload(kept), refund_fee=100, reason="").refund
        )
        assert refund.status == Refund.Status.PROCESSING
        [sent] = wxpay.calls("/secapi/pay/refund")
        assert sent["notify_url"] == "https://shop.example.com/payment/refundnotify"
        wxpay.path_fields["/pay/refundquery"] = {
            "out_refund_no_0": refund.out_refund_no,
            "refund_status_0": "PROCESSING",
        }
        assert refund_reconcile(refund=refund, query_after=timedelta(0)) == Reconciled(
            ReconcileAction.REFUND_STILL_OPEN, "PROCESSING"
        )
        assert len(wxpay.calls("/pay/refundquery")) == 1

        assert wxpay_v3.requests_seen == []
        # Meanwhile a new order is placed with v3.
        assert place(api, products).pay_version == "v3"
        assert len(wxpay_v3.calls(JSAPI)) == 1

    def test_a_v3_order_keeps_v3_after_switching_back(self, api, products, wxpay, wxpay_v3, pay_v3):
        order = place(api, products)
        pay_v3.WECHAT_PAY_VERSION = "v2"

        Order.objects.filter(pk=order.pk).update(prepay_expires_at=timezone.now())
        assert pay_again(api, order).json()["payment"]["signType"] == "RSA"
        assert order_reconcile(order=age(order, 40)) == (
            Reconciled(ReconcileAction.CLOSED_EXPIRED),
        )

        assert [r["operation"] for r in wxpay_v3.requests_seen] == [JSAPI, JSAPI, QUERY, CLOSE]
        assert wxpay.requests_seen == []


class TestAdmin:
    def test_the_order_page_shows_the_api_read_only(self, api, products, wxpay_v3, boss_client):
        order = place(api, products)

        text = get_ok(boss_client, order_page(order))

        assert "API v3" in text
        assert 'name="pay_version"' not in text  # shown, not editable

    def test_the_order_list_filters_by_api(
        self, api, products, wxpay, wxpay_v3, pay_v3, boss_client
    ):
        v3 = place(api, products)
        pay_v3.WECHAT_PAY_VERSION = "v2"
        v2 = place(api, products)

        text = get_ok(boss_client, f"{CHANGELIST}?pay_version__exact=v3")

        assert v3.out_trade_no in text
        assert v2.out_trade_no not in text
        assert "pay_version__exact=v2" in text  # the filter offers both
