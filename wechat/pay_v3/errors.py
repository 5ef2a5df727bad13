"""Exceptions raised by the WeChat Pay v3 package.

Four families, by what the caller can do:

- :class:`WxPayV3Unavailable`: no usable answer (network, timeout, 5xx without a code, a body
  that is not JSON). The state at WeChat is unknown: query, or retry the identical request.
- :class:`WxPayV3ApiError` and its subclasses: WeChat answered ``{code, message}`` with an
  HTTP status (§10). Branch on the class (or ``code``), never on ``message``.
- :class:`WxPayV3SignatureError` and its subclasses: an answer or a notify is not
  trustworthy (§3). For a notify, answer 4xx; for an answer, believe nothing in it.
- :class:`DecryptError` / :class:`MalformedNotify`: a resource that does not decrypt
  (§7.2) or a notify that is not the documented JSON.

``retryable`` says whether re-sending the *identical* request (same numbers, same
parameters) is the documented remedy. No message ever contains the private key, the APIv3
key or a request body: only WeChat's own codes and (capped) texts go into them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

# WeChat's texts are shown as sent but capped, so that a hostile or broken answer cannot
# flood logs through str(exc).
_MAX_TEXT = 128


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


class WxPayV3Error(Exception):
    """Base class of every error of the ``wechat.pay_v3`` package."""

    retryable: bool = False


class WxPayV3RequestInvalid(WxPayV3Error, ValueError):
    """A request we refuse to send: an argument WeChat would refuse (an amount that is not
    a positive int of fen, a 4-byte character in ``description``, a ``notify_url`` with a
    query…, §1.2, §4.1). WeChat was not called; the same values fail the same way again.

    Also a ``ValueError``, like every check of our own arguments.
    """


class WxPayV3Unavailable(WxPayV3Error):
    """No usable answer: network error, timeout, 5xx without a ``{code}`` body, a 2xx body
    that is not the documented JSON. The state at WeChat is unknown: query before deciding
    (§6.1), or re-send the identical request (§4.3)."""

    retryable = True


class BillIntegrityError(WxPayV3Error):
    """A downloaded bill's SHA1 differs from the ``hash_value`` of §9.1 (or its gzip is
    broken): the file is damaged or truncated. Discard what was written; ask for a fresh
    ``download_url`` and download again."""

    retryable = True


# -- answers WeChat cannot vouch for (§3) ------------------------------------------------------


class WxPayV3SignatureError(WxPayV3Error):
    """An answer or a notify is not trustworthy: its signature does not verify over the raw
    body, or it is for another merchant. The subclasses say why more precisely."""


class SignatureHeaderError(WxPayV3SignatureError):
    """``Wechatpay-Timestamp``/``-Nonce``/``-Signature``/``-Serial`` missing or garbled
    (§3.1). An unsigned 2xx answer or notify is a forgery (§3)."""


class SignatureProbe(WxPayV3SignatureError):
    """A signature probe (``WECHATPAY/SIGNTEST/…``, §3.7): WeChat checks that we refuse it.
    Answer 4xx/5xx; the real notify follows."""


class TimestampOutOfWindow(WxPayV3SignatureError):
    """``Wechatpay-Timestamp`` is 5 minutes or more from our clock (§3.6): a replay, or one of
    the two clocks is wrong (keep NTP running)."""


class UnknownSerial(WxPayV3SignatureError):
    """``Wechatpay-Serial`` names no key of the KeyRing (or an expired certificate).

    The caller refreshes: ``download_certificates()`` then ``KeyRing.with_certificates()``,
    verifies once more, and rejects if the serial is still unknown (§3.4, §3.5). In
    public-key mode a refresh cannot help: the configured ``PUB_KEY_ID`` is wrong.
    """

    def __init__(self, serial: str) -> None:
        super().__init__(serial)
        self.serial = serial

    def __str__(self) -> str:
        return (
            f"no WeChat Pay key for Wechatpay-Serial {_short(self.serial)!r}: "
            "refresh the platform certificates (or check the public-key id), then verify again"
        )


# -- notifies (§7) -----------------------------------------------------------------------------


class DecryptError(WxPayV3Error):
    """A ``resource`` (notify, downloaded certificate) did not decrypt (§7.2): wrong APIv3
    key (reset on the merchant platform?), or tampered ciphertext, associated data or nonce
    (AES-GCM cannot tell these apart), or not ``AEAD_AES_256_GCM`` at all."""


class MalformedNotify(WxPayV3Error):
    """A notify (or its decrypted resource) is not the documented JSON (§7.1, §7.3, §8.5)."""


# -- WeChat's {code, message} answers (§10) --------------------------------------------------


class WxPayV3ApiError(WxPayV3Error):
    """WeChat answered an error: HTTP ``status`` and ``{"code", "message", "detail"}`` (§10.1).

    ``retryable`` is the class's when it knows the code, else the status's: 429 and 5xx
    are retryable (§10.2). ``request_id`` is the ``Request-ID`` header (§10.4): log it,
    WeChat support asks for it.
    """

    _retry: ClassVar[bool | None] = None

    def __init__(
        self,
        status: int,
        code: str = "",
        message: str = "",
        detail: Mapping[str, Any] | None = None,
        request_id: str = "",
    ) -> None:
        # args carry every field so the exception survives pickling (e.g. task queues).
        super().__init__(status, code, message, detail, request_id)
        self.status = status
        self.code = code
        self.message = message
        self.detail = dict(detail) if detail else {}
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        if self._retry is not None:
            return self._retry
        return self.status == 429 or self.status >= 500

    def __str__(self) -> str:
        text = f"WeChat Pay answered HTTP {self.status} {self.code or '(no code)'}"
        return f"{text}: {_short(self.message)}" if self.message else text


class InvalidRequest(WxPayV3ApiError):
    """PARAM_ERROR, INVALID_REQUEST, APPID_MCHID_NOT_MATCH, MCH_NOT_EXISTS, NO_AUTH…: our
    request is wrong (or changed on re-entry, §4.3); fix it, do not retry as is."""

    _retry = False


class RequestSignatureRejected(WxPayV3ApiError):
    """SIGN_ERROR (401): WeChat refused *our* signature: key and ``serial_no`` of different
    certificates, or our clock is off (§2.6)."""

    _retry = False


class OrderPaid(WxPayV3ApiError):
    """ORDERPAID / ORDER_PAID: already paid; confirm with a query, refund instead of close."""

    _retry = False


class OrderClosed(WxPayV3ApiError):
    """ORDER_CLOSED: closed for good; a new ``out_trade_no`` is needed."""

    _retry = False


class OrderNotExist(WxPayV3ApiError):
    """ORDER_NOT_EXIST (404): no such order under this mchid (§6.1)."""

    _retry = False


class ResourceNotExists(WxPayV3ApiError):
    """RESOURCE_NOT_EXISTS (404): no such refund (§8.4), or an unknown/unpaid order (§8.6)."""

    _retry = False


class OutTradeNoUsed(WxPayV3ApiError):
    """OUT_TRADE_NO_USED: the number belongs to a different order (§10.3)."""

    _retry = False


class NotEnough(WxPayV3ApiError):
    """NOT_ENOUGH: not enough funds for the refund; a person tops up, then the same
    ``out_refund_no`` is retried (§8.6)."""

    _retry = False


class SystemBusy(WxPayV3ApiError):
    """SYSTEM_ERROR, BANK_ERROR, SERVICE_UNAVAILABLE: retry with the same parameters and
    numbers (§10.2)."""

    _retry = True


class RateLimited(WxPayV3ApiError):
    """FREQUENCY_LIMITED / RATELIMIT_EXCEEDED (429): back off, then retry the same request."""

    _retry = True


class NoStatement(WxPayV3ApiError):
    """NO_STATEMENT_EXIST: no trade that day. An *empty day*, not a failure (§9.1)."""

    _retry = False


class StatementCreating(WxPayV3ApiError):
    """STATEMENT_CREATING: the bill is not ready yet; ask again later (§9.1)."""

    _retry = True


def _normal(code: str) -> str:
    """Code spellings differ between page generations: compare without ``_`` (§10.3)."""
    return code.replace("_", "").upper()


ERROR_CLASSES: dict[str, type[WxPayV3ApiError]] = {
    _normal(code): cls
    for cls, codes in {
        InvalidRequest: (
            "PARAM_ERROR",
            "INVALID_REQUEST",
            "APPID_MCHID_NOT_MATCH",
            "MCH_NOT_EXISTS",
            "NO_AUTH",
            "OPENID_MISMATCH",
            "INVALID_TRANSACTIONID",
        ),
        RequestSignatureRejected: ("SIGN_ERROR",),
        OrderPaid: ("ORDER_PAID",),
        OrderClosed: ("ORDER_CLOSED",),
        OrderNotExist: ("ORDER_NOT_EXIST",),
        ResourceNotExists: ("RESOURCE_NOT_EXISTS",),
        OutTradeNoUsed: ("OUT_TRADE_NO_USED",),
        NotEnough: ("NOT_ENOUGH",),
        SystemBusy: ("SYSTEM_ERROR", "BANK_ERROR", "SERVICE_UNAVAILABLE"),
        RateLimited: ("FREQUENCY_LIMITED", "RATELIMIT_EXCEEDED"),
        NoStatement: ("NO_STATEMENT_EXIST",),
        StatementCreating: ("STATEMENT_CREATING",),
    }.items()
    for code in codes
}


def api_error(
    status: int,
    code: str = "",
    message: str = "",
    detail: Mapping[str, Any] | None = None,
    request_id: str = "",
) -> WxPayV3ApiError:
    """Build the typed error for ``code`` (either spelling); unknown codes give a plain
    :class:`WxPayV3ApiError`, retryable by its status."""
    cls = ERROR_CLASSES.get(_normal(code), WxPayV3ApiError) if code else WxPayV3ApiError
    return cls(status, code, message, detail, request_id)
