"""Payment notifies (``POST /payment/wxnotify``): record, verify, apply exactly once.

1. ``notification_receive`` stores the raw body first, in its own autocommit write,
   so that nothing that follows can lose it.
2. The body is parsed and verified: signature over every received field, appid,
   mch_id, and the order it names.
3. In one transaction the order row is locked, the payment checked against it
   (amount, payer) and applied, and the ledger row gets its outcome. Only when that
   transaction has committed may the view answer SUCCESS (DESIGN §6.2).
"""

import logging

from django.db import DatabaseError, transaction
from django.utils import timezone

from orders.models import Order
from payments.models import PaymentNotification
from payments.services import PaymentFields, payment_apply, payment_client
from payments.wxpay import (
    MAX_BODY_BYTES,
    XMLError,
    from_xml,
    notify_sign_type,
    parse_wx_time,
    verify,
)

logger = logging.getLogger(__name__)

Outcome = PaymentNotification.Outcome
# Outcomes after which WeChat should stop resending: the result is durably recorded.
ACKNOWLEDGED = {Outcome.PAID, Outcome.DUPLICATE, Outcome.FLAGGED, Outcome.NOT_PAID}
KEPT_OF_OVERSIZE_BODY = 4096


class NotifyRejected(Exception):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome


def notification_receive(*, body: bytes, remote_addr: str | None) -> PaymentNotification:
    """Record and process one notify; the returned row's ``replied`` says what to answer."""
    truncated = len(body) > MAX_BODY_BYTES
    notification = PaymentNotification.objects.create(
        raw_body=_as_text(body[:KEPT_OF_OVERSIZE_BODY] if truncated else body),
        body_truncated=truncated,
        remote_addr=remote_addr,
    )
    try:
        if truncated:
            raise NotifyRejected(Outcome.MALFORMED, f"Body over {MAX_BODY_BYTES} bytes.")
        _process(notification, body)
    except NotifyRejected as exc:
        _finish(notification, exc.outcome, str(exc))
    except Exception as exc:
        # Database down, a statement failing, a bug: answer FAIL so WeChat retries; the
        # raw body is already stored.
        logger.exception("notify %s: processing failed", notification.pk)
        _finish_error(notification, f"Processing failed: {type(exc).__name__}")
    return notification


def _process(notification: PaymentNotification, body: bytes) -> None:
    try:
        fields = from_xml(body)
    except XMLError as exc:
        raise NotifyRejected(Outcome.MALFORMED, f"Unreadable XML: {exc}") from None
    notification.out_trade_no = fields.get("out_trade_no", "")[:64]
    notification.transaction_id = fields.get("transaction_id", "")[:64]
    if fields.get("return_code") != "SUCCESS":
        raise NotifyRejected(
            Outcome.REJECTED, "return_code is not SUCCESS (such notifies are unsigned)."
        )

    with transaction.atomic():
        order = (
            Order.objects.select_for_update().filter(out_trade_no=notification.out_trade_no).first()
        )
        _verify(notification, fields, order)
        if order is None:
            raise NotifyRejected(Outcome.UNKNOWN_ORDER, "No order with this out_trade_no.")
        notification.order = order
        if fields.get("result_code") != "SUCCESS":
            outcome, detail = Outcome.NOT_PAID, f"result_code {fields.get('result_code')!r}."
        else:
            outcome, detail = payment_apply(order=order, payment=_payment_fields(fields))
        _finish(notification, outcome, detail)


def _verify(notification: PaymentNotification, fields: dict, order: Order | None) -> None:
    client = payment_client()
    sign_type = notify_sign_type(fields, default=order.sign_type if order else None)
    notification.signature_valid = verify(fields, client.config.api_key, sign_type)
    if not notification.signature_valid:
        raise NotifyRejected(Outcome.REJECTED, f"Bad signature ({sign_type}).")
    # A valid signature with our key but another appid or merchant is not ours to apply.
    if fields.get("appid") != client.config.appid:
        raise NotifyRejected(Outcome.REJECTED, f"appid {fields.get('appid')!r} is not ours.")
    if fields.get("mch_id") != client.config.mch_id:
        raise NotifyRejected(Outcome.REJECTED, f"mch_id {fields.get('mch_id')!r} is not ours.")


def _payment_fields(fields: dict) -> PaymentFields:
    try:
        total_fee = int(fields.get("total_fee", ""))
        paid_at = parse_wx_time(fields.get("time_end", ""))
    except ValueError:
        raise NotifyRejected(Outcome.MALFORMED, "total_fee or time_end is not valid.") from None
    if not fields.get("transaction_id") or len(fields["transaction_id"]) > 32:
        raise NotifyRejected(Outcome.MALFORMED, "transaction_id is missing or too long.")
    return PaymentFields(
        transaction_id=fields["transaction_id"],
        total_fee=total_fee,
        openid=fields.get("openid", ""),
        paid_at=paid_at,
    )


def _finish(notification: PaymentNotification, outcome: str, detail: str) -> None:
    notification.outcome = outcome
    notification.detail = detail
    notification.replied = "SUCCESS" if outcome in ACKNOWLEDGED else "FAIL"
    notification.processed_at = timezone.now()
    notification.save(
        update_fields=[
            "outcome",
            "detail",
            "replied",
            "processed_at",
            "out_trade_no",
            "transaction_id",
            "order",
            "signature_valid",
        ]
    )


def _finish_error(notification: PaymentNotification, detail: str) -> None:
    """Best effort: the raw body is already stored even if this write fails too."""
    notification.order = None
    try:
        _finish(notification, Outcome.ERROR, detail)
    except DatabaseError:
        notification.outcome, notification.replied = Outcome.ERROR, "FAIL"
        logger.exception("notify %s: could not record the error", notification.pk)


def _as_text(body: bytes) -> str:
    # Any bytes can be stored: invalid UTF-8 is kept as \x.. escapes, and so is NUL,
    # which PostgreSQL text columns refuse.
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
