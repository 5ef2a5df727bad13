"""The refund result notify's encrypted ``req_info`` (§7.3).

A refund notify carries no ``sign``: the only proof that WeChat sent it is that
``req_info`` decrypts with our API key into a well-formed ``<root>`` document. So every
way that can fail (not base64, not whole AES blocks, bad PKCS#7 padding, not UTF-8, not
the flat XML) is one error, :class:`ReqInfoError`, and nothing else escapes.

AES-ECB has no integrity check of its own. Blocks of genuine notifies could in theory be
spliced together, so callers must still check the decrypted fields against their own
records (out_trade_no, refund_fee) before believing them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import ReqInfoError, XMLError
from .xml import MAX_BODY_BYTES, from_xml

_AES_BLOCK_BITS = 128
_AES_BLOCK_BYTES = _AES_BLOCK_BITS // 8
_WHITESPACE = re.compile(r"[ \t\r\n]")


def req_info_key(api_key: str) -> bytes:
    """§7.3 step 2: the lowercase hex MD5 of the APIv2 key, used as 32 ASCII bytes.

    Not the 16 raw digest bytes: that would be AES-128 and decrypt nothing.
    """
    # pragma: no mutate start (usedforsecurity matters only under FIPS, and "UTF-8" names
    # the same codec: equivalent mutants)
    return hashlib.md5(api_key.encode("utf-8"), usedforsecurity=False).hexdigest().encode("ascii")
    # pragma: no mutate end


def decrypt_req_info(req_info: str, api_key: str) -> dict[str, str]:
    """Decrypt ``req_info`` and return the fields of its ``<root>`` document (§7.3).

    Raises :class:`ReqInfoError` for anything that is not a genuine payload.
    """
    plaintext = _decrypt(_ciphertext(req_info), req_info_key(api_key))
    try:
        return from_xml(plaintext, root="root")
    except XMLError as exc:
        raise ReqInfoError(f"req_info did not decrypt to a <root> document: {exc}") from None


def _ciphertext(req_info: str) -> bytes:
    if not isinstance(req_info, str) or not req_info:
        raise ReqInfoError("req_info is missing")
    # Base64 is ASCII; some encoders wrap lines, which carries no meaning.
    compact = _WHITESPACE.sub("", req_info)
    if len(compact) > MAX_BODY_BYTES:
        raise ReqInfoError("req_info is too long")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ReqInfoError("req_info is not base64") from None
    if not data or len(data) % _AES_BLOCK_BYTES:
        raise ReqInfoError("req_info is not a whole number of AES blocks")
    return data


def _decrypt(data: bytes, key: bytes) -> bytes:
    # ECB because that is the protocol (§7.3 step 3), not a choice of ours.
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    padded = decryptor.update(data) + decryptor.finalize()
    # The unpadder checks every padding byte, so a wrong key fails here ~255 times in 256.
    unpadder = padding.PKCS7(_AES_BLOCK_BITS).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ReqInfoError("req_info has invalid padding (wrong key or damaged)") from None
