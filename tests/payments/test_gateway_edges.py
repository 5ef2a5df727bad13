"""payments.gateway at its edges: the PayError family's defaults, the exact texts staff and
logs see, the boundaries of what v3 carries, the notify URL a v3 prepay falls back on, and a
certificate download that fails outright after an unknown serial."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import pytest

from core.config import WeChatNotConfigured
from payments import gateway
from payments.gateway import (
    PayRefused,
    PayRequestInvalid,
    PayUnavailable,
    gateway_for,
    pay_require_configured,
    v2_client,
    v3_description,
)
from tests.factories import make_order
from tests.wx_v3 import CERTIFICATES, JSAPI, QUERY
from wechat.pay_v3 import WxPayV3Unavailable

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(shopper, products, wxpay_v3):
    """An unpaid ¥45.00 order placed with API v3 that stored no notify URL of its own."""
    return make_order(shopper, products, n=10, pay_version="v3", notify_url="")


class TestTheErrorFamilysDefaults:
    def test_a_refusal_is_for_good_unless_said_otherwise(self):
        refused = PayRefused("no")

        assert (refused.code, refused.kind, refused.retryable) == ("", "PayRefused", False)

    def test_an_error_without_a_kind_is_named_after_its_class(self):
        unavailable = PayUnavailable("down")

        assert (unavailable.code, unavailable.kind) == ("", "PayUnavailable")
        assert PayRequestInvalid("bad").kind == "PayRequestInvalid"


class TestConfiguration:
    def test_v3_needs_only_its_own_notify_url(self, pay_v3):
        pay_v3.WECHAT_NOTIFY_URL = ""  # v2's
        pay_v3.WECHAT_V3_NOTIFY_URL = "https://shop.example.com/payment/v3/wxnotify"

        pay_require_configured("v3")

    def test_a_missing_v3_notify_url_is_named_for_the_admin(self, pay_v3):
        pay_v3.WECHAT_NOTIFY_URL = pay_v3.WECHAT_V3_NOTIFY_URL = ""

        with pytest.raises(WeChatNotConfigured) as caught:
            pay_require_configured("v3")

        assert str(caught.value) == (
            "WeChat Pay API v3 is not configured: set WECHAT_V3_NOTIFY_URL or WECHAT_NOTIFY_URL."
        )

    def test_a_thread_keeps_at_most_four_v2_clients(self, settings, monkeypatch):
        """Settings that change (tests, a reload) must not pile up sessions: a fifth
        configuration starts the thread's clients afresh."""
        monkeypatch.setattr(gateway._v2_local, "clients", {}, raising=False)
        settings.WECHAT_TIMEOUT = (3.05, 10.0)
        first = v2_client()
        for read_timeout in (11.0, 12.0, 13.0):
            settings.WECHAT_TIMEOUT = (3.05, read_timeout)
            v2_client()
        settings.WECHAT_TIMEOUT = (3.05, 10.0)
        assert v2_client() is first  # four configurations: all kept

        settings.WECHAT_TIMEOUT = (3.05, 14.0)
        v2_client()
        settings.WECHAT_TIMEOUT = (3.05, 10.0)

        assert v2_client() is not first


class TestV3ReasonProblems:
    """The texts staff read on the refund page when a reason cannot be sent (§1.2, §8.1)."""

    @pytest.mark.parametrize(
        ("reason", "problem"),
        [
            ("tab\there", "The reason must not contain control characters."),
            ("broken 🍵", "The reason must not contain emoji: WeChat Pay refuses them."),
            # U+10000, the first 4-byte character.
            ("\U00010000", "The reason must not contain emoji: WeChat Pay refuses them."),
            (
                "破损" * 13 + "abc",
                "The reason must be at most 80 bytes for WeChat Pay (about 26 Chinese characters).",
            ),
            ("\uffff", ""),  # the last 3-byte character: no emoji
        ],
    )
    def test_each_problem_is_said_plainly(self, order, reason, problem):
        assert gateway_for(order).refund_reason_problem(reason) == problem


class TestV3Description:
    def test_the_last_3_byte_character_is_kept_and_the_first_4_byte_one_dropped(self):
        assert v3_description("Tea\uffff") == "Tea\uffff"
        assert v3_description("Tea\U00010000") == "Tea"

    def test_a_long_body_with_a_lone_surrogate_is_cut_without_failing(self):
        description = v3_description("\ud800" + "茶" * 50)

        assert description == "茶" * 40 + "…"  # the surrogate's 3 bytes are dropped in the cut


class TestV3PrepayNotifyUrl:
    def test_an_order_without_a_url_of_its_own_gets_the_v3_notify_url(self, order, wxpay_v3):
        gateway_for(order).prepay(order=order)

        assert wxpay_v3.calls(JSAPI)[0]["body"]["notify_url"] == (
            "https://shop.example.com/payment/v3/wxnotify"
        )

    def test_an_orders_own_url_is_sent_whatever_the_setting(self, order, wxpay_v3):
        order.notify_url = "https://old.example.com/payment/v3/wxnotify"

        gateway_for(order).prepay(order=order)

        assert wxpay_v3.calls(JSAPI)[0]["body"]["notify_url"] == order.notify_url


class TestV3ErrorTexts:
    """``str()`` of a translated error is the wire error's text, for staff and logs."""

    def test_a_request_v3_cannot_carry_keeps_the_wire_text(self, order, wxpay_v3):
        order.body = "\x07"

        with pytest.raises(PayRequestInvalid) as caught:
            gateway_for(order).prepay(order=order)

        assert str(caught.value) == "description holds a control character"
        assert wxpay_v3.calls(JSAPI) == []

    def test_our_signature_refused_keeps_the_wire_text(self, order, wxpay_v3):
        wxpay_v3.errors[JSAPI] = (401, "SIGN_ERROR")

        with pytest.raises(PayUnavailable) as caught:
            gateway_for(order).prepay(order=order)

        assert "HTTP 401 SIGN_ERROR" in str(caught.value)

    def test_no_answer_keeps_the_wire_text(self, order, wxpay_v3):
        wxpay_v3.errors[QUERY] = (503, "")

        with pytest.raises(PayUnavailable) as caught:
            gateway_for(order).query(order=order)

        assert str(caught.value) == (
            "HTTP status 503 from GET /v3/pay/transactions/out-trade-no/{out_trade_no}"
        )


class TestACertificateDownloadThatRaises:
    def test_the_answer_under_the_unknown_serial_is_refused_and_not_asked_again(
        self, order, wxpay_v3, monkeypatch
    ):
        """``v3_keys_refresh`` answers False for WeChat's failures; should one escape it
        anyway, the untrusted answer is still refused, and nothing is sent twice."""
        wxpay_v3.trade_add(order.out_trade_no, total=4500, openid=order.openid)
        wxpay_v3.sign_with_platform = True

        def refresh_fails(client, serial):
            raise WxPayV3Unavailable("download failed")

        monkeypatch.setattr(gateway, "v3_keys_refresh", refresh_fails)

        with pytest.raises(PayUnavailable) as caught:
            gateway_for(order).query(order=order)

        assert caught.value.kind == "UnknownSerial"
        assert len(wxpay_v3.calls(QUERY)) == 1
        assert wxpay_v3.calls(CERTIFICATES) == []
