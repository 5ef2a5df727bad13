"""Errors of the mini-program server API: one class per thing a caller does about it.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

Every class has ``errcode`` (``None`` when WeChat gave none: transport failures and requests
refused here before sending), ``errmsg`` and ``retryable``: whether the same call may succeed
later without changing the request (after renewing the token, for ``AccessTokenInvalid``).
"""

from __future__ import annotations

from typing import ClassVar


class MiniProgramApiError(Exception):
    """WeChat refused a call. Not retryable unless a subclass says so."""

    retryable: ClassVar[bool] = False

    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(errmsg if errcode is None else f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class MiniProgramUnavailable(MiniProgramApiError):
    """Unreachable, timed out, HTTP status ≠ 200, or an answer that is not what WeChat sends."""

    retryable = True


class MiniProgramBusy(MiniProgramApiError):
    """System error (``-1``, ``10060012``, ``10060019``): retry with back-off (§1.2, §2.7)."""

    retryable = True


class MiniProgramRateLimited(MiniProgramBusy):
    """A quota (``45009`` daily, ``45011`` per minute, ``44990``) or concurrent sends to one
    user (``43108``): back off longer (§1.2, §2.7, §4.4)."""


class AccessTokenInvalid(MiniProgramApiError):
    """``40001``/``40014``/``42001`` on a call that used a token (§1.3): renew the token
    (single-flight, §1.4) and retry the call once."""

    retryable = True


class CredentialsRejected(MiniProgramApiError):
    """The AppID or AppSecret was refused while fetching a token (§1.2): fix the configuration;
    retrying cannot help."""


class RequestInvalid(MiniProgramApiError, ValueError):
    """The request breaks WeChat's rules: refused here before sending (``errcode`` ``None``) or
    by WeChat (field errors of §2.7, ``47001``, ``47003``, ``40003``, ``40037``…). Fix it."""


class NotSubscribed(MiniProgramApiError):
    """``43101``: the user has not accepted this template, or used up their accepts (§4.4).
    Drop the message; never retry."""


class PaymentNotFound(MiniProgramApiError):
    """``10060001``: WeChat does not know the payment. Right after payment it may simply not
    know it yet (§2.4, observed), so it is retryable; a wrong key never succeeds."""

    retryable = True


class ShippingRefused(MiniProgramApiError):
    """The payment's state forbids the call (re-ship used up, refunded, not shipped, already
    reminded, not express: §2.6, §2.7). Nothing a retry can change."""


class AlreadyShipped(ShippingRefused):
    """``10060002`` (already fully shipped) or ``10060023`` (nothing changed): WeChat already
    holds this shipping, so the upload is done (§2.7)."""


# Token errors of any call that used a token (§1.3).
_TOKEN = frozenset({40001, 40014, 42001})
_BUSY = frozenset({-1, 10060012, 10060019})
_RATE_LIMITED = frozenset({45009, 45011, 44990, 43108})
# While fetching a token, 40001 is a bad AppSecret, not a bad token (§1.2).
_CREDENTIALS = frozenset({40001, 40002, 40013, 40125, 41002, 41004, 40243})
_INVALID = frozenset(
    {41001, 47001, 47003, 40003, 40037, 40097, 45168}
    | set(range(10060005, 10060010))
    | {10060011, 10060014, 10060020, 10060024, 10060025, 10060026, 10060029, 10060031}
    | set(range(268485194, 268485198))
    | {268485216, 268485224, 268485226, 268485227, 268485228}
)
_REFUSED = frozenset({10060003, 10060004, 10060028, 10060030, 10060032})
_ALREADY = frozenset({10060002, 10060023})
_BY_ERRCODE: dict[int, type[MiniProgramApiError]] = {
    **dict.fromkeys(_BUSY, MiniProgramBusy),
    **dict.fromkeys(_RATE_LIMITED, MiniProgramRateLimited),
    **dict.fromkeys(_INVALID, RequestInvalid),
    **dict.fromkeys(_REFUSED, ShippingRefused),
    **dict.fromkeys(_ALREADY, AlreadyShipped),
    43101: NotSubscribed,
    10060001: PaymentNotFound,
}


def api_error(errcode: int, errmsg: str, *, fetching_token: bool = False) -> MiniProgramApiError:
    """The error for WeChat's ``errcode``; unknown codes are the (not retryable) base class."""
    if fetching_token:
        if errcode in _CREDENTIALS:
            return CredentialsRejected(errcode, errmsg)
    elif errcode in _TOKEN:
        return AccessTokenInvalid(errcode, errmsg)
    return _BY_ERRCODE.get(errcode, MiniProgramApiError)(errcode, errmsg)
