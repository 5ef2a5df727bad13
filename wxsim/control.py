"""``/sim/...``: the JSON control API that plays the phone and drives the simulator.

Not part of WeChat. Tests, demos and benchmarks use it to log in, pay, inject faults,
duplicate notifies, inspect the ledger and read counters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from wxsim.login import issue_code
from wxsim.state import Simulator
from wxsim.trades import PayRefused, check_request_payment, pay_trade, resend_notify

JsonReply = tuple[int, dict[str, Any]]
MAX_COPIES = 100


class BadRequest(Exception):
    pass


def handle(sim: Simulator, method: str, path: str, body: bytes) -> JsonReply:
    """Route one control request; every answer is a JSON object."""
    route, arg = _match(path)
    if route is None:
        return 404, {"detail": f"unknown control path {path}"}
    endpoint = ROUTES[route].get(method)
    if endpoint is None:
        return 405, {"detail": f"{method} not allowed on {route}"}
    try:
        return endpoint(sim, _json_object(body), arg)
    except BadRequest as exc:
        return 400, {"detail": str(exc)}
    except PayRefused as exc:
        return exc.status, {"detail": exc.detail}


def _match(path: str) -> tuple[str | None, str]:
    for prefix in ("/sim/trades/", "/sim/notify/"):
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefix, unquote(path[len(prefix):])
    return (path, "") if path in ROUTES else (None, "")


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _field(data: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = data.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f'"{name}" must be of type {kind.__name__}')
    return value


# --- endpoints ----------------------------------------------------------------------------

def _login(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    openid = _field(data, "openid", str, "")
    unionid = _field(data, "unionid", str, "")
    return 200, issue_code(sim, openid=openid, unionid=unionid)


def _pay(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    out_trade_no = _field(data, "out_trade_no", str, "")
    prepay_id = _field(data, "prepay_id", str, "")
    if "payment" in data:
        # The phone's way: the wx.requestPayment parameters, checked as WeChat checks them.
        prepay_id = check_request_payment(sim, _field(data, "payment", dict, {}))
    if not (out_trade_no or prepay_id):
        raise BadRequest('give "payment", "out_trade_no" or "prepay_id"')
    return 200, pay_trade(
        sim,
        out_trade_no=out_trade_no,
        prepay_id=prepay_id,
        openid=_field(data, "openid", str, ""),
        coupon_fee=_field(data, "coupon_fee", int, 0),
        bank_type=_field(data, "bank_type", str, "OTHERS") or "OTHERS",
    )


def _trade(sim: Simulator, _: dict[str, Any], out_trade_no: str) -> JsonReply:
    with sim.lock:
        trade = sim.trades.get(out_trade_no)
        if trade is None:
            return 404, {"detail": f"no trade {out_trade_no}"}
        return 200, trade.as_json()


def _add_fault(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    with sim.lock:
        try:
            sim.faults.add(data)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        return 200, sim.faults.as_json()


def _show_faults(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    with sim.lock:
        return 200, sim.faults.as_json()


def _clear_faults(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    with sim.lock:
        sim.faults.clear()
        return 200, sim.faults.as_json()


def _notify(sim: Simulator, data: dict[str, Any], out_trade_no: str) -> JsonReply:
    copies = _field(data, "copies", int, 1)
    if not 1 <= copies <= MAX_COPIES:
        raise BadRequest(f'"copies" must be between 1 and {MAX_COPIES}')
    concurrent = _field(data, "concurrent", bool, False)
    attempts = resend_notify(sim, out_trade_no, copies, concurrent)
    return 200, {"out_trade_no": out_trade_no, "attempts": attempts}


def _stats(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    return 200, sim.stats()


def _reset(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    sim.reset()
    return 200, {"reset": True}


Endpoint = Callable[[Simulator, dict[str, Any], str], JsonReply]
ROUTES: dict[str, dict[str, Endpoint]] = {
    "/sim/login": {"POST": _login},
    "/sim/pay": {"POST": _pay},
    "/sim/trades/": {"GET": _trade},
    "/sim/faults": {"GET": _show_faults, "POST": _add_fault, "DELETE": _clear_faults},
    "/sim/notify/": {"POST": _notify},
    "/sim/stats": {"GET": _stats},
    "/sim/reset": {"POST": _reset},
}
