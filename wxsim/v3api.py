"""WeChat Pay API v3 on ``api.mch.weixin.qq.com``, WeChat's side: the request pipeline.

A bare §n in this module is a section of docs/protocol/wechat-pay-v3.md.

Order of checks, as WeChat answers them: the route (404/405), the ``Authorization`` header
(§2: format, merchant, merchant serial, 5-minute window, signature over the request exactly
as received; ``401 SIGN_ERROR``), the JSON body (``400 PARAM_ERROR``), then the endpoint.
Every answer carries a ``Request-ID`` ending in the error number (§10.4) and is signed with
``Wechatpay-*`` headers by the key of the current key mode (§3), error answers included;
the bill file alone is not signed (§9.2).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from wxsim import v3bills, v3refunds, v3trades
from wxsim.faults import SIGNATURE_MODES, V3_PATHS, V3_UNSIGNED_PATHS, PathFault
from wxsim.state import Simulator
from wxsim.v3keys import PUBLIC_KEY, encrypt_resource, rsa_verify
from wxsim.v3wire import (
    BAD_SIGNATURE,
    INJECTED,
    MERCHANT_UNUSABLE,
    V3Error,
    V3Request,
    dumps,
    parse_json_object,
    rfc3339,
)

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
WINDOW_S = 300  # |now - timestamp| must stay under 5 minutes (§3.6: WeChat applies it to us)
_PAIRS = re.compile(r'[a-z_]+="[^"]*"(?:,[a-z_]+="[^"]*")*')  # commas, no spaces (§2.3)
_PAIR = re.compile(r'([a-z_]+)="([^"]*)"')
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
AUTH_FIELDS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
JSON_TYPE = "application/json; charset=utf-8"
GARBAGE = b"\x00<html><body>upstream hiccup \xff\xfe not JSON</body></html"
HTML_500 = b"<html><body><h1>500 Internal Server Error</h1></body></html>"
NO_CERTIFICATE = (
    "无可用的平台证书,请在商户平台-API安全申请使用微信支付公钥。可查看指引"
    "https://pay.weixin.qq.com/docs/merchant/products/platform-certificate/wxp-pub-key-guide.html"
)

Handler = Callable[[Simulator, V3Request], tuple[int, Any]]


@dataclass(frozen=True)
class V3Reply:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def certificates(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    """``GET /v3/certificates`` (§3.4): the platform certificate, encrypted under the APIv3
    key. Merchants of the public-key mode have none (§3.3)."""
    with sim.lock:
        mode = sim.v3_mode
    if mode == PUBLIC_KEY:
        raise V3Error(404, "RESOURCE_NOT_EXISTS", NO_CERTIFICATE)
    keys = sim.v3
    entry = {
        "serial_no": keys.platform_serial,
        "effective_time": rfc3339(keys.effective_time().timestamp()),
        "expire_time": rfc3339(keys.expire_time().timestamp()),
        "encrypt_certificate": encrypt_resource(
            keys.apiv3_key, keys.certificate_pem().encode("ascii"),
            associated_data="certificate", original_type="",
        ),
    }
    return 200, {"data": [entry]}


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]


def _route(method: str, template: str, handler: Handler) -> Route:
    regex = re.sub(r"\\{([a-z_]+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return Route(method, template, handler, re.compile(regex))


ROUTES = (
    _route("POST", "/v3/pay/transactions/jsapi", v3trades.jsapi),
    _route("GET", "/v3/pay/transactions/out-trade-no/{out_trade_no}", v3trades.query_by_number),
    _route("GET", "/v3/pay/transactions/id/{transaction_id}", v3trades.query_by_id),
    _route("POST", "/v3/pay/transactions/out-trade-no/{out_trade_no}/close", v3trades.close),
    _route("POST", "/v3/refund/domestic/refunds", v3refunds.create),
    _route("GET", "/v3/refund/domestic/refunds/{out_refund_no}", v3refunds.query),
    _route("GET", "/v3/bill/tradebill", v3bills.tradebill),
    _route("GET", "/v3/billdownload/file", v3bills.download),
    _route("GET", "/v3/certificates", certificates),
)
# every fault-able v3 path has a route
assert {route.template for route in ROUTES} == set(V3_PATHS)


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """(route, path values, whether the path exists under another method)."""
    known = False
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found:
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}, True
            known = True
    return None, {}, known


def handle(
    sim: Simulator, method: str, target: str, headers: Mapping[str, str], body: bytes,
    base_url: str,
) -> V3Reply:
    """Answer one v3 call; ``target`` is the request line's path and query, as sent."""
    url = urlsplit(target)
    route, params, known = match(method, url.path)
    if route is None:
        sim.count_request(url.path)
        error = (V3Error(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here") if known
                 else V3Error(404, "NOT_FOUND", "请求的资源不存在 (no such v3 API)"))
        return _signed(sim, error.status, dumps(error.as_json()), error.number, headers, None)
    sim.count_request(route.template)
    with sim.lock:
        fault = sim.faults.take(route.template)
        latency_ms = sim.faults.latency_ms
    time.sleep(latency_ms / 1000)
    if fault is not None and fault.mode == "slow":
        time.sleep(fault.delay_ms / 1000)
    if fault is not None and fault.mode == "http500":
        return V3Reply(500, HTML_500, "text/html")
    if fault is not None and fault.mode == "garbage":
        return V3Reply(200, GARBAGE, "application/json")
    try:
        mchid = authenticate(sim, method, target, headers, body)
        _injected_error(fault)
        request = V3Request(
            method=method, target=target, body=body, mchid=mchid,
            origin=_origin(headers, base_url),
            params=params,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            data=parse_json_object(body) if method == "POST" else {},
        )
        status, answer = route.handler(sim, request)
        number = 0
    except V3Error as error:
        status, answer, number = error.status, error.as_json(), error.number
    if route.template in V3_UNSIGNED_PATHS and isinstance(answer, bytes):
        # The bill file: raw bytes, not signed; the SHA1 of tradebill vouches for it (§9.2).
        return V3Reply(status, answer, "application/octet-stream",
                       (("Request-ID", request_id(number)),))
    payload = b"" if answer is None else dumps(answer)
    return _signed(sim, status, payload, number, headers, fault)


def _injected_error(fault: PathFault | None) -> None:
    """Faults that answer an error after authentication, recording nothing."""
    if fault is None:
        return
    if fault.mode == "systemerror":
        raise V3Error(500, "SYSTEM_ERROR", "系统错误,请使用相同参数稍后重新调用",
                      number=INJECTED)
    if fault.mode == "error":
        raise V3Error(fault.status, fault.code, fault.message or fault.code, number=INJECTED)


def request_id(number: int) -> str:
    """Like ``08F8B4D8BB0610D70318C5A2E05E20B3A14A08F9F5022880E1-0`` (§10.4)."""
    return secrets.token_hex(25).upper() + f"-{number}"


def _signed(
    sim: Simulator, status: int, payload: bytes, number: int,
    headers: Mapping[str, str], fault: PathFault | None,
) -> V3Reply:
    with sim.lock:
        mode, now = sim.v3_mode, sim.now()
    signer = sim.v3.answer_signer(mode, headers.get("Wechatpay-Serial", ""))
    defect = fault.mode if fault is not None and fault.mode in SIGNATURE_MODES else ""
    signature = sim.v3.signed_headers(signer, payload, now, defect)
    extra = (("Request-ID", request_id(number)), *signature.items())
    return V3Reply(status, payload, JSON_TYPE if payload else "", extra)


def _origin(headers: Mapping[str, str], base_url: str) -> str:
    """Where this client reached us: the bill's download_url must point there (§9.1)."""
    host = headers.get("Host", "")
    return f"http://{host}" if re.fullmatch(r"[0-9A-Za-z.\-:\[\]]{1,255}", host) else base_url


# -- Authorization (§2) -------------------------------------------------------------------------


def _sign_error(message: str, field_name: str, issue: str, **more: Any) -> V3Error:
    detail = {"field": field_name, "location": "authorization", "detail": {"issue": issue}, **more}
    return V3Error(401, "SIGN_ERROR", message, number=BAD_SIGNATURE, detail=detail)


def authenticate(
    sim: Simulator, method: str, target: str, headers: Mapping[str, str], body: bytes
) -> str:
    """Check the request's signature as WeChat does; return the mchid."""
    header = headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    if scheme != AUTH_SCHEME or not _PAIRS.fullmatch(rest):
        raise _sign_error(
            "Http头Authorization值格式错误,请参考《微信支付商户REST API签名规则》",
            "authorization", f"expected {AUTH_SCHEME} key=\"value\",… without spaces",
        )
    pairs = _PAIR.findall(rest)
    fields = dict(pairs)
    missing = [name for name in AUTH_FIELDS if not fields.get(name)]
    if missing or len(fields) != len(pairs):
        raise _sign_error("Authorization不合法", missing[0] if missing else "authorization",
                          "missing or repeated field")
    if fields["mchid"] != sim.config.mch_id:
        raise V3Error(400, "MCH_NOT_EXISTS", "商户号不存在 (unknown mchid)",
                      number=MERCHANT_UNUSABLE)
    if fields["serial_no"].upper() != sim.v3.merchant_serial:
        raise _sign_error("商户证书序列号有误。请使用签名私钥匹配的证书序列号", "serial_no",
                          "serial_no is not the merchant certificate's serial")
    if not _TIMESTAMP.fullmatch(fields["timestamp"]):
        raise _sign_error("Authorization中的timestamp格式错误 (Unix seconds)", "timestamp",
                          "not Unix seconds")
    with sim.lock:
        now = sim.now()
    if abs(now - int(fields["timestamp"])) >= WINDOW_S:
        raise _sign_error("请求时间戳与当前时间相差过大,请检查服务器时间 (over 5 minutes)",
                          "timestamp", "timestamp out of the 5-minute window")
    message = (
        f"{method}\n{target}\n{fields['timestamp']}\n{fields['nonce_str']}\n".encode()
        + body + b"\n"
    )
    if not rsa_verify(sim.v3.merchant_public_key, message, fields["signature"]):
        # What WeChat shows of the message it rebuilt (§2.6, observed).
        shown = message.decode("utf-8", "replace")
        raise _sign_error("错误的签名,验签失败", "signature", "sign not match", sign_information={
            "method": method, "url": target, "sign_message_length": len(message),
            "truncated_sign_message": shown[:200],
        })
    return fields["mchid"]
