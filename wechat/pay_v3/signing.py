"""Our side of the v3 signatures: requests (§2) and ``wx.requestPayment``'s paySign (§5.2).

SHA256withRSA with PKCS#1 v1.5 padding (not PSS) and the merchant private key, Base64 with
padding. PKCS#1 v1.5 is deterministic: the same key and message give the same signature,
which is what lets the tests pin WeChat's official examples.
"""

from __future__ import annotations

import base64
import re
import secrets

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Codec names as constants: mutmut mutates literals in functions, and "ASCII" or
# "UTF-8" name the same codecs (equivalent mutants), while module constants stay as they are.
_ASCII = "ascii"

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
PAY_SIGN_TYPE = "RSA"
_MIN_KEY_BITS = 2048
# What goes between the quotes of the Authorization header: no quote, comma or space.
_HEADER_VALUE = re.compile(r"[0-9A-Za-z_\-]+")


def load_private_key(pem: bytes | str) -> rsa.RSAPrivateKey:
    """The merchant's ``apiclient_key.pem`` (PKCS#8, unencrypted, §1.1) as a key object."""
    try:
        data = pem.encode(_ASCII) if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The loader's own message may quote the input; never let key material near a log.
        raise ValueError("not an unencrypted PEM private key") from None
    return check_private_key(key)


def check_private_key(key: object) -> rsa.RSAPrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the merchant key must be an RSA private key")
    if key.key_size < _MIN_KEY_BITS:
        raise ValueError(f"the merchant key must have at least {_MIN_KEY_BITS} bits")
    return key


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """``base64(SHA256withRSA(PKCS#1 v1.5, message))`` (§2.2)."""
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode(_ASCII)


def request_message(method: str, url: str, timestamp: int | str, nonce: str, body: bytes) -> bytes:
    """The five lines of §2.1, each ending in ``\\n``, the last one included.

    ``url`` is the path and query exactly as sent (no scheme or host); ``body`` the exact
    bytes sent, empty for GET (its ``\\n`` stays).
    """
    head = f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    url: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> str:
    """The ``Authorization`` header of one request (§2.3)."""
    for name, value in (("mchid", mchid), ("serial_no", serial_no), ("nonce", nonce)):
        # A quote or comma in a value would change the header's meaning.
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(f"{name} may hold only letters, digits, '_' and '-'")
    signature = rsa_sign(private_key, request_message(method, url, timestamp, nonce, body))
    return (
        f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def pay_sign(
    private_key: rsa.RSAPrivateKey, *, app_id: str, timestamp: str, nonce: str, package: str
) -> str:
    """``paySign`` of ``wx.requestPayment`` (§5.2): four lines, each ending in ``\\n``.

    ``package`` is ``prepay_id=<id>`` (the APP variant's bare prepay_id is refused by a
    mini-program).
    """
    return rsa_sign(private_key, f"{app_id}\n{timestamp}\n{nonce}\n{package}\n".encode())


def nonce_str() -> str:
    """A fresh 32-character random nonce (what WeChat's SDKs send, §2.1)."""
    return secrets.token_hex(16).upper()
