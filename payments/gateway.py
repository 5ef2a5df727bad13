"""The payment interface: what the shop asks of WeChat Pay, whichever API an order was placed
with.

Each order records its API (``Order.pay_version``) and keeps it for good: ``gateway_for(order)``
picks the gateway by that field, never by ``WECHAT_PAY_VERSION``, so an order placed under v2
is paid again, queried, closed and refunded with v2 after the setting moved to v3
(docs/INVARIANTS.md §9). ``V2Gateway`` speaks ``wechat.pay_v2`` with the order's own sign
type; ``V3Gateway`` speaks ``wechat.pay_v3`` through the shop's v3 client
(``payments.v3client``).

This is the one module of the shop that calls the wire packages for an order (the notifies
and the statements read their own), and the one place their errors are translated: each
gateway turns its package's errors, once, into the ``PayError`` family below, so services,
lifecycle, refunds, admin and commands branch on one set of outcomes and never on a version.

Sections cited as ``v2 §n`` are of docs/protocol/wechat-pay-v2.md, ``v3 §n`` of
docs/protocol/wechat-pay-v3.md.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from django.conf import settings

from core.config import (
    WeChatNotConfigured,
    pay_notify_url,
    pay_refund_notify_url,
    require_pay_configured,
    require_refunds_configured,
)
from orders.models import Order, PayVersion
from orders.services import BODY_ELLIPSIS, BODY_FALLBACK
from payments.models import Refund
from payments.v3client import require_v3_configured, v3_client, v3_keys_refresh
from wechat import pay_v2, pay_v3

T = TypeVar("T")

# Trade states in which WeChat took the money (REFUND: and a refund has started since);
# the same names in both APIs (v2 §6.1, v3 §6.2).
PAID_STATES = frozenset({"SUCCESS", "REFUND"})
# Trade states that end an order unpaid for good.
CLOSED_STATES = frozenset({"CLOSED", "REVOKED", "PAYERROR"})

# WeChat's refund status → ours; anything else (PROCESSING) is not a result yet.
V2_REFUND_STATUS = {  # v2 §7.2, §7.3
    "SUCCESS": Refund.Status.SUCCESS,
    "REFUNDCLOSE": Refund.Status.CLOSED,
    "CHANGE": Refund.Status.ABNORMAL,
}
V3_REFUND_STATUS = {  # v3 §8.2
    "SUCCESS": Refund.Status.SUCCESS,
    "CLOSED": Refund.Status.CLOSED,
    "ABNORMAL": Refund.Status.ABNORMAL,
}

REFUND_REASON_MAX_CHARS = 80  # v2 refund_desc String(80) (v2 §7.1); v3 reason string(80)
V3_REASON_MAX_BYTES = 80  # v3 §8.1: counted in UTF-8 bytes, the safe side (v3 §1.2)
V3_DESCRIPTION_MAX_BYTES = 127  # v3 §4.1


# -- errors: one family for both APIs ------------------------------------------------------------


class PayError(Exception):
    """WeChat Pay did not do what was asked. ``code`` is WeChat's own error code (v2
    ``err_code``, v3 ``code``; "" when there is none); ``kind`` names the wire package's
    error (``SystemBusy``, ``WxPayUnavailable``, …) for summaries, logs and a refund's
    ``last_error``; ``str()`` is the wire error's text, safe to show staff (no key, no
    body). ``retryable``: whether sending the *identical* request again is the remedy."""

    retryable: bool = False

    def __init__(self, message: str, *, code: str = "", kind: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind or type(self).__name__


class PayRefused(PayError):
    """WeChat understood the request and refused it (v2 ``result_code=FAIL``, v3 an error
    answer with its code). ``retryable``: WeChat documents sending the same request again as
    the remedy (system busy, rate limited); otherwise it is refused for good."""

    def __init__(
        self, message: str, *, code: str = "", kind: str = "", retryable: bool = False
    ) -> None:
        super().__init__(message, code=code, kind=kind)
        self.retryable = retryable


class PayRequestInvalid(PayError, ValueError):
    """A request that cannot be sent at all (a value the wire cannot carry or WeChat would
    refuse, caught before sending): WeChat was not called, and the same values fail the same
    way every time. Also a ``ValueError``, like every check of our own arguments."""


class PayUnavailable(PayError):
    """No answer to act on: network error, timeout, an HTTP failure, an answer that is not
    what the protocol says or whose signature does not verify, or WeChat refusing the request
    itself before looking at it (v2 ``return_code=FAIL``, v3 401: our signature, key or
    clock). What WeChat did is unknown: query, or send the identical request again."""

    retryable = True


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trade:
    """An order as WeChat's query reports it (v2 orderquery, v3 query by out_trade_no).
    Payment fields are "" / None until it is paid."""

    out_trade_no: str
    transaction_id: str
    trade_state: str  # SUCCESS, REFUND, NOTPAY, CLOSED, … (the same names in v2 and v3)
    total_fee: int | None  # fen (v3 amount.total)
    openid: str  # the payer (v3 payer.openid)
    paid_at: datetime | None  # aware, Beijing time (v2 time_end, v3 success_time)

    @property
    def is_paid(self) -> bool:
        return self.trade_state in PAID_STATES


@dataclass(frozen=True)
class RefundReport:
    """A refund as WeChat's refund query reports it. ``status`` is ours (``Refund.Status``:
    success, closed, abnormal), or None while WeChat still processes it; ``wechat_status`` is
    WeChat's word, for people."""

    status: Refund.Status | None
    wechat_status: str
    refund_id: str
    succeeded_at: datetime | None  # aware, Beijing time; once successful
    recv_account: str  # where the money went back, e.g. 支付用户零钱
    refund_fee: int | None  # fen, as WeChat states it


class CloseOutcome(enum.StrEnum):
    """What asking WeChat to close an unpaid order came to."""

    CLOSED = "closed"  # closed now, closed already, or WeChat never had it
    PAID = "paid"  # WeChat refuses: it was paid (query it, refund instead of closing)


# -- the interface ---------------------------------------------------------------------------


class PayGateway(Protocol):
    """The narrow interface the shop's services use for one order's WeChat Pay API.

    Every method raises only the ``PayError`` family for WeChat's failures (and
    ``WeChatNotConfigured`` when the settings it needs are missing); errors of our own data
    (a ``ValueError`` for a stored value no request can be built from) propagate as they are.
    """

    version: str
    prepay_lifetime: timedelta  # a prepay_id's life, whatever the order's time_expire

    def prepay(self, *, order: Order) -> str:
        """The order's prepay_id: a JSAPI prepay (a re-entry with the order's stored
        parameters when it was asked before)."""
        ...

    def payment_params(self, *, prepay_id: str) -> dict[str, str]:
        """The signed ``wx.requestPayment`` parameters: timeStamp, nonceStr, package,
        signType, paySign."""
        ...

    def query(self, *, order: Order) -> Trade | None:
        """The order as WeChat has it; None when WeChat has no such order."""
        ...

    def close(self, *, order: Order) -> CloseOutcome:
        """Close the order at WeChat."""
        ...

    def refund(self, *, order: Order, out_refund_no: str, refund_fee: int, reason: str) -> str:
        """Ask WeChat to refund ``refund_fee`` fen of the paid order; its refund_id. The
        same ``out_refund_no`` is the same refund: after an unclear outcome, send it again
        with the same number and amount, never a new one."""
        ...

    def refund_query(self, *, out_refund_no: str) -> RefundReport:
        """Where one refund stands."""
        ...

    def refund_reason_problem(self, reason: str) -> str:
        """Why ``reason`` could never be sent with a refund ("" when it can), for staff."""
        ...

    def require_refunds_configured(self) -> None:
        """Raise ``WeChatNotConfigured`` unless refunds can be sent with this API."""
        ...


def gateway_for(order: Order) -> PayGateway:
    """The gateway of the API ``order`` was placed with, for as long as the order lives.

    Raises ``WeChatNotConfigured`` when that API's settings are missing, and ``ValueError``
    for a stored sign type or version no request can be made with.
    """
    if order.pay_version == PayVersion.V3:
        return V3Gateway()
    if order.pay_version == PayVersion.V2:
        return V2Gateway(sign_type=order.sign_type)
    raise ValueError(f"order {order.out_trade_no} has an unknown pay_version")


def pay_require_configured(version: str) -> None:
    """Raise ``WeChatNotConfigured`` unless orders can be placed and paid with API
    ``version`` (``WECHAT_PAY_VERSION`` for new orders): checked before an order is recorded
    that could never be paid."""
    if version == PayVersion.V3:
        require_v3_configured()
        if not pay_notify_url(PayVersion.V3):
            raise WeChatNotConfigured(
                "WeChat Pay API v3 is not configured: set WECHAT_V3_NOTIFY_URL or "
                "WECHAT_NOTIFY_URL."
            )
        return
    require_pay_configured()


# -- API v2 ----------------------------------------------------------------------------------

_v2_local = threading.local()
_V2_CLIENTS_PER_THREAD = 4  # configurations (MD5 and HMAC-SHA256 orders side by side)


def v2_client(*, sign_type: str | None = None) -> pay_v2.WxPayClient:
    """This thread's v2 client for the settings; ``sign_type`` pins an order's own algorithm.

    One client per thread and configuration: a client holds one ``requests.Session``
    (pooled TLS connections), and a session is not documented as thread-safe, so threads
    of a threaded server (gunicorn gthread) must not share one. Raises
    ``WeChatNotConfigured``, and ``ValueError`` for a sign type v2 does not know.
    """
    require_pay_configured()
    config = pay_v2.WxPayConfig(
        appid=settings.WECHAT_APPID,
        mch_id=settings.WECHAT_MCH_ID,
        api_key=settings.WECHAT_MCH_KEY,
        sign_type=sign_type or settings.WECHAT_SIGN_TYPE,
        api_base=settings.WECHAT_PAY_API_BASE,
        timeout=tuple(settings.WECHAT_TIMEOUT),
        cert_path=settings.WECHAT_CERT_PATH or None,
        key_path=settings.WECHAT_KEY_PATH or None,
    )
    clients = getattr(_v2_local, "clients", None)
    if clients is None:
        clients = _v2_local.clients = {}
    client = clients.get(config)
    if client is None:
        if len(clients) >= _V2_CLIENTS_PER_THREAD:
            # The settings changed (tests do): start afresh. Not closed here: a gateway of
            # this thread may still hold one; dropped, its session goes with it.
            clients.clear()
        client = clients[config] = pay_v2.WxPayClient(config)
    return client


@contextmanager
def _v2_errors() -> Iterator[None]:
    """``wechat.pay_v2``'s errors as ``PayError``s (the cases a method answers itself are
    caught inside it first)."""
    try:
        yield
    except pay_v2.WxPayRequestInvalid as exc:
        raise PayRequestInvalid(str(exc), kind=type(exc).__name__) from exc
    except pay_v2.WxPayBusinessError as exc:
        raise PayRefused(
            str(exc), code=exc.err_code, kind=type(exc).__name__, retryable=exc.retryable
        ) from exc
    except pay_v2.WxPayError as exc:
        # Network, HTTP, return_code=FAIL, an answer whose sign fails, the client
        # certificate: no answer to act on.
        raise PayUnavailable(str(exc), kind=type(exc).__name__) from exc


class V2Gateway:
    """API v2 (XML; MD5 or HMAC-SHA256 with the order's own sign type, v2 §2)."""

    version = PayVersion.V2
    prepay_lifetime = timedelta(hours=2)  # v2 §3.2

    def __init__(self, *, sign_type: str | None = None) -> None:
        self.client = v2_client(sign_type=sign_type)

    def prepay(self, *, order: Order) -> str:
        with _v2_errors():
            return self.client.unified_order(
                out_trade_no=order.out_trade_no,
                total_fee=order.total_fee,
                body=order.body,
                openid=order.openid,  # always the owner's: WeChat refuses any other payer
                # The URL of the first call: a re-entry with another one is OUT_TRADE_NO_USED.
                notify_url=(
                    order.notify_url
                    # Mutation testing: pay_notify_url(None) is v2's URL too (equivalent). A
                    # pragma's start … end inside brackets is not seen: on the line itself.
                    or pay_notify_url(PayVersion.V2)  # pragma: no mutate
                ),
                spbill_create_ip=order.spbill_create_ip,
                time_start=order.created_at,
                time_expire=order.expires_at,
            ).prepay_id

    def payment_params(self, *, prepay_id: str) -> dict[str, str]:
        with _v2_errors():
            return self.client.jsapi_params(prepay_id)

    def query(self, *, order: Order) -> Trade | None:
        with _v2_errors():
            try:
                answer = self.client.order_query(out_trade_no=order.out_trade_no)
            except pay_v2.OrderNotExist:
                return None
        return Trade(
            out_trade_no=answer.out_trade_no,
            transaction_id=answer.transaction_id,
            trade_state=answer.trade_state,
            total_fee=answer.total_fee,
            openid=answer.openid,
            paid_at=answer.time_end,
        )

    def close(self, *, order: Order) -> CloseOutcome:
        with _v2_errors():
            try:
                self.client.close_order(out_trade_no=order.out_trade_no)
            except (pay_v2.OrderClosed, pay_v2.OrderNotExist):
                pass  # closed already, or WeChat never had it: closed either way
            except pay_v2.OrderPaid:
                return CloseOutcome.PAID
        return CloseOutcome.CLOSED

    def refund(self, *, order: Order, out_refund_no: str, refund_fee: int, reason: str) -> str:
        with _v2_errors():
            return self.client.refund(
                out_trade_no=order.out_trade_no,
                out_refund_no=out_refund_no,
                total_fee=order.charged_fee,  # WeChat refuses any other than what was paid
                refund_fee=refund_fee,
                refund_desc=reason or None,
                # pay_refund_notify_url(None) is v2's too: equivalent.
                notify_url=pay_refund_notify_url(PayVersion.V2),  # pragma: no mutate
            ).refund_id

    def refund_query(self, *, out_refund_no: str) -> RefundReport:
        with _v2_errors():  # refundquery needs no client certificate (v2 §7.2)
            answer = self.client.refund_query(out_refund_no=out_refund_no)
        return RefundReport(
            status=V2_REFUND_STATUS.get(answer.refund_status),
            wechat_status=answer.refund_status,
            refund_id=answer.refund_id,
            succeeded_at=answer.success_time,
            recv_account=answer.recv_account,
            refund_fee=answer.refund_fee,
        )

    def refund_reason_problem(self, reason: str) -> str:
        if _XML_UNSAFE.search(reason):
            # refund_desc travels in XML, which cannot carry them (v2 §1).
            return "The reason must not contain control characters."
        return ""

    def require_refunds_configured(self) -> None:
        require_refunds_configured()  # the client certificate (v2 §7.1)


# -- API v3 ----------------------------------------------------------------------------------


def _v3_errors(exc: pay_v3.WxPayV3Error) -> PayError:
    """One ``wechat.pay_v3`` error as a ``PayError`` (the cases a method answers itself are
    caught inside it first)."""
    kind = type(exc).__name__
    if isinstance(exc, pay_v3.WxPayV3RequestInvalid):
        return PayRequestInvalid(str(exc), kind=kind)
    if isinstance(exc, pay_v3.WxPayV3ApiError):
        if exc.status == 401:
            # SIGN_ERROR: WeChat refused *our* signature (key and serial apart, or our clock,
            # v3 §2.6) before looking at the request, as v2's return_code=FAIL: nothing was
            # done there, and the same request goes through once that is fixed.
            return PayUnavailable(str(exc), code=exc.code, kind=kind)
        return PayRefused(str(exc), code=exc.code, kind=kind, retryable=exc.retryable)
    # Network, 5xx without a code, an answer that does not verify or parse, no key to
    # verify it with: no answer to act on.
    return PayUnavailable(str(exc), kind=kind)


def _v3_call(call: Callable[[pay_v3.WxPayV3Client], T]) -> T:
    """``call`` with this thread's v3 client, its errors translated.

    An answer signed under a serial we hold no key for (``UnknownSerial``: WeChat rotated its
    platform certificate, or the merchant is moving to the public key, v3 §3.4, §3.5) makes us
    download WeChat's certificates (``v3_keys_refresh``, at most once a minute), and the call
    is sent once more. Every call here may be: queries change nothing, closing again succeeds
    (v3 §6.3), and a prepay or a refund repeated with the same number and parameters is
    WeChat's own remedy for an unclear outcome (v3 §4.3, §8.3) — so a shopper never sees a
    502 because the shop had not fetched a certificate yet. A second ``UnknownSerial`` is
    refused like any other unverifiable answer.
    """
    try:
        client = v3_client()
        try:
            return call(client)
        except pay_v3.UnknownSerial as exc:
            try:
                known = v3_keys_refresh(client, exc.serial)
            except pay_v3.WxPayV3Error:
                raise exc from None  # the download failed: the answer stays untrusted
            if not known:
                raise exc from None
            return call(client)
    except pay_v3.WxPayV3Error as exc:
        raise _v3_errors(exc) from exc


class V3Gateway:
    """API v3 (JSON, SHA256-RSA, v3 §2 to §8) through ``payments.v3client.v3_client()``:
    this thread's client, holding WeChat's current keys."""

    version = PayVersion.V3
    prepay_lifetime = timedelta(hours=2)  # v3 §4.2

    def __init__(self) -> None:
        require_v3_configured()

    def prepay(self, *, order: Order) -> str:
        def jsapi(client: pay_v3.WxPayV3Client) -> str:
            return client.jsapi_prepay(
                out_trade_no=order.out_trade_no,
                description=v3_description(order.body),
                total=order.total_fee,
                openid=order.openid,  # always the owner's: WeChat refuses any other payer
                # The order's own URL: a re-entry must repeat the first call (v3 §4.3).
                notify_url=order.notify_url or pay_notify_url(PayVersion.V3),
                time_expire=order.expires_at,
            ).prepay_id

        return _v3_call(jsapi)

    def payment_params(self, *, prepay_id: str) -> dict[str, str]:
        # signType RSA, paySign over appId\ntimeStamp\nnonceStr\npackage\n (v3 §5).
        return _v3_call(lambda client: client.jsapi_params(prepay_id))

    def query(self, *, order: Order) -> Trade | None:
        def query(client: pay_v3.WxPayV3Client) -> Trade | None:
            try:
                answer = client.order_query(out_trade_no=order.out_trade_no)
            except pay_v3.OrderNotExist:
                return None
            return Trade(
                out_trade_no=answer.out_trade_no,
                transaction_id=answer.transaction_id,
                trade_state=answer.trade_state,
                total_fee=answer.total,
                openid=answer.payer_openid,
                paid_at=answer.success_time,
            )

        return _v3_call(query)

    def close(self, *, order: Order) -> CloseOutcome:
        def close(client: pay_v3.WxPayV3Client) -> CloseOutcome:
            try:
                client.close_order(out_trade_no=order.out_trade_no)
            except (pay_v3.OrderClosed, pay_v3.OrderNotExist):
                pass  # closed already, or WeChat never had it: closed either way
            except pay_v3.OrderPaid:
                return CloseOutcome.PAID
            return CloseOutcome.CLOSED

        return _v3_call(close)

    def refund(self, *, order: Order, out_refund_no: str, refund_fee: int, reason: str) -> str:
        def refund(client: pay_v3.WxPayV3Client) -> str:
            return client.refund(
                out_trade_no=order.out_trade_no,
                out_refund_no=out_refund_no,
                total=order.charged_fee,  # WeChat refuses any other than what was paid
                refund=refund_fee,
                reason=reason or None,
                notify_url=pay_refund_notify_url(PayVersion.V3),
            ).refund_id

        return _v3_call(refund)

    def refund_query(self, *, out_refund_no: str) -> RefundReport:
        answer = _v3_call(
            lambda client: client.refund_query(out_refund_no=out_refund_no))
        return RefundReport(
            status=V3_REFUND_STATUS.get(answer.status),
            wechat_status=answer.status,
            refund_id=answer.refund_id,
            succeeded_at=answer.success_time,
            recv_account=answer.user_received_account,
            refund_fee=answer.refund,
        )

    def refund_reason_problem(self, reason: str) -> str:
        if _CONTROL.search(reason):
            return "The reason must not contain control characters."
        if any(ord(ch) > 0xFFFF for ch in reason):
            # v3 §1.2: no 4-byte characters in reason.
            return "The reason must not contain emoji: WeChat Pay refuses them."
        if len(reason.encode("utf-8", "surrogatepass")) > V3_REASON_MAX_BYTES:
            return (
                f"The reason must be at most {V3_REASON_MAX_BYTES} bytes for WeChat Pay "
                f"(about {V3_REASON_MAX_BYTES // 3} Chinese characters)."
            )
        return ""

    def require_refunds_configured(self) -> None:
        # No client certificate: the v3 settings sign refunds, and their notify URL is
        # derived from the v3 notify URL.
        pay_require_configured(PayVersion.V3)


# -- wire text ---------------------------------------------------------------------------------


def v3_description(body: str) -> str:
    """The order's description as v3 carries it (v3 §4.1): at most 127 UTF-8 bytes, no
    4-byte characters (emoji, v3 §1.2). A body that fits (the usual case) is sent as it is;
    and the same body always gives the same description, so a re-entry repeats the first
    call exactly (v3 §4.3)."""
    text = "".join(ch for ch in body if ord(ch) <= 0xFFFF).strip() or BODY_FALLBACK
    if len(text.encode("utf-8", "surrogatepass")) <= V3_DESCRIPTION_MAX_BYTES:
        return text
    room = V3_DESCRIPTION_MAX_BYTES - len(BODY_ELLIPSIS.encode())
    # UTF-8 is what encode() and decode() use unless told otherwise: no codec name to mutate.
    return text.encode(errors="surrogatepass")[:room].decode(errors="ignore") + BODY_ELLIPSIS


# Characters XML 1.0 cannot carry at all (as wechat.pay_v2.xml refuses them, v2 §1).
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Control characters, which v3 refuses in its text fields (v3 §1.2).
_CONTROL = re.compile("[\x00-\x1f\x7f]")
