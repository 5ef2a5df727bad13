"""Mini-program login: ``wx.login()`` on a phone and ``code2Session`` on api.weixin.qq.com (§9)."""

from __future__ import annotations

import base64
import secrets
from collections import deque
from typing import Any

from wxsim.protocol import new_openid, random_string
from wxsim.state import LoginCode, Simulator, WxUser

CODE_TTL_S = 300  # a code expires after 5 minutes (§9 rules)
RATE_LIMIT_CALLS, RATE_LIMIT_WINDOW_S = 100, 60.0  # 100 calls per user per minute → 45011


def issue_code(sim: Simulator, *, openid: str = "", unionid: str = "") -> dict[str, str]:
    """What ``wx.login()`` gives the mini-program: a fresh single-use code."""
    with sim.lock:
        user = sim.users.get(openid) if openid else None
        if user is None:
            user = WxUser(openid or new_openid(), _new_session_key())
            sim.users[user.openid] = user
        if unionid:
            user.unionid = unionid
        code = random_string(32)
        sim.codes[code] = LoginCode(user.openid, sim.now())
    return {"code": code, "openid": user.openid}


def code2session(sim: Simulator, query: dict[str, str]) -> dict[str, Any]:
    """``GET /sns/jscode2session``: errors come as JSON with errcode, still HTTP 200."""
    problem = _check_credentials(sim, query)
    if problem:
        return problem
    with sim.lock:
        entry = sim.codes.get(query["js_code"])
        # A code from another appid is just as unknown here: 40029 (§9).
        if entry is None or sim.now() - entry.issued_at > CODE_TTL_S:
            return wx_error(40029, "invalid code")
        if entry.used:
            return wx_error(40163, "code been used")
        if _rate_limited(sim, entry.openid):
            return wx_error(45011, "api minute-quota reach limit  mustslower  retry next minute")
        entry.used = True
        user = sim.users[entry.openid]
        answer = {"session_key": user.session_key, "openid": user.openid}
        if user.unionid:
            answer["unionid"] = user.unionid
        return answer


def wx_error(errcode: int, message: str) -> dict[str, Any]:
    rid = "-".join(secrets.token_hex(4) for _ in range(3))
    return {"errcode": errcode, "errmsg": f"{message}, rid: {rid}"}


def _check_credentials(sim: Simulator, query: dict[str, str]) -> dict[str, Any] | None:
    config = sim.config
    if not query.get("appid"):
        return wx_error(41002, "appid missing")
    if query["appid"] != config.appid:
        return wx_error(40013, "invalid appid")
    if not query.get("secret"):
        return wx_error(41004, "appsecret missing")
    if query["secret"] != config.secret:
        return wx_error(40125, "invalid appsecret")
    if not query.get("js_code"):
        return wx_error(41008, "missing code")
    if query.get("grant_type") != "authorization_code":
        return wx_error(40002, "invalid grant_type")
    return None


def _rate_limited(sim: Simulator, openid: str) -> bool:
    calls = sim.code2session_calls.setdefault(openid, deque())
    now = sim.now()
    while calls and now - calls[0] >= RATE_LIMIT_WINDOW_S:
        calls.popleft()
    if len(calls) >= RATE_LIMIT_CALLS:
        return True
    calls.append(now)
    return False


def _new_session_key() -> str:
    # Real session keys are base64 of 16 random bytes (24 characters).
    return base64.b64encode(secrets.token_bytes(16)).decode()
