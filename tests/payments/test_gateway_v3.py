"""payments.gateway over API v3: what each step sends, what it returns, and every failure of
wechat.pay_v3 translated once into the PayError family, with WeChat's answers signed and our
requests checked by tests/wx_v3.py's FakeWxPayV3 (the ``wxpay_v3`` fixture)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import base64
from datetime import datetime, timedelta

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.utils import timezone

from core.config import WeChatNotConfigured
from payments.gateway import (
    CloseOutcome,
    PayRefused,
    PayRequestInvalid,
    PayUnavailable,
    RefundReport,
    Trade,
    V3Gateway,
    gateway_for,
    pay_require_configured,
    v3_description,
)
from payments.models import Refund
from tests.factories import make_order
from tests.wx_v3 import (
    CERTIFICATES,
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

V3_NOTIFY_URL = "https://shop.example.com/payment/v3/wxnotify"
V3_REFUND_NOTIFY_URL = "https://shop.example.com/payment/v3/refundnotify"


def v3_order(shopper, products, **fields):
    """An unpaid ¥45.00 order placed with API v3, 10 minutes ago."""
    defaults = {"pay_version": "v3", "notify_url": V3_NOTIFY_URL}
    return make_order(shopper, products, n=10, **{**defaults, **fields})


def paid_at_wechat(order, wxpay_v3) -> None:
    wxpay_v3.trade_add(order.out_trade_no, total=order.total_fee, openid=order.openid)
    wxpay_v3.pay(order.out_trade_no)


def paid_here(order) -> None:
    """Recorded paid (as the notify or a query would), without asking WeChat."""
    order.status, order.transaction_id = "paid", "4200002501202501018123456789"
    order.paid_at, order.paid_fee = timezone.now(), order.total_fee
    order.save()


@pytest.fixture
def order(shopper, products, wxpay_v3):
    return v3_order(shopper, products)


class TestPrepay:
    def test_jsapi_gets_the_orders_stored_parameters(self, order, wxpay_v3, pay_v3):
        prepay_id = gateway_for(order).prepay(order=order)

        [sent] = wxpay_v3.calls(JSAPI)
        assert prepay_id == prepay_id_for(order.out_trade_no)
        assert sent["body"] == {
            "appid": pay_v3.WECHAT_APPID,  # the shop's, bound to its mchid
            "mchid": pay_v3.WECHAT_MCH_ID,
            "description": "Tea",
            "out_trade_no": order.out_trade_no,
            "time_expire": order.expires_at.astimezone(BEIJING).isoformat(timespec="seconds"),
            "notify_url": V3_NOTIFY_URL,
            "amount": {"total": 4500, "currency": "CNY"},
            "payer": {"openid": order.openid},
        }

    def test_a_second_prepay_is_a_re_entry_with_identical_parameters(self, order, wxpay_v3):
        first = gateway_for(order).prepay(order=order)
        again = gateway_for(order).prepay(order=order)

        first_sent, again_sent = wxpay_v3.calls(JSAPI)
        assert again == first
        assert again_sent["body"] == first_sent["body"]

    def test_a_prepay_id_lives_two_hours(self, order):
        assert gateway_for(order).prepay_lifetime == timedelta(hours=2)

    def test_payment_params_are_signed_with_rsa_over_the_four_lines(
        self, order, merchant_key, pay_v3
    ):
        params = gateway_for(order).payment_params(prepay_id="wx0123456789")

        assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
        assert (params["signType"], params["package"]) == ("RSA", "prepay_id=wx0123456789")
        message = (
            f"{pay_v3.WECHAT_APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n"
            f"{params['package']}\n"
        ).encode()
        # Verified as the phone's WeChat does, with the merchant's public key (§5.2).
        merchant_key.public_key().verify(
            base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256()
        )

    @pytest.mark.parametrize(
        ("body", "sent"),
        [
            ("Oolong tea 250g", "Oolong tea 250g"),
            ("茶" * 42 + "a", "茶" * 42 + "a"),  # 127 bytes: fits
            ("茶" * 42 + "ab", "茶" * 41 + "…"),  # 128 bytes: cut, ending in the ellipsis
            ("Tea 🍵 cup", "Tea  cup"),  # no 4-byte characters (§1.2)
            ("🍵", "商品"),
        ],
    )
    def test_the_description_fits_what_v3_carries(self, body, sent):
        description = v3_description(body)

        assert description == sent
        assert len(description.encode()) <= 127
        assert all(ord(ch) <= 0xFFFF for ch in description)
        assert description == v3_description(body)  # a re-entry sends the same


class TestQuery:
    def test_a_paid_order_is_reported_as_a_trade(self, order, wxpay_v3):
        paid_at_wechat(order, wxpay_v3)

        trade = gateway_for(order).query(order=order)

        assert trade == Trade(
            out_trade_no=order.out_trade_no,
            transaction_id="4200002501202501018123456789",
            trade_state="SUCCESS",
            total_fee=4500,
            openid=order.openid,
            paid_at=datetime(2026, 11, 27, 10, 30, 15, tzinfo=BEIJING),
        )
        assert trade.is_paid
        assert wxpay_v3.calls(QUERY)[0]["path"] == (
            f"/v3/pay/transactions/out-trade-no/{order.out_trade_no}?mchid=10000100"
        )

    def test_an_unpaid_order_has_no_payment_fields(self, order, wxpay_v3):
        wxpay_v3.trade_add(order.out_trade_no, total=4500, openid=order.openid)

        trade = gateway_for(order).query(order=order)

        assert (trade.trade_state, trade.transaction_id, trade.paid_at) == ("NOTPAY", "", None)
        assert not trade.is_paid

    def test_no_such_order_is_its_own_outcome(self, order, wxpay_v3):
        assert gateway_for(order).query(order=order) is None


class TestClose:
    def test_closing_is_closed(self, order, wxpay_v3):
        wxpay_v3.trade_add(order.out_trade_no, total=4500, openid=order.openid)

        assert gateway_for(order).close(order=order) == CloseOutcome.CLOSED
        assert wxpay_v3.trades[order.out_trade_no]["transaction"]["trade_state"] == "CLOSED"
        assert wxpay_v3.calls(CLOSE)[0]["body"] == {"mchid": "10000100"}

    def test_closing_again_is_closed(self, order, wxpay_v3):
        wxpay_v3.trade_add(order.out_trade_no, total=4500, openid=order.openid)

        gateway_for(order).close(order=order)

        assert gateway_for(order).close(order=order) == CloseOutcome.CLOSED

    @pytest.mark.parametrize(
        "error", [(404, "ORDER_NOT_EXIST"), (400, "ORDER_CLOSED"), (400, "ORDERCLOSED")]
    )
    def test_closed_already_or_never_had_is_closed(self, order, wxpay_v3, error):
        wxpay_v3.errors[CLOSE] = error

        assert gateway_for(order).close(order=order) == CloseOutcome.CLOSED

    @pytest.mark.parametrize("error", [(400, "ORDER_PAID"), (403, "ORDERPAID")])
    def test_paid_is_its_own_outcome(self, order, wxpay_v3, error):
        wxpay_v3.errors[CLOSE] = error

        assert gateway_for(order).close(order=order) == CloseOutcome.PAID

    def test_a_paid_order_at_the_fake_is_refused_paid(self, order, wxpay_v3):
        paid_at_wechat(order, wxpay_v3)

        assert gateway_for(order).close(order=order) == CloseOutcome.PAID


class TestRefund:
    def test_a_refund_needs_no_certificate_and_gets_its_refund_id(self, order, wxpay_v3, settings):
        settings.WECHAT_CERT_PATH = settings.WECHAT_KEY_PATH = ""
        paid_at_wechat(order, wxpay_v3)
        paid_here(order)

        gateway = gateway_for(order)
        gateway.require_refunds_configured()
        refund_id = gateway.refund(order=order, out_refund_no="R1", refund_fee=1000, reason="破损")

        [sent] = wxpay_v3.calls(REFUND)
        assert refund_id == v3_refund_id_for("R1")
        assert sent["body"] == {
            "out_trade_no": order.out_trade_no,
            "out_refund_no": "R1",
            "reason": "破损",
            "notify_url": V3_REFUND_NOTIFY_URL,
            "amount": {"refund": 1000, "total": 4500, "currency": "CNY"},
        }

    def test_a_refund_without_a_reason_sends_none(self, order, wxpay_v3):
        paid_at_wechat(order, wxpay_v3)
        paid_here(order)

        gateway_for(order).refund(order=order, out_refund_no="R1", refund_fee=1, reason="")

        assert "reason" not in wxpay_v3.calls(REFUND)[0]["body"]

    def test_the_refund_total_is_what_was_charged(self, order, wxpay_v3):
        paid_at_wechat(order, wxpay_v3)
        paid_here(order)
        order.paid_fee = 4400  # WeChat charged another amount: refunds are based on it

        with pytest.raises(PayRefused):  # the fake holds 4500: WeChat would refuse too
            gateway_for(order).refund(order=order, out_refund_no="R1", refund_fee=1, reason="")

        assert wxpay_v3.calls(REFUND)[0]["body"]["amount"]["total"] == 4400

    @pytest.mark.parametrize(
        ("wechat", "ours"),
        [
            ("SUCCESS", Refund.Status.SUCCESS),
            ("CLOSED", Refund.Status.CLOSED),
            ("ABNORMAL", Refund.Status.ABNORMAL),
            ("PROCESSING", None),
        ],
    )
    def test_a_refund_query_is_reported_in_our_statuses(self, order, wxpay_v3, wechat, ours):
        paid_at_wechat(order, wxpay_v3)
        paid_here(order)
        gateway_for(order).refund(order=order, out_refund_no="R1", refund_fee=1000, reason="")
        refund = wxpay_v3.refunds["R1"]
        refund.update(status=wechat, success_time="2026-11-27T12:00:05+08:00")

        report = gateway_for(order).refund_query(out_refund_no="R1")

        assert report == RefundReport(
            status=ours,
            wechat_status=wechat,
            refund_id=v3_refund_id_for("R1"),
            succeeded_at=datetime(2026, 11, 27, 12, 0, 5, tzinfo=BEIJING),
            recv_account="支付用户零钱",
            refund_fee=1000,
        )
        assert wxpay_v3.calls(REFUND_QUERY)[0]["path"] == "/v3/refund/domestic/refunds/R1"

    @pytest.mark.parametrize(
        ("reason", "refused"),
        [
            ("破损" * 13, False),  # 78 bytes
            ("破损" * 13 + "ab", False),  # 80 bytes
            ("破损" * 13 + "abc", True),  # 81 bytes: string(80) counted in bytes
            ("broken 🍵", True),
            ("line\nbreak", True),
        ],
    )
    def test_a_reason_v3_cannot_carry_is_refused_up_front(self, order, reason, refused):
        assert bool(gateway_for(order).refund_reason_problem(reason)) is refused


class TestErrorsAreTranslatedOnce:
    """Nothing of wechat.pay_v3 escapes the gateway (§10)."""

    @pytest.mark.parametrize(
        ("status", "code", "kind", "retryable"),
        [
            (400, "PARAM_ERROR", "InvalidRequest", False),
            (400, "INVALID_REQUEST", "InvalidRequest", False),
            (400, "APPID_MCHID_NOT_MATCH", "InvalidRequest", False),
            (403, "NO_AUTH", "InvalidRequest", False),
            (403, "NOT_ENOUGH", "NotEnough", False),
            (403, "OUT_TRADE_NO_USED", "OutTradeNoUsed", False),
            (403, "USER_ACCOUNT_ABNORMAL", "WxPayV3ApiError", False),
            (404, "RESOURCE_NOT_EXISTS", "ResourceNotExists", False),
            (429, "FREQUENCY_LIMITED", "RateLimited", True),
            (500, "SYSTEM_ERROR", "SystemBusy", True),
            (500, "SYSTEMERROR", "SystemBusy", True),
            (502, "SERVICE_UNAVAILABLE", "SystemBusy", True),
            (500, "SOMETHING_NEW", "WxPayV3ApiError", True),
        ],
    )
    def test_an_error_answer_is_refused_with_its_code(
        self, order, wxpay_v3, status, code, kind, retryable
    ):
        for operation in (JSAPI, QUERY, CLOSE, REFUND, REFUND_QUERY):
            wxpay_v3.errors[operation] = (status, code)
        gateway = gateway_for(order)

        for call in (
            lambda: gateway.prepay(order=order),
            lambda: gateway.query(order=order),
            lambda: gateway.close(order=order),
            lambda: gateway.refund(order=order, out_refund_no="R1", refund_fee=1, reason=""),
            lambda: gateway.refund_query(out_refund_no="R1"),
        ):
            with pytest.raises(PayRefused) as caught:
                call()
            assert (caught.value.code, caught.value.kind, caught.value.retryable) == (
                code,
                kind,
                retryable,
            )
            assert f"HTTP {status} {code}" in str(caught.value)

    def test_our_signature_refused_is_no_answer_with_its_code(self, order, wxpay_v3):
        # WeChat refused our request itself (key and serial apart, our clock, §2.6): as v2's
        # return_code=FAIL, nothing was done there.
        wxpay_v3.errors[JSAPI] = (401, "SIGN_ERROR")

        with pytest.raises(PayUnavailable) as caught:
            gateway_for(order).prepay(order=order)

        assert (caught.value.code, caught.value.kind) == ("SIGN_ERROR", "RequestSignatureRejected")

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_a_failure_without_a_code_is_no_answer(self, order, wxpay_v3, status):
        wxpay_v3.errors[QUERY] = (status, "")

        with pytest.raises(PayUnavailable) as caught:
            gateway_for(order).query(order=order)

        assert (caught.value.kind, caught.value.code, caught.value.retryable) == (
            "WxPayV3Unavailable",
            "",
            True,
        )

    def test_no_network_is_no_answer(self, order, wxpay_v3):
        wxpay_v3.exception = requests.ConnectionError("down")

        with pytest.raises(PayUnavailable) as caught:
            gateway_for(order).prepay(order=order)

        assert caught.value.kind == "WxPayV3Unavailable"

    def test_an_answer_signed_by_another_key_is_no_answer(self, order, wxpay_v3, merchant_key):
        wxpay_v3.wechat_key = merchant_key  # not WeChat's: the signature fails

        with pytest.raises(PayUnavailable) as caught:
            gateway_for(order).prepay(order=order)

        assert caught.value.kind == "WxPayV3SignatureError"

    def test_a_request_v3_cannot_carry_is_invalid_and_never_sent(self, order, wxpay_v3):
        paid_at_wechat(order, wxpay_v3)
        paid_here(order)

        with pytest.raises(PayRequestInvalid) as caught:
            gateway_for(order).refund(
                order=order, out_refund_no="R1", refund_fee=1, reason="broken 🍵"
            )

        assert caught.value.kind == "WxPayV3RequestInvalid"
        assert isinstance(caught.value, ValueError)
        assert wxpay_v3.calls(REFUND) == []


class TestAnAnswerUnderAnUnknownSerial:
    """WeChat signs with a platform certificate the shop does not hold yet (a rotation, a
    switch between the two modes, §3.4, §3.5): the certificates are fetched at once."""

    def test_a_query_is_asked_again_and_answered(self, order, wxpay_v3):
        paid_at_wechat(order, wxpay_v3)
        wxpay_v3.sign_with_platform = True

        trade = gateway_for(order).query(order=order)

        assert trade.is_paid
        assert len(wxpay_v3.calls(QUERY)) == 2
        assert len(wxpay_v3.calls(CERTIFICATES)) == 1

    def test_close_is_asked_again_and_answered(self, order, wxpay_v3):
        wxpay_v3.trade_add(order.out_trade_no, total=4500, openid=order.openid)
        wxpay_v3.sign_with_platform = True

        assert gateway_for(order).close(order=order) == CloseOutcome.CLOSED
        assert len(wxpay_v3.calls(CLOSE)) == 2

    def test_a_refund_is_sent_again_with_the_same_number_and_answered(self, order, wxpay_v3):
        """WeChat's remedy for an unclear refund is the same out_refund_no again (§8.3)."""
        paid_at_wechat(order, wxpay_v3)
        paid_here(order)
        wxpay_v3.sign_with_platform = True

        refund_id = gateway_for(order).refund(
            order=order, out_refund_no="R1", refund_fee=100, reason=""
        )

        assert refund_id == v3_refund_id_for("R1")
        sent = wxpay_v3.calls(REFUND)
        assert len(sent) == 2
        assert sent[0]["body"] == sent[1]["body"]  # the same refund, repeated identically
        assert len(wxpay_v3.calls(CERTIFICATES)) == 1

    def test_a_prepay_is_sent_again_identically_and_answered(self, order, wxpay_v3):
        """A shop migrating to the public key shows no shopper a 502 because it had not
        fetched the certificate yet: re-entering prepay with the same parameters is
        WeChat's remedy (§4.3)."""
        wxpay_v3.sign_with_platform = True

        assert gateway_for(order).prepay(order=order) == prepay_id_for(order.out_trade_no)
        first, again = wxpay_v3.calls(JSAPI)
        assert first["body"] == again["body"]
        assert len(wxpay_v3.calls(CERTIFICATES)) == 1

    def test_a_serial_no_download_brings_is_refused(self, order, wxpay_v3):
        wxpay_v3.trade_add(order.out_trade_no, total=4500, openid=order.openid)
        wxpay_v3.sign_with_platform = True
        wxpay_v3.errors[CERTIFICATES] = (500, "SYSTEM_ERROR")

        with pytest.raises(PayUnavailable) as caught:
            gateway_for(order).query(order=order)

        assert caught.value.kind == "UnknownSerial"
        assert len(wxpay_v3.calls(QUERY)) == 1


class TestConfiguration:
    def test_v3_orders_need_the_v3_settings(self, order, pay_v3):
        pay_v3.WECHAT_MCH_CERT_SERIAL = ""

        with pytest.raises(WeChatNotConfigured, match="WECHAT_MCH_CERT_SERIAL"):
            gateway_for(order)
        with pytest.raises(WeChatNotConfigured, match="WECHAT_MCH_CERT_SERIAL"):
            pay_require_configured("v3")

    def test_v3_needs_a_notify_url(self, pay_v3):
        pay_v3.WECHAT_NOTIFY_URL = pay_v3.WECHAT_V3_NOTIFY_URL = ""

        with pytest.raises(WeChatNotConfigured, match="WECHAT_V3_NOTIFY_URL"):
            pay_require_configured("v3")
        with pytest.raises(WeChatNotConfigured, match="WECHAT_V3_NOTIFY_URL"):
            V3Gateway().require_refunds_configured()

    def test_v3_needs_no_v2_key(self, pay_v3):
        pay_v3.WECHAT_MCH_KEY = ""

        pay_require_configured("v3")
        V3Gateway().require_refunds_configured()

    def test_the_refund_notify_url_sits_beside_the_v3_notify_url(self, order, wxpay_v3, pay_v3):
        pay_v3.WECHAT_V3_NOTIFY_URL = "https://pay.example.com/hooks/v3/wxnotify"
        pay_v3.WECHAT_REFUND_NOTIFY_URL = "https://shop.example.com/payment/refundnotify"  # v2's
        paid_at_wechat(order, wxpay_v3)
        paid_here(order)

        gateway_for(order).refund(order=order, out_refund_no="R1", refund_fee=1, reason="")

        assert wxpay_v3.calls(REFUND)[0]["body"]["notify_url"] == (
            "https://pay.example.com/hooks/v3/refundnotify"
        )
