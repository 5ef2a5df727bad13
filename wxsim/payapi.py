"""The request/answer pipeline shared by every ``api.mch.weixin.qq.com`` endpoint.

Order of checks, as WeChat answers them: transport (POST, non-empty, UTF-8, flat XML) and
signature fail at the protocol level (``return_code=FAIL``, unsigned, §1); everything after
the signature is a business answer (``return_code=SUCCESS``, ``result_code``, signed with
the request's own sign type, §1 "Response signature").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wxsim.protocol import MD5, SIGN_TYPES, XmlError, parse_xml, random_string, sign, to_xml, verify
from wxsim.state import Simulator

SIGN_ERROR_MSG = "签名错误"


class ProtocolFail(Exception):
    """``return_code=FAIL``: the request was not understood or not authentic."""

    def __init__(self, return_msg: str) -> None:
        super().__init__(return_msg)
        self.return_msg = return_msg


class BizError(Exception):
    """``result_code=FAIL`` with ``err_code``/``err_code_des``."""

    def __init__(self, err_code: str, err_code_des: str) -> None:
        super().__init__(f"{err_code}: {err_code_des}")
        self.err_code = err_code
        self.err_code_des = err_code_des


@dataclass(frozen=True)
class PayRequest:
    fields: dict[str, str]
    sign_type: str

    def get(self, name: str) -> str:
        return self.fields.get(name, "")


Handler = Callable[[Simulator, PayRequest], dict[str, Any]]


def handle(
    sim: Simulator, handler: Handler, method: str, body: bytes,
    *, system_error: bool = False, bad_sign: bool = False,
) -> bytes:
    """Run one pay API call end to end and return the XML answer (always HTTP 200)."""
    try:
        request = read_request(sim, method, body)
    except ProtocolFail as fail:
        return to_xml({"return_code": "FAIL", "return_msg": fail.return_msg})
    try:
        _check_merchant(sim, request)
        if system_error:  # injected fault: nothing is recorded, the merchant should retry
            raise BizError("SYSTEMERROR", "系统超时,请使用相同参数重新调用")
        result: dict[str, Any] = {"result_code": "SUCCESS", **handler(sim, request)}
    except BizError as error:
        result = {"result_code": "FAIL", "err_code": error.err_code,
                  "err_code_des": error.err_code_des}
    return _signed_answer(sim, request, result, bad_sign)


def read_request(sim: Simulator, method: str, body: bytes) -> PayRequest:
    if method != "POST":
        raise ProtocolFail("REQUIRE_POST_METHOD")
    if not body.strip():
        raise ProtocolFail("POST_DATA_EMPTY")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolFail("NOT_UTF8") from exc
    try:
        fields = parse_xml(body)
    except XmlError as exc:
        raise ProtocolFail("XML_FORMAT_ERROR") from exc
    # sign_type is an ordinary signed field; absent means MD5, and the declared algorithm
    # must be the one actually used (§2.1), so an MD5 digest declared HMAC-SHA256 fails.
    sign_type = fields.get("sign_type") or MD5
    if sign_type not in SIGN_TYPES:
        raise ProtocolFail(f"{SIGN_ERROR_MSG}: sign_type must be MD5 or HMAC-SHA256")
    if not verify(fields, sim.config.mch_key, sign_type):
        raise ProtocolFail(SIGN_ERROR_MSG)
    return PayRequest(fields, sign_type)


def _check_merchant(sim: Simulator, request: PayRequest) -> None:
    if request.get("mch_id") != sim.config.mch_id:
        raise BizError("MCHID_NOT_EXIST", "mch_id不存在 (unknown mch_id)")
    if request.get("appid") != sim.config.appid:
        raise BizError("APPID_NOT_EXIST", "appid不存在 (unknown appid)")
    require(request, "nonce_str")
    check_lengths(request, {"nonce_str": 32}, "INVALID_REQUEST")


def _signed_answer(
    sim: Simulator, request: PayRequest, result: dict[str, Any], bad_sign: bool
) -> bytes:
    fields: dict[str, Any] = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": request.get("appid"),
        "mch_id": request.get("mch_id"),
        "device_info": request.get("device_info"),
        "nonce_str": random_string(16),
        **result,
    }
    signature = sign(fields, sim.config.mch_key, request.sign_type)
    if bad_sign:  # injected fault: the shop must reject an answer it cannot verify
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    return to_xml({**fields, "sign": signature})


# --- field validation shared by the endpoints ---------------------------------------------

def require(request: PayRequest, *names: str) -> None:
    for name in names:
        if not request.get(name):
            raise BizError("LACK_PARAMS", f"缺少参数 {name} (missing parameter)")


def require_one(request: PayRequest, *names: str) -> None:
    if not any(request.get(name) for name in names):
        raise BizError("LACK_PARAMS", f"缺少参数: one of {', '.join(names)} is required")


def check_lengths(request: PayRequest, limits: dict[str, int], err_code: str) -> None:
    for name, limit in limits.items():
        if len(request.get(name)) > limit:
            raise BizError(err_code, f"{name}参数长度有误 (longer than {limit} characters)")


def check_pattern(request: PayRequest, name: str, pattern: re.Pattern[str], err_code: str) -> None:
    value = request.get(name)
    if value and not pattern.fullmatch(value):
        raise BizError(err_code, f"{name}参数格式错误 (must match {pattern.pattern})")


def positive_int(request: PayRequest, name: str, err_code: str) -> int:
    """Amounts are integer fen, no decimals, no sign, no leading zeros (§10)."""
    value = request.get(name)
    if not re.fullmatch(r"[1-9][0-9]{0,9}", value):
        raise BizError(err_code, f"{name}参数格式错误 (a positive integer in fen)")
    return int(value)


def check_notify_url(request: PayRequest, name: str, err_code: str) -> None:
    """Absolute http(s) URL without query string or fragment (§3.1, §5.2 rule 6)."""
    url = request.get(name)
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "?" in url or "#" in url:
        raise BizError(err_code, f"{name}参数格式错误 (absolute http(s) URL, no query string)")


def check_ip(request: PayRequest, name: str, err_code: str) -> None:
    try:
        ipaddress.ip_address(request.get(name))
    except ValueError as exc:
        raise BizError(err_code, f"{name}参数格式错误 (an IPv4 or IPv6 address)") from exc
