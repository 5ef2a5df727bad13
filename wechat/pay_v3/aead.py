"""AES-256-GCM decryption of notify resources and downloaded certificates (§7.2, §3.4).

The key is the APIv3 key's 32 bytes; the nonce and the associated data are used as UTF-8
text, **not** Base64-decoded; the ciphertext is Base64 of ciphertext ‖ 16-byte tag. GCM
authenticates all of it, so a wrong key and a tampered ciphertext, associated data or nonce
all fail the same way: :class:`~wechat.pay_v3.errors.DecryptError`, and nothing else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptError

# Codec names as constants: mutmut mutates literals in functions, and "ASCII" or
# "UTF-8" name the same codecs (equivalent mutants), while module constants stay as they are.
_ASCII = "ascii"
_UTF8 = "utf-8"

ALGORITHM = "AEAD_AES_256_GCM"
APIV3_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# A notify resource is a few hundred bytes, a certificate under 2 KiB.
MAX_CIPHERTEXT_CHARS = 256 * 1024


def check_apiv3_key(apiv3_key: str) -> bytes:
    """The APIv3 key as the AES key: exactly 32 ASCII characters (§1.1)."""
    if not isinstance(apiv3_key, str) or not apiv3_key.isascii():
        raise ValueError("the APIv3 key must be 32 ASCII characters")
    key = apiv3_key.encode(_ASCII)
    if len(key) != APIV3_KEY_BYTES:
        raise ValueError("the APIv3 key must be exactly 32 ASCII characters")
    return key


def decrypt(apiv3_key: str, *, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    """Decrypt one AEAD_AES_256_GCM payload (§7.2); empty associated data is no AAD."""
    key = check_apiv3_key(apiv3_key)
    if not isinstance(nonce, str) or len(nonce.encode(_UTF8)) != NONCE_BYTES:
        raise DecryptError(f"the nonce must be {NONCE_BYTES} bytes")
    if not isinstance(associated_data, str):
        raise DecryptError("associated_data is not text")
    if not isinstance(ciphertext, str) or len(ciphertext) > MAX_CIPHERTEXT_CHARS:
        raise DecryptError("ciphertext missing or too long")
    try:
        data = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("ciphertext is not Base64") from None
    if len(data) < TAG_BYTES:
        raise DecryptError("ciphertext is shorter than its tag")
    try:
        return AESGCM(key).decrypt(
            nonce.encode(_UTF8),
            data,
            associated_data.encode(_UTF8) or None,
        )
    except InvalidTag:
        raise DecryptError(
            "AES-GCM authentication failed: wrong APIv3 key (reset on the merchant platform?)"
            " or tampered ciphertext, associated_data or nonce"
        ) from None


def decrypt_resource(resource: object, apiv3_key: str) -> bytes:
    """Decrypt a notify ``resource`` or an ``encrypt_certificate`` object (§7.1, §3.4)."""
    if not isinstance(resource, Mapping):
        raise DecryptError("resource is not an object")
    algorithm = resource.get("algorithm")
    if algorithm != ALGORITHM:
        raise DecryptError(f"algorithm {str(algorithm)[:40]!r} is not {ALGORITHM}")
    # associated_data may be empty or absent (§7.1): both mean no AAD.
    associated_data = resource.get("associated_data")
    return decrypt(
        apiv3_key,
        nonce=resource.get("nonce"),  # checked by decrypt
        associated_data="" if associated_data is None else associated_data,
        ciphertext=resource.get("ciphertext"),
    )
