"""Orders after checkout: closing them and reconciling them (and their refunds) with WeChat.

WeChat does not promise that a notify ever arrives, and an unpaid order holds stock,
so every unpaid order ends one of two ways: paid (a notify, or ``orderquery`` saying
SUCCESS) or closed (by its owner, by staff, or by reconciliation once it expired). Once
WeChat says it holds money for an order (closeorder ORDERPAID), the order is never closed
before that payment is recorded: if orderquery cannot confirm it, the order stays as it
is, flagged, and reconciliation asks again.
WeChat is asked through ``payments.gateway``, in the API the order was placed with (v2 or
v3; "orderquery" and "closeorder" below name the step in either).
WeChat is asked first and our rows are changed after, in short transactions of their
own: no row lock is held while WeChat answers (docs/INVARIANTS.md §6.7).

What reconciling did is a ``Reconciled`` (a ``ReconcileAction`` and the code qualifying
it); the command and admin turn its translatable label into their summary and messages.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md (v3 has the same
# rules, docs/protocol/wechat-pay-v3.md §6, §8).

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from core.errors import DomainError
from orders.models import Order
from orders.services import (
    MAX_TOTAL_FEE,
    order_clear_close_pending,
    order_close_local,
    order_flag,
)
from payments.gateway import (
    CLOSED_STATES,
    PAID_STATES,
    CloseOutcome,
    PayError,
    Trade,
    gateway_for,
)
from payments.models import REFUND_OPEN, PaymentNotification, Refund
from payments.refunds import RefundApplied, refund_apply_result, refund_submit
from payments.services import PaymentFields, WeChatPayFailed, payment_apply

logger = logging.getLogger(__name__)

Outcome = PaymentNotification.Outcome

# WeChat refuses closeorder within 5 minutes of unifiedorder (docs/protocol/wechat-pay-v2.md §6.2;
# v3 does not say, docs/protocol/wechat-pay-v3.md §6.3: the same wait, for both).
WECHAT_CLOSE_MIN_AGE = timedelta(minutes=5)
# A wallet refund settles within ~20 minutes (docs/protocol/wechat-pay-v2.md §7.1) and the notify
# usually says so; ask refundquery only about refunds processing for longer than this.
REFUND_QUERY_AFTER = timedelta(minutes=5)


class OrderNotClosable(DomainError):
    status_code = 409

    def __init__(self, order: Order):
        super().__init__(f"Order {order.out_trade_no} is {order.status} and cannot be closed.")
        self.status = order.status

    def extra(self) -> dict[str, object]:
        return {"status": self.status}


class OrderPaidWhileClosing(DomainError):
    """Closing found the order paid at WeChat: recorded paid, or left unpaid and flagged
    while the payment is not settled (``CloseResult.closed`` False)."""

    status_code = 409

    def __init__(self, order: Order):
        super().__init__("WeChat reports the order paid meanwhile; it cannot be closed.")
        self.status = order.status

    def extra(self) -> dict[str, object]:
        return {"status": self.status}


class ReconcileAction(models.TextChoices):
    """What reconciling one order or refund did: a line of reconcile_orders' summary and a
    part of admin's "Ask WeChat now" message. ``Reconciled.detail`` may qualify it."""

    NOTHING_TO_DO = "nothing_to_do", _("nothing to do")
    WAITING = "waiting", _("waiting")
    # detail: payment_apply's outcome (paid, duplicate, flagged)
    PAYMENT_RECORDED = "payment_recorded", _("payment recorded")
    PAID_WHILE_CLOSING = "paid_while_closing", _("payment recorded (paid while closing)")
    PAID_AFTER_CLOSE = "paid_after_close", _("payment after close recorded")
    CLOSED_EXPIRED = "closed_expired", _("closed (expired)")
    CLOSED_NEVER_SENT = "closed_never_sent", _("closed (expired, never sent to WeChat)")
    # detail: WeChat's trade_state (CLOSED, REVOKED, PAYERROR)
    CLOSED_TO_MATCH_WECHAT = "closed_to_match_wechat", _("closed to match WeChat")
    CLOSED_AT_WECHAT = "closed_at_wechat", _("closed at WeChat")
    ANSWER_DID_NOT_FIT = "answer_did_not_fit", _("flagged (answer did not fit)")
    PAID_UNSETTLED = "paid_unsettled", _("flagged (WeChat says paid, nothing recorded)")
    REFUND_SENT_AGAIN = "refund_sent_again", _("refund sent again")  # detail: its status now
    REFUND_WAITING = "refund_waiting", _("refund waiting")
    # detail: WeChat's refund_status
    REFUND_STILL_OPEN = "refund_still_open", _("refund still open at WeChat")
    # detail: the refund's final status (success, closed, abnormal)
    REFUND_RECORDED = "refund_recorded", _("refund result recorded")
    REFUND_DUPLICATE = "refund_duplicate", _("refund result already recorded")
    REFUND_CONFLICT = "refund_conflict", _("flagged (refund result did not fit)")
    # The run itself (reconcile_orders); detail: the exception's type.
    TAKEN = "taken", _("taken by another run")
    WECHAT_ERROR = "wechat_error", _("WeChat error")
    REFUND_WECHAT_ERROR = "refund_wechat_error", _("refund: WeChat error")
    FAILED = "failed", _("failed")  # ours (data, database, settings): the run exits non-zero


@dataclass(frozen=True)
class Reconciled:
    """One thing reconciling did, and the code that qualifies it, if any."""

    action: ReconcileAction
    detail: str = ""

    @property
    def label(self) -> str:
        """For people, in the active language: ``payment recorded (paid)``."""
        label = str(self.action.label)
        return f"{label} ({self.detail})" if self.detail else label


_REFUND_ACTIONS = {
    RefundApplied.APPLIED: ReconcileAction.REFUND_RECORDED,
    RefundApplied.DUPLICATE: ReconcileAction.REFUND_DUPLICATE,
    RefundApplied.CONFLICT: ReconcileAction.REFUND_CONFLICT,
}


class WeChatClose(enum.StrEnum):
    """What closing an order at WeChat came to."""

    CLOSED = "closed"  # closed there, or WeChat never had it: close it here too
    PAID = "paid"  # WeChat says paid and the payment is recorded
    # WeChat says paid but no payment could be recorded (orderquery disagreed, failed or
    # did not fit): the order is flagged and left as it is, for reconciliation to ask again.
    UNSETTLED = "unsettled"


@dataclass(frozen=True)
class CloseResult:
    order: Order
    closed: bool  # False: it turned out paid, or WeChat says so and it stays open, flagged


# Every frame below holds the API key while signing or verifying: hidden from error
# reports (shopsite/error_reports.py).
@sensitive_variables()
def order_close(*, order: Order) -> CloseResult:
    """Close an unpaid order for its owner or staff, at WeChat too when it can be.

    Within WeChat's first 5 minutes it is closed here only and reconciliation closes it
    at WeChat later. When WeChat answers that the order was paid meanwhile, the payment
    is recorded (through the same checks as a notify) instead, or, if it cannot be, the
    order stays unpaid and flagged: never closed while WeChat may hold its money.
    Raises ``WeChatPayFailed`` when WeChat refuses or is unavailable (nothing changed).
    """
    if order.status == Order.Status.CLOSED:
        return CloseResult(order, closed=True)
    if order.status != Order.Status.UNPAID:
        raise OrderNotClosable(order)
    pending = bool(order.prepay_id) and not _wechat_may_close(order)
    if order.prepay_id and not pending:
        try:
            closing = _close_at_wechat(order)
        except PayError as exc:
            raise WeChatPayFailed("WeChat Pay could not close the order", exc) from exc
        if closing != WeChatClose.CLOSED:
            order.refresh_from_db()
            return CloseResult(order, closed=False)
    if not order_close_local(order=order, pending_at_wechat=pending):
        order.refresh_from_db()
        if order.status != Order.Status.CLOSED:
            raise OrderNotClosable(order)
    return CloseResult(order, closed=True)


def _wechat_may_close(order: Order) -> bool:
    return timezone.now() - order.created_at >= WECHAT_CLOSE_MIN_AGE


def _close_at_wechat(order: Order) -> WeChatClose:
    """closeorder, and what WeChat's answer means for the order."""
    # Closed already, or WeChat never had it: closed either way (CloseOutcome.CLOSED).
    if gateway_for(order).close(order=order) == CloseOutcome.PAID:
        return _settle_order_paid(order)
    return WeChatClose.CLOSED


def _settle_order_paid(order: Order) -> WeChatClose:
    """closeorder answered ORDERPAID: record the payment orderquery reports, or flag.

    Whatever orderquery says, the order is not closed: WeChat has said it holds money
    for it, so closing would give its stock back and lose the payment.
    """
    try:
        trade = gateway_for(order).query(order=order)
    except PayError as exc:
        said = f"orderquery failed ({exc.kind})"
    else:
        if trade is not None and trade.trade_state in PAID_STATES:
            if _apply_trade(order, trade) == Outcome.REJECTED:
                return WeChatClose.UNSETTLED  # flagged by _apply_trade
            return WeChatClose.PAID
        if trade is None:
            said = "orderquery knows no such order"
        else:
            said = f"orderquery says {trade.trade_state[:32] or 'nothing'}"
    order_flag(
        order=order,
        reason=f"WeChat says paid (closeorder ORDERPAID), {said}: not closed; "
        "reconcile_orders asks again.",
    )
    return WeChatClose.UNSETTLED


def _trade_problem(order: Order, trade: Trade) -> str:
    """Why a paid orderquery answer cannot be applied to ``order`` ("" if it can): the
    checks a notify gets (payment_apply then checks the amount and the payer)."""
    if trade.out_trade_no != order.out_trade_no:
        return f"out_trade_no {trade.out_trade_no[:32]!r} is not the order's"
    if not 1 <= len(trade.transaction_id) <= 32:
        return "transaction_id missing or over 32 characters"
    if trade.total_fee is None or not 1 <= trade.total_fee <= MAX_TOTAL_FEE:
        return "total_fee missing or out of range"
    return ""


def _flag_unfit(order: Order, trade: Trade, problem: str) -> None:
    order_flag(
        order=order,
        reason=f"WeChat's answer did not fit: {problem} (orderquery {trade.trade_state[:32]}); "
        "nothing applied.",
    )


def _apply_trade(order: Order, trade: Trade) -> str:
    """Record what a verified orderquery answer says was paid; returns payment_apply's
    outcome, or ``Outcome.REJECTED`` when the answer did not fit (flagged, nothing applied).

    A REFUND state is flagged in the same locked transaction as the payment is recorded,
    so neither reason can overwrite the other.
    """
    problem = _trade_problem(order, trade)
    if problem:
        _flag_unfit(order, trade, problem)
        return Outcome.REJECTED
    payment = PaymentFields(
        transaction_id=trade.transaction_id,
        total_fee=trade.total_fee,
        openid=trade.openid,
        paid_at=trade.paid_at or timezone.now(),
    )
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        outcome = payment_apply(order=locked, payment=payment).outcome
        if trade.trade_state == "REFUND":
            order_flag(order=locked, reason="WeChat reports a refund started on this order.")
    return outcome


@sensitive_variables()
def order_reconcile(*, order: Order) -> tuple[Reconciled, ...]:
    """Bring one order in line with WeChat; returns what was done: one action, or, for a
    paid order, one for each of its unsettled refunds.

    Idempotent: every change goes through a conditional update or ``payment_apply``
    under the row lock, so running it twice, or beside a notify, is harmless.
    """
    if order.status == Order.Status.CLOSED:
        return (_reconcile_closed(order),)
    if order.status in (Order.Status.PAID, Order.Status.REFUNDED):
        return _reconcile_refunds(order)
    if order.status != Order.Status.UNPAID:
        # Mutation testing: unreachable (every status is handled above and a check
        # constraint allows no other), so this line's mutants are equivalent.
        return (Reconciled(ReconcileAction.NOTHING_TO_DO),)  # pragma: no mutate
    return (_reconcile_unpaid(order),)


def _reconcile_unpaid(order: Order) -> Reconciled:
    expired = order.expires_at <= timezone.now()
    if not order.prepay_id:
        # Never reached WeChat: nobody can have paid it.
        if expired and order_close_local(order=order):
            return Reconciled(ReconcileAction.CLOSED_NEVER_SENT)
        return Reconciled(ReconcileAction.WAITING)
    trade = gateway_for(order).query(order=order)  # None: WeChat has no such order
    # Only a paid answer must echo out_trade_no; one naming another order is never used.
    if trade is not None and trade.out_trade_no and trade.out_trade_no != order.out_trade_no:
        _flag_unfit(order, trade, f"out_trade_no {trade.out_trade_no[:32]!r} is not the order's")
        return Reconciled(ReconcileAction.ANSWER_DID_NOT_FIT)
    if trade is not None and trade.trade_state in PAID_STATES:
        outcome = _apply_trade(order, trade)
        if outcome == Outcome.REJECTED:
            return Reconciled(ReconcileAction.ANSWER_DID_NOT_FIT)
        return Reconciled(ReconcileAction.PAYMENT_RECORDED, str(outcome))
    if trade is not None and trade.trade_state in CLOSED_STATES:
        order_close_local(order=order)
        return Reconciled(ReconcileAction.CLOSED_TO_MATCH_WECHAT, trade.trade_state)
    if expired and (trade is None or trade.trade_state == "NOTPAY"):
        closing = _close_at_wechat(order)
        if closing == WeChatClose.PAID:
            return Reconciled(ReconcileAction.PAID_WHILE_CLOSING)
        if closing == WeChatClose.UNSETTLED:
            return Reconciled(ReconcileAction.PAID_UNSETTLED)
        order_close_local(order=order)
        return Reconciled(ReconcileAction.CLOSED_EXPIRED)
    return Reconciled(ReconcileAction.WAITING)


def _reconcile_closed(order: Order) -> Reconciled:
    if not order.close_pending_at_wechat:
        return Reconciled(ReconcileAction.NOTHING_TO_DO)
    if not _wechat_may_close(order):
        return Reconciled(ReconcileAction.WAITING)
    outcome = _close_at_wechat(order)
    if outcome == WeChatClose.UNSETTLED:
        # Still pending: the next run asks WeChat again.
        return Reconciled(ReconcileAction.PAID_UNSETTLED)
    order_clear_close_pending(order=order)
    if outcome == WeChatClose.PAID:
        return Reconciled(ReconcileAction.PAID_AFTER_CLOSE)
    return Reconciled(ReconcileAction.CLOSED_AT_WECHAT)


def _reconcile_refunds(order: Order) -> tuple[Reconciled, ...]:
    """A paid order has nothing to ask WeChat about but its unsettled refunds: asked now,
    since a person wants to know."""
    refunds = order.refunds.filter(status__in=REFUND_OPEN).order_by("pk")
    done = tuple(refund_reconcile(refund=r, query_after=timedelta(0)) for r in refunds)
    return done or (Reconciled(ReconcileAction.NOTHING_TO_DO),)


@sensitive_variables()
def refund_reconcile(*, refund: Refund, query_after: timedelta = REFUND_QUERY_AFTER) -> Reconciled:
    """Bring one refund in line with WeChat; returns what was done.

    Pending: WeChat never clearly accepted it, so it is sent again with the *same*
    ``out_refund_no`` (refunded only once, §7.1). Processing for a while: its notify may
    have been lost, so refundquery (§7.2) is asked and its verdict applied. Idempotent.
    """
    if refund.status == Refund.Status.PENDING:
        sent = refund_submit(refund=refund)
        return Reconciled(ReconcileAction.REFUND_SENT_AGAIN, str(sent.status))
    if refund.status != Refund.Status.PROCESSING:
        return Reconciled(ReconcileAction.NOTHING_TO_DO)
    if timezone.now() - refund.updated_at < query_after:
        return Reconciled(ReconcileAction.REFUND_WAITING)
    # refundquery needs no client certificate (§7.2).
    report = gateway_for(refund.order).refund_query(out_refund_no=refund.out_refund_no)
    if report.status is None:
        return Reconciled(ReconcileAction.REFUND_STILL_OPEN, report.wechat_status or "unknown")
    applied = refund_apply_result(
        refund=refund,
        status=report.status,
        refund_id=report.refund_id,
        succeeded_at=report.succeeded_at,
        recv_account=report.recv_account,
        refund_fee=report.refund_fee,
    )
    return Reconciled(_REFUND_ACTIONS[applied], str(report.status))
