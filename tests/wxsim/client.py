"""The shop's side of the wire for the simulator's own tests: signed XML calls by hand,
JSON calls of the mini-program server API, and an endpoint that records what the simulator
delivers (payment notifies, message pushes).

Signing and parsing come from ``tests/wx.py``, written independently of ``wxsim.protocol``
(and checked against the official vectors), so the simulator is tested against the
protocol notes, not against itself. The message-push check (``push_signature``,
``push_decrypt``) is written here from docs/protocol/miniprogram-server-api.md §3.4, not
taken from ``wxsim.push``. WeChat Pay v3 calls by hand (``V3Caller``) sign with
``tests/wx_v3.py``'s few lines, never with ``wechat.pay_v3`` or ``wxsim.v3keys``.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.wx import OFFICIAL_APPID, OFFICIAL_KEY, OFFICIAL_MCH_ID, wx_sign
from tests.wx import wx_parse as parse_xml
from tests.wx import wx_xml as to_xml
from tests.wx_v3 import wx_sign as rsa_sign
from tests.wx_v3 import wx_verify as rsa_verify

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


PAYER = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"  # the openid of unifiedorder below, hence the payer
UPLOAD = "/wxa/sec/order/upload_shipping_info"


def shipping_upload(transaction_id: str, **overrides: Any) -> dict[str, Any]:
    """An upload_shipping_info body as §2.4 of the mini-program notes shows it: one express
    parcel, by transaction_id."""
    return {
        "order_key": {"order_number_type": 2, "transaction_id": transaction_id},
        "logistics_type": 1,
        "delivery_mode": 1,
        "shipping_list": [{"tracking_no": "YT7407032196699", "express_company": "YTO",
                           "item_desc": "小熊玩偶*1"}],
        "upload_time": "2022-12-15T13:29:35.120+08:00",
        "payer": {"openid": PAYER},
        **overrides,
    }


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
            "openid": PAYER,
            **overrides,
        }
        answer = self.call("/pay/unifiedorder", params, sign_type=sign_type)
        answer["_out_trade_no"] = str(params["out_trade_no"])
        return answer

    def control(self, method: str, path: str, json: Any = None) -> requests.Response:
        return self.http.request(method, self.base_url + path, json=json, timeout=10)

    def pay(self, out_trade_no: str, **extra: Any) -> requests.Response:
        return self.control("POST", "/sim/pay", {"out_trade_no": out_trade_no, **extra})

    # --- the mini-program server API (docs/protocol/miniprogram-server-api.md) -------------

    def api(self, path: str, body: Any, token: str | None = None, method: str = "POST") -> dict:
        """One JSON call as the shop makes it: token in the query string, HTTP 200 always."""
        params = {"access_token": token} if token is not None else None
        response = self.http.request(method, self.base_url + path, params=params,
                                     json=body, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def token(self, force_refresh: bool = False) -> str:
        answer = self.api("/cgi-bin/stable_token", {
            "grant_type": "client_credential", "appid": APPID, "secret": SECRET,
            "force_refresh": force_refresh,
        })
        assert "access_token" in answer, answer
        return answer["access_token"]


def push_signature(*parts: str) -> str:
    """§3.2 and §3.4 of the mini-program notes: sha1 of the sorted parts, lowercase hex."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def push_decrypt(encrypted: str, encoding_aes_key: str) -> tuple[bytes, bytes, str]:
    """§3.4 steps 2 to 4: (random prefix, message, AppID) of a safe-mode ``Encrypt``."""
    key = base64.b64decode(encoding_aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    pad = plain[-1]
    assert 1 <= pad <= 32 and plain.endswith(bytes([pad]) * pad), "bad PKCS#7 (block 32)"
    plain = plain[:-pad]
    length = int.from_bytes(plain[16:20], "big")
    return plain[:16], plain[20:20 + length], plain[20 + length:].decode()


def push_event(receiver: Receiver, index: int, token: str, encoding_aes_key: str = "") -> dict:
    """Verify received push ``index`` as the shop must (signature, or msg_signature and
    decryption in safe mode) and return its event."""
    query, body = receiver.queries[index], receiver.received[index]
    assert query["signature"] == push_signature(token, query["timestamp"], query["nonce"])
    if query.get("encrypt_type") != "aes":
        return json.loads(body)
    outer = json.loads(body)
    assert query["msg_signature"] == push_signature(
        token, query["timestamp"], query["nonce"], outer["Encrypt"])
    _, message, appid = push_decrypt(outer["Encrypt"], encoding_aes_key)
    assert appid == APPID
    event = json.loads(message)
    assert outer["ToUserName"] == event["ToUserName"] and query["openid"] == event["FromUserName"]
    return event


@dataclass
class Receiver:
    """The merchant's endpoint (notifies, pushes): records requests, answers from a script
    (``replies`` first, then ``judge(headers, body)`` if set, else ``default_reply``)."""

    url: str = ""
    received: list[bytes] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    replies: list[tuple[int, bytes]] = field(default_factory=list)
    default_reply: tuple[int, bytes] = (200, SUCCESS_REPLY)
    judge: Callable[[dict[str, str], bytes], tuple[int, bytes]] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(
        self, body: bytes, query: dict[str, str] | None = None, content_type: str = "",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        with self.lock:
            self.received.append(body)
            self.queries.append(query or {})
            self.content_types.append(content_type)
            self.headers.append(headers or {})
            if self.replies:
                return self.replies.pop(0)
        if self.judge is not None:
            return self.judge(headers or {}, body)
        return self.default_reply

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        wait_until(lambda: len(self.received) >= count, timeout)
        return list(self.received)


# --- WeChat Pay v3 by hand (docs/protocol/wechat-pay-v3.md §2, §3) ------------------------------

V3_MCHID = MCH_ID
V3_APIV3_KEY = "wxsimTestApiV3Key0123456789abcdZ"  # 32 characters
V3_MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD2C1E4F7A"


@dataclass
class V3Caller:
    """Plays a shop calling v3 by hand: signs exactly what it sends (or, on request, not)."""

    base_url: str
    merchant_key: Any  # rsa.RSAPrivateKey
    clock: Callable[[], float]
    serial: str = V3_MERCHANT_SERIAL
    mchid: str = V3_MCHID
    http: requests.Session = field(default_factory=requests.Session)

    def call(
        self,
        method: str,
        target: str,
        body: bytes | dict | None = None,
        *,
        timestamp: int | None = None,
        nonce: str = "593BEC0C930BF1AFEB40B4A08C8FB242",
        sign_target: str | None = None,
        sign_body: bytes | None = None,
        key: Any = None,
        authorization: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """``target`` is the path and query as sent; ``sign_*`` sign something else."""
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() if (
            isinstance(body, dict)) else (body or b"")
        stamp = int(self.clock()) if timestamp is None else timestamp
        message = (
            f"{method}\n{sign_target or target}\n{stamp}\n{nonce}\n".encode()
            + (raw if sign_body is None else sign_body) + b"\n"
        )
        signature = rsa_sign(key or self.merchant_key, message)
        sent = {
            "Accept": "application/json",
            "User-Agent": "wxsim-tests",
            "Authorization": authorization if authorization is not None else (
                f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mchid}",nonce_str="{nonce}",'
                f'signature="{signature}",timestamp="{stamp}",serial_no="{self.serial}"'
            ),
            **(headers or {}),
        }
        if raw:
            sent["Content-Type"] = "application/json"
        return self.http.request(method, self.base_url + target, data=raw, headers=sent,
                                 timeout=5)


def answer_signed_by(response: requests.Response, public_key: Any) -> bool:
    """§3.2 by hand: ``timestamp\nnonce\nbody\n`` over the raw body received."""
    headers = response.headers
    message = (
        f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode()
        + response.content + b"\n"
    )
    return rsa_verify(public_key, message, headers["Wechatpay-Signature"])


def notify_signed_by(headers: dict[str, str], body: bytes, public_key: Any) -> bool:
    lowered = {k.lower(): v for k, v in headers.items()}
    message = (
        f"{lowered['wechatpay-timestamp']}\n{lowered['wechatpay-nonce']}\n".encode()
        + body + b"\n"
    )
    return rsa_verify(public_key, message, lowered["wechatpay-signature"])
