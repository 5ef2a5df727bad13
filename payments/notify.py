"""WeChat's notifies: verify, apply exactly once, record.

Payments and refunds, API v2 (``POST /payment/wxnotify``, ``/payment/refundnotify``: XML,
docs/protocol/wechat-pay-v2.md §5, §7.3) and API v3 (``POST /payment/v3/wxnotify``,
``/payment/v3/refundnotify``: JSON with ``Wechatpay-*`` headers, docs/protocol/wechat-pay-v3.md
§7, §8.5) go the same way, into the same ledger:

1. The body is read and verified, outside any transaction; this is all the two versions
   do differently. v2: the signature over every received field (a refund, which carries
   no sign: the decryption of ``req_info`` with our key), then appid and mch_id. v3: the
   RSA signature over the raw body with the key ``Wechatpay-Serial`` names, within the
   5-minute window, then the AES-GCM resource, then appid and mchid.
2. One commit applies the result and writes the ledger row (the raw body, for v3 the
   signature headers, and the outcome). A payment that fits its unpaid order exactly, or
   a copy of one already applied, needs no lock: a conditional UPDATE pays the order
   (``orders.services.order_pay_if_fits``) and, on PostgreSQL, the same statement inserts
   the row. Anything else locks the order in a transaction and goes through
   ``payment_apply`` (refunds: ``refunds.refund_apply_result`` or, for a refund the shop
   never asked for, ``refunds.refund_record_external``), the row written last in it. Only
   once that commit has happened may the view acknowledge (docs/INVARIANTS.md §6.2).
3. A notify refused, or whose processing failed (database error, a bug), is rolled back
   and its ledger row written on its own, in autocommit, with the reason; when even that
   write fails, the view logs the body. The evidence of every notify answered is kept: a
   notify acknowledged has its row in the commit that applied it, one refused or failed
   has its row (or its log line) before the FAIL goes out. A worker killed mid-transaction
   leaves nothing, neither half a payment nor a row, and answers nothing; WeChat sends the
   notify again until it is acknowledged (docs/protocol/wechat-pay-v2.md §5.4).

Staff may process a stored body again (``notification_reprocess``, admin's "Reprocess"):
the same steps, into a new ledger row that points at the original, whose evidence is
never changed.
"""

import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, InterfaceError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from orders.models import Order, PayVersion
from orders.services import (
    MAX_TOTAL_FEE,
    PaidIfFits,
    PayIfFits,
    order_mark_paid_if_fits,
    order_paid_logged,
    order_pay_if_fits,
)
from payments import refunds
from payments.models import PaymentNotification, Refund
from payments.services import PaymentFields, payment_apply, payment_client
from payments.v3client import v3_client, v3_keys_refresh
from wechat import pay_v3
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
# v3: the headers kept as evidence, and what the verifier needs of them again on a
# reprocess. A value the verifier accepts is far shorter (a signature: 2048 characters).
SIGNATURE_HEADERS = (
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature",
    "Wechatpay-Serial",
    "Wechatpay-Signature-Type",
)
KEPT_HEADER_CHARS = 4096
KEPT_OTHER_WECHATPAY_HEADERS = 8
# v3 refund_status (docs/protocol/wechat-pay-v3.md §8.5) → ours. PROCESSING is no result.
V3_REFUND_STATUS = {
    "SUCCESS": Refund.Status.SUCCESS,
    "CLOSED": Refund.Status.CLOSED,
    "ABNORMAL": Refund.Status.ABNORMAL,
}


class NotifyRejected(Exception):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome


class NotReprocessable(Exception):
    pass


@dataclass(frozen=True)
class PaymentReport:
    """What a verified payment notify says, whatever its version: the payment, or (None)
    that WeChat reports none, and why."""

    payment: PaymentFields | None
    not_paid: str = ""


# Every frame below holds a key while signing, verifying or decrypting: hidden from error
# reports (shopsite/error_reports.py).
@sensitive_variables()
def notification_receive(*, body: bytes, remote_addr: str | None) -> PaymentNotification:
    """Record and process one v2 payment notify; the row's ``replied`` says what to answer."""
    return _receive(body, remote_addr, PaymentNotification.Kind.PAYMENT, _process)


@sensitive_variables()
def refund_notification_receive(*, body: bytes, remote_addr: str | None) -> PaymentNotification:
    """Record and process one v2 refund notify; the row's ``replied`` says what to answer."""
    return _receive(body, remote_addr, PaymentNotification.Kind.REFUND, _process_refund)


@sensitive_variables()
def notification_receive_v3(
    *, body: bytes, headers: Mapping[str, str], remote_addr: str | None
) -> PaymentNotification:
    """Record and process one v3 payment notify; ``v3_reply_status`` says what to answer."""
    return _receive(
        body,
        remote_addr,
        PaymentNotification.Kind.PAYMENT,
        _process_v3,
        api_version=PayVersion.V3,
        headers=_evidence_headers(headers),
    )


@sensitive_variables()
def refund_notification_receive_v3(
    *, body: bytes, headers: Mapping[str, str], remote_addr: str | None
) -> PaymentNotification:
    """Record and process one v3 refund notify; ``v3_reply_status`` says what to answer."""
    return _receive(
        body,
        remote_addr,
        PaymentNotification.Kind.REFUND,
        _process_refund_v3,
        api_version=PayVersion.V3,
        headers=_evidence_headers(headers),
    )


def v3_reply_status(notification: PaymentNotification) -> int:
    """The HTTP status a v3 notify is answered with (docs/protocol/wechat-pay-v3.md §7.5):
    204 once recorded; 401 when WeChat's signature did not check out (bad, missing or
    probe signature, unknown serial, timestamp out of the window); 400 for any other
    refusal; 500 for our own failure. WeChat resends after anything but a 2xx."""
    if notification.outcome in ACKNOWLEDGED:
        return 204
    if notification.outcome == Outcome.ERROR:
        return 500
    if notification.signature_valid is False:
        return 401
    return 400


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
    original = notification.reprocess_of or notification
    refund = notification.kind == PaymentNotification.Kind.REFUND
    options = {}
    if notification.api_version == PayVersion.V3:
        # Verified as at reception, with the headers and body WeChat sent then. Safe: the
        # signature still has to verify over exactly that body with WeChat's key, so no
        # one can make a reprocess accept anything WeChat did not sign; the 5-minute window
        # (docs/protocol/wechat-pay-v3.md §3.6) guards against replays of fresh requests
        # from the network, and a reprocess is staff acting on evidence stored when it
        # arrived. A notify refused as stale then is refused as stale again now.
        process = _process_refund_v3 if refund else _process_v3
        process = functools.partial(process, verified_at=original.received_at)
        options = {"api_version": PayVersion.V3, "headers": notification.headers}
    else:
        process = _process_refund if refund else _process
    return _receive(
        # Mutation testing: "UTF-8" names the same codec (an equivalent mutant).
        notification.raw_body.encode("utf-8"),  # pragma: no mutate
        None,
        notification.kind,
        process,
        reprocess_of_id=original.pk,
        **options,
    )


def _reconnected() -> bool:
    """After a database error: True, the connection closed for a new one, when it was dead;
    False when it is alive (the statement failed) or inside a caller's transaction."""
    # pragma: no mutate start (SQLite connections never die: PostgreSQL tests only,
    # tests/payments/test_notify_commits.py::TestADeadConnection; mutmut runs on SQLite)
    connection = transaction.get_connection()
    if connection.connection is None or connection.in_atomic_block or connection.is_usable():
        return False  # never connected (the database is down), or alive
    connection.close()
    return True
    # pragma: no mutate end


def _receive(
    body: bytes,
    remote_addr: str | None,
    kind: str,
    process: Callable[[PaymentNotification, bytes], None],
    reprocess_of_id: int | None = None,
    *,
    api_version: str = PayVersion.V2,
    headers: dict[str, str] | None = None,
) -> PaymentNotification:
    limit = pay_v3.MAX_NOTIFY_BYTES if api_version == PayVersion.V3 else MAX_BODY_BYTES
    truncated = len(body) > limit

    def new_row() -> PaymentNotification:
        # Written by ``process`` in the transaction that applies the result, or below, on
        # its own, when there is none to commit.
        return PaymentNotification(
            kind=kind,
            api_version=api_version,
            headers=headers or {},
            received_at=received_at,
            raw_body=_as_text(body[:KEPT_OF_OVERSIZE_BODY] if truncated else body),
            body_truncated=truncated,
            remote_addr=remote_addr,
            reprocess_of_id=reprocess_of_id,
        )

    received_at = timezone.now()
    notification = new_row()
    # Django's health check (CONN_HEALTH_CHECKS) would send a SELECT 1 before the first
    # statement: a round trip as long as the notify's own, on a connection almost always
    # alive. A notify skips it and, the rare time its connection turns out dead (the
    # database restarted, a proxy dropped it), is processed once more on a new one: a
    # payment is applied once however often its notify is processed.
    # Mutation testing: SQLite has no health check (PostgreSQL only, as above).
    transaction.get_connection().health_check_done = True  # pragma: no mutate
    try:
        if truncated:
            raise NotifyRejected(Outcome.MALFORMED, f"Body over {limit} bytes.")
        try:
            process(notification, body)
        except (DatabaseError, InterfaceError):
            if not _reconnected():
                raise
            notification = new_row()
            process(notification, body)
    except NotifyRejected as exc:
        # Rolled back if it was refused inside the transaction: nothing was applied.
        _finish(notification, exc.outcome, str(exc))
        _store(notification)
    except Exception as exc:
        # Database down, a statement failing, a bug: rolled back, recorded with the body, and
        # answered FAIL so WeChat retries. Should this write fail too, the error propagates
        # and the view keeps the body in the log.
        notification.order = notification.refund = None  # they may have been rolled back
        _finish(notification, Outcome.ERROR, f"Processing failed: {type(exc).__name__}")
        _store(notification)
        logger.exception("notify %s: processing failed", notification.pk)
    # One line per notify, once its row is written, with the order number that ties it to
    # the order's lines.
    logger.info(
        "notify id=%s kind=%s out_trade_no=%s outcome=%s replied=%s%s",
        notification.pk,
        notification.kind,
        notification.out_trade_no or "-",
        notification.outcome,
        notification.replied,
        " api=v3" if notification.api_version == PayVersion.V3 else "",
    )
    return notification


# -- applying a verified result: the same for v2 and v3 ------------------------------------------


def _payment_record(
    notification: PaymentNotification,
    report: Callable[[], PaymentReport],
    verify_with: Callable[[Order | None], None] | None = None,
    *,
    verified_as: str | None = None,
) -> None:
    """Apply what ``report`` says to the order ``notification.out_trade_no`` names, and
    write the ledger row in the same transaction.

    ``verify_with`` is v2's signature check, which needs the order (its algorithm); a v3
    notify is verified before, and ``verify_with`` is None. ``verified_as``: v2's signature
    already verified with this algorithm, which the order must then have been placed with
    to be paid at once (``_at_once``). ``report`` is read once the order is known to exist.
    """
    authentic = verify_with is None or verified_as is not None
    pay = _at_once(notification, report, verified_as) if authentic else None
    # PostgreSQL pays and records in one statement, outside any transaction; elsewhere the
    # same statements run first in the transaction of the locking way.
    one_statement = transaction.get_connection().vendor == "postgresql"
    if pay is not None and one_statement and _pay_and_store(notification, pay):
        return
    with transaction.atomic():
        if pay is not None and not one_statement:
            found = order_mark_paid_if_fits(pay)
            if found is not None:
                _paid_as_found(notification, found)
                _store(notification)
                return
        try:
            # Not .first(): its ORDER BY would sort a unique lookup.
            order = Order.objects.select_for_update().get(out_trade_no=notification.out_trade_no)
        except Order.DoesNotExist:
            order = None
        if verify_with is not None:
            verify_with(order)
        if order is None:
            raise NotifyRejected(Outcome.UNKNOWN_ORDER, "No order with this out_trade_no.")
        notification.order = order
        said = report()
        if said.payment is None:
            _finish(notification, Outcome.NOT_PAID, said.not_paid)
        else:
            result = payment_apply(order=order, payment=said.payment)
            _finish(notification, result.outcome, result.detail)
        _store(notification)


def _at_once(
    notification: PaymentNotification, report: Callable[[], PaymentReport], sign_type: str | None
) -> PayIfFits | None:
    """The statements that pay the order at once if the payment fits it exactly, or find it
    already paid with it (``order_pay_if_fits``): what ``payment_apply`` would answer after
    locking and reading the order (PAID, DUPLICATE), without the lock. None when the
    payment is no payment or is unusable: the locking way then refuses it, with the checks
    in their usual order. ``sign_type``: the algorithm the order must have been placed with
    (v2)."""
    try:
        said = report()
    except NotifyRejected:
        return None
    if said.payment is None:
        return None
    return order_pay_if_fits(
        out_trade_no=notification.out_trade_no,
        transaction_id=said.payment.transaction_id,
        paid_at=said.payment.paid_at,
        paid_fee=said.payment.total_fee,
        openid=said.payment.openid,
        sign_type=sign_type,
    )


# payment_apply's words for the same outcomes (payments.services.PaymentResult).
PAID_DETAIL = "Order marked paid."
DUPLICATE_DETAIL = "Already recorded."


def _paid_as_found(notification: PaymentNotification, found: PaidIfFits) -> None:
    notification.order_id = found.order_id
    notification.signature_valid = True
    if found.already:
        _finish(notification, Outcome.DUPLICATE, DUPLICATE_DETAIL)
    else:
        _finish(notification, Outcome.PAID, PAID_DETAIL)


def _pay_and_store(notification: PaymentNotification, pay: PayIfFits) -> bool:
    """PostgreSQL: ``order_pay_if_fits``'s UPDATE and the ledger row's INSERT in ONE
    statement, run in autocommit: one round trip and one commit record the payment and its
    evidence together, or nothing at all (a statement is atomic). When the order does not
    fit, its read and the INSERT, the same way, for a copy. False when neither wrote
    anything: the order neither fits nor has the payment.

    The copy's statement starts after the first one ended, so it sees a payment a racing
    copy committed meanwhile (the first waited for that row, then found it paid). The row's
    values are the notification's fields, converted as the ORM converts them; its order
    comes from the order found.
    """
    # pragma: no mutate start (PostgreSQL only: tests/payments/test_notify_commits.py and every
    # notify test on PostgreSQL; mutmut runs on SQLite)
    connection = transaction.get_connection()
    meta = PaymentNotification._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key and f.name != "order"]
    names = tuple(f.name for f in fields)
    # As the row says if a statement writes it; only the outcome and its detail differ.
    stored = {"signature_valid": True, "replied": "SUCCESS", "processed_at": timezone.now()}
    values = [
        f.get_db_prep_save(stored.get(f.name, getattr(notification, f.attname)), connection)
        for f in fields
    ]
    said = names.index("outcome"), names.index("detail")
    # In autocommit each statement is its own transaction. Inside a caller's transaction (a
    # test's), a savepoint, so that a failure leaves that transaction usable.
    inside = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with inside, connection.cursor() as cursor:
        for found, params, outcome, detail in (
            (pay.paying, pay.paying_params, Outcome.PAID, PAID_DETAIL),
            (pay.already, pay.already_params, Outcome.DUPLICATE, DUPLICATE_DETAIL),
        ):
            values[said[0]], values[said[1]] = outcome, detail
            cursor.execute(_store_found_sql(found, names), [*params, *values])
            row = cursor.fetchone()
            if row is not None:
                break
    if row is None:
        return False
    notification.pk, notification.order_id = row
    notification._state.adding = False
    if outcome == Outcome.PAID:
        order_paid_logged(pay.out_trade_no)
    notification.signature_valid = True
    _finish(notification, outcome, detail)
    notification.processed_at = stored["processed_at"]
    return True
    # pragma: no mutate end


@functools.cache
def _store_found_sql(found: str, names: tuple[str, ...]) -> str:
    """``INSERT`` of a ledger row, its order the one ``found`` (a statement returning an
    order's pk) returns, its other ``names`` parameters, in the statement of ``found``: no
    row when ``found`` returns none."""
    # pragma: no mutate start (PostgreSQL only, as _pay_and_store)
    meta = PaymentNotification._meta
    order = meta.get_field("order").column
    columns = ", ".join(f'"{meta.get_field(name).column}"' for name in names)
    values = ", ".join("%s" for _ in names)
    return (
        f"WITH found AS ({found}) "  # noqa: S608 (names from the models, values as parameters)
        f'INSERT INTO "{meta.db_table}" ({columns}, "{order}") SELECT {values}, found.id '
        f'FROM found RETURNING "{meta.pk.column}", "{order}"'
    )
    # pragma: no mutate end


def _payment_fields(
    transaction_id: str, total_fee: int, openid: str, paid_at: datetime
) -> PaymentFields:
    # Whatever WeChat charged is recorded on the order, so it must fit the column.
    if not 1 <= total_fee <= MAX_TOTAL_FEE:
        raise NotifyRejected(Outcome.MALFORMED, "total_fee is out of range.")
    if not transaction_id or len(transaction_id) > 32:
        raise NotifyRejected(Outcome.MALFORMED, "transaction_id is missing or too long.")
    if _storable(transaction_id) != transaction_id or _storable(openid) != openid:
        # A NUL (JSON may carry one) that no database parameter can hold.
        raise NotifyRejected(Outcome.MALFORMED, "transaction_id or openid is not storable text.")
    return PaymentFields(
        transaction_id=transaction_id, total_fee=total_fee, openid=openid, paid_at=paid_at
    )


def _refund_record(
    notification: PaymentNotification, result: dict, *, transaction_id: str, wechat_status: str
) -> None:
    """Apply a verified refund result to the refund ``notification.out_refund_no`` names
    (or record it as made outside the shop). ``result`` holds refund_apply_result's
    arguments. The ledger row is written in the same transaction."""
    with transaction.atomic():
        refund = (
            Refund.objects.select_related("order")
            .filter(out_refund_no=notification.out_refund_no)
            .first()
        )
        if refund is None:
            _record_external_refund(notification, result, transaction_id)
        else:
            notification.refund, notification.order = refund, refund.order
            if refund.order.out_trade_no != notification.out_trade_no:
                raise NotifyRejected(Outcome.REJECTED, "out_trade_no is not the refund's order.")
            applied = refunds.refund_apply_result(refund=refund, **result)
            _finish(notification, *_refund_outcome(applied, result["status"], wechat_status))
        _store(notification)


def _record_external_refund(notification: PaymentNotification, result: dict, transaction_id: str):
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
    if order.transaction_id and transaction_id != order.transaction_id:
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


def _refund_outcome(
    applied: refunds.RefundApplied, status: str, wechat_status: str
) -> tuple[str, str]:
    if applied == refunds.RefundApplied.DUPLICATE:
        return Outcome.DUPLICATE, "Already recorded."
    if applied == refunds.RefundApplied.CONFLICT:
        return Outcome.FLAGGED, "Does not fit the refund on record; order flagged."
    if status == Refund.Status.ABNORMAL:
        return Outcome.FLAGGED, f"Refund abnormal ({wechat_status}); order flagged."
    return Outcome.REFUND_RECORDED, f"Refund {status}."


# -- v2: XML, signed with the API key (docs/protocol/wechat-pay-v2.md) -------------------------
# A bare §n in this part is a section of docs/protocol/wechat-pay-v2.md.


def _process(notification: PaymentNotification, body: bytes) -> None:
    fields = _parse(body)
    notification.out_trade_no = fields.get("out_trade_no", "")[:64]
    notification.transaction_id = fields.get("transaction_id", "")[:64]
    if fields.get("return_code") != "SUCCESS":
        raise NotifyRejected(
            Outcome.REJECTED, "return_code is not SUCCESS (such notifies are unsigned)."
        )
    _payment_record(
        notification,
        functools.partial(_v2_payment, fields),
        verify_with=functools.partial(_verify, notification, fields),
        verified_as=_verified_as(fields),
    )


def _verified_as(fields: dict) -> str | None:
    """The algorithm the notify's signature verifies with before its order is read: the
    declared one, else the one the sign's length says (notify_sign_type), provided it is
    our merchant's. None otherwise, and ``_verify`` decides with the order's own algorithm.
    An order is paid at once only when it was placed with this algorithm, which is then
    the check ``_verify`` would have made."""
    client = payment_client()
    sign_type = notify_sign_type(fields)
    if fields.get("sign_type", sign_type) != sign_type:
        return None  # declared but not an algorithm we know
    if not verify(fields, client.config.api_key, sign_type):
        return None
    config = client.config
    if fields.get("appid") != config.appid or fields.get("mch_id") != config.mch_id:
        return None
    return sign_type


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


def _v2_payment(fields: dict) -> PaymentReport:
    if fields.get("result_code") != "SUCCESS":
        return PaymentReport(None, f"result_code {fields.get('result_code')!r}.")
    try:
        # Mutation testing: int() and parse_wx_time refuse any other text default as they
        # refuse "" (equivalent mutants).
        total_fee = int(fields.get("total_fee", ""))  # pragma: no mutate
        paid_at = parse_wx_time(fields.get("time_end", ""))  # pragma: no mutate
    except ValueError:
        raise NotifyRejected(Outcome.MALFORMED, "total_fee or time_end is not valid.") from None
    return PaymentReport(
        _payment_fields(
            fields.get("transaction_id") or "",
            total_fee,
            # Mutation testing: no openid, whatever the default, is never the order's
            # (equivalent).
            fields.get("openid", ""),  # pragma: no mutate
            paid_at,
        )
    )


def _parse(body: bytes) -> dict[str, str]:
    try:
        return from_xml(body)
    except XMLError as exc:
        raise NotifyRejected(Outcome.MALFORMED, f"Unreadable XML: {exc}") from None


def _process_refund(notification: PaymentNotification, body: bytes) -> None:
    fields = _parse(body)
    if fields.get("return_code") != "SUCCESS":
        raise NotifyRejected(Outcome.REJECTED, "return_code is not SUCCESS.")
    client = payment_client()
    info = _decrypt(notification, fields, client)
    _check_merchant(fields, client)
    result = _refund_result(info)
    _refund_record(
        notification,
        result,
        transaction_id=info.get(
            "transaction_id",
            # Mutation testing: compared only with an order's transaction_id, which no
            # default (None, other text) ever equals: equivalent mutants.
            "",  # pragma: no mutate
        ),
        wechat_status=info["refund_status"],  # _refund_result refused a notify without one
    )


def _decrypt(notification: PaymentNotification, fields: dict, client: WxPayClient) -> dict:
    """No sign on a refund notify: decrypting req_info with our key is the proof (§7.3)."""
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


# -- v3: JSON, RSA signature headers, AES-GCM resource (docs/protocol/wechat-pay-v3.md) -------
# A bare §n in this part is a section of docs/protocol/wechat-pay-v3.md.


def _process_v3(
    notification: PaymentNotification, body: bytes, verified_at: datetime | None = None
) -> None:
    client = v3_client()
    notify = _v3_notify(client, notification, body, verified_at)
    paid = notify.resource
    if not isinstance(paid, pay_v3.Transaction):
        kind = notify.event_type[:40]
        raise NotifyRejected(Outcome.MALFORMED, f"Not a payment notify ({kind!r}).")
    # JSON can carry what no text column takes (NUL): such a number names no order of ours.
    notification.out_trade_no = _storable(paid.out_trade_no)[:64]
    notification.transaction_id = _storable(paid.transaction_id)[:64]
    _v3_check_merchant(client, paid.mchid, paid.appid)
    _payment_record(notification, functools.partial(_v3_payment, paid))


def _v3_payment(paid: pay_v3.Transaction) -> PaymentReport:
    # v3 has no result_code: trade_state alone says whether money was taken (§6.2), and a
    # notify is sent for SUCCESS only (§7).
    if paid.trade_state != "SUCCESS":
        return PaymentReport(None, f"trade_state {paid.trade_state[:20]!r}.")
    if paid.total is None or paid.success_time is None:
        raise NotifyRejected(Outcome.MALFORMED, "amount.total or success_time missing.")
    return PaymentReport(
        _payment_fields(paid.transaction_id, paid.total, paid.payer_openid, paid.success_time)
    )


def _process_refund_v3(
    notification: PaymentNotification, body: bytes, verified_at: datetime | None = None
) -> None:
    client = v3_client()
    notify = _v3_notify(client, notification, body, verified_at)
    refund = notify.resource
    if not isinstance(refund, pay_v3.Refund):
        kind = notify.event_type[:40]
        raise NotifyRejected(Outcome.MALFORMED, f"Not a refund notify ({kind!r}).")
    notification.out_refund_no = _storable(refund.out_refund_no)[:64]
    notification.out_trade_no = _storable(refund.out_trade_no)[:64]
    notification.transaction_id = _storable(refund.transaction_id)[:64]
    # The refund resource names no appid (§8.5): the mchid is what makes it ours.
    _v3_check_merchant(client, notify.data.get("mchid"), None)
    # refund_status says it; event_type (REFUND.SUCCESS, …) too, and both are WeChat's.
    event_status = notify.event_type.removeprefix("REFUND.")
    wechat_status = refund.status or event_status
    if notify.event_type.startswith("REFUND.") and event_status != wechat_status:
        raise NotifyRejected(Outcome.MALFORMED, "event_type and refund_status disagree.")
    status = V3_REFUND_STATUS.get(wechat_status)
    if status is None:
        raise NotifyRejected(Outcome.MALFORMED, f"refund_status {wechat_status[:20]!r} unknown.")
    if refund.refund is None:
        raise NotifyRejected(Outcome.MALFORMED, "amount.refund missing.")
    result = {
        "status": status,
        "refund_id": refund.refund_id,
        "succeeded_at": refund.success_time,
        "recv_account": refund.user_received_account,
        "refund_fee": refund.refund,
    }
    _refund_record(
        notification, result, transaction_id=refund.transaction_id, wechat_status=wechat_status
    )


def _v3_notify(
    client: pay_v3.WxPayV3Client,
    notification: PaymentNotification,
    body: bytes,
    verified_at: datetime | None,
) -> pay_v3.Notify:
    """Verify (§3) and decrypt (§7.2) with the stored headers, as at ``verified_at`` (the
    time of reception; a reprocess passes the original's)."""
    now = (verified_at or notification.received_at).timestamp()
    try:
        try:
            notify = _v3_parse(client, notification.headers, body, now)
        except pay_v3.UnknownSerial as exc:
            # A certificate WeChat switched to since the last download (§3.4): refresh
            # (rate-limited) and verify once more.
            if not v3_keys_refresh(client, exc.serial):
                raise
            notify = _v3_parse(client, notification.headers, body, now)
    except pay_v3.WxPayV3SignatureError as exc:
        notification.signature_valid = False
        raise NotifyRejected(Outcome.REJECTED, f"Not authentic: {exc}") from None
    except pay_v3.DecryptError as exc:
        notification.signature_valid = True  # the signature came first and verified
        # WeChat signed a resource our APIv3 key cannot open: the key was most likely
        # reset on the merchant platform. Every notify fails until it is set here.
        # Logged before the row exists: the notify's own line follows (outcome=malformed).
        logger.error(
            "v3 notify: resource did not decrypt; is WECHAT_API_V3_KEY the merchant "
            "platform's current APIv3 key?"
        )
        raise NotifyRejected(Outcome.MALFORMED, f"Did not decrypt: {exc}") from None
    except pay_v3.MalformedNotify as exc:
        notification.signature_valid = True
        raise NotifyRejected(Outcome.MALFORMED, f"Unreadable: {exc}") from None
    notification.signature_valid = True
    return notify


def _v3_parse(
    client: pay_v3.WxPayV3Client, headers: Mapping[str, str], body: bytes, now: float
) -> pay_v3.Notify:
    if client.keyring is None:  # certificate mode, before the first download
        # Mutation testing: unreachable, as v3_client() returns a client in certificate mode
        # only once it holds certificates (it raises otherwise): equivalent mutants.
        raise pay_v3.UnknownSerial(headers.get("Wechatpay-Serial", ""))  # pragma: no mutate
    # The merchant is checked here, not by parse_notify, so that an authentic notify for
    # another merchant is recorded as authentic.
    return pay_v3.parse_notify(
        headers, body, keyring=client.keyring, apiv3_key=client.config.apiv3_key, now=now
    )


def _v3_check_merchant(client: pay_v3.WxPayV3Client, mchid: object, appid: str | None) -> None:
    # Signed by WeChat but for another merchant or app: not ours to apply (§7.4 step 4).
    config = client.config
    if mchid != config.mchid:
        raise NotifyRejected(Outcome.REJECTED, f"mchid {str(mchid)[:32]!r} is not ours.")
    if appid is not None and appid != config.appid:
        raise NotifyRejected(Outcome.REJECTED, f"appid {appid[:32]!r} is not ours.")


def _evidence_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers a v3 notify's row keeps: the signature's (to verify again on a
    reprocess), a few other ``Wechatpay-*`` ones and ``Content-Type``, bounded."""
    wanted = {name.lower(): name for name in (*SIGNATURE_HEADERS, "Content-Type")}
    kept: dict[str, str] = {}
    others = 0
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in wanted:
            kept[wanted[lowered]] = _storable(value)[:KEPT_HEADER_CHARS]
        elif lowered.startswith("wechatpay-") and others < KEPT_OTHER_WECHATPAY_HEADERS:
            others += 1
            kept[_storable(name)[:64]] = _storable(value)[:KEPT_HEADER_CHARS]
    return kept


def _storable(text: str) -> str:
    """Text any JSON column takes: no lone surrogate, no NUL (PostgreSQL refuses it)."""
    return _as_text(text.encode("utf-8", errors="backslashreplace"))


# -- ledger ------------------------------------------------------------------------------------


def _finish(notification: PaymentNotification, outcome: str, detail: str) -> None:
    """The outcome, on the row that is still to be written (``_store``)."""
    notification.outcome = outcome
    notification.detail = detail
    notification.replied = "SUCCESS" if outcome in ACKNOWLEDGED else "FAIL"
    notification.processed_at = timezone.now()


def _store(notification: PaymentNotification) -> None:
    """Insert the ledger row, once per notify: inside the transaction that applied the
    result, or on its own after a refusal or a failure (which may come after a write
    inside a transaction that rolled back: hence a new row, never an update).

    ``received_at`` is stored as set on reception (``raw``: auto_now_add would make it the
    time of this write), so that a v3 reprocess verifies at the very time the notify was
    verified then."""
    notification.pk = None
    notification.save_base(raw=True, force_insert=True)


def _as_text(body: bytes) -> str:
    # Any bytes can be stored: invalid UTF-8 is kept as \x.. escapes, and so is NUL,
    # which PostgreSQL text columns refuse.
    # pragma: no mutate start ("UTF-8" and decode()'s default are this codec: equivalent)
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    # pragma: no mutate end
