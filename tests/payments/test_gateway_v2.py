"""payments.gateway over API v2: what each step sends, what it returns, and every failure of
wechat.pay_v2 translated once into the PayError family (docs/ARCHITECTURE.md)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import threading
from datetime import datetime

import pytest
import requests
from django.conf import settings

from core.config import WeChatNotConfigured
from payments.gateway import (
    CloseOutcome,
    PayError,
    PayRefused,
    PayRequestInvalid,
    PayUnavailable,
    RefundReport,
    Trade,
    V2Gateway,
    V3Gateway,
    gateway_for,
    pay_require_configured,
    v2_client,
)
from payments.models import Refund
from payments.services import payment_client
from tests.factories import make_order
from tests.wx import wx_sign
from wechat.pay_v2 import BEIJING, WxPayClient, format_wx_time

pytestmark = pytest.mark.django_db

UNIFIEDORDER = "/pay/unifiedorder"
QUERY = "/pay/orderquery"
CLOSE = "/pay/closeorder"
REFUND = "/secapi/pay/refund"
REFUND_QUERY = "/pay/refundquery"


@pytest.fixture
def order(shopper, products):
    return make_order(shopper, products, n=10, prepay_id="wx-prepay")


class TestChoosingTheGateway:
    def test_an_order_keeps_the_api_it_was_placed_with_whatever_the_setting(self, order, settings):
        settings.WECHAT_PAY_VERSION = "v3"

        assert isinstance(gateway_for(order), V2Gateway)

    def test_a_v3_order_gets_v3_under_a_v2_setting(self, order, pay_v3):
        pay_v3.WECHAT_PAY_VERSION = "v2"
        order.pay_version = "v3"

        assert isinstance(gateway_for(order), V3Gateway)

    def test_an_unknown_version_is_our_error_not_wechats(self, order):
        order.pay_version = "v9"

        with pytest.raises(ValueError, match="pay_version"):
            gateway_for(order)

    def test_missing_v2_settings_are_a_clear_error(self, order, settings):
        settings.WECHAT_MCH_KEY = ""

        with pytest.raises(WeChatNotConfigured, match="WECHAT_MCH_KEY"):
            gateway_for(order)
        with pytest.raises(WeChatNotConfigured, match="WECHAT_MCH_KEY"):
            pay_require_configured("v2")


class TestPrepay:
    def test_unifiedorder_gets_the_orders_stored_parameters_and_sign_type(
        self, order, wxpay, settings
    ):
        order.sign_type = "HMAC-SHA256"
        settings.WECHAT_SIGN_TYPE = "MD5"

        prepay_id = gateway_for(order).prepay(order=order)

        [sent] = wxpay.calls(UNIFIEDORDER)
        assert prepay_id == "wx" + order.out_trade_no[:30]
        assert sent["sign_type"] == "HMAC-SHA256"
        assert (sent["out_trade_no"], sent["total_fee"], sent["body"], sent["openid"]) == (
            order.out_trade_no,
            "4500",
            "Tea",
            order.openid,
        )
        assert sent["notify_url"] == settings.WECHAT_NOTIFY_URL  # the order stored none
        assert sent["time_expire"] == format_wx_time(order.expires_at)

    def test_the_orders_own_notify_url_is_sent(self, order, wxpay):
        order.notify_url = "https://old.example.com/payment/wxnotify"

        gateway_for(order).prepay(order=order)

        assert wxpay.calls(UNIFIEDORDER)[0]["notify_url"] == order.notify_url

    def test_a_prepay_id_lives_two_hours(self, order):
        assert gateway_for(order).prepay_lifetime.total_seconds() == 2 * 3600

    @pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
    def test_payment_params_are_signed_with_the_orders_sign_type(self, order, sign_type):
        order.sign_type = sign_type

        params = gateway_for(order).payment_params(prepay_id="wx123")

        assert params["signType"] == sign_type
        assert params["package"] == "prepay_id=wx123"
        signed = {"appId": settings.WECHAT_APPID, **params}
        del signed["paySign"]
        assert params["paySign"] == wx_sign(signed, settings.WECHAT_MCH_KEY, sign_type)


class TestQuery:
    def test_a_paid_order_is_reported_as_a_trade(self, order, wxpay):
        wxpay.path_fields[QUERY] = {
            "trade_state": "SUCCESS",
            "out_trade_no": order.out_trade_no,
            "transaction_id": "4200000001",
            "total_fee": "4500",
            "openid": order.openid,
            "time_end": "20261127103015",
        }

        trade = gateway_for(order).query(order=order)

        assert trade == Trade(
            out_trade_no=order.out_trade_no,
            transaction_id="4200000001",
            trade_state="SUCCESS",
            total_fee=4500,
            openid=order.openid,
            paid_at=datetime(2026, 11, 27, 10, 30, 15, tzinfo=BEIJING),
        )
        assert trade.is_paid
        assert wxpay.calls(QUERY)[0]["out_trade_no"] == order.out_trade_no

    def test_an_unpaid_order_has_no_payment_fields(self, order, wxpay):
        wxpay.path_fields[QUERY] = {"trade_state": "NOTPAY"}

        trade = gateway_for(order).query(order=order)

        assert (trade.trade_state, trade.transaction_id, trade.total_fee, trade.paid_at) == (
            "NOTPAY",
            "",
            None,
            None,
        )
        assert not trade.is_paid

    def test_no_such_order_is_its_own_outcome(self, order, wxpay):
        wxpay.path_errors[QUERY] = "ORDERNOTEXIST"

        assert gateway_for(order).query(order=order) is None


class TestClose:
    def test_closing_is_closed(self, order, wxpay):
        assert gateway_for(order).close(order=order) == CloseOutcome.CLOSED
        assert wxpay.calls(CLOSE)[0]["out_trade_no"] == order.out_trade_no

    @pytest.mark.parametrize("err_code", ["ORDERCLOSED", "ORDERNOTEXIST"])
    def test_closed_already_or_never_had_is_closed(self, order, wxpay, err_code):
        wxpay.path_errors[CLOSE] = err_code

        assert gateway_for(order).close(order=order) == CloseOutcome.CLOSED

    def test_paid_is_its_own_outcome(self, order, wxpay):
        wxpay.path_errors[CLOSE] = "ORDERPAID"

        assert gateway_for(order).close(order=order) == CloseOutcome.PAID


class TestRefund:
    def test_a_refund_is_sent_with_the_certificate_and_gets_its_refund_id(
        self, paid, wxpay, refund_certificate
    ):
        refund_id = gateway_for(paid).refund(
            order=paid, out_refund_no="R1", refund_fee=1000, reason="broken"
        )

        [sent] = wxpay.calls(REFUND)
        assert refund_id.startswith("5030010318")
        assert (sent["out_refund_no"], sent["total_fee"], sent["refund_fee"]) == (
            "R1",
            "4500",
            "1000",
        )
        assert sent["refund_desc"] == "broken"
        assert sent["notify_url"] == "https://shop.example.com/payment/refundnotify"
        assert sent["_cert"] == (settings.WECHAT_CERT_PATH, settings.WECHAT_KEY_PATH)

    def test_refunds_need_the_certificate(self, paid, settings):
        settings.WECHAT_CERT_PATH = ""

        with pytest.raises(WeChatNotConfigured, match="WECHAT_CERT_PATH"):
            gateway_for(paid).require_refunds_configured()

    @pytest.mark.parametrize(
        ("wechat", "ours"),
        [
            ("SUCCESS", Refund.Status.SUCCESS),
            ("REFUNDCLOSE", Refund.Status.CLOSED),
            ("CHANGE", Refund.Status.ABNORMAL),
            ("PROCESSING", None),
        ],
    )
    def test_a_refund_query_is_reported_in_our_statuses(self, paid, wxpay, wechat, ours):
        wxpay.path_fields[REFUND_QUERY] = {
            "out_refund_no_0": "R1",
            "refund_status_0": wechat,
            "refund_id_0": "5030",
            "refund_fee_0": "1000",
            "refund_recv_accout_0": "支付用户零钱",
            "refund_success_time_0": "2026-11-27 12:00:05",
        }

        report = gateway_for(paid).refund_query(out_refund_no="R1")

        assert report == RefundReport(
            status=ours,
            wechat_status=wechat,
            refund_id="5030",
            succeeded_at=datetime(2026, 11, 27, 12, 0, 5, tzinfo=BEIJING),
            recv_account="支付用户零钱",
            refund_fee=1000,
        )

    @pytest.mark.parametrize(
        ("reason", "refused"),
        [("破损", False), ("line\nbreak", False), ("bell\x07", True), ("esc\x1b[31m", True)],
    )
    def test_a_reason_xml_cannot_carry_is_refused_up_front(self, paid, reason, refused):
        problem = gateway_for(paid).refund_reason_problem(reason)

        assert bool(problem) is refused


class TestErrorsAreTranslatedOnce:
    """Nothing of wechat.pay_v2 escapes the gateway: each failure is a PayError saying
    what it means, with WeChat's code and the wire error's name."""

    @pytest.mark.parametrize(
        ("err_code", "kind", "retryable"),
        [
            ("SYSTEMERROR", "SystemBusy", True),
            ("BIZERR_NEED_RETRY", "SystemBusy", True),
            ("FREQUENCY_LIMITED", "RateLimited", True),
            ("NOTENOUGH", "WxPayBusinessError", False),
            ("PARAM_ERROR", "InvalidRequest", False),
            ("OUT_TRADE_NO_USED", "OutTradeNoUsed", False),
            ("ORDERPAID", "OrderPaid", False),
        ],
    )
    def test_a_business_refusal_is_refused_with_its_code(
        self, order, wxpay, err_code, kind, retryable
    ):
        wxpay.err_code = err_code

        with pytest.raises(PayRefused) as caught:
            gateway_for(order).prepay(order=order)

        assert (caught.value.code, caught.value.kind, caught.value.retryable) == (
            err_code,
            kind,
            retryable,
        )
        assert str(caught.value) == f"WeChat Pay business error {err_code}: test"

    def test_a_refund_query_of_an_unknown_refund_is_refused(self, paid, wxpay):
        wxpay.path_errors[REFUND_QUERY] = "REFUNDNOTEXIST"

        with pytest.raises(PayRefused) as caught:
            gateway_for(paid).refund_query(out_refund_no="R1")

        assert (caught.value.kind, caught.value.retryable) == ("RefundNotExist", False)

    @pytest.mark.parametrize(
        ("fault", "kind"),
        [
            ("http", "WxPayUnavailable"),
            ("network", "WxPayUnavailable"),
            ("sign", "WxPaySignatureError"),
            ("return_code", "WxPayProtocolError"),
        ],
    )
    def test_no_trustworthy_answer_is_unavailable(self, order, wxpay, fault, kind):
        if fault == "http":
            wxpay.http_status = 502
        elif fault == "network":
            wxpay.exception = requests.ConnectionError("down")
        elif fault == "sign":
            wxpay.tamper_answer = lambda answer: {**answer, "sign": "0" * 32}
        else:
            wxpay.tamper_answer = lambda answer: {
                "return_code": "FAIL",
                "return_msg": "签名错误",
            }

        for call in (
            lambda g: g.prepay(order=order),
            lambda g: g.query(order=order),
            lambda g: g.close(order=order),
        ):
            with pytest.raises(PayUnavailable) as caught:
                call(gateway_for(order))
            assert (caught.value.kind, caught.value.code, caught.value.retryable) == (
                kind,
                "",
                True,
            )

    def test_a_refund_without_certificate_files_is_unavailable(self, paid, wxpay):
        with pytest.raises(PayUnavailable) as caught:
            gateway_for(paid).refund(order=paid, out_refund_no="R1", refund_fee=1, reason="")

        assert caught.value.kind == "CertificateError"
        assert wxpay.calls(REFUND) == []

    def test_a_request_xml_cannot_carry_is_invalid_and_never_sent(
        self, paid, wxpay, refund_certificate
    ):
        with pytest.raises(PayRequestInvalid) as caught:
            gateway_for(paid).refund(
                order=paid, out_refund_no="R1", refund_fee=1, reason="esc\x1b[31m"
            )

        assert caught.value.kind == "WxPayRequestInvalid"
        assert isinstance(caught.value, ValueError)
        assert wxpay.calls(REFUND) == []

    def test_every_translation_is_a_pay_error(self):
        for kind in (PayRefused, PayRequestInvalid, PayUnavailable):
            assert issubclass(kind, PayError)


class TestTheV2Client:
    def test_payment_client_is_still_the_v2_client(self):
        assert isinstance(payment_client(), WxPayClient)
        assert payment_client(sign_type="HMAC-SHA256").config.sign_type == "HMAC-SHA256"

    def test_one_client_per_thread_and_configuration(self):
        mine = v2_client()
        theirs = []
        thread = threading.Thread(target=lambda: theirs.append(v2_client()))
        thread.start()
        thread.join()

        assert v2_client() is mine  # reused: one pooled session per thread
        assert theirs[0] is not mine  # a session is never shared between threads
        assert theirs[0].session is not mine.session
        assert v2_client(sign_type="HMAC-SHA256") is not mine

    def test_a_sign_type_v2_does_not_know_is_our_error(self, order):
        order.sign_type = "RSA"

        with pytest.raises(ValueError, match="sign_type"):
            gateway_for(order)
