"""Message push (消息推送): verifying and decrypting what WeChat posts to the shop. No Django.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

- URL verification and plaintext mode (§3.2, §3.3): ``signature`` = sha1 of the sorted Token,
  timestamp and nonce. It does not cover the body.
- Safe mode (§3.4): ``msg_signature`` = sha1 of the sorted Token, timestamp, nonce and
  ``Encrypt``; ``Encrypt`` is AES-256-CBC with key = Base64(EncodingAESKey + "="), IV = the
  key's first 16 bytes, PKCS#7 padding to **32** bytes, over
  ``random(16) ‖ length(4, big-endian) ‖ message ‖ AppID``; the AppID must be ours.
- The JSON data format (§3.5): ``CreateTime`` a number or a string of digits.

Every refusal is a ``PushError`` subclass, one per thing the caller does about it: the
signature functions answer a plain bool, decryption raises ``PushDecryptError`` or
``PushAppIdMismatch`` (not authentic: refuse), ``PushMalformed`` (authentic or not yet known,
but unreadable), ``PushAesKeyInvalid`` (our own configuration is wrong).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # PKCS#7 to 32 bytes, not AES's 16 (§3.4 step 3)
RANDOM_BYTES = 16
LENGTH_BYTES = 4
# The ledger's columns (shipping.models.MessageEvent): longer values are not WeChat's.
MAX_EVENT_CHARS = 64
MAX_ID_CHARS = 64
MAX_CREATE_TIME = 2**63 - 1


class PushError(Exception):
    """A message push, or our key for it, that cannot be used."""


class PushDecryptError(PushError):
    """``Encrypt`` is not Base64 of whole 32-byte blocks, its padding or length field is
    wrong, or it was encrypted with another key: not authentic."""


class PushAppIdMismatch(PushError):
    """Decrypted, but for another mini-program (``appid`` is the one found)."""

    def __init__(self, appid: str) -> None:
        super().__init__(f"the ciphertext is for AppID {appid[:32]!r}, not ours")
        self.appid = appid


class PushMalformed(PushError):
    """The body (or the decrypted message) is not a JSON event this module can read."""


class PushAesKeyInvalid(PushError, ValueError):
    """The EncodingAESKey is not 43 Base64 characters of a 32-byte key: a configuration
    error on our side, never the sender's."""


@dataclass(frozen=True)
class Envelope:
    """A decrypted ``Encrypt`` (§3.4 step 4), before the AppID is checked."""

    random: bytes
    message: bytes
    appid: str


@dataclass(frozen=True)
class PushEvent:
    """The fields of an event the shop reads (§2.8), and the whole event as sent."""

    event: str
    create_time: int
    transaction_id: str = ""
    from_user: str = ""
    msg_type: str = ""
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


# -- signatures (§3.2 to §3.4) ----------------------------------------------------------------


def _sha1_sorted(*parts: str) -> str:
    # sha1 is WeChat's choice here, not ours.
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324


def _same(expected: str, received: str) -> bool:
    # compare_digest refuses non-ASCII str: compare bytes, so any input is just "not equal".
    return hmac.compare_digest(expected.encode("utf-8"), str(received).encode("utf-8"))


def verify_signature(token: str, timestamp: str, nonce: str, signature: str) -> bool:
    """``signature`` of a URL verification (GET) or a plaintext push (§3.2, §3.3), compared
    in constant time. An empty Token verifies nothing: anyone could compute that one."""
    if not token:
        return False
    return _same(_sha1_sorted(token, timestamp, nonce), signature)


def verify_msg_signature(
    token: str, timestamp: str, nonce: str, encrypt: str, msg_signature: str
) -> bool:
    """``msg_signature`` of a safe-mode push (§3.4 step 1): it covers ``Encrypt``, where the
    plain ``signature`` (also sent) does not."""
    if not token:
        return False
    return _same(_sha1_sorted(token, timestamp, nonce, encrypt), msg_signature)


# -- decryption (§3.4 steps 2 to 4) -----------------------------------------------------------


def push_aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of an EncodingAESKey (§3.1: 43 characters, Base64 without ``=``)."""
    if not isinstance(encoding_aes_key, str) or len(encoding_aes_key) != 43:
        raise PushAesKeyInvalid("the EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        raise PushAesKeyInvalid("the EncodingAESKey is not Base64") from None
    if len(key) != 32:  # pragma: no cover - 43 Base64 characters + "=" are always 32 bytes
        raise PushAesKeyInvalid("the EncodingAESKey must decode to 32 bytes")
    return key


def decrypt_envelope(encoding_aes_key: str, encrypt: str) -> Envelope:
    """Decrypt ``Encrypt`` and split it; the AppID is not checked here (``decrypt_message``
    does). Raises ``PushDecryptError``, or ``PushAesKeyInvalid`` for our own key."""
    key = push_aes_key(encoding_aes_key)
    try:
        data = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise PushDecryptError("Encrypt is not Base64") from None
    if not data or len(data) % BLOCK:
        raise PushDecryptError(f"Encrypt is not whole {BLOCK}-byte blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    # Strict PKCS#7: a forged or garbled ciphertext rarely ends in 1 to 32 equal bytes.
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise PushDecryptError("bad PKCS#7 padding (wrong key, or not encrypted by WeChat)")
    plain = plain[:-pad]
    header = RANDOM_BYTES + LENGTH_BYTES
    if len(plain) < header:
        raise PushDecryptError("the plaintext is shorter than its header")
    length = int.from_bytes(plain[RANDOM_BYTES:header], "big")
    if header + length > len(plain):
        raise PushDecryptError("the message length runs past the plaintext")
    try:
        appid = plain[header + length :].decode("utf-8")
    except UnicodeDecodeError:
        raise PushDecryptError("the AppID is not text (wrong key?)") from None
    return Envelope(
        random=plain[:RANDOM_BYTES], message=plain[header : header + length], appid=appid
    )


def decrypt_message(encoding_aes_key: str, encrypt: str, appid: str) -> bytes:
    """The message inside a safe-mode ``Encrypt``, once it has shown to be for ``appid``.

    Raises ``PushDecryptError`` (not decryptable with this key), ``PushAppIdMismatch``
    (another mini-program's), ``PushAesKeyInvalid`` (our key is not an EncodingAESKey).
    """
    envelope = decrypt_envelope(encoding_aes_key, encrypt)
    if not appid or not _same(appid, envelope.appid):
        raise PushAppIdMismatch(envelope.appid)
    return envelope.message


# -- the JSON data format (§3.4, §3.5) ---------------------------------------------------------


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PushMalformed(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise PushMalformed(f"{what} is not a JSON object")
    return value


def encrypted_field(body: bytes) -> str:
    """``Encrypt`` of a safe-mode body ``{"ToUserName", "Encrypt"}`` (compatible mode sends
    the plaintext fields beside it: only the ciphertext is to be trusted, §3.5 step 6)."""
    encrypt = _json_object(body, "the body").get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise PushMalformed("the body has no Encrypt")
    return encrypt


def _text(event: dict[str, Any], name: str, limit: int) -> str:
    value = event.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise PushMalformed(f"{name} is not a string of at most {limit} characters")
    return value


def _create_time(value: object) -> int:
    # §3.5 step 5: sometimes a number, sometimes a string. bool is an int to Python: not here.
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CREATE_TIME:
        raise PushMalformed("CreateTime is not Unix seconds")
    return value


def parse_event(message: bytes) -> PushEvent:
    """A JSON event (plaintext body, or the decrypted message) as a ``PushEvent``.

    ``Event`` is empty for what is not an event (a customer-service message); ``CreateTime``
    is required (it is what tells two events apart, with the transaction and the event).
    """
    event = _json_object(message, "the event")
    return PushEvent(
        event=_text(event, "Event", MAX_EVENT_CHARS),
        create_time=_create_time(event.get("CreateTime")),
        transaction_id=_text(event, "transaction_id", MAX_ID_CHARS),
        from_user=_text(event, "FromUserName", MAX_ID_CHARS),
        msg_type=_text(event, "MsgType", MAX_ID_CHARS),
        payload=event,
    )
