"""WeChat's notifies: record, verify, apply exactly once.

Payments (``POST /payment/wxnotify``, §5) and refunds (``POST /payment/refundnotify``,
§7.3) go the same way, into the same ledger:

1. ``notification_receive`` / ``refund_notification_receive`` store the raw body first, in
   their own autocommit write, so that nothing that follows can lose it.
2. The body is parsed and verified: for a payment the signature over every received field;
   for a refund, which carries no sign, the decryption of ``req_info`` with our key; then
   appid, mch_id, and the order (or refund) it names.
3. In one transaction the rows are locked, the result checked against them and applied,
   and the ledger row gets its outcome. Only when that transaction has committed may the
   view answer SUCCESS (docs/INVARIANTS.md §6.2).

Staff may process a stored body again (``notification_reprocess``, admin's "Reprocess"):
the same steps, into a new ledger row that points at the original, whose evidence is
never changed.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import logging
from collections.abc import Callable

from django.db import DatabaseError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from orders.models import Order
from orders.services import MAX_TOTAL_FEE
from payments import refunds
from payments.models import PaymentNotification, Refund
from payments.services import PaymentFields, payment_apply, payment_client
from wechat.pay_v2 import (
    MAX_BODY_BYTES,
    ReqInfoError,
    WxPayClient,
    XMLError,
    decrypt_req_info,
    from_xml,
    notify_sign_type,
    parse_wx_datetime,
    parse_wx_time,
    verify,
)

logger = logging.getLogger(__name__)

Outcome = PaymentNotification.Outcome
# Outcomes after which WeChat should stop resending: the result is durably recorded.
ACKNOWLEDGED = {
    Outcome.PAID,
    Outcome.REFUND_RECORDED,
    Outcome.DUPLICATE,
    Outcome.FLAGGED,
    Outcome.NOT_PAID,
}
KEPT_OF_OVERSIZE_BODY = 4096


class NotifyRejected(Exception):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome


class NotReprocessable(Exception):
    pass


# Every frame below holds the API key while signing or verifying: hidden from error
# reports (shopsite/error_reports.py).
@sensitive_variables()
def notification_receive(*, body: bytes, remote_addr: str | None) -> PaymentNotification:
    """Record and process one payment notify; the row's ``replied`` says what to answer."""
    return _receive(body, remote_addr, PaymentNotification.Kind.PAYMENT, _process)


@sensitive_variables()
def refund_notification_receive(*, body: bytes, remote_addr: str | None) -> PaymentNotification:
    """Record and process one refund notify; the row's ``replied`` says what to answer."""
    return _receive(body, remote_addr, PaymentNotification.Kind.REFUND, _process_refund)


@sensitive_variables()
def notification_reprocess(*, notification: PaymentNotification) -> PaymentNotification:
    """Process a stored notification's body again, as if WeChat had just sent it.

    For a notify that failed while processing (database down, a bug since fixed) or was
    refused before its order existed. The outcome goes into a new ledger row whose
    ``reprocess_of`` is the original (the first one, when reprocessing a reprocess);
    the original row is never changed. Exactly-once holds as for any notify: a payment
    already applied comes out a duplicate. A body cut short at reception cannot be
    reprocessed; one stored with \\x escapes (not UTF-8) fails its signature check.
    """
    if notification.body_truncated:
        raise NotReprocessable(f"Notification {notification.pk}: only its start was kept.")
    process = _process_refund if notification.kind == PaymentNotification.Kind.REFUND else _process
    return _receive(
        # Mutation testing: "UTF-8" names the same codec (an equivalent mutant).
        notification.raw_body.encode("utf-8"),  # pragma: no mutate
        None,
        notification.kind,
        process,
        reprocess_of_id=notification.reprocess_of_id or notification.pk,
    )


def _receive(
    body: bytes,
    remote_addr: str | None,
    kind: str,
    process: Callable[[PaymentNotification, bytes], None],
    reprocess_of_id: int | None = None,
) -> PaymentNotification:
    truncated = len(body) > MAX_BODY_BYTES
    notification = PaymentNotification.objects.create(
        kind=kind,
        raw_body=_as_text(body[:KEPT_OF_OVERSIZE_BODY] if truncated else body),
        body_truncated=truncated,
        remote_addr=remote_addr,
        reprocess_of_id=reprocess_of_id,
    )
    try:
        if truncated:
            raise NotifyRejected(Outcome.MALFORMED, f"Body over {MAX_BODY_BYTES} bytes.")
        process(notification, body)
    except NotifyRejected as exc:
        _finish(notification, exc.outcome, str(exc))
    except Exception as exc:
        # Database down, a statement failing, a bug: answer FAIL so WeChat retries; the
        # raw body is already stored.
        logger.exception("notify %s: processing failed", notification.pk)
        _finish_error(notification, f"Processing failed: {type(exc).__name__}")
    return notification


def _process(notification: PaymentNotification, body: bytes) -> None:
    fields = _parse(body)
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
            _finish(notification, Outcome.NOT_PAID, f"result_code {fields.get('result_code')!r}.")
            return
        result = payment_apply(order=order, payment=_payment_fields(fields))
        _finish(notification, result.outcome, result.detail)


def _verify(notification: PaymentNotification, fields: dict, order: Order | None) -> None:
    client = payment_client()
    # Always the order's own algorithm: honouring a declared sign_type would let a notify
    # for an HMAC-SHA256 order choose the weaker MD5. With no order (the notify is refused
    # anyway) the declared type, else a guess, only to record whether it was authentic.
    sign_type = notify_sign_type(fields) if order is None else order.sign_type
    notification.signature_valid = verify(fields, client.config.api_key, sign_type)
    declared = fields.get("sign_type")
    if order is not None and declared and declared != order.sign_type:
        raise NotifyRejected(
            Outcome.REJECTED,
            f"sign_type {declared[:20]!r} is not the order's ({order.sign_type}).",
        )
    if not notification.signature_valid:
        raise NotifyRejected(Outcome.REJECTED, f"Bad signature ({sign_type}).")
    _check_merchant(fields, client)


def _check_merchant(fields: dict, client: WxPayClient) -> None:
    # Authentic with our key but for another appid or merchant: not ours to apply.
    if fields.get("appid") != client.config.appid:
        raise NotifyRejected(Outcome.REJECTED, f"appid {fields.get('appid')!r} is not ours.")
    if fields.get("mch_id") != client.config.mch_id:
        raise NotifyRejected(Outcome.REJECTED, f"mch_id {fields.get('mch_id')!r} is not ours.")


def _payment_fields(fields: dict) -> PaymentFields:
    try:
        # Mutation testing: int() and parse_wx_time refuse any other text default as they
        # refuse "" (equivalent mutants).
        total_fee = int(fields.get("total_fee", ""))  # pragma: no mutate
        paid_at = parse_wx_time(fields.get("time_end", ""))  # pragma: no mutate
    except ValueError:
        raise NotifyRejected(Outcome.MALFORMED, "total_fee or time_end is not valid.") from None
    # Whatever WeChat charged is recorded on the order, so it must fit the column.
    if not 1 <= total_fee <= MAX_TOTAL_FEE:
        raise NotifyRejected(Outcome.MALFORMED, "total_fee is out of range.")
    if not fields.get("transaction_id") or len(fields["transaction_id"]) > 32:
        raise NotifyRejected(Outcome.MALFORMED, "transaction_id is missing or too long.")
    return PaymentFields(
        transaction_id=fields["transaction_id"],
        total_fee=total_fee,
        # Mutation testing: no openid, whatever the default, is never the order's (equivalent).
        openid=fields.get("openid", ""),  # pragma: no mutate
        paid_at=paid_at,
    )


def _parse(body: bytes) -> dict[str, str]:
    try:
        return from_xml(body)
    except XMLError as exc:
        raise NotifyRejected(Outcome.MALFORMED, f"Unreadable XML: {exc}") from None


# -- refund notify (§7.3) ----------------------------------------------------------------------


def _process_refund(notification: PaymentNotification, body: bytes) -> None:
    fields = _parse(body)
    if fields.get("return_code") != "SUCCESS":
        raise NotifyRejected(Outcome.REJECTED, "return_code is not SUCCESS.")
    client = payment_client()
    info = _decrypt(notification, fields, client)
    _check_merchant(fields, client)
    result = _refund_result(info)
    with transaction.atomic():
        refund = (
            Refund.objects.select_related("order")
            .filter(out_refund_no=notification.out_refund_no)
            .first()
        )
        if refund is None:
            _record_external_refund(notification, info, result)
            return
        notification.refund, notification.order = refund, refund.order
        if refund.order.out_trade_no != notification.out_trade_no:
            raise NotifyRejected(Outcome.REJECTED, "out_trade_no is not the refund's order.")
        applied = refunds.refund_apply_result(refund=refund, **result)
        _finish(notification, *_refund_outcome(applied, result["status"]))


def _record_external_refund(notification: PaymentNotification, info: dict, result: dict) -> None:
    """A refund we never asked for (made in the merchant platform): recorded on its order.

    When the order is not ours either, there is nothing to record it on: the ledger row
    keeps it (the decrypted numbers are in its columns) and WeChat is answered FAIL, so it
    keeps offering it (24 hours) and a reprocess can record it once the order is found.
    """
    order = Order.objects.filter(out_trade_no=notification.out_trade_no).first()
    if order is None:
        raise NotifyRejected(
            Outcome.UNKNOWN_REFUND,
            f"Authentic refund {notification.out_refund_no!r} of out_trade_no "
            f"{notification.out_trade_no!r}: neither the refund nor the order is in this "
            "shop. Not recorded; WeChat will send it again.",
        )
    notification.order = order
    if order.transaction_id and info.get("transaction_id") != order.transaction_id:
        raise NotifyRejected(Outcome.REJECTED, "transaction_id is not the order's.")
    if not notification.out_refund_no or result["refund_fee"] < 1:
        raise NotifyRejected(Outcome.MALFORMED, "out_refund_no or refund_fee invalid.")
    recorded = refunds.refund_record_external(
        order=order, out_refund_no=notification.out_refund_no, **result
    )
    notification.refund = recorded.refund
    if recorded.applied == refunds.RefundApplied.DUPLICATE:
        # Mutation testing: only two copies racing reach this line (the second finds the
        # refund the first recorded), which the PostgreSQL test
        # test_concurrent_copies_of_an_outside_refund_record_it_once does; mutmut runs on
        # SQLite, where no test can reach it.
        _finish(notification, Outcome.DUPLICATE, "Already recorded.")  # pragma: no mutate
    else:
        _finish(
            notification,
            Outcome.FLAGGED,
            f"Refund made outside the shop recorded ({result['status']}); order flagged.",
        )


def _decrypt(notification: PaymentNotification, fields: dict, client: WxPayClient) -> dict:
    """No sign on a refund notify: decrypting req_info with our key is the proof."""
    try:
        # pragma: no mutate start (no default, None, is refused exactly like "": equivalent)
        info = decrypt_req_info(fields.get("req_info", ""), client.config.api_key)
        # pragma: no mutate end
    except ReqInfoError as exc:
        notification.signature_valid = False
        raise NotifyRejected(Outcome.REJECTED, f"Not authentic: {exc}") from None
    notification.signature_valid = True
    notification.out_refund_no = info.get("out_refund_no", "")[:64]
    notification.out_trade_no = info.get("out_trade_no", "")[:64]
    notification.transaction_id = info.get("transaction_id", "")[:64]
    return info


def _refund_result(info: dict) -> dict:
    """refund_apply_result's arguments from the decrypted fields."""
    wechat_status = info.get("refund_status", "")
    status = refunds.STATUS_FROM_WECHAT.get(wechat_status)
    if status is None:
        raise NotifyRejected(Outcome.MALFORMED, f"refund_status {wechat_status[:20]!r} unknown.")
    try:
        # Mutation testing: int() refuses any other text default as it refuses "", and no
        # success_time (None) means what "" means: equivalent mutants.
        refund_fee = int(info.get("refund_fee", ""))  # pragma: no mutate
        success_time = info.get("success_time", "")  # pragma: no mutate
        succeeded_at = parse_wx_datetime(success_time) if success_time else None
    except ValueError:
        raise NotifyRejected(Outcome.MALFORMED, "refund_fee or success_time invalid.") from None
    return {
        "status": status,
        "refund_id": info.get("refund_id", ""),
        "succeeded_at": succeeded_at,
        "recv_account": info.get("refund_recv_accout", ""),  # sic, the official name
        "refund_fee": refund_fee,
    }


def _refund_outcome(applied: refunds.RefundApplied, status: str) -> tuple[str, str]:
    if applied == refunds.RefundApplied.DUPLICATE:
        return Outcome.DUPLICATE, "Already recorded."
    if applied == refunds.RefundApplied.CONFLICT:
        return Outcome.FLAGGED, "Does not fit the refund on record; order flagged."
    if status == Refund.Status.ABNORMAL:
        return Outcome.FLAGGED, "Refund abnormal (CHANGE); order flagged."
    return Outcome.REFUND_RECORDED, f"Refund {status}."


# -- ledger ------------------------------------------------------------------------------------


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
            "out_refund_no",
            "order",
            "refund",
            "signature_valid",
        ]
    )
    # One line per notify, with the order number that ties it to the order's lines.
    logger.info(
        "notify id=%s kind=%s out_trade_no=%s outcome=%s replied=%s",
        notification.pk,
        notification.kind,
        notification.out_trade_no or "-",
        outcome,
        notification.replied,
    )


def _finish_error(notification: PaymentNotification, detail: str) -> None:
    """Best effort: the raw body is already stored even if this write fails too."""
    notification.order = notification.refund = None
    try:
        _finish(notification, Outcome.ERROR, detail)
    except DatabaseError:
        notification.outcome, notification.replied = Outcome.ERROR, "FAIL"
        logger.exception("notify %s: could not record the error", notification.pk)


def _as_text(body: bytes) -> str:
    # Any bytes can be stored: invalid UTF-8 is kept as \x.. escapes, and so is NUL,
    # which PostgreSQL text columns refuse.
    # pragma: no mutate start ("UTF-8" and decode()'s default are this codec: equivalent)
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    # pragma: no mutate end
