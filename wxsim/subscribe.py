"""``POST /cgi-bin/message/subscribe/send``, WeChat's side, and the user's accepts.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

§4.1: each ``accept`` of a one-time template in ``wx.requestSubscribeMessage`` allows exactly
one send; ``POST /sim/subscribe`` plays those accepts. Without one the send answers ``43101``.
Keyword values are checked against §4.3 with this module's own rules (not the shop's code).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from wxsim.miniapi import ApiError, ok, text
from wxsim.state import Simulator

MINIPROGRAM_STATES = ("developer", "trial", "formal")
LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")
KEYWORD = re.compile(r"([a-z_]+?)[0-9]+")
# §4.3, kind → the shape of a value that fits (time, date and enum: any non-empty text here;
# number and amount also have a digit count, checked in _fits).
RULES: dict[str, re.Pattern[str]] = {
    "thing": re.compile(r".{1,20}", re.DOTALL),
    "number": re.compile(r"-?[0-9]+(\.[0-9]+)?"),
    "letter": re.compile(r"[A-Za-z]{1,32}"),
    "symbol": re.compile(r"[^0-9A-Za-z\u4e00-\u9fff]{1,5}"),
    "character_string": re.compile(r"[!-~]{1,32}"),
    "time": re.compile(r".+"),
    "date": re.compile(r".+"),
    "amount": re.compile(r"[^\s0-9.]?([0-9]+)(?:\.([0-9]+))?元?"),
    "phone_number": re.compile(r"[0-9+\-() ]{1,17}"),
    "car_number": re.compile(r".{1,8}"),
    "name": re.compile(r"[\x00-\x7f]{1,20}|.{1,10}"),
    "phrase": re.compile(r"[\u4e00-\u9fff]{1,5}"),
    "enum": re.compile(r".+"),
}
REFUSED = "user refuse to accept the msg"


def send(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    touser = text(body, "touser", 40003, "invalid openid")
    template_id = text(body, "template_id", 40037, "invalid template_id")
    data = body.get("data")
    if not isinstance(data, dict) or not data:
        raise ApiError(47003, "argument invalid! data is empty")
    for key, item in data.items():
        _check_keyword(key, item)
    for name, allowed in (("miniprogram_state", MINIPROGRAM_STATES), ("lang", LANGS)):
        if name in body and body[name] not in allowed:
            raise ApiError(47003, f"argument invalid! {name}")
    if not isinstance(body.get("page", ""), str):
        raise ApiError(47003, "argument invalid! page")
    with sim.lock:
        key = (touser, template_id)
        if sim.subscriptions[key] <= 0:
            raise ApiError(43101, REFUSED)
        sim.subscriptions[key] -= 1
        msgid = int("2" + "".join(secrets.choice("0123456789") for _ in range(17)))
        sim.messages.append({
            "msgid": msgid,
            "at": sim.now(),
            "touser": touser,
            "template_id": template_id,
            "page": body.get("page", ""),
            "data": {k: v["value"] for k, v in data.items()},
            "miniprogram_state": body.get("miniprogram_state", "formal"),
            "lang": body.get("lang", "zh_CN"),
        })
    return ok(msgid=msgid)


def _check_keyword(key: object, item: object) -> None:
    match = KEYWORD.fullmatch(key) if isinstance(key, str) else None
    if match is None or match.group(1) not in RULES:
        raise ApiError(47003, f"argument invalid! data.{key} is not a keyword")
    value = item.get("value") if isinstance(item, dict) else None
    if not isinstance(value, str) or not _fits(match.group(1), value):
        raise ApiError(47003, f"argument invalid! data.{key}.value invalid")


def _fits(kind: str, value: str) -> bool:
    shape = RULES[kind].fullmatch(value)
    if shape is None:
        return False
    if kind == "number":
        return len(value) <= 32
    if kind == "amount":  # one currency symbol + at most 10 digits
        return len(shape.group(1)) + len(shape.group(2) or "") <= 10
    return True


def accept(sim: Simulator, *, openid: str, template_id: str, count: int = 1) -> dict[str, Any]:
    """The user taps "allow" ``count`` times for this template (§4.1)."""
    with sim.lock:
        sim.subscriptions[(openid, template_id)] += count
        remaining = sim.subscriptions[(openid, template_id)]
    return {"openid": openid, "template_id": template_id, "remaining": remaining}
