"""WeChat Pay v3 as the tests play it, written independently of ``wechat.pay_v3``.

Tests sign answers and notifies, check our request signatures and encrypt resources with
these few lines straight from the protocol note (§13.6), never with the production code they
check, so that a bug there makes tests fail instead of agreeing with itself. Also WeChat's
published example key pair and vectors (§2.4, §5.2, §13.3, §13.4).
"""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import base64
import json
import re
from datetime import UTC, datetime

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
