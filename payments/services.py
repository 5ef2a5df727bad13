"""Taking payment for an order: the ``wx.requestPayment`` parameters, and what a payment
WeChat vouched for means for the order (``payment_apply``).

WeChat Pay is reached through ``payments.gateway``: ``gateway_for(order)`` speaks the API the
order was placed with (v2 or v3) and raises one family of errors, ``PayError``. WeChat Pay
failing a call made for a shopper becomes ``WeChatPayFailed`` here, once, for the API to
answer 502.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from core.errors import DomainError
from orders.models import Order
from orders.services import (
    order_flag,
    order_mark_paid,
    order_record_unexpected_payment,
    order_set_prepay,
)
from payments.gateway import PayError, gateway_for, pay_require_configured, v2_client
from payments.models import PaymentNotification

logger = logging.getLogger(__name__)

# Do not hand out a prepay_id that would die while the shopper is still paying.
PREPAY_REUSE_MARGIN = timedelta(minutes=5)


class OrderNotPayable(DomainError):
    status_code = 409

    def __init__(self, order: Order, message: str):
        super().__init__(message)
        self.status, self.out_trade_no = order.status, order.out_trade_no

    def extra(self) -> dict[str, object]:
        return {"status": self.status, "out_trade_no": self.out_trade_no}


class WeChatPayFailed(DomainError):
    """WeChat Pay refused a call or could not be reached (any ``PayError``, including values
    the request cannot carry): nothing changed here, the caller may try again. ``err_code``
    is WeChat's own error code ("" when WeChat gave none)."""

    status_code = 502

    def __init__(self, message: str, cause: PayError, *, out_trade_no: str = ""):
        super().__init__(f"{message}: {cause}")
        self.err_code = cause.code
        self.out_trade_no = out_trade_no

    def extra(self) -> dict[str, object]:
        return {"err_code": self.err_code, "out_trade_no": self.out_trade_no}


def payment_require_configured() -> None:
    """Raise ``WeChatNotConfigured`` unless new orders can be paid with the API they will be
    placed with (``WECHAT_PAY_VERSION``): checked before an order is recorded that could
    never be paid."""
    pay_require_configured(settings.WECHAT_PAY_VERSION)


def payment_client(*, sign_type: str | None = None):
    """The API v2 client (``wechat.pay_v2.WxPayClient``) for this configuration, one per
    thread; ``sign_type`` pins an order's own algorithm. For the v2 notifies and statements,
    which read v2's own formats; everything done *to* an order goes through
    ``payments.gateway``."""
    return v2_client(sign_type=sign_type)


# Every frame below holds the API key while signing or verifying: hidden from error
# reports (shopsite/error_reports.py).
@sensitive_variables()
def payment_prepare(*, order: Order) -> dict[str, str]:
    """The signed ``wx.requestPayment`` parameters for an unpaid order.

    A prepay_id with life left is reused (fresh timeStamp, nonce and paySign); else the
    order's API is asked for one again with the order's stored parameters, which WeChat
    treats as re-entry of the same trade. Runs outside any transaction: nothing is
    locked while WeChat answers. Raises ``WeChatPayFailed`` when WeChat refuses or is
    unavailable: the order stays unpaid and can be paid again later.
    """
    if not order.is_payable:
        raise OrderNotPayable(
            order, f"Order {order.out_trade_no} is {order.status} and cannot be paid."
        )
    # The order keeps the API and the algorithm it was created with, even if the settings
    # change.
    gateway = gateway_for(order)
    now = timezone.now()
    try:
        if not (order.prepay_id and order.prepay_expires_at - PREPAY_REUSE_MARGIN > now):
            prepay_id = gateway.prepay(order=order)
            if not order_set_prepay(
                order=order, prepay_id=prepay_id, expires_at=now + gateway.prepay_lifetime
            ):
                raise OrderNotPayable(order, f"Order {order.out_trade_no} stopped being payable.")
        return gateway.payment_params(prepay_id=order.prepay_id)
    except PayError as exc:
        raise WeChatPayFailed(
            "WeChat Pay refused or is unavailable", exc, out_trade_no=order.out_trade_no
        ) from exc


Outcome = PaymentNotification.Outcome


@dataclass(frozen=True)
class PaymentResult:
    """What ``payment_apply`` did, for the ledger row of the notify or query behind it."""

    outcome: Outcome  # PAID, DUPLICATE or FLAGGED
    detail: str  # recorded on the ledger row, for staff


@dataclass(frozen=True)
class PaymentFields:
    """What WeChat says was paid, from a verified notify or orderquery answer."""

    transaction_id: str
    total_fee: int  # fen
    openid: str
    paid_at: datetime  # WeChat's time_end, Beijing time


def payment_apply(*, order: Order, payment: PaymentFields) -> PaymentResult:
    """Record a payment WeChat vouched for, and say what that came to.

    The one place that decides what a payment means for an order, for notifies and
    reconciliation alike. Call it inside the transaction that locked ``order``
    (``select_for_update``). A payment that does not fit the order is never applied
    silently and never dropped: WeChat has the money, so its transaction is recorded
    where staff can refund it, and the order is flagged with the reason.
    """
    # Already paid (a refund since does not make it payable again).
    if order.has_payment or order.status == Order.Status.REFUNDED:
        if order.transaction_id == payment.transaction_id:
            return PaymentResult(Outcome.DUPLICATE, "Already recorded.")
        order_flag(order=order, reason=f"Paid twice: second transaction {payment.transaction_id}.")
        return PaymentResult(Outcome.FLAGGED, "A second payment for an order already paid.")
    problems = []
    if payment.total_fee != order.total_fee:
        problems.append(f"amount {payment.total_fee} ≠ order total {order.total_fee}")
    if payment.openid != order.openid:
        problems.append("payer openid differs from the order's")
    if problems and order.status == Order.Status.CLOSED:
        problems.append("paid after the order was closed")
    if not problems and order.status == Order.Status.UNPAID:
        if order_mark_paid(
            order=order,
            transaction_id=payment.transaction_id,
            paid_at=payment.paid_at,
            paid_fee=payment.total_fee,
        ):
            return PaymentResult(Outcome.PAID, "Order marked paid.")
        raise RuntimeError(f"Order {order.out_trade_no} in unexpected state {order.status!r}.")
    if problems:
        reason = (
            f"Payment {payment.transaction_id}: {'; '.join(problems)}. Recorded, order closed "
            "and its stock returned; refund it."
        )
        detail = "; ".join(problems)
    else:
        # Money was taken for an order we had closed (and whose stock went back).
        reason = f"Paid after closing: transaction {payment.transaction_id}; refund or ship."
        detail = "Paid after the order was closed."
    if order_record_unexpected_payment(
        order=order,
        transaction_id=payment.transaction_id,
        paid_at=payment.paid_at,
        paid_fee=payment.total_fee,
        reason=reason,
    ):
        return PaymentResult(Outcome.FLAGGED, detail)
    raise RuntimeError(f"Order {order.out_trade_no} in unexpected state {order.status!r}.")
