"""``POST /cgi-bin/stable_token`` and the control calls that age tokens.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

§1.1: the normal mode answers the same token while it is valid (safe from many servers) and a
new one in its last minutes; ``force_refresh`` issues a new one at once, and the one it
replaces keeps working for 5 more minutes. ``/cgi-bin/token`` is not played: the shop uses
the stable API only (§1.4), so a call to the other one is a bug the simulator shows as 404.
"""

from __future__ import annotations

import secrets
from typing import Any

from wxsim.miniapi import STALE_ERRMSG, ApiError, text
from wxsim.state import AccessTokenRecord, Simulator

RENEW_BEFORE_S = 300  # WeChat renews ~5 minutes before expiry (§1.1)
REPLACED_GRACE_S = 300  # a replaced token lingers ~5 minutes (§1.1)
FORCE_MIN_GAP_S = 30  # force_refresh at most every 30 s …
FORCE_PER_DAY = 20  # … and 20 times a day (§1.1)
DAY_S = 86400


def stable_token(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    """§1.1 and §1.2: credentials first, then the token; the answer has no errcode."""
    if body.get("grant_type") != "client_credential":
        raise ApiError(40002, "invalid grant_type")
    appid = text(body, "appid", 41002, "appid missing")
    if appid != sim.config.appid:
        raise ApiError(40013, "invalid appid")
    secret = text(body, "secret", 41004, "appsecret missing")
    if secret != sim.config.secret:
        raise ApiError(40125, "invalid appsecret")
    force = body.get("force_refresh", False)
    if not isinstance(force, bool):
        raise ApiError(47001, "data format error: force_refresh is a boolean")
    with sim.lock:
        now = sim.now()
        current = sim.tokens.get(sim.current_token)
        if force:
            _spend_force_budget(sim, now)
            if current is not None:
                current.replaced = True
                current.expires_at = min(current.expires_at, now + REPLACED_GRACE_S)
            current = _issue(sim, now)
        elif current is None or _needs_renewal(sim, current, now):
            # The previous token keeps its own (near) expiry: nothing cuts it short.
            current = _issue(sim, now)
        return {"access_token": current.token, "expires_in": max(1, int(current.expires_at - now))}


def _needs_renewal(sim: Simulator, record: AccessTokenRecord, now: float) -> bool:
    if record.stale_errcode:
        return not record.still_current
    # A quarter of the lifetime when that is shorter than 5 minutes (tests with short TTLs).
    return now >= record.expires_at - min(RENEW_BEFORE_S, sim.config.token_ttl / 4)


def _spend_force_budget(sim: Simulator, now: float) -> None:
    calls = sim.force_refreshes
    while calls and now - calls[0] >= DAY_S:
        calls.popleft()
    if calls and now - calls[-1] < FORCE_MIN_GAP_S:
        raise ApiError(45011, "api minute-quota reach limit  mustslower  retry next minute")
    if len(calls) >= FORCE_PER_DAY:
        raise ApiError(45009, "reach max api daily quota limit")
    calls.append(now)


def _issue(sim: Simulator, now: float) -> AccessTokenRecord:
    # Opaque, shaped like real ones ("86_" + ~130 URL-safe characters); shops store ≥ 512.
    token = "86_" + secrets.token_urlsafe(96)
    record = AccessTokenRecord(token, now, now + sim.config.token_ttl)
    sim.tokens[token] = record
    sim.current_token = token
    return record


# --- control: POST /sim/tokens/stale, GET /sim/tokens --------------------------------------

def make_stale(
    sim: Simulator, *, token: str = "", errcode: int = 40001, still_current: bool = False
) -> list[str]:
    """Every later use of the token (all tokens without one) answers ``errcode``. With
    ``still_current``, stable_token keeps answering the stale token until a force refresh:
    the case where the shop must force (§1.4)."""
    if errcode not in STALE_ERRMSG:
        raise ValueError(f'"errcode" must be one of {sorted(STALE_ERRMSG)}')
    with sim.lock:
        if token and token not in sim.tokens:
            raise LookupError("no such access_token")
        records = [sim.tokens[token]] if token else list(sim.tokens.values())
        for record in records:
            record.stale_errcode = errcode
            record.still_current = still_current and record.token == sim.current_token
        return [record.token for record in records]


def tokens_json(sim: Simulator) -> dict[str, Any]:
    with sim.lock:
        return {
            "current": sim.current_token,
            "tokens": [record.as_json() for record in sim.tokens.values()],
            "force_refreshes": len(sim.force_refreshes),
        }
