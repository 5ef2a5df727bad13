"""Payment and refund notifies (§7, §8.5): verify over the raw body, then decrypt.

The order is §7.4's: the signature (window, probes and serial included) before anything in
the body is read, then the resource. A caller answers 401 to a
:class:`~wechat.pay_v3.errors.WxPayV3SignatureError`, 400 to :class:`MalformedNotify` or
:class:`DecryptError` (and alerts: the APIv3 key is probably wrong), so WeChat retries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .aead import decrypt_resource
from .errors import MalformedNotify, WxPayV3SignatureError
from .results import Notify, Refund, Transaction
from .times import parse_rfc3339
from .verifying import KeyRing, verify_signature

# A real notify is about 1 KiB; refuse a flood before hashing it.
MAX_NOTIFY_BYTES = 64 * 1024
_KINDS: dict[str, type[Transaction] | type[Refund]] = {
    "transaction": Transaction,
    "refund": Refund,
}
_EVENT_KINDS = {"TRANSACTION": "transaction", "REFUND": "refund"}


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:  # UnicodeDecodeError included
        raise MalformedNotify(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedNotify(f"{what} is not a JSON object")
    return value


def _text(envelope: Mapping[str, Any], name: str) -> str:
    value = envelope.get(name, "")
    if not isinstance(value, str):
        raise MalformedNotify(f"notify {name} is not a string")
    return value


def parse_notify(
    headers: Mapping[str, object],
    body: bytes,
    *,
    keyring: KeyRing,
    apiv3_key: str,
    now: float | None = None,
    mchid: str | None = None,
    appid: str | None = None,
) -> Notify:
    """Verify, decrypt and type one notify. ``body`` is ``request.body``, untouched.

    With ``mchid`` / ``appid`` given, a resource for another merchant or app is refused as
    not ours (:class:`WxPayV3SignatureError`); amounts and numbers against the shop's own
    records are the caller's check (§7.4 step 4).
    """
    if not isinstance(body, bytes):
        raise TypeError("parse the raw body bytes, never re-encoded JSON (§3.2)")
    if len(body) > MAX_NOTIFY_BYTES:
        raise MalformedNotify("notify body is too large")
    verify_signature(headers, body, keyring, now=now)

    envelope = _json_object(body, "notify body")
    resource = envelope.get("resource")
    if not isinstance(resource, Mapping):
        raise MalformedNotify("notify has no resource object")
    event_type = _text(envelope, "event_type")
    original_type = _text(resource, "original_type")
    created = envelope.get("create_time")
    try:
        create_time = parse_rfc3339(created) if created else None
    except ValueError:
        raise MalformedNotify("notify create_time is not an RFC 3339 time") from None

    data = _json_object(decrypt_resource(resource, apiv3_key), "decrypted resource")
    kind = original_type or _EVENT_KINDS.get(event_type.partition(".")[0])
    builder = _KINDS.get(kind)
    try:
        typed = builder.from_json(data) if builder is not None else None
    except ValueError as exc:
        raise MalformedNotify(f"decrypted {kind}: {exc}") from None

    if mchid is not None and data.get("mchid") != mchid:
        raise WxPayV3SignatureError("notify is for another mchid")
    if appid is not None and isinstance(typed, Transaction) and typed.appid != appid:
        raise WxPayV3SignatureError("notify is for another appid")
    return Notify(
        id=_text(envelope, "id"),
        event_type=event_type,
        create_time=create_time,
        summary=_text(envelope, "summary"),
        original_type=original_type,
        resource=typed,
        data=data,
    )
