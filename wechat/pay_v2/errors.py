"""Exceptions raised by the WeChat Pay v2 client.

They mirror the protocol's two-level result model (§1): transport trouble,
``return_code=FAIL`` (protocol), an untrustworthy answer (signature), and
``result_code=FAIL`` (business, with ``err_code``). Callers decide what to retry by class.
No message ever contains the API key: only WeChat's own codes and texts go into them.
"""

from __future__ import annotations

# WeChat's texts (return_msg, err_code_des) are shown as sent but capped, so that a hostile or
# broken answer cannot flood logs through str(exc).
_MAX_TEXT = 128


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


class WxPayError(Exception):
    """Base class of every error of the ``wechat.pay_v2`` package."""


class XMLError(WxPayError):
    """An XML body was empty, too large, not UTF-8, malformed, hostile or not flat."""


class WxPayRequestInvalid(WxPayError, ValueError):
    """A request we refuse to send: a field name or value the XML envelope cannot carry
    (characters XML 1.0 forbids, §1). WeChat was not called; sending the same values
    again fails the same way.

    Also a ``ValueError``, like the other checks of our own arguments, for callers that
    already treat those as bad input.
    """


class ReqInfoError(WxPayError):
    """A refund notify's ``req_info`` did not decrypt to a ``<root>`` document (§7.3).

    Refund notifies carry no sign: decrypting with our key *is* the authenticity check,
    so this means forged, damaged, or encrypted with another merchant's key.
    """


class CertificateError(WxPayError, ValueError):
    """The merchant client certificate a secapi call needs (§7.1) is not configured or
    its files cannot be read. WeChat was not called."""


class WxPayUnavailable(WxPayError):
    """No usable answer: network error, timeout, HTTP status != 200 or an unparseable body.

    The state of the order at WeChat is unknown; query it before deciding (§6.1).
    """


class WxPayProtocolError(WxPayError):
    """``return_code=FAIL``: WeChat refused the request itself (bad sign, bad params, §1)."""

    def __init__(self, return_msg: str) -> None:
        super().__init__(return_msg)
        self.return_msg = return_msg

    def __str__(self) -> str:
        return f"WeChat Pay rejected the request (return_code=FAIL): {_short(self.return_msg)}"


class WxPaySignatureError(WxPayError):
    """WeChat's answer is not trustworthy: missing/invalid sign, or appid/mch_id not ours."""


class WxPayBusinessError(WxPayError):
    """``result_code=FAIL``: the request was understood but the business step failed (§3.4).

    ``retryable`` says whether re-sending the *identical* request is the documented remedy.
    """

    retryable: bool = False

    def __init__(self, err_code: str, err_code_des: str = "") -> None:
        # args carry both fields so the exception survives pickling (e.g. task queues).
        super().__init__(err_code, err_code_des)
        self.err_code = err_code
        self.err_code_des = err_code_des

    def __str__(self) -> str:
        text = f"WeChat Pay business error {self.err_code or '(no err_code)'}"
        return f"{text}: {_short(self.err_code_des)}" if self.err_code_des else text


class OrderPaid(WxPayBusinessError):
    """ORDERPAID: already paid; confirm with orderquery and treat the order as paid."""


class OrderClosed(WxPayBusinessError):
    """ORDERCLOSED: closed for good; a new ``out_trade_no`` is needed."""


class OrderNotExist(WxPayBusinessError):
    """ORDERNOTEXIST: WeChat has no such order (unifiedorder never succeeded for it)."""


class OutTradeNoUsed(WxPayBusinessError):
    """OUT_TRADE_NO_USED: the number was used for a different order (§3.3 re-entry)."""


class SystemBusy(WxPayBusinessError):
    """SYSTEMERROR / BIZERR_NEED_RETRY: retry with the same parameters (§3.4, §7.1)."""

    retryable = True


class InvalidRequest(WxPayBusinessError):
    """INVALID_REQUEST / PARAM_ERROR / LACK_PARAMS: our parameters are wrong or changed."""


class RateLimited(WxPayBusinessError):
    """FREQUENCY_LIMITED / INVALID_REQ_TOO_MUCH: slow down, then retry the same request
    (§7.1: wait at least a minute)."""

    retryable = True


class RefundNotExist(WxPayBusinessError):
    """REFUNDNOTEXIST: WeChat knows no refund by that number (§7.2)."""


ERROR_CLASSES: dict[str, type[WxPayBusinessError]] = {
    "ORDERPAID": OrderPaid,
    "ORDERCLOSED": OrderClosed,
    "ORDERNOTEXIST": OrderNotExist,
    "OUT_TRADE_NO_USED": OutTradeNoUsed,
    "SYSTEMERROR": SystemBusy,
    "BIZERR_NEED_RETRY": SystemBusy,
    "INVALID_REQUEST": InvalidRequest,
    "PARAM_ERROR": InvalidRequest,
    "LACK_PARAMS": InvalidRequest,
    "FREQUENCY_LIMITED": RateLimited,
    "INVALID_REQ_TOO_MUCH": RateLimited,
    "REFUNDNOTEXIST": RefundNotExist,
}


def business_error(err_code: str, err_code_des: str = "") -> WxPayBusinessError:
    """Build the typed error for ``err_code``; unknown codes give a plain WxPayBusinessError."""
    return ERROR_CLASSES.get(err_code, WxPayBusinessError)(err_code, err_code_des)


class BillError(WxPayProtocolError):
    """downloadbill answered its failure XML (§14.8): ``return_code=FAIL`` with
    ``return_msg`` and ``error_code`` (not ``err_code``), unsigned. Nothing was written to
    the destination. ``retryable`` says whether asking again later is the remedy."""

    retryable: bool = False

    def __init__(self, return_msg: str, error_code: str = "") -> None:
        super().__init__(return_msg)
        self.args = (return_msg, error_code)  # both survive pickling
        self.error_code = error_code

    def __str__(self) -> str:
        code = f" (error_code {_short(self.error_code)})" if self.error_code else ""
        return f"WeChat Pay has no bill for us{code}: {_short(self.return_msg)}"


class NoBill(BillError):
    """No Bill Exist (20002): no trade that day. Normal for a quiet day: record an empty
    statement (after 10:00 the next day; before that the bill may simply not exist yet)."""


class BillNotReady(BillError):
    """Bill Creating: the bill is being generated; ask again later (every 30 minutes)."""

    retryable = True


class BillUnavailable(BillError):
    """System Error (100), 下载失败 (20003, 20100), CompressGZip/UnCompressGZip Error: a
    passing failure at WeChat; retry later (the gzip ones also without ``tar_type``)."""

    retryable = True


class BillPermissionDenied(BillError):
    """当前商户号账单API权限已经关闭 (20007): the merchant's bill API is switched off;
    retrying changes nothing until someone turns it on in the merchant platform."""


class BillRequestInvalid(BillError):
    """invalid bill_date / bill_type / tar_type, sign error, data format error, missing
    parameter (20001): our request is wrong; the same request fails the same way."""


_BILL_MESSAGES: dict[str, type[BillError]] = {
    "no bill exist": NoBill,
    "bill creating": BillNotReady,
    "system error": BillUnavailable,
    "compressgzip error": BillUnavailable,
    "uncompressgzip error": BillUnavailable,
    "下载失败": BillUnavailable,
    "当前商户号账单api权限已经关闭": BillPermissionDenied,
    "sign error": BillRequestInvalid,
    "data format error": BillRequestInvalid,
    "missing parameter": BillRequestInvalid,
}
_BILL_CODES: dict[str, type[BillError]] = {
    "20002": NoBill,
    "100": BillUnavailable,
    "20003": BillUnavailable,
    "20100": BillUnavailable,
    "20007": BillPermissionDenied,
    "20001": BillRequestInvalid,
}


def bill_error(return_msg: str, error_code: str = "") -> BillError:
    """The typed error of a downloadbill failure. The text decides, compared without case
    (§14.8: docs and server spell them differently); the code only when the text is new."""
    text = return_msg.strip().lower()
    kind = _BILL_MESSAGES.get(text)
    if kind is None and text.startswith("invalid "):
        kind = BillRequestInvalid
    if kind is None:
        kind = _BILL_CODES.get(error_code.strip(), BillError)
    return kind(return_msg, error_code)
