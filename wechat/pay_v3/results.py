"""What the v3 endpoints and notifies return, as small frozen dataclasses.

Amounts are ``int`` fen (a JSON integer, never a float or a string, §1.2); times are aware,
in Beijing time. ``raw`` keeps WeChat's whole object for fields not lifted out (it is never
in ``repr``). The ``from_json`` builders raise ``ValueError`` for anything that is not the
documented shape; the client turns that into ``WxPayV3Unavailable`` and ``parse_notify``
into ``MalformedNotify``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .times import parse_rfc3339

TRADE_PAID_STATES = frozenset({"SUCCESS", "REFUND"})  # REFUND: paid, refund started (§6.2)


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} is not an object")
    return value


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _fen(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    # bool is an int in Python, and 1.0 is not fen.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} is not an amount in fen")
    return value


def _time(data: Mapping[str, Any], name: str) -> datetime | None:
    value = _text(data, name)
    return parse_rfc3339(value) if value else None


@dataclass(frozen=True)
class PrepayResult:
    """JSAPI prepay (§4.2): ``prepay_id`` lives 2 hours, whatever ``time_expire`` says."""

    prepay_id: str


@dataclass(frozen=True)
class Transaction:
    """The transaction object of a query (§6.1) or a payment notify (§7.3)."""

    appid: str
    mchid: str
    out_trade_no: str
    transaction_id: str  # "" before payment
    trade_type: str
    trade_state: str
    trade_state_desc: str
    bank_type: str
    attach: str
    success_time: datetime | None  # aware, Beijing time; once paid
    payer_openid: str
    total: int | None  # fen
    payer_total: int | None  # fen, what the payer paid after discounts
    currency: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_paid(self) -> bool:
        """v3 has no result_code: only ``trade_state`` decides (§6.2)."""
        return self.trade_state in TRADE_PAID_STATES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transaction:
        amount = _object(data, "amount")
        return cls(
            appid=_text(data, "appid"),
            mchid=_text(data, "mchid"),
            out_trade_no=_text(data, "out_trade_no"),
            transaction_id=_text(data, "transaction_id"),
            trade_type=_text(data, "trade_type"),
            trade_state=_text(data, "trade_state"),
            trade_state_desc=_text(data, "trade_state_desc"),
            bank_type=_text(data, "bank_type"),
            attach=_text(data, "attach"),
            success_time=_time(data, "success_time"),
            payer_openid=_text(_object(data, "payer"), "openid"),
            total=_fen(amount, "total"),
            payer_total=_fen(amount, "payer_total"),
            currency=_text(amount, "currency"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Refund:
    """A refund as create/query (§8.2) or a refund notify (§8.5) report it.

    ``status``: SUCCESS, CLOSED (apply again with a new number), PROCESSING, ABNORMAL (a
    person acts on the merchant platform). The notify calls it ``refund_status``.
    """

    refund_id: str
    out_refund_no: str
    transaction_id: str
    out_trade_no: str
    status: str
    channel: str
    user_received_account: str
    success_time: datetime | None  # aware, Beijing time; once SUCCESS
    create_time: datetime | None
    total: int | None  # fen, the order's total
    refund: int | None  # fen, this refund
    payer_total: int | None
    payer_refund: int | None
    currency: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Refund:
        amount = _object(data, "amount")
        status = _text(data, "status") or _text(data, "refund_status")
        return cls(
            refund_id=_text(data, "refund_id"),
            out_refund_no=_text(data, "out_refund_no"),
            transaction_id=_text(data, "transaction_id"),
            out_trade_no=_text(data, "out_trade_no"),
            status=status,
            channel=_text(data, "channel"),
            user_received_account=_text(data, "user_received_account"),
            success_time=_time(data, "success_time"),
            create_time=_time(data, "create_time"),
            total=_fen(amount, "total"),
            refund=_fen(amount, "refund"),
            payer_total=_fen(amount, "payer_total"),
            payer_refund=_fen(amount, "payer_refund"),
            currency=_text(amount, "currency"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Notify:
    """A verified and decrypted notify (§7.1, §8.5).

    ``resource`` is a :class:`Transaction` (``TRANSACTION.*``) or a :class:`Refund`
    (``REFUND.*``); ``None`` for an authentic notify of a kind this package does not know,
    whose decrypted object is still in ``data``. Deduplicate by business key
    (``transaction_id``, ``out_refund_no``), never by ``id`` (§3.6, §7.1).
    """

    id: str
    event_type: str
    create_time: datetime | None
    summary: str
    original_type: str
    resource: Transaction | Refund | None
    data: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class TradeBill:
    """Where to download one day's trade bill (§9.1). ``download_url`` expires within
    minutes: download right away. ``hash_value`` is of the *uncompressed* file."""

    download_url: str = field(repr=False)  # carries a token
    hash_type: str
    hash_value: str
    tar_type: str | None = None  # "GZIP" when asked compressed

    @classmethod
    def from_json(cls, data: Mapping[str, Any], tar_type: str | None) -> TradeBill:
        bill = cls(
            download_url=_text(data, "download_url"),
            hash_type=_text(data, "hash_type"),
            hash_value=_text(data, "hash_value"),
            tar_type=tar_type,
        )
        if not (bill.download_url and bill.hash_type and bill.hash_value):
            raise ValueError("download_url, hash_type or hash_value missing")
        return bill
