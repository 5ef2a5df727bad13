"""Refunds at their edges: what mutation testing found no test for (docs/RELIABILITY.md,
"Mutation testing"). Each test pins one rule a changed line would break unnoticed."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import logging
import re
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from orders.models import Order
from payments.models import Refund
from payments.refunds import (
    EXTERNAL_REFUND_REASON,
    MAX_REFUNDS_PER_ORDER,
    ExternalRefund,
    OrderAlreadyRefunded,
    RefundAmountInvalid,
    RefundApplied,
    RefundError,
    RefundNotAllowed,
    out_refund_no_new,
    refund_apply_result,
    refund_create,
    refund_notify_url,
    refund_record_external,
    refund_submit,
)
from tests.factories import make_order, make_refund, make_shopper, notify_refund, reload
from wechat.pay_v2 import BEIJING

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("refund_certificate")]

REFUND = "/secapi/pay/refund"
Status = Refund.Status


class TestWhatCanBeAsked:
    def test_a_reason_of_80_characters_is_kept_and_81_refused(self, paid, wxpay):
        assert refund_create(order=paid, refund_fee=1, reason="r" * 80).refund.reason == "r" * 80

        with pytest.raises(RefundError) as refused:
            refund_create(order=paid, refund_fee=1, reason="r" * 81)
        assert str(refused.value) == "The reason must be at most 80 characters."

    def test_a_reason_is_kept_trimmed_and_none_is_empty(self, paid, wxpay):
        assert refund_create(order=paid, refund_fee=1, reason="  late  ").refund.reason == "late"
        assert refund_create(order=paid, refund_fee=1, reason=None).refund.reason == ""

    def test_a_reason_xml_cannot_carry_is_refused(self, paid, wxpay):
        with pytest.raises(RefundError) as refused:
            refund_create(order=paid, refund_fee=1, reason="bad\x07bell")
        assert str(refused.value) == "The reason must not contain control characters."

    def test_a_request_key_of_64_characters_is_kept_and_65_refused(self, paid, wxpay):
        made = refund_create(order=paid, refund_fee=1, reason="", request_key="k" * 64)
        assert made.refund.request_key == "k" * 64

        with pytest.raises(RefundError) as refused:
            refund_create(order=paid, refund_fee=1, reason="", request_key="k" * 65)
        assert str(refused.value) == "The request key must be at most 64 characters."

    @pytest.mark.parametrize("fee", [0, True, 1.0])
    def test_an_amount_that_is_not_whole_fen_says_so(self, paid, wxpay, fee):
        with pytest.raises(RefundAmountInvalid) as refused:
            refund_create(order=paid, refund_fee=fee, reason="")
        assert str(refused.value) == "The refund amount must be at least ¥0.01."

    def test_one_fen_and_exactly_what_is_left_can_be_refunded(self, paid, wxpay):
        refund_create(order=paid, refund_fee=1, reason="")

        assert refund_create(order=paid, refund_fee=4499, reason="").created

        with pytest.raises(RefundAmountInvalid) as refused:
            refund_create(order=paid, refund_fee=1, reason="")
        assert str(refused.value) == (
            f"At most ¥0.00 can still be refunded on order {paid.out_trade_no}."
        )

    def test_the_messages_say_why_an_order_cannot_be_refunded(self, paid, products, wxpay):
        unpaid = make_order(make_shopper(), products)
        with pytest.raises(RefundNotAllowed) as refused:
            refund_create(order=unpaid, refund_fee=1, reason="")
        assert str(refused.value) == (
            f"Order {unpaid.out_trade_no} is unpaid: only paid orders can be refunded."
        )

        notify_refund(make_refund(paid, 4500))
        with pytest.raises(OrderAlreadyRefunded) as refused:
            refund_create(order=reload(paid), refund_fee=1, reason="")
        assert str(refused.value) == f"Order {paid.out_trade_no} is already fully refunded."

    def test_a_request_key_of_another_order_is_refused_saying_so(self, paid, products, wxpay):
        refund_create(order=paid, refund_fee=1, reason="", request_key="page-1")
        other = make_order(
            make_shopper(),
            products,
            status="paid",
            transaction_id="42-other",
            paid_at=timezone.now(),
            paid_fee=4500,
        )

        with pytest.raises(RefundNotAllowed) as refused:
            refund_create(order=reload(other), refund_fee=1, reason="", request_key="page-1")
        assert str(refused.value) == (
            "This refund request was already used for another order; open the refund page again."
        )


class TestFiftyRefunds:
    """WeChat takes at most 50 refunds per order (§7.1); failed ones do not count."""

    def fill(self, order: Order, count: int, status: str = Status.PROCESSING) -> None:
        Refund.objects.bulk_create(
            Refund(order=order, out_refund_no=f"R-{status}-{n}", refund_fee=1, status=status)
            for n in range(count)
        )

    def test_the_fiftieth_is_allowed_and_the_fifty_first_refused(self, paid, wxpay):
        self.fill(paid, MAX_REFUNDS_PER_ORDER - 1)
        assert refund_create(order=paid, refund_fee=1, reason="").created

        with pytest.raises(RefundNotAllowed) as refused:
            refund_create(order=paid, refund_fee=1, reason="")
        assert str(refused.value) == "WeChat allows at most 50 refunds per order."

    def test_failed_refunds_do_not_count(self, paid, wxpay):
        self.fill(paid, MAX_REFUNDS_PER_ORDER - 1)
        self.fill(paid, 5, Status.FAILED)

        assert refund_create(order=paid, refund_fee=1, reason="").created


def test_a_refund_number_is_r_beijing_time_and_16_hex_digits():
    now = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)  # the moment given, not the clock's

    number = out_refund_no_new(now)

    assert re.fullmatch(r"R\d{14}[0-9a-f]{16}", number)
    assert number[1:15] == "20260301120506"
    assert number != out_refund_no_new(now)


def test_a_notify_url_not_ending_in_wxnotify_gets_the_default_path(settings):
    settings.WECHAT_REFUND_NOTIFY_URL = ""
    settings.WECHAT_NOTIFY_URL = "https://shop.example.com/hooks/wechat-pay"

    assert refund_notify_url() == "https://shop.example.com/payment/refundnotify"


class TestSubmit:
    def test_what_is_sent_to_wechat(self, paid, wxpay):
        make_refund(paid, 1000)

        [sent] = wxpay.calls(REFUND)
        assert (sent["total_fee"], sent["refund_fee"], sent["refund_desc"]) == (
            "4500",
            "1000",
            "test",
        )
        assert sent["notify_url"] == refund_notify_url()

    def test_a_refund_without_a_reason_sends_no_description(self, paid, wxpay):
        refund_submit(refund=refund_create(order=paid, refund_fee=1000, reason="").refund)

        [sent] = wxpay.calls(REFUND)
        assert "refund_desc" not in sent

    def test_a_refund_no_longer_pending_is_not_sent_again(self, paid, wxpay):
        refund = make_refund(paid, 1000)

        assert refund_submit(refund=refund).status == Status.PROCESSING
        assert len(wxpay.calls(REFUND)) == 1

    @pytest.mark.parametrize(
        ("err_code", "status", "kind"),
        [
            ("SYSTEMERROR", Status.PENDING, "SystemBusy"),
            ("NOTENOUGH", Status.FAILED, "WxPayBusinessError"),
        ],
    )
    def test_a_refusal_is_kept_with_its_kind_and_code(self, paid, wxpay, err_code, status, kind):
        wxpay.path_errors[REFUND] = err_code

        refund = make_refund(paid, 1000)

        assert refund.status == status
        assert refund.last_error == f"{kind}: WeChat Pay business error {err_code}: test"
        assert refund.refund_id == ""

    def test_an_accepted_refund_forgets_the_last_error(self, paid, wxpay):
        wxpay.path_error_queue[REFUND] = ["SYSTEMERROR"]
        refund = make_refund(paid, 1000)
        assert refund.last_error

        refund = refund_submit(refund=refund)

        assert (refund.status, refund.last_error) == (Status.PROCESSING, "")
        assert refund.refund_id


class TestRecordedFromOutside:
    """refund_record_external: a refund made in the merchant platform, recorded once."""

    def record(self, order: Order, **fields) -> ExternalRefund:
        return refund_record_external(
            order=order, out_refund_no="WX-1", status=Status.SUCCESS, refund_fee=500, **fields
        )

    def test_it_is_recorded_as_wechat_reports_it(self, paid):
        succeeded_at = datetime(2026, 11, 27, 12, 0, 5, tzinfo=BEIJING)

        recorded = self.record(
            paid, refund_id="5" * 70, succeeded_at=succeeded_at, recv_account="支付用户零钱"
        )

        refund = reload(recorded.refund)
        assert recorded.applied == RefundApplied.APPLIED
        assert (refund.refund_id, refund.status, refund.refund_fee) == ("5" * 64, "success", 500)
        assert (refund.succeeded_at, refund.recv_account) == (succeeded_at, "支付用户零钱")
        assert (refund.requested_by, refund.reason) == (None, EXTERNAL_REFUND_REASON)
        assert reload(paid).attention_reason == (
            "Refund WX-1 (¥5.00, success) was made outside the shop (WeChat Pay merchant platform)."
        )

    def test_what_wechat_did_not_say_is_left_empty(self, paid):
        refund = reload(self.record(paid).refund)

        assert (refund.refund_id, refund.recv_account, refund.succeeded_at) == ("", "", None)

    def test_the_same_refund_again_is_a_duplicate_of_the_first(self, paid):
        first = self.record(paid)

        again = self.record(paid)

        assert (again.refund, again.applied) == (first.refund, RefundApplied.DUPLICATE)
        assert Refund.objects.count() == 1

    def test_an_order_without_a_payment_says_so(self, products):
        unpaid = make_order(make_shopper(), products)

        self.record(unpaid)

        assert reload(unpaid).attention_reason.endswith(
            "merchant platform). The shop has no payment recorded for it."
        )

    def test_it_is_logged_in_one_line(self, paid, caplog):
        with caplog.at_level(logging.INFO, logger="payments.refunds"):
            self.record(paid)

        assert (
            f"external refund recorded out_refund_no=WX-1 out_trade_no={paid.out_trade_no} "
            "refund_fee=500"
        ) in [r.getMessage() for r in caplog.records]

    def test_only_a_final_status_and_a_real_amount_are_recorded(self, paid):
        with pytest.raises(ValueError) as refused:
            refund_record_external(
                order=paid, out_refund_no="WX-2", status=Status.PROCESSING, refund_fee=500
            )
        assert str(refused.value) == "not a final refund status: Refund.Status.PROCESSING"

        with pytest.raises(RefundAmountInvalid) as refused:
            refund_record_external(
                order=paid, out_refund_no="WX-3", status=Status.SUCCESS, refund_fee=0
            )
        assert str(refused.value) == "refund_fee 0 is not a refund."
        assert not Refund.objects.exists()


def test_an_abnormal_refund_tells_staff_what_to_do(paid, wxpay):
    refund = make_refund(paid, 1000)

    notify_refund(refund, "CHANGE", success_time="")

    assert reload(paid).attention_reason == (
        f"Refund {refund.out_refund_no} (¥10.00) is abnormal: WeChat could not pay it into "
        "the buyer's account and returned it to the merchant account. Settle it in the WeChat "
        "Pay merchant platform."
    )


class TestWhenTheWholeTotalWentBack:
    """Only this order's successful refunds count towards "refunded"."""

    def test_refunds_still_processing_do_not_count(self, paid, wxpay):
        make_refund(paid, 3500)  # processing: no verdict yet
        done = make_refund(paid, 1000)

        notify_refund(done)

        assert reload(paid).status == Order.Status.PAID

    def test_another_orders_refunds_do_not_count(self, paid, products, wxpay):
        other = make_order(
            make_shopper(),
            products,
            status="paid",
            transaction_id="42-other",
            paid_at=timezone.now(),
            paid_fee=4500,
        )
        notify_refund(make_refund(other, 1000), transaction_id="42-other")

        notify_refund(make_refund(paid, 3500))

        assert reload(paid).status == Order.Status.PAID


class TestApplyingWeChatsVerdict:
    """refund_apply_result, called as the notify and refundquery call it."""

    def test_a_success_keeps_what_wechat_said_within_the_columns(self, paid, wxpay):
        refund = make_refund(paid, 1000)
        succeeded_at = datetime(2026, 11, 27, 12, 0, 5, tzinfo=BEIJING)

        applied = refund_apply_result(
            refund=refund,
            status=Status.SUCCESS,
            refund_id="5" * 70,
            succeeded_at=succeeded_at,
            recv_account="a" * 70,
        )

        refund = reload(refund)
        assert applied == RefundApplied.APPLIED
        assert (refund.refund_id, refund.recv_account) == ("5" * 64, "a" * 64)
        assert refund.succeeded_at == succeeded_at

    def test_what_wechat_did_not_say_keeps_what_was_known(self, paid, wxpay):
        refund = make_refund(paid, 1000)
        known = refund.refund_id

        refund_apply_result(refund=refund, status=Status.SUCCESS)

        refund = reload(refund)
        assert (refund.refund_id, refund.recv_account) == (known, "")

    def test_only_a_success_has_a_success_time(self, paid, wxpay):
        refund = make_refund(paid, 1000)

        refund_apply_result(refund=refund, status=Status.CLOSED, succeeded_at=timezone.now())

        assert reload(refund).succeeded_at is None

    def test_the_verdict_is_dated(self, paid, wxpay):
        refund = make_refund(paid, 1000)
        before = timezone.now()

        refund_apply_result(refund=refund, status=Status.SUCCESS)

        assert reload(refund).updated_at >= before

    def test_only_this_refund_changes(self, paid, wxpay):
        first, second = make_refund(paid, 1000), make_refund(paid, 500)

        refund_apply_result(refund=first, status=Status.SUCCESS)

        assert (reload(first).status, reload(second).status) == (Status.SUCCESS, Status.PROCESSING)

    def test_a_verdict_that_is_not_final_is_refused(self, paid, wxpay):
        with pytest.raises(ValueError) as refused:
            refund_apply_result(refund=make_refund(paid, 1000), status="processing")

        assert str(refused.value) == "not a final refund status: 'processing'"

    def test_a_verdict_after_another_is_flagged_saying_both(self, paid, wxpay):
        refund = make_refund(paid, 1000)
        refund_apply_result(refund=refund, status=Status.SUCCESS)

        applied = refund_apply_result(refund=refund, status=Status.CLOSED)

        assert applied == RefundApplied.CONFLICT
        assert reload(paid).attention_reason == (
            f"Refund {refund.out_refund_no}: WeChat reports closed after success; nothing changed."
        )

    def test_another_amount_is_flagged_saying_both(self, paid, wxpay):
        refund = make_refund(paid, 1000)

        refund_apply_result(refund=refund, status=Status.SUCCESS, refund_fee=999)

        assert reload(paid).attention_reason == (
            f"Refund {refund.out_refund_no}: WeChat reports success for 999 fen, not 1000."
        )

    def test_a_refused_refund_reported_done_after_all_is_flagged(self, paid, wxpay):
        wxpay.path_errors[REFUND] = "NOTENOUGH"
        refund = make_refund(paid, 1000)
        assert refund.status == Status.FAILED

        assert refund_apply_result(refund=refund, status=Status.SUCCESS) == RefundApplied.APPLIED

        assert reload(paid).attention_reason == (
            f"Refund {refund.out_refund_no} was refused by WeChat, yet WeChat now reports it "
            "success; check before refunding again."
        )

    def test_refunds_beyond_what_was_paid_are_flagged(self, paid, wxpay):
        notify_refund(make_refund(paid, 4000))

        refund_record_external(
            order=reload(paid), out_refund_no="WX-9", status=Status.SUCCESS, refund_fee=1000
        )

        assert "Refunds total ¥50.00, more than was paid." in reload(paid).attention_reason

    def test_it_is_logged_in_one_line(self, paid, wxpay, caplog):
        refund = make_refund(paid, 1000)

        with caplog.at_level(logging.INFO, logger="payments.refunds"):
            refund_apply_result(refund=refund, status=Status.SUCCESS)

        assert f"refund success out_refund_no={refund.out_refund_no}" in [
            r.getMessage() for r in caplog.records
        ]


class TestSubmitRaces:
    def test_a_verdict_that_arrives_while_wechat_answers_is_kept(self, paid, wxpay):
        refund = refund_create(order=paid, refund_fee=1000, reason="").refund
        # The notify lands while the refund request is still on the wire.
        wxpay.observers.append(
            lambda fields: Refund.objects.filter(pk=refund.pk).update(status=Status.SUCCESS)
        )

        assert refund_submit(refund=refund).status == Status.SUCCESS

    def test_submitting_dates_the_refund(self, paid, wxpay):
        refund = refund_create(order=paid, refund_fee=1000, reason="").refund
        before = timezone.now()

        assert refund_submit(refund=refund).updated_at >= before


def test_each_step_of_a_refund_is_one_log_line(paid, wxpay, caplog):
    with caplog.at_level(logging.INFO, logger="payments.refunds"):
        made = refund_create(order=paid, refund_fee=1000, reason="", request_key="page-1")
        refund_create(order=paid, refund_fee=1000, reason="", request_key="page-1")
        refund_submit(refund=made.refund)

    number, order_number = made.refund.out_refund_no, paid.out_trade_no
    assert [r.getMessage() for r in caplog.records if r.name == "payments.refunds"] == [
        f"refund created out_refund_no={number} out_trade_no={order_number} refund_fee=1000",
        f"refund request repeated out_refund_no={number} out_trade_no={order_number}",
        f"refund submitted out_refund_no={number} status=processing",
    ]
