"""Taking payment for an order: the WeChat Pay client and ``wx.requestPayment`` parameters.

Services reach WeChat Pay only through ``payment_client()`` and the narrow interface
of ``WxPayClient`` (prepay, query, close, parse/verify notify), so an API v3 client can
later sit beside v2 without touching order logic. WeChat Pay failing a call made for a
shopper becomes ``WeChatPayFailed`` here, once, for the API to answer 502.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from core.config import require_pay_configured
from core.errors import DomainError
from orders.models import Order
from orders.services import (
    order_flag,
    order_mark_paid,
    order_record_unexpected_payment,
    order_set_prepay,
)
from payments.models import PaymentNotification
from wechat.pay_v2 import WxPayBusinessError, WxPayClient, WxPayConfig, WxPayError

logger = logging.getLogger(__name__)

PREPAY_LIFETIME = timedelta(hours=2)  # docs/protocol/wechat-pay-v2.md §3.2
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
    """WeChat Pay refused a call or could not be reached (any ``WxPayError``, including
    values the request cannot carry): nothing changed here, the caller may try again."""

    status_code = 502

    def __init__(self, message: str, cause: WxPayError, *, out_trade_no: str = ""):
        super().__init__(f"{message}: {cause}")
        self.err_code = cause.err_code if isinstance(cause, WxPayBusinessError) else ""
        self.out_trade_no = out_trade_no

    def extra(self) -> dict[str, object]:
        return {"err_code": self.err_code, "out_trade_no": self.out_trade_no}


@lru_cache(maxsize=4)
def _client_for(config: WxPayConfig) -> WxPayClient:
    # One client, hence one pooled requests.Session, per configuration and process.
    return WxPayClient(config)


def payment_client(*, sign_type: str | None = None) -> WxPayClient:
    """The client for this configuration; ``sign_type`` pins an order's own algorithm."""
    require_pay_configured()
    return _client_for(
        WxPayConfig(
            appid=settings.WECHAT_APPID,
            mch_id=settings.WECHAT_MCH_ID,
            api_key=settings.WECHAT_MCH_KEY,
            sign_type=sign_type or settings.WECHAT_SIGN_TYPE,
            api_base=settings.WECHAT_PAY_API_BASE,
            timeout=settings.WECHAT_TIMEOUT,
            cert_path=settings.WECHAT_CERT_PATH or None,
            key_path=settings.WECHAT_KEY_PATH or None,
        )
    )


# Every frame below holds the API key while signing or verifying: hidden from error
# reports (shopsite/error_reports.py).
@sensitive_variables()
def payment_prepare(*, order: Order) -> dict[str, str]:
    """The signed ``wx.requestPayment`` parameters for an unpaid order.

    A prepay_id with life left is reused (fresh timeStamp, nonce and paySign); else
    unifiedorder is called again with the order's stored parameters, which WeChat
    treats as re-entry of the same trade. Runs outside any transaction: nothing is
    locked while WeChat answers. Raises ``WeChatPayFailed`` when WeChat refuses or is
    unavailable: the order stays unpaid and can be paid again later.
    """
    if not order.is_payable:
        raise OrderNotPayable(
            order, f"Order {order.out_trade_no} is {order.status} and cannot be paid."
        )
    # The order keeps the algorithm it was created with, even if the setting changes.
    client = payment_client(sign_type=order.sign_type)
    now = timezone.now()
    if not (order.prepay_id and order.prepay_expires_at - PREPAY_REUSE_MARGIN > now):
        try:
            prepay = client.unified_order(
                out_trade_no=order.out_trade_no,
                total_fee=order.total_fee,
                body=order.body,
                openid=order.openid,  # always the owner's: WeChat refuses any other payer
                # The URL of the first call: a re-entry with another one is OUT_TRADE_NO_USED.
                notify_url=order.notify_url or settings.WECHAT_NOTIFY_URL,
                spbill_create_ip=order.spbill_create_ip,
                time_start=order.created_at,
                time_expire=order.expires_at,
            )
        except WxPayError as exc:
            raise WeChatPayFailed(
                "WeChat Pay refused or is unavailable", exc, out_trade_no=order.out_trade_no
            ) from exc
        if not order_set_prepay(
            order=order, prepay_id=prepay.prepay_id, expires_at=now + PREPAY_LIFETIME
        ):
            raise OrderNotPayable(order, f"Order {order.out_trade_no} stopped being payable.")
    return client.jsapi_params(order.prepay_id)


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
