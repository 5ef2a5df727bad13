"""WeChat Pay v2 wire protocol, WeChat's side: signatures, XML, ids and times.

Deliberately independent of ``wechat.pay_v2``: if the shop's signing code had a bug,
an end-to-end test must fail here instead of agreeing with itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta, timezone

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as safe_fromstring

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)

# WeChat's times (time_end, time_start, ...) are Beijing time whatever the server zone (§10).
BEIJING = timezone(timedelta(hours=8))

_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "-_"


class XmlError(ValueError):
    """The body is not one flat ``<xml>`` document WeChat would accept (§1)."""


def sign(params: dict[str, object], key: str, sign_type: str = MD5) -> str:
    """§2.1: sort the non-empty fields except ``sign``, append ``&key=``, digest, uppercase."""
    items = sorted((k, str(v)) for k, v in params.items() if k != "sign" and v not in (None, ""))
    plain = "&".join(f"{k}={v}" for k, v in items) + "&key=" + key
    if sign_type == HMAC_SHA256:
        # The message still ends with "&key=..."; the API key is also the HMAC key (§2.1 step 6).
        return hmac.new(key.encode(), plain.encode("utf-8"), hashlib.sha256).hexdigest().upper()
    if sign_type == MD5:
        return hashlib.md5(plain.encode("utf-8")).hexdigest().upper()  # noqa: S324 - protocol
    raise ValueError(f"unknown sign_type {sign_type!r}")


def verify(params: dict[str, str], key: str, sign_type: str) -> bool:
    """Exact, constant-time comparison: a lowercase MD5 is a wrong signature (§2.2)."""
    received = params.get("sign", "")
    return bool(received) and hmac.compare_digest(received, sign(params, key, sign_type))


def parse_xml(body: bytes) -> dict[str, str]:
    """Parse a flat ``<xml>`` document; DTDs and entities are refused (XXE, §1)."""
    try:
        root = safe_fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise XmlError(str(exc)) from exc
    if root.tag != "xml" or root.attrib:
        raise XmlError("root element must be a bare <xml>")
    fields: dict[str, str] = {}
    for child in root:
        if len(child) or child.attrib or child.tag in fields:
            raise XmlError(f"element <{child.tag}> is nested, has attributes or is repeated")
        fields[child.tag] = child.text or ""
    return fields


def _cdata(value: str) -> str:
    # "]]>" cannot appear inside CDATA; split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields: dict[str, object], root: str = "xml") -> bytes:
    """Render like WeChat: strings in CDATA, ints bare (a shop parser must accept both, §1)."""
    parts = [f"<{root}>"]
    for name, value in fields.items():
        if value is None or value == "":
            continue
        text = str(value) if isinstance(value, int) else _cdata(str(value))
        parts.append(f"<{name}>{text}</{name}>")
    parts.append(f"</{root}>")
    return "".join(parts).encode("utf-8")


def signed_xml(fields: dict[str, object], key: str, sign_type: str) -> bytes:
    return to_xml({**fields, "sign": sign(fields, key, sign_type)})


def random_string(length: int = 32, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def random_digits(length: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))


def new_openid() -> str:
    # Real openids are 28 chars: "o" + 27 url-safe characters.
    return "o" + random_string(27, _URLSAFE)


def beijing(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, BEIJING)


def wx_time(ts: float) -> str:
    """``yyyyMMddHHmmss`` Beijing time (time_end, prepay_id prefix; §10)."""
    return beijing(ts).strftime("%Y%m%d%H%M%S")


def wx_datetime(ts: float) -> str:
    """``yyyy-MM-dd HH:mm:ss`` Beijing time (refund success_time; §10)."""
    return beijing(ts).strftime("%Y-%m-%d %H:%M:%S")
