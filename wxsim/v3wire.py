"""What every v3 endpoint shares: the request as received, ``{code, message}`` errors with
their HTTP status, field checks, JSON and RFC 3339 times.

A bare §n in this module is a section of docs/protocol/wechat-pay-v3.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from wxsim.protocol import beijing

# Numbers at the end of a failed answer's Request-ID (§10.4).
BAD_PARAMETER = 268435461
EXTRA_PARAMETER = 270924358
BAD_SIGNATURE = 268443699
ORDER_NOT_FOUND = 268512771
ORDER_PAID = 268449538
ORDER_EXPIRED = 268447914
REENTRY_DIFFERS = 268498688
OPENID_MISSING = 268501013
APPID_MCHID_MISMATCH = 268445527
OUT_OF_RANGE = 268435464
MERCHANT_UNUSABLE = 268443715
INJECTED = 999999999  # the simulator's own, for injected faults: not one of WeChat's numbers


class V3Error(Exception):
    """An error answer: HTTP ``status`` and ``{"code", "message", "detail"?}`` (§10.1)."""

    def __init__(
        self, status: int, code: str, message: str, *,
        number: int = BAD_PARAMETER, detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.number = number
        self.detail = detail

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            data["detail"] = self.detail
        return data


def param_error(message: str, field_name: str = "", *, number: int = BAD_PARAMETER) -> V3Error:
    detail = {"field": field_name, "location": "body", "issue": message} if field_name else None
    return V3Error(400, "PARAM_ERROR", message, number=number, detail=detail)


def invalid_request(message: str, *, number: int = BAD_PARAMETER) -> V3Error:
    return V3Error(400, "INVALID_REQUEST", message, number=number)


@dataclass(frozen=True)
class V3Request:
    """One authenticated call. ``target`` is the path and query exactly as received (the
    signed URL line, §2.1); ``params`` the path's own values (``{out_trade_no}``…)."""

    method: str
    target: str
    body: bytes
    mchid: str  # from Authorization, already checked
    origin: str  # scheme, host and port the client called: where download_url points
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # the JSON body of a POST


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON with raw Chinese, as WeChat sends it: a shop that verifies a
    re-serialized body (``ensure_ascii=True``, spaces) fails, as it would for real (§12)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[…]]]]
        raise param_error("请求体格式错误,不是合法的JSON (body is not UTF-8 JSON)") from None
    if not isinstance(data, dict):
        raise param_error("请求体格式错误,应为JSON对象 (body must be a JSON object)")
    return data


def rfc3339(ts: float) -> str:
    """``2025-01-01T08:30:00+08:00``: whole seconds, Beijing time (§1.2)."""
    return beijing(ts).isoformat(timespec="seconds")


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def parse_rfc3339(value: str, name: str) -> float:
    if not _RFC3339.fullmatch(value):
        raise param_error(f"{name}格式错误,应为RFC 3339格式 (yyyy-MM-DDTHH:mm:ss+08:00)", name)
    head, _, tail = value.partition(".")
    if tail:  # fromisoformat takes at most 6 fraction digits
        digits = re.match(r"[0-9]+", tail)
        assert digits is not None
        value = f"{head}.{digits.group()[:6]}{tail[digits.end():]}"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        raise param_error(f"{name}不是有效的时间", name) from None


# -- fields ---------------------------------------------------------------------------------


def known_fields(data: dict[str, Any], allowed: set[str]) -> None:
    """WeChat refuses fields it does not know (270924358, §10.4)."""
    extra = sorted(set(data) - allowed)
    if extra:
        raise param_error(f"参数中含有非法的额外参数 (unknown field {extra[0]})", extra[0],
                          number=EXTRA_PARAMETER)


def text(
    data: dict[str, Any], name: str, *, limit: int, required: bool = False,
    pattern: re.Pattern[str] | None = None,
) -> str:
    """A string field within ``limit`` characters; no 4-byte characters such as emoji
    (§1.2); ``pattern`` when the note gives one."""
    value = data.get(name)
    if value is None:
        if required:
            raise param_error(f"输入源\u201c/body/{name}\u201d映射到值字段\u201c{name}\u201d必填性"
                              f"规则校验失败,此字段为必填项 (missing {name})", name)
        return ""
    if not isinstance(value, str):
        raise param_error(f"{name}字段类型错误,应为字符串 (must be a string)", name)
    if required and not value:
        raise param_error(f"{name}不能为空 (must not be empty)", name)
    if len(value) > limit:
        raise param_error(f"{name}长度超过限制{limit} (longer than {limit})", name)
    # 4-byte characters, and the lone surrogates "\ud83e" smuggles in (no UTF-8 for those).
    if any(ord(ch) > 0xFFFF or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise param_error(f"{name}包含不支持的字符,如emoji (4-byte characters)", name)
    if value and pattern is not None and not pattern.fullmatch(value):
        raise param_error(f"{name}格式错误 (must match {pattern.pattern})", name)
    return value


def obj(data: dict[str, Any], name: str, *, required: bool = False) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        if required:
            raise param_error(f"缺少参数{name} (missing {name})", name)
        return {}
    if not isinstance(value, dict):
        raise param_error(f"{name}字段类型错误,应为对象 (must be an object)", name)
    return value


def fen(data: dict[str, Any], name: str, *, prefix: str) -> int:
    """An amount: a JSON integer of fen, at least 1; never a float, a string or a bool
    (§1.2, §12)."""
    value = data.get(name)
    label = f"{prefix}.{name}"
    if value is None:
        raise param_error(f"缺少参数{label} (missing {label})", label)
    if isinstance(value, bool) or not isinstance(value, int):
        raise param_error(f"{label}字段类型错误,应为整数,单位为分 (an integer in fen)", label)
    if not 1 <= value <= 10**10:
        raise param_error(f"{label}超出取值范围 (at least 1 fen)", label, number=OUT_OF_RANGE)
    return value


def currency(data: dict[str, Any], prefix: str) -> None:
    value = data.get("currency", "CNY")
    if value != "CNY":
        raise param_error(f"{prefix}.currency 仅支持CNY (CNY only)", f"{prefix}.currency")


def notify_url(data: dict[str, Any], name: str, *, required: bool) -> str:
    """Absolute, no query string or fragment (§4.1). WeChat insists on HTTPS; a local
    simulator has to accept http to reach a shop on loopback."""
    url = text(data, name, limit=255, required=required)
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "?" in url or "#" in url:
        raise param_error(f"{name}格式错误,应为不带参数的绝对URL (absolute URL, no query)", name)
    return url
