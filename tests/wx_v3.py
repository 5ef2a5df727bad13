"""WeChat Pay v3 as the tests play it, written independently of ``wechat.pay_v3``.

Tests sign answers and notifies, check our request signatures and encrypt resources with
these few lines straight from the protocol note (§13.6), never with the production code they
check, so that a bug there makes tests fail instead of agreeing with itself. Also WeChat's
published example key pair and vectors (§2.4, §5.2, §13.3, §13.4).
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import base64
import gzip
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

# -- the tests' merchant (made up, as the note's derived vectors) ---------------------------------

NOW = 1_735_689_600  # 2025-01-01T08:00:00+08:00: the clock of the test merchant
APPID = "wx1234567890abcdef"
MCHID = "1900000001"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD2C1E4F7A"
APIV3_KEY = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
PUBLIC_KEY_ID = "PUB_KEY_ID_0000000000000000000000000001"
PLATFORM_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
BASE = "https://api.mch.weixin.qq.com"

# -- the official examples (§2.4, §5.2, §13.1-§13.3) ---------------------------------------------

# The example private key published on WeChat's signing page (test data, nobody's merchant).
OFFICIAL_PRIVATE_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCm2mb6q8gMKH/3
CNTbpJAIrbqiBiQGEOtjGcBrDYltsGynWgNscqT7WvfzU14FQbYcQUC5T4Wvva7m
i3fIp3OgX8VqMDNA0qebnr38Pe6kqiLyZgFpJPXlSKDyPyqhRbVTbXssvSMQeVKc
dXeVxoNNeoOlNFHgF/P0io6AmAVnz+hN8SiZKuOsth5/zUTLGvtkgxBcQooQrtXh
RcpLT798OyIb9xeJ2HO3xRtMv2+perEzb4gMibI74UBz+2QEbnkubPE+2jU2rRZu
dnNEz/BPOt3Qj/w2V6/G0VumGDh6+UeMU0jv4aupHztWITC4Akn0l7lBCNy3lgl8
VFaJnkIxAgMBAAECggEAYGL8aESB7NwciDWW2UdoWUsa7GxFtSdjAz2mFXGdeTsY
mVh7b9OOkRGM+Qio4LqEHDBp1mMk5E/cUJwy1zw8pGGO5nfvs7u9TT3XnHaefIs4
YvUgTYAneIuLRkXNN5rQU+CD7mVYczTSz0Vgjqo9wa1LjUz7G0xbBmJgTdMEFGJs
eJjy6AbJo0CGIwp6HJbTm4CmOUgXnnDAIbEGTIRImkZFH/rzneIeR7oZ77FVwxr1
CZB2gfRCov/yRPbw8vnryYkmvQ7D/ze3j5097vRg/MoDGBSdoOwcmo75vyofr0AS
zytMjmHYyifqkf5slPropSiJeGf4p/7gtKyF6dE/XQKBgQDVAlJ+4U5ZVGOuDc3+
sAhz8CTzgFNlq9vKuSoFK6hOz2L+cwj+E7NXGkOe2DsHHZNy2Xqxk7caKhPEp1z9
hhpMpyLVMoFt6CKemyoRBWDCQwLLwem9SZF/IAyovBkLiH36P42Jm26gUkNMKC/5
Zhtqxf6RZgRQzbVudJi47vIRCwKBgQDIh0+v27Oo+DM3fhObH4I1NrXpWOEGH7OQ
G1dEsMuFYF4hjGhg0kBEP3w9vVdl2+mRllZKTsx9oqjb8OibPLLIH8xsdbAB0WLf
JvjLu4wl/ILUzN1RI03dWnnv2EnEeQn6c3hizvrJ9wR5U4ue9RPVnQooJ0hZF1PU
uCL5fWK3MwKBgElReU/PAYbh80WP3t3Rfbdaa32dKBeQ5iCLR5lsA4zM+YgX1HqQ
EWTj126vgvHaDkyz6vWAoL/Sx+cirHFfXWIRDX5Q2hgYlQH+6qXdMgbrxeSYpHnQ
/tHBGFpkFELSAnrGsVMyOwvYBO4LzyeLK9i+ufcWJFoj1FVmsMLHDG8tAoGARdbi
iQQCoYG4DMarO2aQ6cmhN6EN1h0qY7EyBqlwaIZ0okiNfdMcMOjPc41DKCWcRmlO
qlihXcxN9TQFPzO3rH1urAOdBjUPs1qWYhZyrDQyuLyVBBJApyxAtajloDjrob+f
mQIvVDHk7ACN6xG+E7K6+9salnTKbJapD618uQMCgYBNy6XUvzLkP/A1U/UZdtcx
l8GwU/dturLxz4CyGbqDw4ubaYY2e13lnqHUqQgPtiSyH51nq3tdo8G0YAJdfkSv
KvnfslW91fyEBUKnkdW1o3/1UFU/wprZ7ixVL/F42A4xDu7OFE8EnweJOZ0jWceE
OdhCkaIGBCfRnlECRK8UyQ==
-----END PRIVATE KEY-----
"""

# The WeChat Pay public key published on WeChat's verification page (§13.3).
OFFICIAL_WECHATPAY_PUBLIC_KEY_PEM = """\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwXNI6sdlknHBnK8Fu2U6
Cwor9qY747jP8KAfeBMeveEt1TqaHkLfaSD07trZLhGpfs8/AHqjhgSMO1O10YQW
OrrJ4hjIWPKqxbgrYMkBQc+mwdiWp4W3ByCqxBRagCveCXRWCmuJYovl9H/bsDI0
iGbpVtEOghJtfciisYSgxcLufUDTRkvwxjIBK1pCRjk33jJ5YTBWTHMRtMAOcFLN
F6hdEYdX8SPsgHHeLZ5Lv2T/686w1xtgCHef/sd4uSfWmyzsalQdHG/e4IyYmrhx
+O3VBoNDzE3nx23bFeV/RVNCG7cV6VhmYokJNHa/erIPkEmEFID6A5wQOXuxUkmJ
WwIDAQAB
-----END PUBLIC KEY-----
"""

# §2.4: POST /v3/pay/transactions/jsapi signed with the official key.
OFFICIAL_REQUEST = {
    "method": "POST",
    "url": "/v3/pay/transactions/jsapi",
    "timestamp": 1554208460,
    "nonce": "593BEC0C930BF1AFEB40B4A08C8FB242",
    "body": (
        '{"appid":"wxd678efh567hg6787","mchid":"1900007291",'
        '"description":"Image形象店-深圳腾大-QQ公仔",'
        '"out_trade_no":"1217752501201407033233368018",'
        '"notify_url":"https://www.weixin.qq.com/wxpay/pay.php",'
        '"amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}'
    ).encode(),
    "signature": (
        "jnks4dlrPw3ZX+ozVvSK39oa0t7OMBsg83BHAwd8BRdUFiVaQNTLTvci+wURgP1OQBbKYhFGvt7iqYpDSTQkp7Uq"
        "1sltaQKyncCyrA1g88m5bsKERQfPyT0ahSwKTYJ1CAn9QiJuSJRq1QsQs07eehbU/k9BCS51jTyc1Jpsi2H77HF9"
        "f/BnjXAOP3/sPObg6V5Ee4EzwLox684hhuMuIwHo7D8KFk3LIHOKDcNI4It1aCXydFWNpNK+SG86VUDe5kwoDpw4"
        "Ulqfu9z8OFDGbDs9TCxEv8iqQzbpxOlEVoOe2kalSYM5kApQb3nZcxdUtoE0liJGW3RGUNE0t4v01A=="
    ),
}

# §5.2: the mini-program paySign with the same key.
OFFICIAL_PAY = {
    "app_id": "wx2421b1c4370ec43b",
    "timestamp": "1554208460",
    "nonce": "593BEC0C930BF1AFEB40B4A08C8FB242",
    "prepay_id": "wx201410272009395522657a690389285100",
    "pay_sign": (
        "mI35pfNEQV6777ke/1T+LJLQDNTm7yeoUJH+j/adPGhmCCi0PbgkvYQTRcXH0uibcLVtvFLdGLpmoYO9FV6lBBsT"
        "Ajuhh5YOvQi0e2g3e0yytitiNET9FEuqM0pjnKfRW4K6LIZDdbWJv9KhZUx3DrJa5TL7OJ7VdADVivxVySIlPVKj"
        "GwuCXzuXSJes0UcILgWQUMyha5/3nYofuHtS7r+KYyMuxD+oJ9VM1Qdxk4UIG59CP5Y3wtYIFybyF3bdu1caHTRR"
        "X+DLyMXyYA/IrTmiW01c4RPjpHBX5Dk1sZyY1zVsWNsvMHr2e1NTWtBxKJ+qk5N61J7caYoepHFaxw=="
    ),
}

# §13.3: an answer signed by WeChat, to verify with OFFICIAL_WECHATPAY_PUBLIC_KEY_PEM.
OFFICIAL_ANSWER = {
    "timestamp": "1722850421",
    "nonce": "d824f2e086d3c1df967785d13fcd22ef",
    "body": b'{"code_url":"weixin://wxpay/bizpayurl?pr=JyC91EIz1"}',
    "signature": (
        "mfI1CPqvBrgcXfgXMFjdNIhBf27ACE2YyeWsWV9ZI7T7RU0vHvbQpu9Z32ogzc+k8ZC5n3kz7h70eWKjgqNdKQF0"
        "eRp8mVKlmfzMLBVHbssB9jEZEDXThOX1XFqX7s7ymia1hoHQxQagPGzkdWxtlZPZ4ZPvr1RiqkgAu6Is8MZgXXrR"
        "oBKqjmSdrP1N7uxzJ/cjfSiis9FiLjuADoqmQ1P7p2N876YPAol7Rn0+GswwAwxldbdLrmVSjfytfSBJFqTMHn4i"
        "tojgxSWWN1byuckQt8hSTEv/Lg97QoeGniYP17T80pJeQyL3b+295FPHSO2AtvCgyIbKMZ0BALilAA=="
    ),
}

# §13.4 (derived, not official): the §7.3 transaction encrypted under a made-up APIv3 key.
RESOURCE_VECTOR_KEY = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
RESOURCE_VECTOR = {
    "algorithm": "AEAD_AES_256_GCM",
    "nonce": "fdasflkja484",
    "associated_data": "transaction",
    "original_type": "transaction",
    "ciphertext": (
        "dye76+AVf6YHhXrufWh0WwbB7ClqB6SHOwXlMvNFNEj1wEuCd5e6pzUqIFLcbShrlYwKZL8JuDSdUdpandTNtfrp"
        "LmA0ydH563+9llpHpqDsAZoSNQKkDsRdQdytbFKh2fQWDRZSAo8Fqaj5D9MOvFZMbBC2ZuMbGGUpSsuHIQ1ckSTt"
        "Ysm1WJg/ygOW/zxmcH1h0M1nnvku+8Pdr5eQqEXDvh/BOylkG4wFIwLwyETER+zu6Q3Nr9mBKSHNgIDQlKYmuOsc"
        "1wpXi3IrbwWNXHniIBZQUQbkfGBD4tuGPnfzOMs33L4/BbVla3XbmZjoMGtnHviTCT5poMuVwjdUd31zVSup+OF/"
        "jP4TYCsNc25vl6etjAVlvYu0JjdjkNXEtE2gpmIJ9hmm/36WL09ZYt6ubWhZTZ37vOKciAql6QmQcWOJWuM0po+u"
        "uH66KWW6mS/czkDlRq8uPmI/FPbl+D2jISRKspwiqD1KwlvqiWAvscGgRlEyT6si2rqmLhoXYSRhbktPH/v43ExH"
        "CaGMlL5BI6HZywdtRuxG+a0NsceeOkliM3/gCqqka698EIdC0ktoAytagA=="
    ),
}
# §7.3's example transaction: the plaintext of RESOURCE_VECTOR (423 bytes).
RESOURCE_VECTOR_PLAINTEXT = (
    '{"mchid":"1900000001","appid":"wx1234567890abcdef","out_trade_no":"T20250101000000001",'
    '"transaction_id":"4200002501202501018123456789","trade_type":"JSAPI","trade_state":"SUCCESS",'
    '"trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"shop=1",'
    '"success_time":"2025-01-01T08:00:30+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},'
    '"amount":{"total":1,"payer_total":1,"currency":"CNY","payer_currency":"CNY"}}'
).encode()


# -- keys and certificates made at test time (§13.5) ---------------------------------------------


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_certificate(
    key: rsa.RSAPrivateKey, serial: int, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    """A test "platform certificate", as WeChat's are: an RSA key under a serial."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TEST ONLY - not issued by Tenpay"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA TEST"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def pem_of(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


# -- WeChat's side of the signatures (§2, §3, §13.6) ---------------------------------------------


def wx_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def wx_verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return False
    return True


def signed_headers(
    key: rsa.RSAPrivateKey,
    serial: str,
    body: bytes,
    *,
    timestamp: int | str,
    nonce: str = "a4f2c1e8b7d94f0e9c3b5a7d1e2f4c6b",
    request_id: str = "08F8B4D8BB0610D70318C5A2E05E20B3A14A08F9F5022880E1",
) -> dict[str, str]:
    """The headers of an answer or notify WeChat signed (§3.1, §3.2)."""
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    return {
        "Request-ID": request_id,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Wechatpay-Signature": wx_sign(key, message),
    }


_AUTH = re.compile(r'WECHATPAY2-SHA256-RSA2048 ((?:[a-z_]+="[^"]*",?)+)')


def parse_authorization(header: str) -> dict[str, str]:
    """The key="value" pairs of an Authorization header (§2.3), in any order."""
    match = _AUTH.fullmatch(header)
    assert match, header
    return dict(re.findall(r'([a-z_]+)="([^"]*)"', match.group(1)))


def request_signature_ok(request, merchant_public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """Check a request as WeChat does (§2.1): rebuild the message from what was sent on the
    wire and verify the Authorization signature. Returns the Authorization fields."""
    fields = parse_authorization(request.headers["Authorization"])
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    message = (
        (
            f"{request.method}\n{request.path_url}\n{fields['timestamp']}\n{fields['nonce_str']}\n"
        ).encode()
        + body
        + b"\n"
    )
    assert wx_verify(merchant_public_key, message, fields["signature"]), "bad request signature"
    return fields


# -- WeChat's side of AES-256-GCM (§7.2) ----------------------------------------------------------


def encrypt_resource(
    apiv3_key: str,
    plaintext: bytes,
    *,
    associated_data: str = "transaction",
    nonce: str = "fdasflkja484",
    original_type: str = "transaction",
) -> dict[str, str]:
    """A notify ``resource`` (or an ``encrypt_certificate``) as WeChat builds it."""
    sealed = AESGCM(apiv3_key.encode()).encrypt(
        nonce.encode(), plaintext, associated_data.encode() or None
    )
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
        "original_type": original_type,
    }


def notify_body(resource: dict[str, str], event_type: str = "TRANSACTION.SUCCESS") -> bytes:
    """A notify envelope (§7.1), serialized with spaces as a non-Python sender might."""
    envelope = {
        "id": "EV-2025010108003100000000000001",
        "create_time": "2025-01-01T08:00:31+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": resource,
    }
    return json.dumps(envelope, ensure_ascii=False, indent=1).encode("utf-8")


def transaction(**overrides) -> dict:
    """A paid JSAPI transaction object (§6.1, §7.3), mchid/appid of the tests' merchant."""
    base = {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": "T20250101000000001",
        "transaction_id": "4200002501202501018123456789",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "shop=1",
        "success_time": "2025-01-01T08:00:30+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": 101, "payer_total": 101, "currency": "CNY", "payer_currency": "CNY"},
    }
    return {**base, **overrides}


def refund_object(**overrides) -> dict:
    """A refund object (§8.2), as create and query answer it."""
    base = {
        "refund_id": "50000000382019052709732678859",
        "out_refund_no": "R20250102000000001",
        "transaction_id": "4200002501202501018123456789",
        "out_trade_no": "T20250101000000001",
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "success_time": "2025-01-02T10:00:05+08:00",
        "create_time": "2025-01-02T10:00:00+08:00",
        "status": "SUCCESS",
        "funds_account": "AVAILABLE",
        "amount": {
            "total": 101,
            "refund": 50,
            "payer_total": 101,
            "payer_refund": 50,
            "settlement_refund": 50,
            "settlement_total": 101,
            "discount_refund": 0,
            "currency": "CNY",
        },
    }
    return {**base, **overrides}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def signed_answer(
    key: rsa.RSAPrivateKey,
    payload: dict | bytes,
    status: int = 200,
    *,
    serial: str = PUBLIC_KEY_ID,
    timestamp: int = NOW,
) -> tuple[int, dict[str, str], bytes]:
    """A ``responses`` callback's answer: WeChat's JSON (or raw bytes), signed (§3)."""
    body = (
        payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    )
    return status, signed_headers(key, serial, body, timestamp=timestamp), body


def error_answer(status: int, code: str, message: str = "") -> tuple[int, dict[str, str], bytes]:
    """An error answer (§10.1), unsigned as WeChat may send them (§3.8)."""
    body = json.dumps({"code": code, "message": message}, ensure_ascii=False).encode()
    return (
        status,
        {"Request-ID": f"08F8B4D8BB0610D70318C5A2E05E20B3A14A08F9F5022880E1-{status}"},
        body,
    )


# -- WeChat's certificate download (§3.4), served to the shop ------------------------------------


def certificate_entry(cert: x509.Certificate, serial: str, apiv3_key: str = APIV3_KEY) -> dict:
    """One ``data[]`` entry of ``GET /v3/certificates``: the PEM encrypted under the APIv3 key."""
    return {
        "serial_no": serial,
        "effective_time": cert.not_valid_before_utc.isoformat(),
        "expire_time": cert.not_valid_after_utc.isoformat(),
        "encrypt_certificate": encrypt_resource(
            apiv3_key,
            pem_of(cert).encode(),
            associated_data="certificate",
            nonce="4de73afd28b6",
            original_type="",
        ),
    }


# The clock the client checks answers against (its config's, taken at import): a test that
# moves time.time forward to make the certificates due still gets answers signed "now".
_wall_clock = time.time


class FakeCertificates:
    """``GET /v3/certificates`` behind ``responses``: serves ``certificates`` (pairs of
    certificate and serial), signed by ``signer`` (a key and its serial) at the real clock
    (the shop's client checks the window against it); ``failure`` (a status and code) makes
    WeChat refuse instead. ``calls`` counts the downloads asked for."""

    def __init__(self, http_mock, signer: tuple, certificates: list[tuple]) -> None:
        import responses

        self.signer = signer
        self.certificates = certificates
        self.failure: tuple[int, str] | None = None
        self.calls = 0
        http_mock.add_callback(responses.GET, f"{BASE}/v3/certificates", callback=self._answer)

    def _answer(self, request):
        self.calls += 1
        if self.failure is not None:
            return error_answer(*self.failure)
        key, serial = self.signer
        entries = [certificate_entry(cert, cert_serial) for cert, cert_serial in self.certificates]
        data = {"data": entries}
        return signed_answer(key, data, serial=serial, timestamp=int(_wall_clock()))


# -- notifies to the shop under test (§7, §8.5) ---------------------------------------------------
# The shop's own appid and mchid are tests/settings.py's WECHAT_APPID and WECHAT_MCH_ID.

V3_NOTIFY_URL = "/payment/v3/wxnotify"
V3_REFUND_NOTIFY_URL = "/payment/v3/refundnotify"


def shop_transaction(order, **overrides) -> dict:
    """The transaction WeChat reports when ``order`` (an ``orders.Order``) is paid (§7.3)."""
    from django.conf import settings

    paid = {
        "mchid": settings.WECHAT_MCH_ID,
        "appid": settings.WECHAT_APPID,
        "out_trade_no": order.out_trade_no,
        "payer": {"openid": order.openid},
        "amount": {
            "total": order.total_fee,
            "payer_total": order.total_fee,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    return transaction(**{**paid, **overrides})


def shop_refund(refund, status: str = "SUCCESS", **overrides) -> dict:
    """The decrypted resource of a refund notify (§8.5) for ``refund`` (a
    ``payments.Refund``): ``refund_status``, not ``status``; the shop's mchid."""
    from django.conf import settings

    order = refund.order
    resource = {
        "mchid": settings.WECHAT_MCH_ID,
        "out_trade_no": order.out_trade_no,
        "transaction_id": order.transaction_id or "4200002501202501018123456789",
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id or "50000000382019052709732678859",
        "refund_status": status,
        "success_time": "2025-01-02T10:00:05+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": order.total_fee,
            "refund": refund.refund_fee,
            "payer_total": order.total_fee,
            "payer_refund": refund.refund_fee,
        },
    }
    return {**resource, **overrides}


def signed_notify(
    key: rsa.RSAPrivateKey,
    resource: dict,
    *,
    timestamp: int,
    serial: str = PUBLIC_KEY_ID,
    event_type: str = "TRANSACTION.SUCCESS",
    original_type: str = "transaction",
    associated_data: str = "transaction",
    nonce: str = "fdasflkja484",
    apiv3_key: str = APIV3_KEY,
) -> tuple[dict[str, str], bytes]:
    """A notify as WeChat posts it: ``resource`` encrypted (§7.2) in its envelope (§7.1),
    the headers signing it (§3). Returns (headers, body)."""
    sealed = encrypt_resource(
        apiv3_key,
        # A lone surrogate (which a test may put in) goes as JSON's \ud800 escape: the
        # only characters backslashreplace touches here, and exactly that escape.
        json.dumps(resource, ensure_ascii=False).encode(errors="backslashreplace"),
        associated_data=associated_data,
        nonce=nonce,
        original_type=original_type,
    )
    body = notify_body(sealed, event_type)
    return signed_headers(key, serial, body, timestamp=timestamp), body


def signed_refund_notify(
    key: rsa.RSAPrivateKey, resource: dict, *, timestamp: int, **options
) -> tuple[dict[str, str], bytes]:
    """A refund notify (§8.5): ``event_type`` from the resource's ``refund_status``."""
    status = resource.get("refund_status", "SUCCESS")
    options = {
        "event_type": f"REFUND.{status}",
        "original_type": "refund",
        "associated_data": "refund",
        **options,
    }
    return signed_notify(key, resource, timestamp=timestamp, **options)


def post_v3(url: str, headers: dict[str, str], body: bytes, client=None):
    """POST a v3 notify to the shop as WeChat does: JSON body, signature headers."""
    from django.test import Client

    headers = {name: value for name, value in headers.items() if name != "Content-Type"}
    return (client or Client()).post(
        url, data=body, content_type="application/json", headers=headers
    )


# -- WeChat Pay v3 behind ``responses``, for the shop's merchant ---------------------------------

JSAPI = "jsapi"
QUERY = "query"
CLOSE = "close"
REFUND = "refund"
REFUND_QUERY = "refund_query"
CERTIFICATES = "certificates"
TRADEBILL = "tradebill"
BILL_DOWNLOAD = "bill_download"

PAID_TRADE_STATES = ("SUCCESS", "REFUND")


def prepay_id_for(out_trade_no: str) -> str:
    """The prepay_id FakeWxPayV3 gives an order: stable, so a re-entry gets the same (§4.3)."""
    return "wx" + hashlib.sha256(out_trade_no.encode()).hexdigest()[:32]


def v3_refund_id_for(out_refund_no: str) -> str:
    """The refund_id FakeWxPayV3 gives a refund: stable, the same number is the same refund."""
    return "50300" + hashlib.sha256(out_refund_no.encode()).hexdigest()[:24]


BEIJING_TZ = timezone(timedelta(hours=8))
# The shop's client checks answers against the real clock (its config's, taken at import),
# whatever a test does to time.time.
_answer_clock = time.time


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(int(unix), BEIJING_TZ).isoformat()


@dataclass
class FakeWxPayV3:
    """``api.mch.weixin.qq.com``'s v3 endpoints behind ``responses``, for one merchant (the
    shop's appid and mchid, which are not this module's APPID/MCHID).

    Like WeChat it checks every request's Authorization with the merchant's *public* key
    (§2), keeps each order's trade and refunds (§4, §6, §8), and signs every answer over its
    raw bytes (§3) with ``wechat_key`` as ``PUBLIC_KEY_ID``, or with a platform certificate's
    key (``sign_with_platform``). The answers carry the real clock's timestamp: the shop's
    client checks the 5-minute window against it (§3.6).

    A test makes WeChat fail with ``errors`` (every call of an operation answers
    ``(status, code)``), ``error_queue`` (the next calls only) or ``exception`` (raised
    instead of answering, e.g. ``requests.ConnectionError``).
    """

    mock: responses.RequestsMock
    merchant_public_key: rsa.RSAPublicKey
    wechat_key: rsa.RSAPrivateKey
    appid: str
    mchid: str
    base: str = BASE
    merchant_serial: str = MERCHANT_SERIAL
    # (key, certificate, serial) of a platform certificate WeChat serves on /v3/certificates.
    platform: tuple | None = None
    sign_with_platform: bool = False
    apiv3_key: str = APIV3_KEY
    trades: dict[str, dict] = field(default_factory=dict)  # out_trade_no → trade
    refunds: dict[str, dict] = field(default_factory=dict)  # out_refund_no → refund object
    requests_seen: list[dict] = field(default_factory=list)
    errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    error_queue: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    exception: Exception | None = None
    # Trade bills by Beijing day, "yyyy-MM-dd" → the file (tests.factories.trade_bill); a day
    # without one answers NO_STATEMENT_EXIST (§9.1). ``bill_hash`` states another SHA1 than
    # the file's: a download damaged on the way (§9.2).
    bills: dict[str, bytes] = field(default_factory=dict)
    bill_hash: str | None = None

    def install(self) -> "FakeWxPayV3":
        base = re.escape(self.base.rstrip("/"))
        routes = [
            (responses.POST, self.base + "/v3/pay/transactions/jsapi", JSAPI, self._jsapi),
            (
                responses.POST,
                re.compile(base + r"/v3/pay/transactions/out-trade-no/[^/?]+/close$"),
                CLOSE,
                self._close,
            ),
            (
                responses.GET,
                re.compile(base + r"/v3/pay/transactions/out-trade-no/[^/?]+(\?.*)?$"),
                QUERY,
                self._query,
            ),
            (responses.POST, self.base + "/v3/refund/domestic/refunds", REFUND, self._refund),
            (
                responses.GET,
                re.compile(base + r"/v3/refund/domestic/refunds/[^/?]+$"),
                REFUND_QUERY,
                self._refund_query,
            ),
        ]
        routes += [
            (
                responses.GET,
                re.compile(base + r"/v3/bill/tradebill\?.*$"),
                TRADEBILL,
                self._tradebill,
            ),
            (
                responses.GET,
                re.compile(base + r"/v3/billdownload/file\?.*$"),
                BILL_DOWNLOAD,
                self._bill_download,
            ),
        ]
        if self.platform is not None:  # certificate mode (§3.4): WeChat serves them
            routes.append(
                (responses.GET, self.base + "/v3/certificates", CERTIFICATES, self._certificates)
            )
        for method, url, operation, handle in routes:
            self.mock.add_callback(method, url, callback=self._answering(operation, handle))
        return self

    # -- what tests read and set -----------------------------------------------------------

    def calls(self, operation: str = JSAPI) -> list[dict]:
        """The requests of one operation: ``{"path", "body" (JSON or None), "auth"}``."""
        return [r for r in self.requests_seen if r["operation"] == operation]

    def trade_add(self, out_trade_no: str, *, total: int, openid: str) -> dict:
        """An unpaid order WeChat already has (as if prepaid before the test)."""
        trade = {
            "request": None,
            "prepay_id": prepay_id_for(out_trade_no),
            "transaction": {
                "appid": self.appid,
                "mchid": self.mchid,
                "out_trade_no": out_trade_no,
                "trade_type": "JSAPI",
                "trade_state": "NOTPAY",
                "trade_state_desc": "订单未支付",
                "payer": {"openid": openid},
                "amount": {"total": total, "currency": "CNY"},
            },
        }
        self.trades[out_trade_no] = trade
        return trade["transaction"]

    def pay(
        self,
        out_trade_no: str,
        *,
        transaction_id: str = "4200002501202501018123456789",
        success_time: str = "2026-11-27T10:30:15+08:00",
        payer_total: int | None = None,
    ) -> dict:
        """The payer pays the order: its trade becomes SUCCESS (§6.2)."""
        transaction = self.trades[out_trade_no]["transaction"]
        total = transaction["amount"]["total"]
        transaction.update(
            trade_state="SUCCESS",
            trade_state_desc="支付成功",
            transaction_id=transaction_id,
            bank_type="OTHERS",
            success_time=success_time,
            amount={
                "total": total,
                "payer_total": total if payer_total is None else payer_total,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        )
        return transaction

    def refund_settle(self, out_refund_no: str, status: str = "SUCCESS") -> dict:
        """WeChat finishes a refund (§8.2): SUCCESS, CLOSED or ABNORMAL."""
        refund = self.refunds[out_refund_no]
        refund["status"] = status
        if status == "SUCCESS":
            refund["success_time"] = rfc3339(_answer_clock())
        return refund

    # -- the endpoints -----------------------------------------------------------------------

    def _answering(self, operation: str, handle):
        def answer(request):
            if self.exception is not None:
                raise self.exception
            auth = request_signature_ok(request, self.merchant_public_key)
            assert auth["mchid"] == self.mchid, "Authorization names another mchid"
            assert auth["serial_no"] == self.merchant_serial, "not the merchant's serial"
            body = json.loads(request.body) if request.body else None
            self.requests_seen.append(
                {"operation": operation, "path": request.path_url, "body": body, "auth": auth}
            )
            queued = self.error_queue.get(operation)
            failure = queued.pop(0) if queued else self.errors.get(operation)
            if failure is not None:
                return error_answer(*failure, "test")
            status, payload = handle(request, body)
            if status >= 400:
                return error_answer(status, payload, "test")
            if operation == BILL_DOWNLOAD:  # the file itself, unsigned (§9.2)
                return status, {"Content-Type": "application/octet-stream"}, payload
            return self._signed(payload, status)

        return answer

    def _signed(self, payload, status: int) -> tuple[int, dict[str, str], bytes]:
        if self.sign_with_platform:
            key, _, serial = self.platform
        else:
            key, serial = self.wechat_key, PUBLIC_KEY_ID
        return signed_answer(key, payload, status, serial=serial, timestamp=int(_answer_clock()))

    def _jsapi(self, request, body: dict):
        assert (body["appid"], body["mchid"]) == (self.appid, self.mchid), "not the shop's"
        number = body["out_trade_no"]
        trade = self.trades.get(number)
        if trade is None:
            self.trade_add(number, total=body["amount"]["total"], openid=body["payer"]["openid"])
            trade = self.trades[number]
            trade["request"] = body
        state = trade["transaction"]["trade_state"]
        if state in PAID_TRADE_STATES:
            return 400, "ORDERPAID"
        if state == "CLOSED":
            return 400, "ORDER_CLOSED"
        if trade["request"] not in (None, body):
            return 400, "INVALID_REQUEST"  # re-entry with other parameters (§4.3)
        trade["request"] = body
        return 200, {"prepay_id": trade["prepay_id"]}

    def _number_in_path(self, request, before: str) -> str:
        path = request.path_url.split("?", 1)[0]
        return path.split(before, 1)[1].split("/", 1)[0]

    def _query(self, request, body):
        assert request.path_url.endswith(f"?mchid={self.mchid}"), "mchid missing from the query"
        trade = self.trades.get(self._number_in_path(request, "/out-trade-no/"))
        if trade is None:
            return 404, "ORDER_NOT_EXIST"
        return 200, trade["transaction"]

    def _close(self, request, body: dict):
        assert body == {"mchid": self.mchid}
        trade = self.trades.get(self._number_in_path(request, "/out-trade-no/"))
        if trade is None:
            return 404, "ORDER_NOT_EXIST"
        transaction = trade["transaction"]
        if transaction["trade_state"] in PAID_TRADE_STATES:
            return 400, "ORDER_PAID"
        transaction.update(trade_state="CLOSED", trade_state_desc="订单已关闭")
        return 204, b""

    def _refund(self, request, body: dict):
        assert "mchid" not in body  # it comes from Authorization (§8.1)
        trade = self.trades.get(body.get("out_trade_no", ""))
        if trade is None or trade["transaction"]["trade_state"] not in PAID_TRADE_STATES:
            return 404, "RESOURCE_NOT_EXISTS"
        transaction = trade["transaction"]
        amount = body["amount"]
        number = body["out_refund_no"]
        known = self.refunds.get(number)
        if known is not None:
            if known["_request"] != body:
                return 400, "INVALID_REQUEST"
            return 200, _public(known)
        refunded = sum(
            r["amount"]["refund"]
            for r in self.refunds.values()
            if r["out_trade_no"] == transaction["out_trade_no"] and r["status"] != "CLOSED"
        )
        if amount["total"] != transaction["amount"]["total"]:
            return 400, "INVALID_REQUEST"
        if refunded + amount["refund"] > amount["total"]:
            return 400, "INVALID_REQUEST"
        self.refunds[number] = {
            "_request": body,
            "refund_id": v3_refund_id_for(number),
            "out_refund_no": number,
            "transaction_id": transaction["transaction_id"],
            "out_trade_no": transaction["out_trade_no"],
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": rfc3339(_answer_clock()),
            "status": "PROCESSING",
            "funds_account": "AVAILABLE",
            "amount": {
                "total": amount["total"],
                "refund": amount["refund"],
                "payer_total": amount["total"],
                "payer_refund": amount["refund"],
                "currency": "CNY",
            },
        }
        transaction["trade_state"] = "REFUND"
        return 200, _public(self.refunds[number])

    def _refund_query(self, request, body):
        refund = self.refunds.get(self._number_in_path(request, "/refunds/"))
        if refund is None:
            return 404, "RESOURCE_NOT_EXISTS"
        return 200, _public(refund)

    def _certificates(self, request, body):
        _, certificate, serial = self.platform
        resource = encrypt_resource(
            self.apiv3_key,
            pem_of(certificate).encode(),
            associated_data="certificate",
            original_type="certificate",
        )
        resource.pop("original_type")
        entry = {
            "serial_no": serial,
            "effective_time": certificate.not_valid_before_utc.isoformat(),
            "expire_time": certificate.not_valid_after_utc.isoformat(),
            "encrypt_certificate": resource,
        }
        return 200, {"data": [entry]}

    def _tradebill(self, request, body):
        query = dict(parse_qsl(urlsplit(request.url).query))
        assert set(query) <= {"bill_date", "bill_type", "tar_type"}, query
        assert query.get("tar_type", "GZIP") == "GZIP"
        day = query["bill_date"]
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", day), "bill_date is yyyy-MM-dd"
        file = self.bills.get(day)
        if file is None:
            return 400, "NO_STATEMENT_EXIST"
        tar = "&tar_type=GZIP" if query.get("tar_type") else ""
        return 200, {
            "hash_type": "SHA1",
            # Of the uncompressed file, whatever tar_type says (§9.1).
            "hash_value": self.bill_hash or hashlib.sha1(file).hexdigest(),
            "download_url": f"{self.base}/v3/billdownload/file?token={day}{tar}",
        }

    def _bill_download(self, request, body):
        query = dict(parse_qsl(urlsplit(request.url).query))
        file = self.bills[query["token"]]
        return 200, gzip.compress(file) if query.get("tar_type") else file


def _public(refund: dict) -> dict:
    return {k: v for k, v in refund.items() if not k.startswith("_")}
