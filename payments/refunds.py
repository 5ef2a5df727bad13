"""Refunds (docs/protocol/wechat-pay-v2.md §7, docs/protocol/wechat-pay-v3.md §8): record
first, ask WeChat outside any transaction, apply the result exactly once. WeChat is asked
through ``payments.gateway``, in the API the order was placed with.

1. ``refund_create``: under the order's row lock, check the order is paid and the amount
   fits in what is left, and record a *pending* refund with a fresh ``out_refund_no``.
2. ``refund_submit``: no transaction, no lock held while WeChat answers (docs/INVARIANTS.md §6.7).
   Accepted → processing. No clear answer → still pending, sent again later with the
   *same* ``out_refund_no``, which WeChat refunds only once (§7.1). Refused → failed.
3. ``refund_apply_result``: the one place a refund becomes success, closed or abnormal
   (from the refund notify §7.3 or refundquery §7.2), and where an order whose whole
   total went back becomes ``refunded``.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, models, transaction
from django.db.models import Sum
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from core.config import pay_refund_notify_url
from core.money import yuan
from core.times import compact_timestamp
from orders.models import Order, PayVersion
from orders.services import order_flag, order_mark_refunded
from payments.gateway import (
    REFUND_REASON_MAX_CHARS,
    V2_REFUND_STATUS,
    PayError,
    PayGateway,
    PayRefused,
    PayRequestInvalid,
    gateway_for,
)
from payments.models import REFUND_FINAL, Refund
from payments.selectors import order_refund_totals

logger = logging.getLogger(__name__)

Status = Refund.Status
MAX_REFUNDS_PER_ORDER = 50  # §7.1 (v3: the same, docs/protocol/wechat-pay-v3.md §8.3)
REASON_MAX_CHARS = REFUND_REASON_MAX_CHARS  # refund_desc is String(80), §7.1
# WeChat's v2 refund_status (§7.2, §7.3) → ours, for the v2 refund notify. PROCESSING is
# not a result yet.
STATUS_FROM_WECHAT = V2_REFUND_STATUS


class RefundApplied(models.TextChoices):
    """What ``refund_apply_result`` did with WeChat's word on a refund. Callers branch on
    it; people read it as a ledger outcome or a ReconcileAction's label."""

    APPLIED = "applied"  # recorded now
    DUPLICATE = "duplicate"  # recorded before: nothing changed
    CONFLICT = "conflict"  # did not fit the refund on record: nothing changed, order flagged


@dataclass(frozen=True)
class RefundRequest:
    """What ``refund_create`` came to: the refund, and whether this call made it (False:
    the request key's earlier submission made it; do not act on it as new)."""

    refund: Refund
    created: bool


class RefundError(Exception):
    """A refund the shop refuses; ``str()`` is safe to show staff."""


class RefundNotAllowed(RefundError):
    """The order is not in a state that can be refunded."""


class OrderAlreadyRefunded(RefundNotAllowed):
    pass


class RefundAmountInvalid(RefundError):
    pass


def refund_gateway(*, order: Order) -> PayGateway:
    """The gateway of the order's API, once what its refunds need is configured (v2: the
    client certificate; v3: the v3 settings).

    Raises ``WeChatNotConfigured`` (a clear message for staff) rather than failing later
    inside the HTTP call.
    """
    gateway = gateway_for(order)
    gateway.require_refunds_configured()
    return gateway


def refund_notify_url(version: str = PayVersion.V2) -> str:
    """Where WeChat posts the refund results of orders placed with API ``version`` (§7.3):
    v2 the setting, or the payment notify URL with its last segment ``wxnotify`` replaced
    (no query string allowed, §7.1); v3 ``…/v3/refundnotify`` beside the v3 notify URL."""
    return pay_refund_notify_url(version)


def out_refund_no_new(now: datetime) -> str:
    """``R`` + Beijing time + 16 random hex digits: 31 characters of ``[0-9A-Z]``, within
    WeChat's String(64) (§7.1), time-sortable and unguessable."""
    return "R" + compact_timestamp(now) + secrets.token_hex(8)


# -- create ------------------------------------------------------------------------------------


def refund_create(
    *,
    order: Order,
    refund_fee: int,
    reason: str,
    requested_by: User | None = None,
    request_key: str = "",
) -> RefundRequest:
    """Record a pending refund of ``refund_fee`` fen; WeChat is not called here.

    The order row is locked while the amount is checked against what its other refunds
    already hold, so concurrent refunds can never add up to more than was paid.

    ``request_key`` (the one-time key of an admin confirmation page) makes one request
    make at most one refund, however often it is submitted: the refund already recorded
    with it is returned as it is, whatever is asked this time, with ``created`` False (the
    caller must not act on it as new); a key already used for another order is refused.
    """
    # Refuse before recording anything that could never be sent.
    gateway = refund_gateway(order=order)
    if isinstance(refund_fee, bool) or not isinstance(refund_fee, int) or refund_fee < 1:
        raise RefundAmountInvalid("The refund amount must be at least ¥0.01.")
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX_CHARS:
        raise RefundError(f"The reason must be at most {REASON_MAX_CHARS} characters.")
    # A reason the order's API cannot carry: the refund could never be sent, and
    # reconciliation would try it again forever.
    problem = gateway.refund_reason_problem(reason)
    if problem:
        raise RefundError(problem)
    if len(request_key) > REQUEST_KEY_MAX_CHARS:
        raise RefundError(f"The request key must be at most {REQUEST_KEY_MAX_CHARS} characters.")
    try:
        with transaction.atomic():
            locked = Order.objects.select_for_update().get(pk=order.pk)
            # Looked up under the order's lock: a second submission of the same page waits
            # for the first to commit, then finds its refund instead of checking the amount.
            existing = _refund_for_request(locked, request_key)
            if existing is not None:
                return RefundRequest(existing, created=False)
            _check_refundable(locked, refund_fee)
            refund = Refund.objects.create(
                order=locked,
                out_refund_no=out_refund_no_new(timezone.now()),
                refund_fee=refund_fee,
                reason=reason,
                requested_by=requested_by,
                request_key=request_key,
            )
    except IntegrityError:
        # The same key for another order at the same moment (two order locks do not
        # exclude each other): the unique constraint let the other insert through.
        # pragma: no mutate start (only two requests at once reach this: the PostgreSQL
        # test test_one_key_for_two_orders_at_once_makes_one_refund; mutmut runs on SQLite)
        existing = _refund_for_request(order, request_key)
        if existing is None:
            raise
        return RefundRequest(existing, created=False)
        # pragma: no mutate end
    logger.info(
        "refund created out_refund_no=%s out_trade_no=%s refund_fee=%s",
        refund.out_refund_no,
        locked.out_trade_no,
        refund_fee,
    )
    return RefundRequest(refund, created=True)


REQUEST_KEY_MAX_CHARS = 64  # Refund.request_key


def _refund_for_request(order: Order, request_key: str) -> Refund | None:
    """The refund already made for ``request_key``, or None."""
    if not request_key:
        return None
    refund = Refund.objects.filter(request_key=request_key).first()
    if refund is None:
        return None
    if refund.order_id != order.pk:
        raise RefundNotAllowed(
            "This refund request was already used for another order; open the refund page again."
        )
    logger.info(
        "refund request repeated out_refund_no=%s out_trade_no=%s",
        refund.out_refund_no,
        order.out_trade_no,
    )
    return refund


def _check_refundable(order: Order, refund_fee: int) -> None:
    if order.status == Order.Status.REFUNDED:
        raise OrderAlreadyRefunded(f"Order {order.out_trade_no} is already fully refunded.")
    if not order.has_payment:
        raise RefundNotAllowed(
            f"Order {order.out_trade_no} is {order.status}: only paid orders can be refunded."
        )
    refundable = order_refund_totals(order=order).refundable
    if refund_fee > refundable:
        raise RefundAmountInvalid(
            f"At most {yuan(refundable)} can still be refunded on order {order.out_trade_no}."
        )
    if order.refunds.exclude(status=Status.FAILED).count() >= MAX_REFUNDS_PER_ORDER:
        raise RefundNotAllowed(f"WeChat allows at most {MAX_REFUNDS_PER_ORDER} refunds per order.")


# -- submit ------------------------------------------------------------------------------------


# Every frame below holds the API key while signing or verifying: hidden from error
# reports (shopsite/error_reports.py).
@sensitive_variables()
def refund_submit(*, refund: Refund) -> Refund:
    """Send a pending refund to WeChat; returns it with its new status.

    Call outside any transaction. Anything but a definitive refusal leaves the refund
    pending for ``reconcile_orders`` to send again with the same number: after a timeout
    WeChat may well have it, and only the same ``out_refund_no`` is safe to repeat.
    Raises ``WeChatNotConfigured`` when the settings refunds need (v2: the certificate)
    are missing.
    """
    refund.refresh_from_db()
    if refund.status != Status.PENDING:
        return refund
    order = refund.order
    gateway = refund_gateway(order=order)
    try:
        refund_id = gateway.refund(
            order=order,
            out_refund_no=refund.out_refund_no,
            refund_fee=refund.refund_fee,
            reason=refund.reason,
        )
    except PayRefused as exc:
        # SYSTEMERROR, rate limits: "retry with identical parameters"; others for good.
        _refund_update(refund, last_error=_error_text(exc), to_failed=not exc.retryable)
    except PayRequestInvalid as exc:
        # Nothing was sent and the same request can never be sent (a reason stored before
        # control characters were refused): refused for good, not retried every run.
        _refund_update(refund, last_error=_error_text(exc), to_failed=True)
    except PayError as exc:
        # No trustworthy answer (network, HTTP, signature, return_code=FAIL, certificate).
        _refund_update(refund, last_error=_error_text(exc))
    else:
        _refund_update(refund, refund_id=refund_id)
    refund.refresh_from_db()
    logger.info("refund submitted out_refund_no=%s status=%s", refund.out_refund_no, refund.status)
    return refund


def _refund_update(
    refund: Refund,
    *,
    refund_id: str = "",
    # Mutation testing: every caller that stores last_error passes it (equivalent mutants).
    last_error: str = "",  # pragma: no mutate
    to_failed: bool = False,
) -> None:
    """Move a refund on from pending only: a notify may have settled it meanwhile."""
    if refund_id:
        changes = {"status": Status.PROCESSING, "refund_id": refund_id, "last_error": ""}
    elif to_failed:
        changes = {"status": Status.FAILED, "last_error": last_error}
    else:
        changes = {"last_error": last_error}
    Refund.objects.filter(pk=refund.pk, status=Status.PENDING).update(
        **changes, updated_at=timezone.now()
    )


def _error_text(exc: PayError) -> str:
    # The wire error's name ("SystemBusy: WeChat Pay business error SYSTEMERROR: …").
    return f"{exc.kind}: {exc}"


# -- apply WeChat's verdict --------------------------------------------------------------------


def refund_apply_result(
    *,
    refund: Refund,
    status: str,
    refund_id: str = "",
    succeeded_at: datetime | None = None,
    recv_account: str = "",
    refund_fee: int | None = None,
) -> RefundApplied:
    """Record WeChat's final word on a refund, exactly once; returns APPLIED, DUPLICATE or
    CONFLICT (nothing changed, the order is flagged for staff).

    ``refund_fee``, when WeChat states it, must be ours: req_info is AES-ECB without a MAC
    and refundquery answers are only as good as our matching, so a mismatch is never
    applied silently.
    """
    if status not in REFUND_FINAL:
        raise ValueError(f"not a final refund status: {status!r}")
    with transaction.atomic():
        # Order first, then refund: the lock order of refund_create, so no deadlock.
        order = Order.objects.select_for_update().get(pk=refund.order_id)
        locked = Refund.objects.select_for_update().get(pk=refund.pk)
        if _is_duplicate(locked, status):
            return RefundApplied.DUPLICATE
        problem = _result_problem(locked, status, refund_fee)
        if problem:
            order_flag(order=order, reason=f"Refund {locked.out_refund_no}: {problem}")
            return RefundApplied.CONFLICT
        if locked.status == Status.FAILED:
            order_flag(
                order=order,
                reason=f"Refund {locked.out_refund_no} was refused by WeChat, yet WeChat now "
                f"reports it {status}; check before refunding again.",
            )
        updated = Refund.objects.filter(pk=locked.pk, status=locked.status).update(
            status=status,
            refund_id=refund_id[:64] or locked.refund_id,
            succeeded_at=succeeded_at if status == Status.SUCCESS else None,
            recv_account=recv_account[:64],
            updated_at=timezone.now(),
        )
        if not updated:
            return RefundApplied.DUPLICATE
        _order_after_result(order, locked, status)
    refund.refresh_from_db()
    logger.info("refund %s out_refund_no=%s", status, refund.out_refund_no)
    return RefundApplied.APPLIED


def _is_duplicate(refund: Refund, status: str) -> bool:
    return refund.status in REFUND_FINAL and refund.status == status


def _result_problem(refund: Refund, status: str, refund_fee: int | None) -> str:
    """ "" when the result may be applied, else a reason for staff."""
    if refund.status in REFUND_FINAL:
        return f"WeChat reports {status} after {refund.status}; nothing changed."
    if refund_fee is not None and refund_fee != refund.refund_fee:
        return f"WeChat reports {status} for {refund_fee} fen, not {refund.refund_fee}."
    return ""


def _order_after_result(order: Order, refund: Refund, status: str) -> None:
    if status == Status.ABNORMAL:
        order_flag(
            order=order,
            reason=f"Refund {refund.out_refund_no} ({yuan(refund.refund_fee)}) is abnormal: "
            "WeChat could not pay it into the buyer's account and returned it to the "
            "merchant account. Settle it in the WeChat Pay merchant platform.",
        )
    if status != Status.SUCCESS:
        return
    refunded = (
        Refund.objects.filter(order=order, status=Status.SUCCESS).aggregate(
            total=Sum("refund_fee")
        )["total"]
        # Mutation testing: the refund just applied succeeded, so the sum is never None
        # here, and equality is handled above: these mutants are equivalent.
        or 0  # pragma: no mutate
    )
    if refunded == order.charged_fee:
        order_mark_refunded(order=order)
    elif refunded > order.charged_fee:  # pragma: no mutate
        order_flag(order=order, reason=f"Refunds total {yuan(refunded)}, more than was paid.")


# -- refunds made outside the shop -------------------------------------------------------------

EXTERNAL_REFUND_REASON = "made outside the shop (WeChat Pay merchant platform)"


@dataclass(frozen=True)
class ExternalRefund:
    refund: Refund
    applied: RefundApplied  # APPLIED: recorded now; DUPLICATE: it was recorded before


def refund_record_external(
    *,
    order: Order,
    out_refund_no: str,
    status: str,
    refund_fee: int,
    refund_id: str = "",
    succeeded_at: datetime | None = None,
    recv_account: str = "",
) -> ExternalRefund:
    """Record, once, a refund WeChat reports that the shop never asked for: one a person made
    in the WeChat Pay merchant platform, whose ``out_refund_no`` is WeChat's own.

    The money has gone back, so it is kept like any refund (it counts against what is left
    to refund; a whole refund makes the order ``refunded``) and the order is flagged: what
    it means for stock and books is for a person to decide.
    """
    if status not in REFUND_FINAL:
        raise ValueError(f"not a final refund status: {status!r}")
    if refund_fee < 1:
        raise RefundAmountInvalid(f"refund_fee {refund_fee} is not a refund.")
    with transaction.atomic():
        # The order lock orders duplicates delivered at once: the second finds the first.
        locked = Order.objects.select_for_update().get(pk=order.pk)
        existing = Refund.objects.filter(out_refund_no=out_refund_no).first()
        if existing is not None:
            return ExternalRefund(existing, RefundApplied.DUPLICATE)
        # Mutation testing: refund_apply_result below writes refund_id and the status
        # again and the fee is the one just stored, so the mutants of the lines marked
        # here are equivalent.
        refund = Refund.objects.create(
            order=locked,
            out_refund_no=out_refund_no,
            refund_id=refund_id[:64],  # pragma: no mutate
            refund_fee=refund_fee,
            reason=EXTERNAL_REFUND_REASON,
            status=Status.PROCESSING,  # pragma: no mutate
            requested_by=None,  # pragma: no mutate
        )
        applied = refund_apply_result(
            refund=refund,
            status=status,
            refund_id=refund_id,  # pragma: no mutate
            succeeded_at=succeeded_at,
            recv_account=recv_account,
            refund_fee=refund_fee,  # pragma: no mutate
        )
        unpaid = "" if locked.has_payment else " The shop has no payment recorded for it."
        order_flag(
            order=locked,
            reason=f"Refund {out_refund_no} ({yuan(refund_fee)}, {status}) was "
            f"{EXTERNAL_REFUND_REASON}.{unpaid}",
        )
    logger.info(
        "external refund recorded out_refund_no=%s out_trade_no=%s refund_fee=%s",
        out_refund_no,
        locked.out_trade_no,
        refund_fee,
    )
    return ExternalRefund(refund, applied)
