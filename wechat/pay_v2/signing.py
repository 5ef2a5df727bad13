"""The v2 signature (§2): MD5 or HMAC-SHA256 over sorted ``name=value`` pairs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)

# An HMAC-SHA256 sign is 64 hex digits, an MD5 sign 32 (§5.3).
_HMAC_SIGN_LENGTH = 64


def _string_to_sign(params: Mapping[str, object], key: str) -> str:
    """§2.1 steps 1-5: drop ``sign`` and empty values, sort by byte order, append the key.

    Values are used raw (no URL- or XML-escaping). Python sorts str by code point, which is
    the same as sorting their UTF-8 bytes, i.e. the byte order the protocol asks for.
    """
    pairs = sorted(
        (name, str(value)) for name, value in params.items() if name != "sign" and value is not None
    )
    return "&".join(f"{name}={value}" for name, value in pairs if value != "") + f"&key={key}"


def sign(params: Mapping[str, object], key: str, sign_type: str = MD5) -> str:
    """Return the uppercase-hex ``sign`` of ``params`` (§2.1 steps 6-7).

    For HMAC-SHA256 the API key is the HMAC key *and* stays in the message as ``&key=...``.
    """
    # Mutation testing: codec names ignore case ("UTF-8" is "utf-8"), and UTF-8 is what
    # encode() uses anyway; those mutants of the lines marked here are equivalent.
    message = _string_to_sign(params, key).encode("utf-8")  # pragma: no mutate
    if sign_type == MD5:
        # usedforsecurity only matters where OpenSSL runs in FIPS mode: its mutants are
        # equivalent on every other build.
        digest = hashlib.md5(message, usedforsecurity=False).hexdigest()  # pragma: no mutate
    elif sign_type == HMAC_SHA256:
        # pragma: no mutate start ("UTF-8" and encode()'s default name the same codec)
        digest = hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()
        # pragma: no mutate end
    else:
        raise ValueError(f"unknown sign_type {sign_type!r}; expected one of {SIGN_TYPES}")
    return digest.upper()


def verify(params: Mapping[str, object], key: str, sign_type: str = MD5) -> bool:
    """Check the ``sign`` WeChat sent over *all* received fields.

    WeChat may add fields at any time and signs them too (§2.1, last paragraph), so the raw
    received mapping must be passed, not a filtered copy. Constant-time comparison.
    """
    received = params.get("sign")
    if not isinstance(received, str) or not received or sign_type not in SIGN_TYPES:
        return False
    expected = sign(params, key, sign_type)
    # Compare bytes: compare_digest refuses non-ASCII str, and a hostile sign may be non-ASCII.
    # pragma: no mutate start ("ASCII" and "UTF-8" name the same codecs as the originals)
    return hmac.compare_digest(expected.encode("ascii"), received.encode("utf-8"))
    # pragma: no mutate end


def notify_sign_type(params: Mapping[str, object], default: str | None = None) -> str:
    """Pick the algorithm that signed a notify.

    Order: a valid ``sign_type`` field; else ``default`` (the type the order was placed
    with); else the sign length. WeChat signs notifies of HMAC-SHA256 orders with HMAC but
    often omits ``sign_type``, although the documented default is MD5 (§5.3).
    """
    declared = params.get("sign_type")
    if declared in SIGN_TYPES:
        return str(declared)
    if default is not None:
        if default not in SIGN_TYPES:
            raise ValueError(f"unknown default sign_type {default!r}")
        return default
    received = params.get("sign")
    if isinstance(received, str) and len(received) == _HMAC_SIGN_LENGTH:
        return HMAC_SHA256
    return MD5


def nonce_str() -> str:
    """A fresh 32-character random ``nonce_str`` (String(32), §3.1)."""
    return secrets.token_hex(16)
