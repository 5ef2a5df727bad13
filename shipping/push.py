"""Message push (``GET, POST /wechat/message``, docs/INVARIANTS.md §8): record, verify, apply
once. The same shape as the payment notify (payments/notify.py):

1. ``message_receive`` stores the raw body, the query string and the sender's address first,
   in their own autocommit write, so that nothing that follows can lose them.
2. It verifies the push: plaintext mode, ``signature`` over Token, timestamp and nonce; safe
   mode, ``msg_signature`` over those and ``Encrypt``, then decryption with our
   EncodingAESKey and the AppID inside checked against ours. Anything that does not verify is
   ``rejected`` (403) and changes nothing.
3. In one transaction the event claims its dedupe key (the unique constraint
   ``message_event_applied_once`` is the anchor: a second copy, even a concurrent one, fails
   there and is a ``duplicate``) and is applied to its order. The view answers ``success``
   only after that commit.

Decisions (docs/protocol/miniprogram-server-api.md §3.5 leaves them to us):

- **Which mode.** With ``WECHAT_MESSAGE_AES_KEY`` set, WeChat encrypts every push (safe and
  compatible mode), so a plaintext push is refused: its ``signature`` does not cover the
  body, and accepting it would let anyone who saw one query string (an access log) post any
  event. Without the key, plaintext pushes are accepted, and then only within
  ``PLAINTEXT_WINDOW_SECONDS`` of their timestamp, which limits what a seen signature is
  worth. Safe mode has no window (WeChat documents none): a replay there is a byte-identical
  copy, applied once like any copy.
- **One event** is its transaction, its ``Event`` and its ``CreateTime`` (the openid stands
  in for the transaction in events that have none): WeChat's retries, and the same event
  resent with a fresh signature, are one.
- **Unknown order**: recorded and answered ``success``. WeChat resends what is not answered
  success, but an order that is not in this shop never will be; the row keeps the event.
- **Settled but not shipped here** (shipping entered in WeChat's console, say): the order is
  flagged for staff, not marked received.
- Events are applied as WeChat states them, once verified. The notes advise treating them as
  triggers to ask ``get_order``; that call is not made here.
- **Our own failure** (database): ``error``, the raw body kept, answered 500 so WeChat retries;
  a retry goes through the same steps and is applied once.
"""

# A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md.

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from orders.fulfilment import ReceiveOutcome, ReceiveRefused, order_receive
from orders.models import FulfilmentStatus, Order
from orders.services import order_flag
from shipping.models import MessageEvent
from wechat.miniprogram import (
    PushAesKeyInvalid,
    PushAppIdMismatch,
    PushDecryptError,
    PushEvent,
    PushMalformed,
    decrypt_message,
    encrypted_field,
    parse_event,
    verify_msg_signature,
    verify_signature,
)

logger = logging.getLogger(__name__)

Outcome = MessageEvent.Outcome
# WeChat's events are a few hundred bytes; anything near this is not WeChat's.
MAX_BODY_BYTES = 64 * 1024
KEPT_OF_OVERSIZE_BODY = 4096
MAX_QUERY_CHARS = 4096
PLAINTEXT_WINDOW_SECONDS = 5 * 60

SETTLEMENT = "trade_manage_order_settlement"
REMIND_SHIPPING = "trade_manage_remind_shipping"
RECEIPT_TIMES = ("confirm_receive_time", "settlement_time")


class Verdict(models.TextChoices):
    """What the view answers WeChat (and so whether WeChat sends the push again)."""

    ACKNOWLEDGED = "acknowledged", _("recorded: success")
    REFUSED = "refused", _("not authentic: 403")
    UNREADABLE = "unreadable", _("unreadable: 400")
    TOO_LARGE = "too_large", _("body too large: 413")
    NOT_CONFIGURED = "not_configured", _("not configured here: 503")
    FAILED = "failed", _("our own failure: 500, WeChat retries")


@dataclass(frozen=True)
class PushReceipt:
    """The ledger row of one push and what to answer; ``detail`` is safe to send back."""

    event: MessageEvent
    verdict: Verdict

    @property
    def detail(self) -> str:
        return self.event.detail


class _Stop(Exception):
    """Processing ends here with this outcome and answer."""

    def __init__(self, outcome: str, verdict: Verdict, detail: str):
        super().__init__(detail)
        self.outcome, self.verdict = outcome, verdict


def message_token_missing() -> str:
    """Why nothing can be verified, or "" when the Token is set."""
    if settings.WECHAT_MESSAGE_TOKEN:
        return ""
    return "Message push is not configured: set WECHAT_MESSAGE_TOKEN (the console's Token)."


@sensitive_variables("token")
def message_url_verify(*, signature: str, timestamp: str, nonce: str) -> bool:
    """The console's URL check (§3.2): True when ``signature`` is ours."""
    token = settings.WECHAT_MESSAGE_TOKEN
    return verify_signature(token, timestamp, nonce, signature)


# The Token and the AES key are in these frames: hidden from error reports.
@sensitive_variables()
def message_receive(
    *, body: bytes, query: dict[str, str], query_string: str, remote_addr: str | None
) -> PushReceipt:
    """Record one push, verify it and apply it once; the receipt says what to answer.

    ``body`` is what was read of the request, at most ``MAX_BODY_BYTES + 1`` bytes (more
    means too large). Raises only if the ledger row itself cannot be written.
    """
    truncated = len(body) > MAX_BODY_BYTES
    row = MessageEvent.objects.create(
        raw_body=_as_text(body[:KEPT_OF_OVERSIZE_BODY] if truncated else body),
        body_truncated=truncated,
        query=_as_text(query_string.encode("utf-8", "replace"))[:MAX_QUERY_CHARS],
        remote_addr=remote_addr,
    )
    try:
        if truncated:
            raise _Stop(Outcome.MALFORMED, Verdict.TOO_LARGE, f"Body over {MAX_BODY_BYTES} bytes.")
        event = _verified_event(row, body, query)
        _apply_once(row, event)
        verdict = Verdict.ACKNOWLEDGED
    except _Stop as stop:
        _finish(row, stop.outcome, str(stop))
        verdict = stop.verdict
    except Exception as exc:
        # Database down, a statement failing, a bug: not success, so WeChat retries; the raw
        # body is already stored.
        logger.exception("message push %s: processing failed", row.pk)
        _finish_error(row, f"Processing failed: {type(exc).__name__}")
        verdict = Verdict.FAILED
    return PushReceipt(event=row, verdict=verdict)


# -- verification (§3.3, §3.4) -----------------------------------------------------------------


@sensitive_variables()
def _verified_event(row: MessageEvent, body: bytes, query: dict[str, str]) -> PushEvent:
    missing = message_token_missing()
    if missing:
        raise _Stop(Outcome.ERROR, Verdict.NOT_CONFIGURED, missing)
    token = settings.WECHAT_MESSAGE_TOKEN
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    encrypt_type = query.get("encrypt_type", "")
    if encrypt_type == "aes":
        message = _decrypted(row, body, query, token, timestamp, nonce)
    elif encrypt_type in ("", "raw"):
        _check_plaintext(row, query, token, timestamp, nonce)
        message = body
    else:
        raise _Stop(
            Outcome.REJECTED, Verdict.REFUSED, f"Unknown encrypt_type {encrypt_type[:16]!r}."
        )
    try:
        event = parse_event(message)
    except PushMalformed as exc:
        raise _Stop(Outcome.MALFORMED, Verdict.UNREADABLE, f"Unreadable event: {exc}.") from None
    row.event, row.transaction_id, row.event_time = (
        event.event,
        event.transaction_id,
        event.create_time,
    )
    row.payload = event.payload
    return event


@sensitive_variables()
def _check_plaintext(
    row: MessageEvent, query: dict[str, str], token: str, timestamp: str, nonce: str
) -> None:
    if settings.WECHAT_MESSAGE_AES_KEY:
        raise _Stop(
            Outcome.REJECTED,
            Verdict.REFUSED,
            "Plaintext push refused: WECHAT_MESSAGE_AES_KEY is set, so WeChat encrypts every "
            "push (safe or compatible mode), and a plaintext signature does not cover the body.",
        )
    row.verified = verify_signature(token, timestamp, nonce, query.get("signature", ""))
    if not row.verified:
        raise _Stop(Outcome.REJECTED, Verdict.REFUSED, "Bad or missing signature.")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > PLAINTEXT_WINDOW_SECONDS:
        raise _Stop(
            Outcome.REJECTED,
            Verdict.REFUSED,
            f"Plaintext push with timestamp {timestamp[:20]!r}, more than "
            f"{PLAINTEXT_WINDOW_SECONDS} s from now: refused (its signature does not cover the "
            "body, so an old one could be replayed with any body).",
        )


@sensitive_variables()
def _decrypted(
    row: MessageEvent, body: bytes, query: dict[str, str], token: str, timestamp: str, nonce: str
) -> bytes:
    try:
        encrypt = encrypted_field(body)
    except PushMalformed as exc:
        raise _Stop(Outcome.MALFORMED, Verdict.UNREADABLE, f"Unreadable body: {exc}.") from None
    # §3.4 step 1: msg_signature, never the plain signature, which does not cover Encrypt.
    if not verify_msg_signature(token, timestamp, nonce, encrypt, query.get("msg_signature", "")):
        row.verified = False
        raise _Stop(Outcome.REJECTED, Verdict.REFUSED, "Bad or missing msg_signature.")
    aes_key, appid = settings.WECHAT_MESSAGE_AES_KEY, settings.WECHAT_APPID
    if not aes_key or not appid:
        raise _Stop(
            Outcome.ERROR,
            Verdict.NOT_CONFIGURED,
            "A safe-mode push, but WECHAT_MESSAGE_AES_KEY (the console's EncodingAESKey) or "
            "WECHAT_APPID is not set: it cannot be decrypted here.",
        )
    try:
        message = decrypt_message(aes_key, encrypt, appid)
    except PushAesKeyInvalid as exc:
        raise _Stop(
            Outcome.ERROR, Verdict.NOT_CONFIGURED, f"WECHAT_MESSAGE_AES_KEY is invalid: {exc}."
        ) from None
    except (PushDecryptError, PushAppIdMismatch) as exc:
        row.verified = False
        raise _Stop(Outcome.REJECTED, Verdict.REFUSED, f"Not authentic: {exc}.") from None
    row.verified = True
    return message


# -- applying, once ----------------------------------------------------------------------------


def _dedupe_key(event: PushEvent) -> str:
    # At most 64 + 64 + 19 characters and two bars: within the column's 160.
    who = event.transaction_id or event.from_user
    return f"{who}|{event.event or event.msg_type}|{event.create_time}"


def _apply_once(row: MessageEvent, event: PushEvent) -> None:
    row.dedupe_key = _dedupe_key(event)
    try:
        with transaction.atomic():
            # Claim the event first: a concurrent copy waits here on the unique index, and
            # fails once this commits, before it touches the order.
            row.outcome = Outcome.RECORDED
            row.save(update_fields=[*_EVIDENCE_FIELDS, "dedupe_key", "outcome"])
            outcome, detail, order = _apply(event)
            row.order = order
            _finish(row, outcome, detail)
    except IntegrityError:
        first = (
            MessageEvent.objects.filter(
                dedupe_key=row.dedupe_key, outcome__in=[Outcome.APPLIED, Outcome.RECORDED]
            )
            .exclude(pk=row.pk)
            .only("pk", "order_id")
            .first()
        )
        if first is None:
            raise
        row.order_id = first.order_id
        _finish(row, Outcome.DUPLICATE, f"Same event as #{first.pk}.")


def _apply(event: PushEvent) -> tuple[str, str, Order | None]:
    """(outcome, detail, order) of one verified event, inside the claiming transaction."""
    if event.event not in (SETTLEMENT, REMIND_SHIPPING):
        return Outcome.RECORDED, f"Event {event.event or event.msg_type!r}: nothing to do.", None
    order = (
        Order.objects.filter(transaction_id=event.transaction_id).first()
        if event.transaction_id
        else None
    )
    if order is None:
        return (
            Outcome.UNKNOWN_ORDER,
            f"No order with transaction_id {event.transaction_id!r}: recorded, answered "
            "success (it will not appear by retrying).",
            None,
        )
    if event.event == REMIND_SHIPPING:
        return _remind(order)
    if not any(event.payload.get(name) not in (None, "", 0, "0") for name in RECEIPT_TIMES):
        return Outcome.RECORDED, "Shipping finished at WeChat; settlement to come.", order
    return _received(order)


def _received(order: Order) -> tuple[str, str, Order]:
    try:
        result = order_receive(order=order)
    except ReceiveRefused:
        order_flag(
            order=order,
            reason="WeChat reports receipt confirmed (or settled), but the order is not "
            "shipped here: check its shipping.",
        )
        return Outcome.APPLIED, "Receipt confirmed at WeChat, not shipped here: flagged.", order
    if result.outcome == ReceiveOutcome.ALREADY_RECEIVED:
        return Outcome.RECORDED, "Already received.", order
    return Outcome.APPLIED, "Receipt confirmed at WeChat: order received.", order


def _remind(order: Order) -> tuple[str, str, Order]:
    if order.fulfilment_status == FulfilmentStatus.UNFULFILLED:
        reason = "WeChat reminds: ship this order (paid over 48 hours ago, no shipping at WeChat)."
    else:
        reason = (
            "WeChat reminds: ship this order, but it is shipped here: check that its shipping "
            "reached WeChat."
        )
    order_flag(order=order, reason=reason)
    return Outcome.APPLIED, "Shipping reminder: order flagged.", order


# -- ledger ------------------------------------------------------------------------------------

_EVIDENCE_FIELDS = ["verified", "event", "transaction_id", "event_time", "payload"]


def _finish(row: MessageEvent, outcome: str, detail: str) -> None:
    row.outcome, row.detail, row.processed_at = outcome, detail, timezone.now()
    row.save(
        update_fields=[
            *_EVIDENCE_FIELDS,
            "dedupe_key",
            "order",
            "outcome",
            "detail",
            "processed_at",
        ]
    )
    # One line per push; the transaction id ties it to the order's lines (no openid here).
    logger.info(
        "message push id=%s event=%s transaction_id=%s outcome=%s",
        row.pk,
        row.event or "-",
        row.transaction_id or "-",
        outcome,
    )


def _finish_error(row: MessageEvent, detail: str) -> None:
    """Best effort: the raw body is already stored even if this write fails too."""
    row.order = None
    try:
        _finish(row, Outcome.ERROR, detail)
    except DatabaseError:
        row.outcome, row.detail = Outcome.ERROR, detail
        logger.exception("message push %s: could not record the error", row.pk)


def _as_text(body: bytes) -> str:
    # Any bytes can be stored: invalid UTF-8 is kept as \x.. escapes, and so is NUL,
    # which PostgreSQL text columns refuse.
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
