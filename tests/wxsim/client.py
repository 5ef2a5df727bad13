"""The shop's side of the wire for the simulator's own tests: signed XML calls by hand,
and a notify endpoint that records what the simulator delivers.

Signing and parsing come from ``tests/wx.py``, written independently of ``wxsim.protocol``
(and checked against the official vectors), so the simulator is tested against the
protocol notes, not against itself.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.wx import OFFICIAL_APPID, OFFICIAL_KEY, OFFICIAL_MCH_ID, wx_sign
from tests.wx import wx_parse as parse_xml
from tests.wx import wx_xml as to_xml

# The simulator under test plays the official example's merchant (§2.2 of the notes).
APPID, MCH_ID, KEY = OFFICIAL_APPID, OFFICIAL_MCH_ID, OFFICIAL_KEY
SECRET = "test-app-secret"
SUCCESS_REPLY = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)
FAIL_REPLY = (
    b"<xml><return_code><![CDATA[FAIL]]></return_code>"
    b"<return_msg><![CDATA[busy]]></return_msg></xml>"
)


def signature_ok(fields: dict[str, str], sign_type: str) -> bool:
    return hmac.compare_digest(fields["sign"], wx_sign(fields, KEY, sign_type))


def wait_until(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.005)
    raise AssertionError("condition not met in time")


def new_out_trade_no() -> str:
    return "T" + secrets.token_hex(8)


class WxClient:
    """Plays the shop: builds signed XML calls by hand."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def call(
        self,
        path: str,
        params: dict[str, Any],
        *,
        key: str = KEY,
        sign_type: str | None = None,
        sign_with: str | None = None,
    ) -> dict[str, str]:
        fields = {"appid": APPID, "mch_id": MCH_ID, "nonce_str": secrets.token_hex(8), **params}
        if sign_type:
            fields["sign_type"] = sign_type
        fields["sign"] = wx_sign(fields, key, sign_with or sign_type or "MD5")
        response = self.http.post(self.base_url + path, data=to_xml(fields), timeout=5)
        assert response.status_code == 200
        return parse_xml(response.content)

    def unifiedorder(
        self, notify_url: str, sign_type: str | None = None, **overrides: Any
    ) -> dict[str, str]:
        params = {
            "body": "测试商店-商品",
            "out_trade_no": new_out_trade_no(),
            "total_fee": 101,
            "spbill_create_ip": "127.0.0.1",
            "notify_url": notify_url,
            "trade_type": "JSAPI",
            "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            **overrides,
        }
        answer = self.call("/pay/unifiedorder", params, sign_type=sign_type)
        answer["_out_trade_no"] = str(params["out_trade_no"])
        return answer

    def control(self, method: str, path: str, json: Any = None) -> requests.Response:
        return self.http.request(method, self.base_url + path, json=json, timeout=10)

    def pay(self, out_trade_no: str, **extra: Any) -> requests.Response:
        return self.control("POST", "/sim/pay", {"out_trade_no": out_trade_no, **extra})


@dataclass
class Receiver:
    """The merchant's notify endpoint: records bodies, answers from a script."""

    url: str = ""
    received: list[bytes] = field(default_factory=list)
    replies: list[tuple[int, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, body: bytes) -> tuple[int, bytes]:
        with self.lock:
            self.received.append(body)
            return self.replies.pop(0) if self.replies else (200, SUCCESS_REPLY)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        wait_until(lambda: len(self.received) >= count, timeout)
        return list(self.received)
