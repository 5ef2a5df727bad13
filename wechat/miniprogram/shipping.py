"""Order shipping management, as data: the request bodies and answers of §2. Pure functions.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

``shipping_body`` refuses here, with :class:`RequestInvalid`, what WeChat would refuse with
one of the field errcodes of §2.7: a request that cannot succeed is never sent, so it never
burns the payment's one change of shipping info (§2.4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from .errors import MiniProgramUnavailable, RequestInvalid
from .subscribe import BEIJING

MAX_ITEM_DESC_CHARS = 120  # §2.4
MAX_CODE_BYTES = 128  # tracking_no, express_company (§2.4)
MAX_SHIPPING_ENTRIES = 15  # §2.4
SF_EXPRESS = "SF"  # 顺丰's delivery_id: its entries need a masked phone (§2.4)
# A phone masked but its last 4 digits, as §2.4 requires (e.g. 189****1234).
_MASKED_PHONE = re.compile(r"\+?[0-9]{0,5}\*+[0-9]{4}")


class LogisticsType(IntEnum):
    """``logistics_type`` (§2.4): sent as a number, never a name."""

    EXPRESS = 1
    SAME_CITY = 2
    VIRTUAL = 3
    SELF_PICKUP = 4


class DeliveryMode(IntEnum):
    """``delivery_mode`` (§2.4): one parcel, or split parcels (express only)."""

    UNIFIED = 1
    SPLIT = 2


class OrderState(IntEnum):
    """``order_state`` of ``get_order`` (§2.5)."""

    TO_SHIP = 1
    SHIPPED = 2
    RECEIVED = 3
    COMPLETED = 4
    REFUNDED = 5
    AWAITING_SETTLEMENT = 6


@dataclass(frozen=True)
class ShippingItem:
    """One entry of ``shipping_list`` (§2.4). Contacts are masked phones (see mask_phone)."""

    item_desc: str
    tracking_no: str = ""
    express_company: str = ""
    receiver_contact: str = field(default="", repr=False)
    consignor_contact: str = field(default="", repr=False)


@dataclass(frozen=True)
class ShippingOrder:
    """One payment as ``get_order`` reports it (§2.5). ``order_state`` is an OrderState value;
    a state WeChat adds later stays a plain int rather than failing the call."""

    transaction_id: str
    merchant_id: str
    merchant_trade_no: str
    order_state: int
    openid: str
    paid_amount: int  # fen
    description: str
    pay_time: datetime | None  # aware, Beijing time
    in_complaint: bool
    shipping: dict[str, Any] = field(repr=False, compare=False)
    raw: dict[str, Any] = field(repr=False, compare=False)


def mask_phone(phone: str) -> str:
    """``18912341234`` (or ``+86 189-1234-1234``) → ``189****1234``, as §2.4 shows; numbers
    shorter than a mobile number keep only their last 4 digits."""
    digits = re.sub(r"[^0-9]", "", phone)
    if len(digits) < 4:
        raise ValueError("a phone number has at least 4 digits")
    # A Chinese mobile number is the last 11 digits (after any +86).
    return (digits[-11:-8] if len(digits) >= 11 else "") + "****" + digits[-4:]


def rfc3339(moment: datetime) -> str:
    """``2022-12-15T13:29:35.120+08:00``: Beijing time with milliseconds, as §2.4 shows."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise RequestInvalid(None, "upload_time must be an aware datetime")
    return moment.astimezone(BEIJING).isoformat(timespec="milliseconds")


def unix_seconds(moment: datetime, name: str) -> int:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise RequestInvalid(None, f"{name} must be an aware datetime")
    return int(moment.timestamp())


def upload_order_key(transaction_id: str, mchid: str, out_trade_no: str) -> dict[str, Any]:
    """``order_key`` of the upload: type 2 by transaction_id, type 1 by mchid + out_trade_no."""
    if transaction_id and not (mchid or out_trade_no):
        return {"order_number_type": 2, "transaction_id": transaction_id}
    if mchid and out_trade_no and not transaction_id:
        return {"order_number_type": 1, "mchid": mchid, "out_trade_no": out_trade_no}
    raise RequestInvalid(None, "give transaction_id, or mchid and out_trade_no (not both)")


def merchant_order_key(
    transaction_id: str, merchant_id: str, merchant_trade_no: str
) -> dict[str, str]:
    """The key of ``get_order`` and ``notify_confirm_receive``: other names than the upload's
    (§2.5, §6)."""
    if transaction_id and not (merchant_id or merchant_trade_no):
        return {"transaction_id": transaction_id}
    if merchant_id and merchant_trade_no and not transaction_id:
        return {"merchant_id": merchant_id, "merchant_trade_no": merchant_trade_no}
    raise RequestInvalid(
        None, "give transaction_id, or merchant_id and merchant_trade_no (not both)"
    )


def shipping_body(
    *,
    order_key: dict[str, Any],
    logistics_type: int,
    delivery_mode: int,
    shipping_list: Sequence[ShippingItem],
    upload_time: datetime,
    payer_openid: str,
    is_all_delivered: bool | None,
) -> dict[str, Any]:
    """The ``upload_shipping_info`` body (§2.4), checked as WeChat checks it."""
    if logistics_type not in set(LogisticsType):
        raise RequestInvalid(None, "logistics_type must be 1 (express) to 4 (self pickup)")
    if delivery_mode not in set(DeliveryMode):
        raise RequestInvalid(None, "delivery_mode must be 1 (unified) or 2 (split)")
    express = logistics_type == LogisticsType.EXPRESS
    body: dict[str, Any] = {
        "order_key": order_key,
        "logistics_type": int(logistics_type),
        "delivery_mode": int(delivery_mode),
    }
    if delivery_mode == DeliveryMode.SPLIT:
        if not express:
            raise RequestInvalid(None, "only express shipping can be split (10060006)")
        if not isinstance(is_all_delivered, bool):
            raise RequestInvalid(None, "split shipping needs is_all_delivered (10060007)")
        body["is_all_delivered"] = is_all_delivered
    entries = list(shipping_list)
    if delivery_mode == DeliveryMode.UNIFIED and len(entries) != 1:
        raise RequestInvalid(None, "unified shipping has exactly one shipping_list entry")
    if not 1 <= len(entries) <= MAX_SHIPPING_ENTRIES:
        raise RequestInvalid(None, f"shipping_list has 1 to {MAX_SHIPPING_ENTRIES} entries")
    body["shipping_list"] = [_entry(item, express) for item in entries]
    body["upload_time"] = rfc3339(upload_time)
    if not isinstance(payer_openid, str) or not payer_openid:
        raise RequestInvalid(None, "payer_openid is required")
    body["payer"] = {"openid": payer_openid}
    return body


def _entry(item: ShippingItem, express: bool) -> dict[str, Any]:
    if not isinstance(item, ShippingItem):
        raise RequestInvalid(None, "shipping_list holds ShippingItem entries")
    desc = item.item_desc.strip() if isinstance(item.item_desc, str) else ""
    if not desc:
        raise RequestInvalid(None, "item_desc is required")
    if len(desc) > MAX_ITEM_DESC_CHARS:
        raise RequestInvalid(None, f"item_desc has at most {MAX_ITEM_DESC_CHARS} characters")
    entry: dict[str, Any] = {"item_desc": desc}
    for name in ("tracking_no", "express_company"):
        value = getattr(item, name)
        if express and not value:
            raise RequestInvalid(None, f"express shipping needs {name}")
        if len(value.encode("utf-8")) > MAX_CODE_BYTES:
            raise RequestInvalid(None, f"{name} has at most {MAX_CODE_BYTES} bytes")
        if value:
            entry[name] = value
    contact = {}
    for name in ("receiver_contact", "consignor_contact"):
        value = getattr(item, name)
        if value and not _MASKED_PHONE.fullmatch(value):
            # Never the whole number: WeChat wants it masked, and it is personal data.
            raise RequestInvalid(None, f"{name} must be a masked phone like 189****1234")
        if value:
            contact[name] = value
    if item.express_company == SF_EXPRESS and not contact:
        raise RequestInvalid(
            None, "SF Express needs a masked receiver_contact or consignor_contact"
        )
    if contact:
        entry["contact"] = contact
    return entry


def shipping_order(answer: Mapping[str, Any]) -> ShippingOrder:
    """Read ``get_order``'s ``order``; an answer without its ids or state is not WeChat's."""
    order = answer.get("order")
    if not isinstance(order, dict):
        raise MiniProgramUnavailable(None, "get_order answered without an order")
    state = order.get("order_state")
    if not isinstance(order.get("transaction_id"), str) or type(state) is not int:
        raise MiniProgramUnavailable(None, "get_order answered without transaction_id/order_state")
    amount = order.get("paid_amount")
    shipping = order.get("shipping")
    return ShippingOrder(
        transaction_id=order["transaction_id"],
        merchant_id=_text(order, "merchant_id"),
        merchant_trade_no=_text(order, "merchant_trade_no"),
        order_state=OrderState(state) if state in set(OrderState) else state,
        openid=_text(order, "openid"),
        paid_amount=amount if type(amount) is int else 0,
        description=_text(order, "description"),
        pay_time=_moment(order.get("pay_time")),
        in_complaint=order.get("in_complaint") is True,
        shipping=shipping if isinstance(shipping, dict) else {},
        raw=dict(order),
    )


def _moment(value: object) -> datetime | None:
    """A Unix-seconds number of an answer (§6: answers give numbers, uploads strings)."""
    return datetime.fromtimestamp(value, BEIJING) if type(value) is int and value > 0 else None


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""
