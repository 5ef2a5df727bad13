"""HTTP client for the v2 endpoints a mini-program shop needs (§3, §4, §6, §7).

Every call goes through :meth:`WxPayClient._call`, which applies the common rules of §1:
sign the request, POST the XML, then trust nothing in the answer until ``return_code``, the
signature, the appid/mch_id echo and ``result_code`` have been checked, in that order.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import BinaryIO

import requests
from requests.adapters import HTTPAdapter

from .errors import (
    BillError,
    CertificateError,
    WxPayBusinessError,
    WxPayError,
    WxPayProtocolError,
    WxPaySignatureError,
    WxPayUnavailable,
    XMLError,
    bill_error,
    business_error,
)
from .signing import MD5, SIGN_TYPES, nonce_str, sign, verify
from .times import format_wx_time, parse_wx_datetime, parse_wx_time
from .xml import MAX_BODY_BYTES, from_xml, to_xml

logger = logging.getLogger("wechat.pay_v2")

_SUCCESS = "SUCCESS"
_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
_POOL_SIZE = 10
BILL_TYPES = ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND")  # never REVOKED (§14.2)
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class WxPayConfig:
    """Merchant settings. ``api_key`` is the 32-char APIv2 key (§2.1 step 5), never shown."""

    appid: str
    mch_id: str
    api_key: str = field(repr=False)
    sign_type: str = MD5
    api_base: str = "https://api.mch.weixin.qq.com"
    # (connect, read) seconds; connect slightly above a multiple of 3 s (TCP retransmit).
    timeout: tuple[float, float] = (3.05, 10.0)
    cert_path: str | None = None
    key_path: str | None = None

    def __post_init__(self) -> None:
        if self.sign_type not in SIGN_TYPES:
            raise ValueError(f"sign_type must be one of {SIGN_TYPES}, not {self.sign_type!r}")
        for name in ("appid", "mch_id", "api_key"):
            if not getattr(self, name):
                raise ValueError(f"WxPayConfig.{name} must not be empty")


@dataclass(frozen=True)
class PrepayResult:
    """Outcome of unifiedorder: ``prepay_id`` is valid for 2 hours (§3.3)."""

    prepay_id: str
    trade_type: str
    raw: dict[str, str] = field(repr=False, compare=False)


@dataclass(frozen=True)
class TradeQuery:
    """Outcome of orderquery (§6.1). Payment fields are "" / None until the order is paid."""

    trade_state: str
    trade_state_desc: str
    out_trade_no: str
    transaction_id: str
    total_fee: int | None  # fen
    openid: str
    time_end: datetime | None  # aware, Beijing time
    raw: dict[str, str] = field(repr=False, compare=False)

    @property
    def is_paid(self) -> bool:
        return self.trade_state == _SUCCESS


@dataclass(frozen=True)
class RefundResult:
    """WeChat *accepted* a refund (§7.1); the outcome comes later by notify or query."""

    refund_id: str
    refund_fee: int  # fen
    raw: dict[str, str] = field(repr=False, compare=False)


@dataclass(frozen=True)
class RefundQuery:
    """One refund as refundquery reports it (§7.2).

    ``refund_status``: SUCCESS, REFUNDCLOSE (failed for good), PROCESSING or CHANGE
    (abnormal: the money went back to the merchant and needs a person).
    """

    refund_status: str
    refund_id: str
    success_time: datetime | None  # aware, Beijing time; only once SUCCESS
    refund_fee: int | None  # fen
    recv_account: str  # refund_recv_accout (sic), e.g. 支付用户零钱
    raw: dict[str, str] = field(repr=False, compare=False)


@dataclass(frozen=True)
class DownloadedBill:
    """A trade bill written to the destination (§14): ``size`` bytes of bill text, already
    un-gzipped when WeChat sent it gzipped (``gzip``). Read it with
    ``wechat.bills.iter_trade_bill``."""

    size: int
    gzip: bool


class WxPayClient:
    """Calls unifiedorder / orderquery / closeorder and builds ``wx.requestPayment`` params.

    One ``requests.Session`` per client keeps TLS connections to WeChat alive between calls,
    so build one client per process and reuse it rather than one per request.
    """

    def __init__(self, config: WxPayConfig, session: requests.Session | None = None) -> None:
        self.config = config
        self.session = session if session is not None else _pooled_session()

    def close(self) -> None:
        self.session.close()

    # -- endpoints ---------------------------------------------------------------------------

    def unified_order(
        self,
        *,
        out_trade_no: str,
        total_fee: int,
        body: str,
        openid: str,
        notify_url: str,
        spbill_create_ip: str,
        time_start: datetime | None = None,
        time_expire: datetime | None = None,
        attach: str | None = None,
        trade_type: str = "JSAPI",
    ) -> PrepayResult:
        """Create (or re-enter, §3.3) a prepay order. ``total_fee`` is in fen (§10)."""
        if isinstance(total_fee, bool) or not isinstance(total_fee, int) or total_fee <= 0:
            raise ValueError("total_fee must be a positive int in fen")
        params = {
            "out_trade_no": out_trade_no,
            "total_fee": total_fee,
            "body": body,
            "openid": openid,
            "notify_url": notify_url,
            "spbill_create_ip": spbill_create_ip,
            "trade_type": trade_type,
            "time_start": None if time_start is None else format_wx_time(time_start),
            "time_expire": None if time_expire is None else format_wx_time(time_expire),
            "attach": attach,
        }
        answer = self._call("/pay/unifiedorder", params)
        if not answer.get("prepay_id"):
            raise WxPayUnavailable("unifiedorder answer has no prepay_id")
        return PrepayResult(answer["prepay_id"], answer.get("trade_type", trade_type), answer)

    def order_query(
        self, *, out_trade_no: str | None = None, transaction_id: str | None = None
    ) -> TradeQuery:
        """Ask WeChat for the state of one order (§6.1); give exactly one of the two ids."""
        if (out_trade_no is None) == (transaction_id is None):
            raise ValueError("give exactly one of out_trade_no and transaction_id")
        params = {"out_trade_no": out_trade_no, "transaction_id": transaction_id}
        answer = self._call("/pay/orderquery", params)
        return TradeQuery(
            trade_state=answer.get("trade_state", ""),
            trade_state_desc=answer.get("trade_state_desc", ""),
            out_trade_no=answer.get("out_trade_no", ""),
            transaction_id=answer.get("transaction_id", ""),
            total_fee=_answer_int(answer, "total_fee"),
            openid=answer.get("openid", ""),
            time_end=_answer_time(answer, "time_end"),
            raw=answer,
        )

    def close_order(self, *, out_trade_no: str) -> None:
        """Close an unpaid order (§6.2; WeChat refuses within 5 minutes of ordering)."""
        self._call("/pay/closeorder", {"out_trade_no": out_trade_no})

    def refund(
        self,
        *,
        out_trade_no: str,
        out_refund_no: str,
        total_fee: int,
        refund_fee: int,
        refund_desc: str | None = None,
        notify_url: str | None = None,
    ) -> RefundResult:
        """Ask WeChat to refund ``refund_fee`` fen of a paid order (§7.1), with the client
        certificate. Retrying with the same ``out_refund_no`` refunds only once, so a caller
        that got no clear answer must retry with the *same* number, never a new one."""
        for name, value in (("total_fee", total_fee), ("refund_fee", refund_fee)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int in fen")
        params = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "total_fee": total_fee,
            "refund_fee": refund_fee,
            "refund_desc": refund_desc or None,
            "notify_url": notify_url or None,
        }
        answer = self._call("/secapi/pay/refund", params, cert=True)
        if answer.get("out_refund_no") != out_refund_no or not answer.get("refund_id"):
            raise WxPayUnavailable("refund answer has no refund_id or is for another refund")
        accepted = _answer_int(answer, "refund_fee")
        return RefundResult(
            answer["refund_id"], refund_fee if accepted is None else accepted, answer
        )

    def refund_query(self, *, out_refund_no: str) -> RefundQuery:
        """The state of one refund (§7.2). Asked by refund number, the answer holds exactly
        that refund, as entry ``_0``; no certificate needed."""
        answer = self._call("/pay/refundquery", {"out_refund_no": out_refund_no})
        if answer.get("out_refund_no_0") != out_refund_no:
            raise WxPayUnavailable("refundquery answer is not for this out_refund_no")
        success_time = answer.get("refund_success_time_0", "")
        try:
            succeeded = parse_wx_datetime(success_time) if success_time else None
        except ValueError:
            raise WxPayUnavailable("unparseable answer: refund_success_time_0") from None
        return RefundQuery(
            refund_status=answer.get("refund_status_0", ""),
            refund_id=answer.get("refund_id_0", ""),
            success_time=succeeded,
            refund_fee=_answer_int(answer, "refund_fee_0"),
            recv_account=answer.get("refund_recv_accout_0", ""),
            raw=answer,
        )

    def download_bill(
        self,
        *,
        bill_date: date,
        destination: BinaryIO,
        bill_type: str = "ALL",
        tar_type: str | None = None,
    ) -> DownloadedBill:
        """Download the trade bill of one Beijing day (§14) into ``destination``, streamed.

        The answer is not signed and has no hash (§14.3): success and failure are told apart
        by its first bytes. Failure XML raises a :class:`BillError` subclass (``NoBill`` for
        a day without trades) and writes nothing; a transport failure or a cut-off gzip
        raises WxPayUnavailable, and what was written so far must be thrown away.
        """
        if isinstance(bill_date, datetime) or not isinstance(bill_date, date):
            raise ValueError("bill_date must be a date (a Beijing calendar day)")
        if bill_type not in BILL_TYPES:
            raise ValueError(f"bill_type must be one of {BILL_TYPES}")
        if tar_type not in (None, "GZIP"):
            raise ValueError('tar_type must be None or "GZIP"')
        path = "/pay/downloadbill"
        params = {"bill_date": bill_date.strftime("%Y%m%d"), "bill_type": bill_type,
                  "tar_type": tar_type}
        started = time.monotonic()
        outcome = "error"
        try:
            result = self._download(path, self._signed(params), destination)
            outcome = f"ok size={result.size} gzip={result.gzip}"
            return result
        except BillError as exc:
            outcome = f"{type(exc).__name__}({exc.error_code or '-'})"
            raise
        except WxPayError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            logger.info("wxpay %s bill_date=%s outcome=%s elapsed_ms=%d", path,
                        params["bill_date"], outcome, (time.monotonic() - started) * 1000)

    def jsapi_params(
        self, prepay_id: str, *, timestamp: int | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """Parameters for ``wx.requestPayment`` (§4).

        ``appId`` is signed but not returned: requestPayment does not take it (§4.1).
        ``signType`` must be the sign type of the unifiedorder call, hence config.sign_type.
        """
        if not prepay_id:
            raise ValueError("prepay_id must not be empty")
        params = {
            "timeStamp": str(int(time.time()) if timestamp is None else timestamp),
            "nonceStr": nonce or nonce_str(),
            "package": f"prepay_id={prepay_id}",
            "signType": self.config.sign_type,
        }
        signed = {"appId": self.config.appid, **params}
        params["paySign"] = sign(signed, self.config.api_key, self.config.sign_type)
        return params

    # -- transport ---------------------------------------------------------------------------

    def _call(
        self, path: str, params: Mapping[str, object], *, cert: bool = False
    ) -> dict[str, str]:
        """Sign, send and verify one call; return WeChat's verified answer fields.

        Logs one INFO line per call (path, out_trade_no, outcome, elapsed ms) and never the
        key or the bodies.
        """
        started = time.monotonic()
        outcome = "error"
        try:
            answer = self._check(self._post(path, self._signed(params), cert=cert))
            outcome = "ok"
            return answer
        except WxPayBusinessError as exc:
            outcome = f"{type(exc).__name__}({exc.err_code})"
            raise
        except WxPayError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            logger.info(
                "wxpay %s out_trade_no=%s outcome=%s elapsed_ms=%d",
                path,
                params.get("out_trade_no") or "-",
                outcome,
                (time.monotonic() - started) * 1000,
            )

    def _signed(self, params: Mapping[str, object]) -> dict[str, object]:
        """Add the common fields (§3.1) and the sign. sign_type is always sent, so WeChat
        never has to guess it and signs its answer with the same algorithm (§1, §2.1)."""
        cfg = self.config
        request: dict[str, object] = {k: v for k, v in params.items() if v is not None}
        request.update(
            appid=cfg.appid, mch_id=cfg.mch_id, nonce_str=nonce_str(), sign_type=cfg.sign_type
        )
        request["sign"] = sign(request, cfg.api_key, cfg.sign_type)
        return request

    def _post(self, path: str, request: Mapping[str, object], *, cert: bool) -> dict[str, str]:
        """POST the XML; map every transport failure to WxPayUnavailable."""
        url = self.config.api_base.rstrip("/") + path
        try:
            response = self.session.post(
                url,
                data=to_xml(request),
                headers=_HEADERS,
                timeout=self.config.timeout,
                cert=self._client_cert() if cert else None,
            )
        except requests.Timeout as exc:
            raise WxPayUnavailable(f"timeout calling {path} ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            raise WxPayUnavailable(f"network error calling {path} ({type(exc).__name__})") from exc
        except OSError as exc:
            # requests checks the certificate files exist before connecting (plain OSError).
            raise CertificateError(f"client certificate unusable for {path}: {exc}") from exc
        if response.status_code != 200:
            raise WxPayUnavailable(f"HTTP status {response.status_code} from {path}")
        try:
            return from_xml(response.content)
        except XMLError as exc:
            raise WxPayUnavailable(f"unparseable answer from {path}: {exc}") from exc

    def _download(
        self, path: str, request: Mapping[str, object], destination: BinaryIO
    ) -> DownloadedBill:
        url = self.config.api_base.rstrip("/") + path
        try:
            response = self.session.post(url, data=to_xml(request), headers=_HEADERS,
                                         timeout=self.config.timeout, stream=True)
        except requests.RequestException as exc:
            raise WxPayUnavailable(f"network error calling {path} ({type(exc).__name__})") from exc
        with response:
            if response.status_code != 200:
                raise WxPayUnavailable(f"HTTP status {response.status_code} from {path}")
            try:
                return _write_bill(path, response.iter_content(_CHUNK), destination)
            except requests.RequestException as exc:
                raise WxPayUnavailable(
                    f"network error reading {path} ({type(exc).__name__})"
                ) from exc

    def _check(self, answer: dict[str, str]) -> dict[str, str]:
        """Apply the two-level result model (§1) with the signature checked in between."""
        cfg = self.config
        return_code = answer.get("return_code")
        if return_code is None:
            raise WxPayUnavailable("unparseable answer: no return_code")
        if return_code != _SUCCESS:
            raise WxPayProtocolError(answer.get("return_msg", ""))
        if not answer.get("sign"):
            raise WxPaySignatureError("answer has no sign")
        if not verify(answer, cfg.api_key, cfg.sign_type):
            raise WxPaySignatureError(f"answer sign is invalid ({cfg.sign_type})")
        if answer.get("appid") != cfg.appid or answer.get("mch_id") != cfg.mch_id:
            raise WxPaySignatureError("answer appid/mch_id do not match ours")
        if answer.get("result_code") != _SUCCESS:
            raise business_error(answer.get("err_code", ""), answer.get("err_code_des", ""))
        return answer

    def _client_cert(self) -> tuple[str, str]:
        """Merchant certificate for the secapi calls (refund, §7.1)."""
        if not (self.config.cert_path and self.config.key_path):
            raise CertificateError("this call needs cert_path and key_path in WxPayConfig")
        return (self.config.cert_path, self.config.key_path)


def _pooled_session() -> requests.Session:
    # No automatic retries: a retried POST could hide which attempt WeChat processed; the
    # caller decides (SystemBusy.retryable, orderquery after WxPayUnavailable).
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=_POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _write_bill(path: str, chunks: Iterator[bytes], destination: BinaryIO) -> DownloadedBill:
    """§14.3: ``<xml>`` is a failure, ``1F 8B`` gzip, anything else the bill text."""
    head = b""
    for chunk in chunks:  # enough bytes to tell the three kinds apart
        head += chunk
        if len(head) >= 64:
            break
    if not head:
        raise WxPayUnavailable(f"empty answer from {path}")
    if head.removeprefix(_BOM).lstrip().startswith(b"<"):
        raise _failure(path, head, chunks)
    if head.startswith(_GZIP_MAGIC):
        return _gunzip(path, head, chunks, destination)
    size = 0
    for chunk in _chain(head, chunks):
        destination.write(chunk)
        size += len(chunk)
    return DownloadedBill(size=size, gzip=False)


def _gunzip(
    path: str, head: bytes, chunks: Iterator[bytes], destination: BinaryIO
) -> DownloadedBill:
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)  # gzip framing
    size = 0
    try:
        for chunk in _chain(head, chunks):
            data = inflater.decompress(chunk)
            destination.write(data)
            size += len(data)
        tail = inflater.flush()
    except zlib.error as exc:
        raise WxPayUnavailable(f"broken gzip answer from {path}: {exc}") from exc
    destination.write(tail)
    size += len(tail)
    if not inflater.eof:
        raise WxPayUnavailable(f"truncated gzip answer from {path}")
    return DownloadedBill(size=size, gzip=True)


def _chain(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from chunks


def _failure(path: str, head: bytes, chunks: Iterator[bytes]) -> WxPayError:
    """The failure XML (§14.8): small, never gzipped, never signed; parsed safely (§1)."""
    body = head
    for chunk in chunks:
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return WxPayUnavailable(f"oversized XML answer from {path}")
    try:
        answer = from_xml(body.removeprefix(_BOM).strip())
    except XMLError as exc:
        return WxPayUnavailable(f"unparseable answer from {path}: {exc}")
    if answer.get("return_code") != "FAIL":
        return WxPayUnavailable(f"XML answer from {path} without return_code FAIL")
    return bill_error(answer.get("return_msg", ""), answer.get("error_code", ""))


def _answer_int(answer: Mapping[str, str], name: str) -> int | None:
    value = answer.get(name, "")
    if value == "":
        return None
    if not value.isascii() or not value.isdigit():
        raise WxPayUnavailable(f"unparseable answer: {name} is not an integer")
    return int(value)


def _answer_time(answer: Mapping[str, str], name: str) -> datetime | None:
    value = answer.get(name, "")
    if value == "":
        return None
    try:
        return parse_wx_time(value)
    except ValueError:
        raise WxPayUnavailable(f"unparseable answer: {name} is not yyyyMMddHHmmss") from None
