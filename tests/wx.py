"""WeChat's side of the wire, written independently of ``wechat.pay_v2``.

Tests sign, encode, encrypt and parse with these few lines straight from the protocol
notes (§2, §7.3, §13) so that a bug in the production code makes tests fail instead of
agreeing with itself.
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
import responses
import xmltodict
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings

# The official signing example's merchant (§2.2): its appid, mch_id and API key are also
# the test settings' (tests/settings.py), so its vector checks what the shop really signs.
OFFICIAL_KEY = "192006250b4c09247ec02edce69f6a2d"
OFFICIAL_APPID = "wxd930ea5d5a258f4f"
OFFICIAL_MCH_ID = "10000100"
OFFICIAL_PARAMS = {
    "appid": OFFICIAL_APPID,
    "mch_id": OFFICIAL_MCH_ID,
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}


def wx_sign(params: dict, key: str = OFFICIAL_KEY, sign_type: str = "MD5") -> str:
    """The reference signer (§2.1): sort, join non-empty values, append the key, hash."""
    items = sorted((k, str(v)) for k, v in params.items() if k != "sign" and v not in (None, ""))
    s = "&".join(f"{k}={v}" for k, v in items) + "&key=" + key
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), s.encode("utf-8"), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(s.encode("utf-8")).hexdigest().upper()


def wx_xml(params: dict, root: str = "xml") -> bytes:
    parts = []
    for k, v in params.items():
        if isinstance(v, int):
            parts.append(f"<{k}>{v}</{k}>")
        else:
            parts.append(f"<{k}><![CDATA[{v}]]></{k}>")
    return (f"<{root}>" + "".join(parts) + f"</{root}>").encode("utf-8")


def cdata_xml(fields: dict) -> bytes:
    """WeChat-style body: newline-separated CDATA children, as in the official samples."""
    children = "".join(f"<{k}><![CDATA[{v}]]></{k}>\n" for k, v in fields.items())
    return f"<xml>\n{children}</xml>".encode()


def wx_encrypt_req_info(plaintext: bytes, key: str | None = None) -> str:
    """§7.3 run backwards: PKCS#7-pad, AES-256-ECB with the 32 ASCII hex digits of
    md5(API key), base64."""
    aes_key = hashlib.md5((key or settings.WECHAT_MCH_KEY).encode()).hexdigest().encode()
    pad = 16 - len(plaintext) % 16
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()  # noqa: S305 - §7.3
    return base64.b64encode(
        encryptor.update(plaintext + bytes([pad]) * pad) + encryptor.finalize()
    ).decode()


def refund_notify_body(info: dict, key: str | None = None, **outer) -> bytes:
    """A refund notify as WeChat posts it (§7.3): ``info`` encrypted as a ``<root>``
    document into req_info; no sign. ``outer`` overrides the envelope's fields."""
    envelope = {
        "return_code": "SUCCESS",
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": secrets.token_hex(16),
        "req_info": wx_encrypt_req_info(wx_xml(info, root="root"), key),
    }
    envelope.update(outer)
    return wx_xml(envelope)


def wx_parse(body: bytes) -> dict[str, str]:
    # xmltodict, not the production parser: a parsing bug there cannot hide here.
    return {k: v or "" for k, v in xmltodict.parse(body, disable_entities=True)["xml"].items()}


def signed(params: dict, key: str | None = None, sign_type: str = "MD5") -> dict:
    params = dict(params)
    params["sign"] = wx_sign(params, key or settings.WECHAT_MCH_KEY, sign_type)
    return params


@dataclass
class FakeWxPay:
    """``api.mch.weixin.qq.com`` behind ``responses``: checks every request's signature
    like WeChat does and answers signed XML; failure modes are set per test."""

    mock: responses.RequestsMock
    requests_seen: list[dict] = field(default_factory=list)
    err_code: str | None = None
    http_status: int = 200
    exception: Exception | None = None
    tamper_answer: Callable[[dict], dict] | None = None
    observers: list[Callable[[dict], None]] = field(default_factory=list)
    # Per-path business errors ({"/pay/closeorder": "ORDERPAID"}) and extra answer fields
    # ({"/pay/orderquery": {"trade_state": "SUCCESS", ...}}).
    path_errors: dict[str, str] = field(default_factory=dict)
    path_fields: dict[str, dict] = field(default_factory=dict)
    # Business errors answered to the next calls of a path, then success again
    # ({"/secapi/pay/refund": ["SYSTEMERROR"]}).
    path_error_queue: dict[str, list[str]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return settings.WECHAT_PAY_API_BASE

    def install(self) -> "FakeWxPay":
        for path in (
            "/pay/unifiedorder",
            "/pay/orderquery",
            "/pay/closeorder",
            "/secapi/pay/refund",
            "/pay/refundquery",
        ):
            self.mock.add_callback(responses.POST, self.base + path, callback=self._answer)
        return self

    def calls(self, path: str = "/pay/unifiedorder") -> list[dict]:
        return [r for r in self.requests_seen if r["_path"] == path]

    def _answer(self, request: requests.PreparedRequest):
        if self.exception is not None:
            raise self.exception
        fields = wx_parse(request.body)
        sign_type = fields.get("sign_type", "MD5")
        assert fields["sign"] == wx_sign(fields, settings.WECHAT_MCH_KEY, sign_type), "bad sign"
        path = request.path_url
        # The client certificate requests would present (only the secapi calls need one).
        self.requests_seen.append({**fields, "_path": path, "_cert": request.req_kwargs["cert"]})
        for observe in self.observers:
            observe(fields)
        if self.http_status != 200:
            return (self.http_status, {}, "<html>upstream error</html>")
        answer = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "appid": fields["appid"],
            "mch_id": fields["mch_id"],
            "nonce_str": secrets.token_hex(8),
            "result_code": "SUCCESS",
        }
        queued = self.path_error_queue.get(path)
        err_code = queued.pop(0) if queued else self.path_errors.get(path, self.err_code)
        if err_code:
            answer.update(result_code="FAIL", err_code=err_code, err_code_des="test")
        elif path == "/pay/unifiedorder":
            answer.update(trade_type="JSAPI", prepay_id="wx" + fields["out_trade_no"][:30])
        elif path == "/secapi/pay/refund":
            answer.update(refund_answer(fields))
        else:
            answer.update(self.path_fields.get(path, {}))
        answer = signed(answer, sign_type=sign_type)
        if self.tamper_answer:
            answer = self.tamper_answer(answer)
        return (200, {"Content-Type": "text/xml"}, wx_xml(answer))


def refund_id_for(out_refund_no: str) -> str:
    """The refund_id FakeWxPay gives a refund: stable, so retries get the same one (§7.1)."""
    return "5030010318" + hashlib.sha256(out_refund_no.encode()).hexdigest()[:19]


def refund_answer(request: dict) -> dict:
    """The fields of an accepted refund (§7.1), echoing the request."""
    return {
        "transaction_id": "4200000483202001042069747825",
        "out_trade_no": request["out_trade_no"],
        "out_refund_no": request["out_refund_no"],
        "refund_id": refund_id_for(request["out_refund_no"]),
        "refund_fee": request["refund_fee"],
        "total_fee": request["total_fee"],
        "cash_fee": request["total_fee"],
        "cash_refund_fee": request["refund_fee"],
    }


def code2session_answer(mock: responses.RequestsMock, payload: dict, status: int = 200) -> None:
    mock.add(
        responses.GET,
        settings.WECHAT_API_BASE + "/sns/jscode2session",
        body=json.dumps(payload),
        status=status,
        content_type="text/plain",  # WeChat's quirk (docs/protocol/wechat-pay-v2.md §9)
    )


# An XML bomb: nine levels of ten entities each (a billion 'lol's if expanded).
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, b"&lol%d;" % (n - 1) * 10 if n > 1 else b"&lol;" * 10)
        for n in range(1, 10)
    )
    + b"]><xml><return_code>&lol9;</return_code></xml>"
)

# §7.3 test vector (wechatpy's test-suite), as docs/protocol/wechat-pay-v2.md keeps it.
REQ_INFO_VECTOR_KEY = "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk"
REQ_INFO_VECTOR = (
    "51A27s9LxbaEv52nBOrqa0FCs3HVIM31Wc3BpNqSCP5MQlS8HL1Vl7mZ21043B7PZy7adtOZGtZv44lGl0U8JXlV"
    "FL4Ltxsw6+pACjZBB0Qi1LUDjFlP2IyTxYX4eC57kxnCphDdIyRkU67kOWW/HN/efggTUlaPJkoL5kVe9Y1MZF55"
    "IHR4lwGI7WtVLtxATX1tkAVZF+/ri0WlPXo9+GkqeB2/id6Ozw09Tqp8C/TKbmKBpRhTCRU2TzfQoLa6fjbgETFH"
    "J795aEMyUZPQYbbsz6U9Rj9lUzEh8+Oc8KYTXa9zVk+nnFr82+yjffb3d36ylTe0y/VmYf90rf9cbiJQdM00zZ8Q"
    "a99SlMTs2wjOO4Mi4Btlg1PebsLF8TkqbSZkRJDGs61UunUB8Km1b/VeBxXuv4D3H7DiVZ9Fj7lq2j07zFDpxxlh"
    "hen7kZvMWWO3lrfFpA9c4eFOqfF9SxcU9nBmHfDD1g/dsrMl6+a71xQHJ/gn80fZOefUBv92ggqutsuJ4gd4Oqkm"
    "O0XUs8e4XQyLpra+LvpmahsU5lBIZuQcMq3FHrqe8hXTfp3+3qym2wGfvPI75jx41VZwmBQy9izB1Id+A5lUeXC5"
    "QJy+ryDu/dWkhB+aMjkElaI/Epmcc/IEPaI73W6Hc58hNednOM536rPnn+GDc98PdGszpLTjmaZSu8dtqwPaym66"
    "yRqFQowzFoBbooik57iHUFBCeWya7XcXYL9WKhRF3uIZM+Kfv9/Zs2pF+w9/EJpltuzPpT1GP2VTMSHz45zwphFl"
    "S2lX8wHyZ+k9n2dptzQqpOCPedt5iQAmAe1oNQMxNdPDH9g68x9UzWD1kfK/dPO+3NPAh0XG+io4x15fIknNf7JL"
    "jpAuWicMMzCdwC4hhqeYOzQ+pC9f2xJXi5YViNKIZY69oO8eoHYRitLZrHLgx3oB2zimmqX6BI+DMklKAzAqqgGm"
    "bFxcVTvxZB6cMCx+H7TTWXnjAG+6A3SrCcxg0l5+UB93pkAYR7SVJ+VaZoiBqlqnZvb7IM17n9XaaFntlzvbbFCI"
    "a7OnOQb5Lvw="
)
