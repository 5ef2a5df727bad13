"""The JSON pipeline of the mini-program server API on api.weixin.qq.com.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

Order of checks, one errcode each, always HTTP 200 (introduction of the notes): POST only
(``43002``), the access_token in the query string (``41001`` missing, ``40001`` unknown, stale
or replaced, ``42001`` expired; §1.3), a JSON object body (``47001``), then the endpoint's own
checks. ``stable_token`` itself needs no token.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from wxsim.state import Simulator

STALE_ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40014: "invalid access_token",
    42001: "access_token expired",
}
Handler = Callable[[Simulator, dict[str, Any]], dict[str, Any]]


class ApiError(Exception):
    """An errcode answer: ``{"errcode", "errmsg": "<text> rid: <id>"}``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def error_answer(errcode: int, errmsg: str) -> dict[str, Any]:
    # Real errmsgs end with " rid: <id>" (three dash-joined hex groups), worth logging.
    rid = "-".join(secrets.token_hex(4) for _ in range(3))
    return {"errcode": errcode, "errmsg": f"{errmsg} rid: {rid}"}


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def handle(
    sim: Simulator,
    handler: Handler,
    method: str,
    query: dict[str, str],
    body: bytes,
    *,
    needs_token: bool = True,
    system_error: bool = False,
) -> dict[str, Any]:
    """Run one call end to end; returns the JSON answer. Nothing is recorded on an error."""
    try:
        if method != "POST":
            raise ApiError(43002, "require POST method")
        if system_error:
            raise ApiError(-1, "system error")
        if needs_token:
            use_token(sim, query.get("access_token", ""))
        return handler(sim, json_object(body))
    except ApiError as exc:
        return error_answer(exc.errcode, exc.errmsg)


def use_token(sim: Simulator, token: str) -> None:
    """§1.3: the token must be one stable_token issued, not stale, not past its expiry."""
    if not token:
        raise ApiError(41001, "access_token missing")
    with sim.lock:
        record = sim.tokens.get(token)
        if record is None:
            raise ApiError(40001, "invalid credential, access_token is invalid or not latest")
        if record.stale_errcode:
            raise ApiError(record.stale_errcode, STALE_ERRMSG[record.stale_errcode])
        if sim.now() >= record.expires_at:
            if record.replaced:  # cut short by a force refresh: "not latest"
                raise ApiError(40001, STALE_ERRMSG[40001])
            raise ApiError(42001, STALE_ERRMSG[42001])
        record.uses += 1


def json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        raise ApiError(47001, "data format error") from None
    if not isinstance(data, dict):
        raise ApiError(47001, "data format error")
    return data


# --- small readers for the endpoints' own checks ------------------------------------------

def text(data: dict[str, Any], name: str, errcode: int, errmsg: str) -> str:
    """A required non-empty string field, or ``errcode``."""
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(errcode, errmsg)
    return value


def number(data: dict[str, Any], name: str, allowed: range | tuple[int, ...], errcode: int,
           errmsg: str) -> int:
    """A required JSON number among ``allowed`` (a string "1" is not a number: §6)."""
    value = data.get(name)
    if type(value) is not int or value not in allowed:
        raise ApiError(errcode, errmsg)
    return value
