"""Uploading shipments to WeChat's order shipping management (docs/INVARIANTS.md §8;
docs/protocol/miniprogram-server-api.md §2): durable, retried until accepted, once.

The state lives on the ``Shipment`` row, not in the task queue:

- ``not_required`` — created so by orders; stays so when uploads do not apply
  (``WECHAT_TRADE_MANAGED=0``, no mini-program settings) or WeChat says the mini-program is
  not trade-managed.
- ``pending`` — to upload; ``upload_next_at`` is when (``NULL``: at once). Set by
  ``shipment_upload_prepare`` right after the ship committed, then the task is enqueued. A
  periodic sweep (``uploads_due``) enqueues every pending upload that is due, so a broker
  outage, a lost message or a crashed worker delays an upload, never loses it.
- ``uploaded`` (with ``uploaded_at``) — WeChat accepted it, or already had it (10060002,
  10060023).
- ``failed`` — WeChat refused it for good (``upload_error``: its errcode and errmsg); the
  order is flagged for staff, who may retry from admin once it is fixed.

Once: an attempt first claims the row with a conditional UPDATE (pending and due → not due
for ``CLAIM_SECONDS``), so two workers running the same task (a redelivered message, the sweep
and a retry) upload once; a worker that dies mid-upload leaves a claim that lapses.

Retries: on an error WeChat calls retryable (system busy, unreachable, a payment it does not
know yet right after payment), ``upload_attempts`` grows and the next attempt is due after
``upload_backoff``: 5 s, then doubling, at most 10 minutes. An upload still not accepted after
``FLAG_AFTER_ATTEMPTS`` flags its order once (it keeps being retried).

WeChat is called outside any transaction; only short UPDATEs touch the row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.config import WeChatNotConfigured, missing_settings
from orders.models import Order, Shipment
from orders.services import order_flag
from shipping.access_token import MINIPROGRAM_SETTINGS, with_access_token
from wechat.miniprogram import (
    AlreadyShipped,
    CredentialsRejected,
    LogisticsType,
    MiniProgramApiError,
    ShippingItem,
    mask_phone,
)
from wechat.miniprogram.shipping import MAX_ITEM_DESC_CHARS, SF_EXPRESS

logger = logging.getLogger(__name__)

UploadStatus = Shipment.UploadStatus

# "first retry within 10 s" (§8); the setting SHIPPING_UPLOAD_RETRY_FIRST_SECONDS (default
# this) shortens it in end-to-end tests.
BACKOFF_FIRST_SECONDS = 5
BACKOFF_MAX_SECONDS = 10 * 60
# How long an attempt holds its row: longer than a call to WeChat can take with a token
# renewal and one retry (each call ≤ connect + read timeout).
CLAIM_SECONDS = 120
FLAG_AFTER_ATTEMPTS = 10
TRADE_MANAGED_CACHE_SECONDS = 60 * 60
# Orders' logistics types as WeChat numbers them (§2.4).
LOGISTICS_TYPES = {
    Shipment.LogisticsType.EXPRESS: LogisticsType.EXPRESS,
    Shipment.LogisticsType.SAME_CITY: LogisticsType.SAME_CITY,
    Shipment.LogisticsType.VIRTUAL: LogisticsType.VIRTUAL,
    Shipment.LogisticsType.SELF_PICKUP: LogisticsType.SELF_PICKUP,
}
ELLIPSIS = "…"


class UploadOutcome(models.TextChoices):
    UPLOADED = "uploaded", _("uploaded to WeChat")
    NOT_REQUIRED = "not_required", _("not needed: not under WeChat's shipping management")
    RETRY = "retry", _("not accepted yet: tried again later")
    FAILED = "failed", _("refused by WeChat")
    SKIPPED = "skipped", _("nothing to do: not due, done, or being uploaded")


@dataclass(frozen=True)
class UploadResult:
    outcome: UploadOutcome
    retry_in: int | None = None  # seconds until the next attempt is due (RETRY)
    detail: str = ""


def upload_backoff(attempts: int) -> timedelta:
    """The wait after ``attempts`` failed attempts: 5 s, 10 s, 20 s … at most 10 minutes."""
    first = getattr(settings, "SHIPPING_UPLOAD_RETRY_FIRST_SECONDS", BACKOFF_FIRST_SECONDS)
    exponent = min(max(attempts, 1) - 1, 16)  # 1 s * 2**16 is well past the cap
    return timedelta(seconds=min(first * 2**exponent, BACKOFF_MAX_SECONDS))


def uploads_apply() -> bool:
    """Whether shipments are uploaded at all: not with ``WECHAT_TRADE_MANAGED=0``, nor without
    the mini-program's settings (nothing could be uploaded with; a system check says so)."""
    return settings.WECHAT_TRADE_MANAGED != "0" and not missing_settings(MINIPROGRAM_SETTINGS)


def trade_managed() -> bool:
    """Is the mini-program under order shipping management? ``WECHAT_TRADE_MANAGED`` ``1``/``0``
    decide; ``auto`` asks WeChat (``is_trade_managed``) and keeps the answer an hour in the
    shared cache. Raises ``MiniProgramApiError`` or ``WeChatNotConfigured`` when it cannot know.
    """
    if settings.WECHAT_TRADE_MANAGED in ("1", "0"):
        return settings.WECHAT_TRADE_MANAGED == "1"
    key = f"wechat:is_trade_managed:{settings.WECHAT_APPID}"
    try:
        known = cache.get(key)
    except Exception:  # the cache is down: ask WeChat
        known = None
    if isinstance(known, bool):
        return known
    managed = with_access_token(lambda client, token: client.is_trade_managed(token))
    try:
        cache.set(key, managed, TRADE_MANAGED_CACHE_SECONDS)
    except Exception:
        logger.warning("is_trade_managed: shared cache unavailable, answer not kept")
    logger.info("is_trade_managed answered %s", managed)
    return managed


# -- preparing, claiming, retrying ------------------------------------------------------------


def shipment_upload_prepare(*, shipment_id: int) -> bool:
    """Mark a newly recorded shipment ``pending``, due now, when uploads apply. True when it
    is to be uploaded (the caller enqueues it); a shipment already decided is left alone."""
    if not uploads_apply():
        return False
    return bool(
        Shipment.objects.filter(
            pk=shipment_id,
            upload_status=UploadStatus.NOT_REQUIRED,
            upload_attempts=0,
            uploaded_at__isnull=True,
        ).update(upload_status=UploadStatus.PENDING, upload_next_at=timezone.now())
    )


def shipment_upload_retry(*, shipment_ids: list[int]) -> list[int]:
    """Staff's "Retry upload now": failed and pending uploads among ``shipment_ids`` become
    pending and due now. Returns those to enqueue."""
    ids = list(
        Shipment.objects.filter(
            pk__in=shipment_ids, upload_status__in=[UploadStatus.FAILED, UploadStatus.PENDING]
        ).values_list("pk", flat=True)
    )
    Shipment.objects.filter(pk__in=ids).update(
        upload_status=UploadStatus.PENDING, upload_next_at=timezone.now()
    )
    if ids:
        logger.info("shipment uploads retried by staff ids=%s", ids)
    return ids


def uploads_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pending uploads whose attempt is due, the longest waiting first."""
    now = now or timezone.now()
    return list(
        Shipment.objects.filter(upload_status=UploadStatus.PENDING)
        .filter(Q(upload_next_at__isnull=True) | Q(upload_next_at__lte=now))
        .order_by(models.F("upload_next_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )


def _claim(shipment_id: int, now: datetime) -> bool:
    return bool(
        Shipment.objects.filter(pk=shipment_id, upload_status=UploadStatus.PENDING)
        .filter(Q(upload_next_at__isnull=True) | Q(upload_next_at__lte=now))
        .update(upload_next_at=now + timedelta(seconds=CLAIM_SECONDS))
    )


# -- the upload -------------------------------------------------------------------------------


def shipment_upload(*, shipment_id: int) -> UploadResult:
    """One attempt at uploading a pending, due shipment; SKIPPED for any other."""
    now = timezone.now()
    if not _claim(shipment_id, now):
        return UploadResult(UploadOutcome.SKIPPED)
    shipment = Shipment.objects.select_related("order").get(pk=shipment_id)
    try:
        managed = trade_managed()
    except (MiniProgramApiError, WeChatNotConfigured) as exc:
        return _retry_later(shipment, exc)
    if not managed:
        _finish(shipment, UploadStatus.NOT_REQUIRED)
        logger.info("shipment upload not required out_trade_no=%s", shipment.order.out_trade_no)
        return UploadResult(UploadOutcome.NOT_REQUIRED)
    try:
        fields = upload_fields(shipment)
        with_access_token(lambda client, token: client.upload_shipping_info(token, **fields))
    except AlreadyShipped:
        pass  # WeChat has it already: done (§2.7)
    except WeChatNotConfigured as exc:
        return _retry_later(shipment, exc)
    except MiniProgramApiError as exc:
        # A bad AppSecret is the shop's configuration, not this shipment's: once fixed, the
        # upload goes through, so it waits like a busy WeChat.
        if exc.retryable or isinstance(exc, CredentialsRejected):
            return _retry_later(shipment, exc)
        return _refused(shipment, exc)
    _finish(shipment, UploadStatus.UPLOADED, attempted=True)
    logger.info("shipment uploaded out_trade_no=%s", shipment.order.out_trade_no)
    return UploadResult(UploadOutcome.UPLOADED)


def upload_fields(shipment: Shipment) -> dict:
    """``upload_shipping_info``'s arguments (§2.4) for one shipment of a paid order, keyed by
    its transaction id: the payer, the goods, and for express the company and number (with
    the receiver's phone, masked, for SF)."""
    order: Order = shipment.order
    express = shipment.logistics_type == Shipment.LogisticsType.EXPRESS
    receiver = ""
    if express and shipment.express_company == SF_EXPRESS:
        address = order.address if isinstance(order.address, dict) else {}
        try:
            receiver = mask_phone(str(address.get("tel_number") or ""))
        except ValueError:
            receiver = ""  # the client refuses SF without it, before sending (§2.4)
    item = ShippingItem(
        item_desc=item_desc(order),
        tracking_no=shipment.tracking_no if express else "",
        express_company=shipment.express_company if express else "",
        receiver_contact=receiver,
    )
    return {
        "transaction_id": order.transaction_id or "",
        "logistics_type": LOGISTICS_TYPES[shipment.logistics_type],
        "shipping_list": [item],
        "upload_time": timezone.localtime(timezone.now()),
        "payer_openid": order.openid,
    }


def item_desc(order: Order) -> str:
    """The goods as WeChat shows them to the shopper (``乌龙茶*2, 茶杯*1``), cut to its 120
    characters."""
    text = ", ".join(f"{item.product_name}*{item.quantity}" for item in order.items.all())
    text = " ".join(text.split())
    if len(text) > MAX_ITEM_DESC_CHARS:
        text = text[: MAX_ITEM_DESC_CHARS - 1] + ELLIPSIS
    return text


def _error_text(exc: Exception) -> str:
    if isinstance(exc, MiniProgramApiError) and exc.errcode is not None:
        return f"errcode {exc.errcode}: {exc.errmsg}"
    return str(exc)


def _finish(shipment: Shipment, status: str, *, attempted: bool = False) -> None:
    changes: dict = {"upload_status": status, "upload_next_at": None, "upload_error": ""}
    if status == UploadStatus.UPLOADED:
        changes["uploaded_at"] = timezone.now()
    if attempted:
        changes["upload_attempts"] = models.F("upload_attempts") + 1
    Shipment.objects.filter(pk=shipment.pk, upload_status=UploadStatus.PENDING).update(**changes)


def _retry_later(shipment: Shipment, exc: Exception) -> UploadResult:
    attempts = shipment.upload_attempts + 1
    wait = upload_backoff(attempts)
    error = _error_text(exc)
    Shipment.objects.filter(pk=shipment.pk, upload_status=UploadStatus.PENDING).update(
        upload_attempts=attempts,
        upload_next_at=timezone.now() + wait,
        upload_error=error,
    )
    logger.warning(
        "shipment upload not accepted out_trade_no=%s attempt=%s retry_in=%ss error=%s",
        shipment.order.out_trade_no,
        attempts,
        int(wait.total_seconds()),
        type(exc).__name__,
    )
    if attempts == FLAG_AFTER_ATTEMPTS:
        order_flag(
            order=shipment.order,
            reason=(
                f"WeChat has not accepted the shipping upload after {attempts} attempts "
                f"(last: {error}); it is tried again every {BACKOFF_MAX_SECONDS // 60} minutes."
            ),
        )
    return UploadResult(UploadOutcome.RETRY, retry_in=int(wait.total_seconds()), detail=error)


def _refused(shipment: Shipment, exc: MiniProgramApiError) -> UploadResult:
    error = _error_text(exc)
    Shipment.objects.filter(pk=shipment.pk, upload_status=UploadStatus.PENDING).update(
        upload_status=UploadStatus.FAILED,
        upload_next_at=None,
        upload_error=error,
        upload_attempts=models.F("upload_attempts") + (1 if exc.errcode is not None else 0),
    )
    order_flag(
        order=shipment.order,
        reason=(
            f"WeChat refused the shipping upload ({error}). Enter the shipping in the "
            "mini-program console (发货信息管理), or fix the cause and use "
            "“Retry upload to WeChat now”."
        ),
    )
    logger.warning(
        "shipment upload refused out_trade_no=%s errcode=%s",
        shipment.order.out_trade_no,
        exc.errcode,
    )
    return UploadResult(UploadOutcome.FAILED, detail=error)
