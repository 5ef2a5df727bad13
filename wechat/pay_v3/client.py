"""HTTP client for the v3 endpoints a mini-program shop needs (§4 to §9).

Every call goes through :meth:`WxPayV3Client._call`: sign the request exactly as prepared
(§2), send it, map an error status to a typed error (§10), and trust nothing in a 2xx
answer until its signature has been verified over the raw bytes (§3) — 204 answers
included. The only unsigned answer is the bill file, checked by its SHA1 instead (§9.2).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import HTTPAdapter

from .aead import check_apiv3_key, decrypt_resource
from .errors import (
    BillIntegrityError,
    UnknownSerial,
    WxPayV3ApiError,
    WxPayV3Error,
    WxPayV3RequestInvalid,
    WxPayV3SignatureError,
    WxPayV3Unavailable,
    api_error,
)
from .notify import parse_notify
from .results import Notify, PrepayResult, Refund, TradeBill, Transaction
from .signing import PAY_SIGN_TYPE, authorization, check_private_key
from .signing import nonce_str as new_nonce
from .signing import pay_sign as rsa_pay_sign
from .times import format_bill_date, format_rfc3339, parse_rfc3339
from .verifying import KeyRing, PlatformCertificate, verify_signature

logger = logging.getLogger("wechat.pay_v3")

T = TypeVar("T")

_POOL_SIZE = 10
_MCHID = re.compile(r"[0-9]{1,32}")
_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")
# §4.1: digits, letters, "_ - *", 6 to 32 on newer pages ("|" only on some: left out).
_OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-*]{6,32}")
# §8.1: digits, letters, "_ - * @ |", string(64).
_OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-*@|]{1,64}")
_TRANSACTION_ID = re.compile(r"[0-9A-Za-z]{1,32}")
_PREPAY_ID = re.compile(r"[0-9A-Za-z_\-]{1,64}")
_JSAPI_NONCE = re.compile(r"[0-9A-Za-z]{1,32}")
_BILL_TYPES = frozenset(
    {"ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND", "ALL_SPECIAL", "SUC_SPECIAL", "REF_SPECIAL"}
)
_BILL_CHUNK = 64 * 1024


@dataclass(frozen=True)
class WxPayV3Config:
    """Merchant settings (§1.1). The private key and the APIv3 key are never shown.

    ``private_key`` is ``apiclient_key.pem`` loaded with :func:`load_private_key`;
    ``merchant_serial_no`` the serial of *its* certificate (ours, in ``Authorization``);
    ``keyring`` WeChat's keys for verifying (the client's ``keyring`` attribute starts
    from it and is what a certificate refresh replaces). ``clock`` gives Unix seconds: the
    request timestamps and the 5-minute window (§2.1, §3.6) both read it.
    """

    appid: str
    mchid: str
    merchant_serial_no: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    apiv3_key: str = field(repr=False)
    keyring: KeyRing | None  # None: certificate mode before the first download
    api_base: str = "https://api.mch.weixin.qq.com"
    # (connect, read) seconds; connect slightly above a multiple of 3 s (TCP retransmit).
    timeout: tuple[float, float] = (3.05, 10.0)
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    user_agent: str = "wxshop-wechatpay-v3"

    def __post_init__(self) -> None:
        if not self.appid:
            raise ValueError("WxPayV3Config.appid must not be empty")
        if not _MCHID.fullmatch(self.mchid):
            raise ValueError("WxPayV3Config.mchid must be the merchant's digits")
        if not _SERIAL.fullmatch(self.merchant_serial_no):
            raise ValueError("WxPayV3Config.merchant_serial_no must be a hex certificate serial")
        check_private_key(self.private_key)
        check_apiv3_key(self.apiv3_key)
        if self.keyring is not None and not isinstance(self.keyring, KeyRing):
            raise ValueError("WxPayV3Config.keyring must be a KeyRing or None")


class WxPayV3Client:
    """JSAPI prepay, ``wx.requestPayment`` params, query, close, refunds, bills, platform
    certificates and notifies, for one merchant and its mini-program.

    One ``requests.Session`` per client keeps TLS connections to WeChat alive between calls,
    so build one client per process and reuse it. ``keyring`` may be replaced at any time
    (one reference swap) after ``download_certificates()``.
    """

    def __init__(self, config: WxPayV3Config, session: requests.Session | None = None) -> None:
        self.config = config
        self.keyring: KeyRing | None = config.keyring
        self.session = session if session is not None else _pooled_session()

    def close(self) -> None:
        self.session.close()

    # -- payments (§4, §5, §6) ---------------------------------------------------------------

    def jsapi_prepay(
        self,
        *,
        out_trade_no: str,
        description: str,
        total: int,
        openid: str,
        notify_url: str,
        time_expire: datetime | None = None,
        attach: str | None = None,
    ) -> PrepayResult:
        """Create (or re-enter with identical parameters, §4.3) a JSAPI order. ``total`` is
        in fen. After a timeout or a retryable error, retry with the *same* number and
        parameters, never a new number (§4.3)."""
        _check(_OUT_TRADE_NO, out_trade_no, "out_trade_no")
        body: dict[str, Any] = {
            "appid": self.config.appid,
            "mchid": self.config.mchid,
            "description": _wire_text(description, "description", max_bytes=127),
            "out_trade_no": out_trade_no,
            "notify_url": _notify_url(notify_url),
            "amount": {"total": _fen(total, "total"), "currency": "CNY"},
            "payer": {"openid": _wire_text(openid, "openid", max_bytes=128)},
        }
        if time_expire is not None:
            try:
                body["time_expire"] = format_rfc3339(time_expire)
            except ValueError as exc:
                raise WxPayV3RequestInvalid(f"time_expire: {exc}") from None
        if attach:
            body["attach"] = _wire_text(attach, "attach", max_bytes=128)
        answer = self._call("POST", "/v3/pay/transactions/jsapi", body=body, log_no=out_trade_no)
        prepay_id = answer.get("prepay_id") if answer else None
        if not isinstance(prepay_id, str) or not prepay_id:
            raise WxPayV3Unavailable("prepay answer has no prepay_id")
        return PrepayResult(prepay_id)

    def jsapi_params(
        self, prepay_id: str, *, timestamp: int | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """Parameters for ``wx.requestPayment`` (§5.1); ``appId`` is signed, not returned."""
        _check(_PREPAY_ID, prepay_id, "prepay_id")
        nonce = new_nonce() if nonce is None else _check(_JSAPI_NONCE, nonce, "nonce")
        params = {
            "timeStamp": str(int(self.config.clock()) if timestamp is None else int(timestamp)),
            "nonceStr": nonce,
            "package": f"prepay_id={prepay_id}",
            "signType": PAY_SIGN_TYPE,
        }
        params["paySign"] = rsa_pay_sign(
            self.config.private_key,
            app_id=self.config.appid,
            timestamp=params["timeStamp"],
            nonce=params["nonceStr"],
            package=params["package"],
        )
        return params

    def order_query(
        self, *, out_trade_no: str | None = None, transaction_id: str | None = None
    ) -> Transaction:
        """The state of one order (§6.1); give exactly one of the two numbers."""
        if (out_trade_no is None) == (transaction_id is None):
            raise WxPayV3RequestInvalid("give exactly one of out_trade_no and transaction_id")
        if out_trade_no is not None:
            _check(_OUT_TRADE_NO, out_trade_no, "out_trade_no")
            path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}"
            name = "GET /v3/pay/transactions/out-trade-no/{out_trade_no}"
        else:
            _check(_TRANSACTION_ID, transaction_id, "transaction_id")
            path = f"/v3/pay/transactions/id/{transaction_id}"
            name = "GET /v3/pay/transactions/id/{transaction_id}"
        answer = self._call(
            "GET",
            path,
            query={"mchid": self.config.mchid},
            name=name,
            log_no=out_trade_no or transaction_id or "-",
        )
        transaction = _build(Transaction.from_json, answer, "transaction")
        self._check_ours(transaction.mchid, transaction.appid)
        if out_trade_no is not None and transaction.out_trade_no != out_trade_no:
            raise WxPayV3Unavailable("query answer is for another out_trade_no")
        if transaction_id is not None and transaction.transaction_id != transaction_id:
            raise WxPayV3Unavailable("query answer is for another transaction_id")
        return transaction

    def close_order(self, *, out_trade_no: str) -> None:
        """Close an unpaid order (§6.3): ``204``, signed; closing again succeeds. A paid
        order raises :class:`OrderPaid` (refund it instead)."""
        _check(_OUT_TRADE_NO, out_trade_no, "out_trade_no")
        self._call(
            "POST",
            f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            body={"mchid": self.config.mchid},
            name="POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            log_no=out_trade_no,
        )

    # -- refunds (§8) ----------------------------------------------------------------------------

    def refund(
        self,
        *,
        out_refund_no: str,
        total: int,
        refund: int,
        out_trade_no: str | None = None,
        transaction_id: str | None = None,
        reason: str | None = None,
        notify_url: str | None = None,
    ) -> Refund:
        """Ask WeChat to refund ``refund`` fen of an order of ``total`` fen (§8.1).

        Creation means *accepted* (usually PROCESSING); the outcome comes by notify or
        :meth:`refund_query`. The same ``out_refund_no`` is the same refund: after any
        unclear outcome retry with the *same* number and parameters (§8.3).
        """
        if (out_trade_no is None) == (transaction_id is None):
            raise WxPayV3RequestInvalid("give exactly one of out_trade_no and transaction_id")
        _check(_OUT_REFUND_NO, out_refund_no, "out_refund_no")
        body: dict[str, Any] = {}
        if out_trade_no is not None:
            body["out_trade_no"] = _check(_OUT_TRADE_NO, out_trade_no, "out_trade_no")
        else:
            body["transaction_id"] = _check(_TRANSACTION_ID, transaction_id, "transaction_id")
        body["out_refund_no"] = out_refund_no
        if reason:
            body["reason"] = _wire_text(reason, "reason", max_bytes=80)
        if notify_url:
            body["notify_url"] = _notify_url(notify_url)
        refund_fen, total_fen = _fen(refund, "refund"), _fen(total, "total")
        if refund_fen > total_fen:
            raise WxPayV3RequestInvalid("refund must not exceed total")
        body["amount"] = {"refund": refund_fen, "total": total_fen, "currency": "CNY"}
        answer = self._call(
            "POST",
            "/v3/refund/domestic/refunds",
            body=body,
            log_no=out_trade_no or transaction_id or "-",
        )
        result = _build(Refund.from_json, answer, "refund")
        if result.out_refund_no != out_refund_no or not result.refund_id:
            raise WxPayV3Unavailable("refund answer has no refund_id or is for another refund")
        return result

    def refund_query(self, *, out_refund_no: str) -> Refund:
        """The state of one refund (§8.4)."""
        _check(_OUT_REFUND_NO, out_refund_no, "out_refund_no")
        answer = self._call(
            "GET",
            f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='*@')}",
            name="GET /v3/refund/domestic/refunds/{out_refund_no}",
            log_no=out_refund_no,
        )
        result = _build(Refund.from_json, answer, "refund")
        if result.out_refund_no != out_refund_no:
            raise WxPayV3Unavailable("refund query answer is for another out_refund_no")
        return result

    # -- bills (§9) ------------------------------------------------------------------------------

    def trade_bill(
        self, *, bill_date: date, bill_type: str = "ALL", tar_type: str | None = None
    ) -> TradeBill:
        """Where to download one Beijing day's trade bill (§9.1); fetch after 10:00 the next
        day. A day without trades raises :class:`NoStatement` (an empty day, not a
        failure); a bill not ready yet :class:`StatementCreating`."""
        if bill_type not in _BILL_TYPES:
            raise WxPayV3RequestInvalid(f"bill_type must be one of {sorted(_BILL_TYPES)}")
        if tar_type not in (None, "GZIP"):
            raise WxPayV3RequestInvalid("tar_type must be None or 'GZIP'")
        try:
            query = {"bill_date": format_bill_date(bill_date), "bill_type": bill_type}
        except ValueError as exc:
            raise WxPayV3RequestInvalid(str(exc)) from None
        if tar_type:
            query["tar_type"] = tar_type
        answer = self._call("GET", "/v3/bill/tradebill", query=query, log_no=query["bill_date"])
        try:
            return TradeBill.from_json(answer or {}, tar_type)
        except ValueError as exc:
            raise WxPayV3Unavailable(f"unparseable tradebill answer: {exc}") from None

    def download_bill(
        self, bill: TradeBill, destination: BinaryIO, *, chunk_size: int = _BILL_CHUNK
    ) -> int:
        """Stream the bill file into ``destination`` (uncompressed when asked as GZIP) and
        check its SHA1 against ``bill.hash_value`` (§9.2). Returns the bytes written.

        The file is not signed; on :class:`BillIntegrityError` what was written is
        damaged: discard it, ask :meth:`trade_bill` again and download again.
        """
        if bill.hash_type.upper() != "SHA1":
            raise WxPayV3Unavailable(f"unsupported bill hash_type {bill.hash_type[:20]!r}")
        target = urlsplit(bill.download_url)
        base = urlsplit(self.config.api_base)
        # Our Authorization goes only to the host we were configured for.
        if (target.scheme, target.hostname) != (base.scheme, base.hostname):
            raise WxPayV3Unavailable("bill download_url is not on the configured API host")

        def write(response: requests.Response) -> int:
            digest = hashlib.sha1(usedforsecurity=False)
            inflater = zlib.decompressobj(wbits=31) if bill.tar_type == "GZIP" else None
            size = 0
            try:
                for chunk in response.iter_content(chunk_size):
                    data = inflater.decompress(chunk) if inflater else chunk
                    digest.update(data)
                    destination.write(data)
                    size += len(data)
                if inflater:
                    data = inflater.flush()
                    if not inflater.eof:
                        raise BillIntegrityError("bill gzip stream is truncated")
                    digest.update(data)
                    destination.write(data)
                    size += len(data)
            except zlib.error:
                raise BillIntegrityError("bill is not a valid gzip file") from None
            except requests.RequestException as exc:
                raise WxPayV3Unavailable(
                    f"bill download interrupted ({type(exc).__name__})"
                ) from None
            expected = bill.hash_value.strip().lower().encode("ascii", "replace")
            if not hmac.compare_digest(digest.hexdigest().encode("ascii"), expected):
                raise BillIntegrityError("bill SHA1 does not match hash_value")
            return size

        return self._call(
            "GET",
            bill.download_url,
            name=f"GET {target.path}",
            log_no="-",
            stream=True,
            handle=write,
        )

    # -- certificates (§3.4) and notifies (§7, §8.5) ---------------------------------------------

    def download_certificates(self) -> list[PlatformCertificate]:
        """``GET /v3/certificates``: WeChat's current platform certificates, decrypted
        with the APIv3 key. Build the new ring with
        ``client.keyring = client.keyring.with_certificates(certs)``.

        A certificate not held yet cannot vouch for the answer that brings it; so the GCM
        tag under the APIv3 key authenticates each certificate first, then the answer's
        signature is verified with the keys held *and* the certificates it brought (§3.4).
        Merchants in public-key mode get an error answer here (§3.3).
        """

        def certificates(response: requests.Response) -> list[PlatformCertificate]:
            data = _json_object(response.content)
            entries = data.get("data")
            if not isinstance(entries, list) or not entries:
                raise WxPayV3Unavailable("certificates answer has no data")
            certs = [self._certificate(entry) for entry in entries]
            if self.keyring is None:  # the first download in certificate mode
                ring = KeyRing(certificates=certs)
            else:
                ring = self.keyring.with_certificates([*self.keyring.certificates, *certs])
            verify_signature(response.headers, response.content, ring, now=self.config.clock())
            return certs

        return self._call("GET", "/v3/certificates", log_no="-", handle=certificates)

    def parse_notify(self, headers: Mapping[str, object], body: bytes) -> Notify:
        """Verify (§3) and decrypt (§7.2) one notify; ``body`` is the raw request body.

        Raises a :class:`WxPayV3SignatureError` (answer 401; :class:`UnknownSerial`: refresh
        the certificates and try once more), :class:`DecryptError` or
        :class:`MalformedNotify` (answer 400). Checking the order, the amount and the state
        against the shop's own records is the caller's job (§7.4).
        """
        outcome = "error"
        event_type = "-"
        try:
            notify = parse_notify(
                headers,
                body,
                keyring=self._keyring(),
                apiv3_key=self.config.apiv3_key,
                now=self.config.clock(),
                mchid=self.config.mchid,
                appid=self.config.appid,
            )
            event_type = notify.event_type or "-"
            outcome = "ok"
            return notify
        except WxPayV3Error as exc:
            outcome = type(exc).__name__
            raise
        finally:
            logger.info("wxpay_v3 notify event_type=%s outcome=%s", event_type, outcome)

    # -- transport -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        target: str,
        *,
        log_no: str,
        name: str | None = None,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        stream: bool = False,
        handle: Callable[[requests.Response], T] | None = None,
    ) -> Any:
        """Sign, send and check one call; return ``handle(response)``, by default the
        verified JSON object (``None`` for an empty 204).

        Logs one INFO line per call (name, number, status, outcome, Request-ID, elapsed ms)
        and never a key, a body, a query string or the Authorization header.
        """
        name = name or f"{method} {target}"
        started = time.monotonic()
        outcome, status, request_id = "error", "-", "-"
        try:
            response = self._send(method, target, name=name, query=query, body=body, stream=stream)
            with response:
                status = str(response.status_code)
                request_id = response.headers.get("Request-ID") or "-"
                if not 200 <= response.status_code < 300:
                    raise _error_of(response, name)
                result = (handle or self._verified_json)(response)
            outcome = "ok"
            return result
        except WxPayV3ApiError as exc:
            outcome = f"{type(exc).__name__}({exc.code or '-'})"
            raise
        except WxPayV3Error as exc:
            outcome = type(exc).__name__
            raise
        finally:
            logger.info(
                "wxpay_v3 %s no=%s status=%s outcome=%s request_id=%s elapsed_ms=%d",
                name,
                log_no,
                status,
                outcome,
                request_id,
                (time.monotonic() - started) * 1000,
            )

    def _send(
        self,
        method: str,
        target: str,
        *,
        name: str,
        query: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        stream: bool,
    ) -> requests.Response:
        """Prepare the request, sign exactly what will be sent (path and query as
        ``requests`` encoded them, the body bytes, §2.1), then send it."""
        cfg = self.config
        url = target if "://" in target else cfg.api_base.rstrip("/") + target
        headers = {"Accept": "application/json", "User-Agent": cfg.user_agent}
        data = None
        if body is not None:
            # As WeChat's own examples: UTF-8, compact, no \u escapes. Signed as these bytes.
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        prepared = self.session.prepare_request(
            requests.Request(method, url, params=query, data=data, headers=headers)
        )
        sent = prepared.body or b""
        prepared.headers["Authorization"] = authorization(
            mchid=cfg.mchid,
            serial_no=cfg.merchant_serial_no,
            private_key=cfg.private_key,
            method=method,
            url=prepared.path_url,
            body=sent if isinstance(sent, bytes) else sent.encode("utf-8"),
            timestamp=int(cfg.clock()),
            nonce=new_nonce(),
        )
        settings = self.session.merge_environment_settings(prepared.url, {}, stream, None, None)
        try:
            return self.session.send(prepared, timeout=cfg.timeout, **settings)
        except requests.Timeout as exc:
            raise WxPayV3Unavailable(f"timeout calling {name} ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            # The exception's text names the URL: only its type is kept.
            raise WxPayV3Unavailable(
                f"network error calling {name} ({type(exc).__name__})"
            ) from None

    def _verified_json(self, response: requests.Response) -> dict[str, Any] | None:
        raw = response.content
        verify_signature(response.headers, raw, self._keyring(), now=self.config.clock())
        if not raw:
            return None
        return _json_object(raw)

    def _keyring(self) -> KeyRing:
        if self.keyring is None:
            raise UnknownSerial("no WeChat Pay key held yet: download the platform certificates")
        return self.keyring

    def _certificate(self, entry: object) -> PlatformCertificate:
        if not isinstance(entry, Mapping):
            raise WxPayV3Unavailable("certificates answer entry is not an object")
        serial_no = entry.get("serial_no")
        if not isinstance(serial_no, str) or not _SERIAL.fullmatch(serial_no):
            raise WxPayV3Unavailable("certificates answer entry has no hex serial_no")
        pem = decrypt_resource(entry.get("encrypt_certificate"), self.config.apiv3_key)
        try:
            certificate = x509.load_pem_x509_certificate(pem)
            effective = parse_rfc3339(entry.get("effective_time"))
            expire = parse_rfc3339(entry.get("expire_time"))
        except ValueError:
            raise WxPayV3Unavailable(
                f"certificate {serial_no} is not a PEM certificate with RFC 3339 times"
            ) from None
        # A certificate serial is hex (unlike a PUB_KEY_ID, §3.5): compare it as a number.
        if certificate.serial_number != int(serial_no, 16):
            raise WxPayV3SignatureError(f"certificate {serial_no} carries another serial")
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise WxPayV3Unavailable(f"certificate {serial_no} has no RSA key")
        return PlatformCertificate(serial_no.upper(), effective, expire, certificate)

    def _check_ours(self, mchid: str, appid: str) -> None:
        """A verified answer about another merchant or app is still not ours to act on."""
        if mchid and mchid != self.config.mchid:
            raise WxPayV3SignatureError("answer is for another mchid")
        if appid and appid != self.config.appid:
            raise WxPayV3SignatureError("answer is for another appid")


# -- helpers -------------------------------------------------------------------------------------


def _pooled_session() -> requests.Session:
    # No automatic retries: a retried POST could hide which attempt WeChat processed; the
    # caller decides (errors' ``retryable``, a query after WxPayV3Unavailable).
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=_POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        raise WxPayV3Unavailable("answer is not JSON") from None
    if not isinstance(data, dict):
        raise WxPayV3Unavailable("answer is not a JSON object")
    return data


def _error_of(response: requests.Response, name: str) -> WxPayV3Error:
    """The typed error of a non-2xx answer (§10). Error answers may be unsigned (§3.8): we
    act on them only by refusing, so they are not verified."""
    status = response.status_code
    request_id = response.headers.get("Request-ID", "")
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    code = data.get("code") if isinstance(data, dict) else None
    if isinstance(code, str) and code:
        message = data.get("message")
        detail = data.get("detail")
        return api_error(
            status,
            code,
            message if isinstance(message, str) else "",
            detail if isinstance(detail, Mapping) else None,
            request_id,
        )
    if status >= 500:
        return WxPayV3Unavailable(f"HTTP status {status} from {name}")
    return api_error(status, "", "", None, request_id)


def _build(builder: Callable[[Mapping[str, Any]], T], answer: Any, what: str) -> T:
    if not isinstance(answer, Mapping):
        raise WxPayV3Unavailable(f"{what} answer is empty")
    try:
        return builder(answer)
    except ValueError as exc:
        raise WxPayV3Unavailable(f"unparseable {what} answer: {exc}") from None


def _check(shape: re.Pattern[str], value: object, name: str) -> str:
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise WxPayV3RequestInvalid(f"{name} has characters or a length WeChat refuses")
    return value


def _fen(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise WxPayV3RequestInvalid(f"{name} must be a positive int in fen")
    return value


def _wire_text(value: object, name: str, *, max_bytes: int) -> str:
    """Text fields: not empty, within WeChat's length counted in UTF-8 bytes (the unit is
    rarely stated: bytes is the safe side), no 4-byte characters such as emoji and no
    control characters (§1.2)."""
    if not isinstance(value, str) or not value:
        raise WxPayV3RequestInvalid(f"{name} must be a non-empty string")
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise WxPayV3RequestInvalid(f"{name} is longer than {max_bytes} UTF-8 bytes")
    if any(ord(ch) > 0xFFFF or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise WxPayV3RequestInvalid(f"{name} holds a 4-byte character (emoji) WeChat refuses")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise WxPayV3RequestInvalid(f"{name} holds a control character")
    return value


def _notify_url(value: object) -> str:
    """§4.1: absolute, HTTPS for WeChat (http only reaches a local simulator), no query
    string, string(255)."""
    if not isinstance(value, str) or len(value) > 255 or not value.isascii():
        raise WxPayV3RequestInvalid("notify_url must be an ASCII URL of at most 255 characters")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WxPayV3RequestInvalid("notify_url must be an absolute https URL")
    if parts.query or parts.fragment or "?" in value or any(ch.isspace() for ch in value):
        raise WxPayV3RequestInvalid("notify_url must carry no query string (§4.1)")
    return value
