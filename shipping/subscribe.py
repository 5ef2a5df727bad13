"""The "shipped" subscribe message (docs/INVARIANTS.md §8; docs/protocol/
miniprogram-server-api.md §4), sent when an order ships and ``WECHAT_TEMPLATE_SHIPPED`` is set.

Which of the order's values fill which of the template's keywords is the setting
``WECHAT_TEMPLATE_SHIPPED_FIELDS``: comma-separated ``keyword=source`` pairs, the keyword as the
template in WeChat's console names it (``thing2``: its kind decides the rule the value is cut
to, §4.3), the source one of ``SOURCES``. The default:
``character_string1=out_trade_no,thing2=items,thing3=express_company,character_string4=tracking_no,time5=shipped_at``.

Once per order and template: the ``SubscribeMessage`` row (unique) records what came of it,
and a short cache lock keeps two workers from sending it at the same moment. A shopper who did
not subscribe (43101) is recorded ``not_subscribed`` and never asked again; a busy WeChat is
retried by the task; nothing here ever touches the shipment or its upload.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, models, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from core.config import WeChatNotConfigured
from core.money import yuan
from orders.models import Shipment
from shipping.access_token import with_access_token
from shipping.models import SubscribeMessage
from shipping.uploads import item_desc
from wechat.miniprogram import MiniProgramApiError, NotSubscribed, keyword_kind, subscribe_value

logger = logging.getLogger(__name__)

# What a keyword may be filled with.
SOURCES = {
    "out_trade_no": "the order number",
    "items": "the goods, e.g. Oolong tea 250g*2, Tea cup*1",
    "express_company": "the express company's code (SF…), or how it ships when not express",
    "tracking_no": "the tracking number (- when none)",
    "logistics_type": "how it ships (快递, 同城配送, 虚拟商品, 用户自提)",
    "shipped_at": "when it shipped (Beijing time)",
    "total_fee": "the order's total",
    "status": "已发货 (shipped)",
}
SHIPPED = "已发货"
LOCK_SECONDS = 120


class MessageOutcome(models.TextChoices):
    SENT = "sent", _("sent")
    NOT_SUBSCRIBED = "not_subscribed", _("not sent: the shopper did not subscribe")
    FAILED = "failed", _("failed")
    RETRY = "retry", _("not sent yet: tried again later")
    SKIPPED = "skipped", _("nothing to do")


@dataclass(frozen=True)
class Keyword:
    keyword: str  # thing2
    kind: str  # thing
    source: str  # items


def shipped_keywords(text: str) -> list[Keyword]:
    """``WECHAT_TEMPLATE_SHIPPED_FIELDS`` read; ``ValueError`` saying what is wrong."""
    keywords: list[Keyword] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        keyword, sep, source = (s.strip() for s in part.partition("="))
        if not sep or not keyword or not source:
            raise ValueError(f"{part!r} is not keyword=source")
        kind = keyword_kind(keyword)  # ValueError for what is not a template keyword
        if source not in SOURCES:
            raise ValueError(f"{source!r} is not one of {', '.join(SOURCES)}")
        if any(k.keyword == keyword for k in keywords):
            raise ValueError(f"{keyword} is given twice")
        keywords.append(Keyword(keyword, kind, source))
    if not keywords:
        raise ValueError("no keyword=source pair")
    return keywords


def shipped_message_data(shipment: Shipment) -> dict[str, str]:
    """The template's keywords filled from the shipment, each value made to fit its kind.
    ``ValueError`` when a value cannot (a source that is no number for a ``number`` keyword)."""
    order = shipment.order
    # Shoppers read WeChat in Chinese: labels in the shop's Chinese.
    with translation.override("zh-hans"):
        how = str(Shipment.LogisticsType(shipment.logistics_type).label)
    values: dict[str, object] = {
        "out_trade_no": order.out_trade_no,
        "items": item_desc(order),
        "express_company": shipment.express_company or how,
        "tracking_no": shipment.tracking_no or "-",
        "logistics_type": how,
        "shipped_at": shipment.shipped_at,
        "total_fee": order.total_fee,
        "status": SHIPPED,
    }
    data = {}
    for keyword in shipped_keywords(settings.WECHAT_TEMPLATE_SHIPPED_FIELDS):
        value = values[keyword.source]
        if isinstance(value, datetime) and keyword.kind not in ("time", "date"):
            value = timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
        elif isinstance(value, int) and keyword.kind not in ("amount", "number"):
            value = yuan(value)
        data[keyword.keyword] = subscribe_value(keyword.kind, value)
    return data


@dataclass(frozen=True)
class MessageResult:
    outcome: MessageOutcome
    detail: str = ""


def shipped_message_send(*, shipment_id: int, final: bool = True) -> MessageResult:
    """Send the shipped message of the shipment's order once. A retryable failure is RETRY
    unless ``final`` (the task's last try), when it is recorded ``failed``."""
    template = settings.WECHAT_TEMPLATE_SHIPPED
    if not template:
        return MessageResult(MessageOutcome.SKIPPED)
    shipment = Shipment.objects.select_related("order").get(pk=shipment_id)
    order = shipment.order
    with _sending(order.pk, template) as mine:
        if not mine or SubscribeMessage.objects.filter(order=order, template_id=template).exists():
            return MessageResult(MessageOutcome.SKIPPED)
        try:
            data = shipped_message_data(shipment)
            msgid = with_access_token(
                lambda client, token: client.send_subscribe_message(
                    token, touser=order.openid, template_id=template, data=data
                )
            )
        except NotSubscribed as exc:
            return _record(shipment, template, SubscribeMessage.Status.NOT_SUBSCRIBED, exc)
        except MiniProgramApiError as exc:
            if exc.retryable and not final:
                logger.warning(
                    "subscribe message not sent yet out_trade_no=%s errcode=%s",
                    order.out_trade_no,
                    exc.errcode,
                )
                return MessageResult(MessageOutcome.RETRY, detail=str(exc))
            return _record(shipment, template, SubscribeMessage.Status.FAILED, exc)
        except (ValueError, WeChatNotConfigured) as exc:
            return _record(shipment, template, SubscribeMessage.Status.FAILED, exc)
        detail = f"msgid {msgid}" if msgid is not None else ""
        return _record(shipment, template, SubscribeMessage.Status.SENT, None, detail)


def _record(
    shipment: Shipment, template: str, status: str, exc: Exception | None, detail: str = ""
) -> MessageResult:
    errcode = getattr(exc, "errcode", None)
    if exc is not None:
        detail = getattr(exc, "errmsg", "") or str(exc)
    try:
        with transaction.atomic():
            SubscribeMessage.objects.create(
                order=shipment.order, template_id=template, status=status,
                errcode=errcode, detail=detail,
            )  # fmt: skip
    except IntegrityError:
        return MessageResult(MessageOutcome.SKIPPED)  # recorded meanwhile by another worker
    logger.info(
        "subscribe message %s out_trade_no=%s errcode=%s",
        status,
        shipment.order.out_trade_no,
        errcode,
    )
    return MessageResult(MessageOutcome(status), detail=detail)


@contextmanager
def _sending(order_id: int, template: str) -> Iterator[bool]:
    """A short lock: one worker at a time sends an order's message. A cache that is down
    lets it through (the unique row still records one outcome)."""
    key = f"wechat:subscribe:{order_id}:{template}"
    try:
        mine = cache.add(key, 1, LOCK_SECONDS)
    except Exception:
        yield True
        return
    try:
        yield mine
    finally:
        if mine:
            try:
                cache.delete(key)
            except Exception:
                logger.warning("subscribe message lock not released: cache unavailable")
