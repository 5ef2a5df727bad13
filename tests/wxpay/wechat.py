"""Test doubles for WeChat's side of the wire, written independently of payments.wxpay.

``reference_sign`` is the protocol sheet's §13 reproduction code, so our signer is checked
against a second implementation rather than against itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

# Official §2.2 example.
KEY = "192006250b4c09247ec02edce69f6a2d"
APPID = "wxd930ea5d5a258f4f"
MCH_ID = "10000100"
OFFICIAL_PARAMS = {
    "appid": APPID,
    "mch_id": MCH_ID,
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}


def reference_sign(params: Mapping[str, object], key: str, sign_type: str = "MD5") -> str:
    """§13 ``wx_sign``, verbatim in substance."""
    items = sorted((k, v) for k, v in params.items() if k != "sign" and v not in (None, ""))
    s = "&".join(f"{k}={v}" for k, v in items) + "&key=" + key
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), s.encode("utf-8"), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(s.encode("utf-8")).hexdigest().upper()


def cdata_xml(fields: Mapping[str, str]) -> bytes:
    """WeChat-style body: newline-separated CDATA children, as in the official samples."""
    children = "".join(f"<{k}><![CDATA[{v}]]></{k}>\n" for k, v in fields.items())
    return f"<xml>\n{children}</xml>".encode()


def signed(fields: Mapping[str, str], key: str = KEY, sign_type: str = "MD5") -> dict[str, str]:
    """``fields`` plus the sign WeChat would put on them."""
    return {**fields, "sign": reference_sign(fields, key, sign_type)}
