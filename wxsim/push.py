"""Message push (消息推送): WeChat posting an event to the shop's message URL.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

JSON data format, plaintext (§3.3) or safe mode (§3.4). Safe mode encrypts
``16 random bytes ‖ 4-byte big-endian length ‖ message ‖ AppID`` with AES-256-CBC, key =
Base64(EncodingAESKey + "="), IV = the key's first 16 bytes, PKCS#7 padding to 32 bytes, and
signs ``msg_signature`` over the sorted Token, timestamp, nonce and Encrypt. The vectors of §7
are reproduced by tests/wxsim/test_push.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import string
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from wxsim.state import Simulator

try:  # the same optional dependency as the refund notify's req_info
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:  # pragma: no cover - cryptography is in requirements.txt
    Cipher = None  # type: ignore[assignment,misc]

MODES = ("plaintext", "safe")
BLOCK = 32  # PKCS#7 to 32 bytes, not AES's 16 (§3.4 step 3)
HEADERS = {"Content-Type": "application/json", "User-Agent": "wxsim (message push simulator)"}


def signature(*parts: str) -> str:
    """§3.2: sha1 of the sorted parts joined, lowercase hex (Token, timestamp, nonce[, Encrypt])."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324


def aes_key(encoding_aes_key: str) -> bytes:
    """§3.1: 43 characters, the Base64 of 32 bytes without its ``=``."""
    if not isinstance(encoding_aes_key, str) or len(encoding_aes_key) != 43:
        raise ValueError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("EncodingAESKey is not Base64") from None
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


def encrypt(message: bytes, encoding_aes_key: str, appid: str, random: bytes | None = None) -> str:
    """The ``Encrypt`` field of §3.4; ``random`` (16 bytes) is fixed only to replay vectors."""
    if Cipher is None:  # pragma: no cover
        raise RuntimeError("the cryptography package is needed for safe-mode pushes")
    key = aes_key(encoding_aes_key)
    prefix = random if random is not None else _random_prefix()
    if len(prefix) != 16:
        raise ValueError("the random prefix is 16 bytes")
    plain = prefix + len(message).to_bytes(4, "big") + message + appid.encode("utf-8")
    pad = BLOCK - len(plain) % BLOCK  # 1..32: a full block of padding when already aligned
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def _random_prefix() -> bytes:
    # WeChat's own look like 16 hex characters (§7: "a8eedb185eb2fecf").
    return secrets.token_hex(8).encode("ascii")


def event_json(event: dict[str, Any]) -> bytes:
    # Compact and unescaped, as WeChat's pushes look (§7).
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_push(
    event: dict[str, Any],
    *,
    mode: str,
    token: str,
    timestamp: str,
    nonce: str,
    encoding_aes_key: str = "",
    appid: str = "",
    random: bytes | None = None,
) -> tuple[dict[str, str], bytes]:
    """The query parameters and body WeChat posts for ``event`` (§3.3, §3.4)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    query = {"signature": signature(token, timestamp, nonce), "timestamp": timestamp,
             "nonce": nonce}
    message = event_json(event)
    if mode == "plaintext":
        return query, message
    encrypted = encrypt(message, encoding_aes_key, appid, random)
    query.update(
        openid=str(event.get("FromUserName", "")),
        encrypt_type="aes",
        msg_signature=signature(token, timestamp, nonce, encrypted),
    )
    body = {"ToUserName": event.get("ToUserName", ""), "Encrypt": encrypted}
    return query, event_json(body)


def is_push_accepted(status: int | None, content: bytes) -> bool:
    """§3.5 step 4: ``success`` or an empty body, with HTTP 200."""
    return status == 200 and content.strip() in (b"", b"success")


def deliver(
    sim: Simulator, url: str, query: dict[str, str], body: bytes, copies: int = 1
) -> list[dict[str, Any]]:
    """POST the push ``copies`` times now (identical, as WeChat's retries are); log each."""
    target = url + ("&" if "?" in url else "?") + urlencode(query)
    attempts = [
        sim.notifier.post_once(target, body, HEADERS, is_push_accepted, number)
        for number in range(1, copies + 1)
    ]
    with sim.lock:
        sim.pushes.extend({"url": url, **attempt} for attempt in attempts)
    return attempts


def new_timestamp_and_nonce(sim: Simulator) -> tuple[str, str]:
    nonce = "".join(secrets.choice(string.digits) for _ in range(10)).lstrip("0") or "1"
    return str(int(sim.now())), nonce
