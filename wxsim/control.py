"""``/sim/...``: the JSON control API that plays the phone and drives the simulator.

Not part of WeChat. Tests, demos and benchmarks use it to log in, pay, inject faults,
duplicate notifies, inspect the ledger and read counters, read and switch WeChat Pay v3's
keys; and, for the mini-program server
API, to age access tokens, accept subscribe templates, move shipped trades on (receipt,
settlement) and push message-push events to the shop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from wxsim import bills, push, shipping, subscribe, tokens
from wxsim.config import V3_KEY_MODES
from wxsim.login import issue_code
from wxsim.refunds import resend_refund_notify
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
    except (PayRefused, shipping.ShippingStateError) as exc:
        return exc.status, {"detail": exc.detail}


def _match(path: str) -> tuple[str | None, str]:
    for prefix in ("/sim/trades/", "/sim/notify/", "/sim/shipping/"):
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
    out_refund_no = _field(data, "out_refund_no", str, "")
    if out_refund_no:
        try:
            attempts = resend_refund_notify(sim, out_trade_no, out_refund_no, copies, concurrent)
        except LookupError as exc:
            return 409, {"detail": str(exc)}
        return 200, {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
                     "attempts": attempts}
    attempts = resend_notify(sim, out_trade_no, copies, concurrent)
    return 200, {"out_trade_no": out_trade_no, "attempts": attempts}


def _stats(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    return 200, sim.stats()


def _reset(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    sim.reset()
    return 200, {"reset": True}


# --- the mini-program server API -----------------------------------------------------------

def _trade_managed(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    managed = _field(data, "managed", bool, True)
    with sim.lock:
        sim.trade_managed = managed
    return 200, {"is_trade_managed": managed}


def _tokens(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    return 200, tokens.tokens_json(sim)


def _stale(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    try:
        stale = tokens.make_stale(
            sim,
            token=_field(data, "access_token", str, ""),
            errcode=_field(data, "errcode", int, 40001),
            still_current=_field(data, "still_current", bool, False),
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    except LookupError as exc:
        return 404, {"detail": str(exc)}
    return 200, {"stale": len(stale)}


def _subscribe(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    openid = _field(data, "openid", str, "")
    template_id = _field(data, "template_id", str, "")
    count = _field(data, "count", int, 1)
    if not openid or not template_id or not 1 <= count <= MAX_COPIES:
        raise BadRequest(f'give "openid", "template_id" and "count" between 1 and {MAX_COPIES}')
    return 200, subscribe.accept(sim, openid=openid, template_id=template_id, count=count)


def _messages(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    with sim.lock:
        return 200, {"messages": list(sim.messages)}


def _shipment(sim: Simulator, _: dict[str, Any], transaction_id: str) -> JsonReply:
    return 200, shipping.shipment_json(sim, transaction_id)


SHIPPING_ACTIONS = ("confirm_receive", "settle")


def _move_shipment(sim: Simulator, data: dict[str, Any], transaction_id: str) -> JsonReply:
    action = _field(data, "action", str, "")
    if action == "confirm_receive":
        shipping.confirm_receive(sim, transaction_id)
    elif action == "settle":
        shipping.settle(sim, transaction_id)
    else:
        raise BadRequest(f'"action" must be one of {SHIPPING_ACTIONS}')
    return 200, shipping.shipment_json(sim, transaction_id)


def _push(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    """Sign (and encrypt) one event as WeChat does and POST it to the shop now."""
    url = _field(data, "url", str, "")
    mode = _field(data, "mode", str, "plaintext")
    token = _field(data, "token", str, "")
    encoding_aes_key = _field(data, "aes_key", str, "")
    copies = _field(data, "copies", int, 1)
    if not url.startswith(("http://", "https://")) or not token:
        raise BadRequest('give the message "url" (http or https) and the "token"')
    if mode not in push.MODES or not 1 <= copies <= MAX_COPIES:
        raise BadRequest(f'"mode" is one of {push.MODES}; "copies" between 1 and {MAX_COPIES}')
    if mode == "safe":
        try:
            push.aes_key(encoding_aes_key)
        except ValueError as exc:
            raise BadRequest(f'"aes_key": {exc}') from exc
    if ("event" in data) == ("settlement" in data):
        raise BadRequest('give either "event" or "settlement"')
    timestamp, nonce = push.new_timestamp_and_nonce(sim)
    timestamp = _field(data, "timestamp", str, timestamp)
    nonce = _field(data, "nonce", str, nonce)
    if "event" in data:
        event = _field(data, "event", dict, {})
    else:
        settlement = _field(data, "settlement", dict, {})
        event = shipping.settlement_event(
            sim,
            _field(settlement, "transaction_id", str, ""),
            settled=_field(settlement, "settled", bool, False),
        )
    query, body = push.signed_push(
        event, mode=mode, token=token, timestamp=timestamp, nonce=nonce,
        encoding_aes_key=encoding_aes_key,
        appid=_field(data, "appid", str, "") or sim.config.appid,
    )
    attempts = push.deliver(sim, url, query, body, copies)
    return 200, {"event": event, "query": query, "body": body.decode("utf-8"),
                 "attempts": attempts}


# --- WeChat Pay v3 ------------------------------------------------------------------------------

def _v3_keys(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    """The public half of v3's keys (no private key, no APIv3 key) and the key mode."""
    with sim.lock:
        mode = sim.v3_mode
    return 200, sim.v3.as_json(mode)


def _v3_switch(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    """Switch the key mode now, e.g. certificate → both → public-key as a merchant migrates
    (docs/protocol/wechat-pay-v3.md §3.5); a reset goes back to the configured one."""
    mode = _field(data, "mode", str, "")
    if mode not in V3_KEY_MODES:
        raise BadRequest(f'"mode" must be one of {list(V3_KEY_MODES)}')
    with sim.lock:
        sim.v3_mode = mode
    return 200, sim.v3.as_json(mode)


# --- bills that disagree with the ledger -----------------------------------------------------

def _add_bill_fault(sim: Simulator, data: dict[str, Any], _: str) -> JsonReply:
    with sim.lock:
        try:
            return 200, bills.add_fault(sim, data)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc


def _show_bill_faults(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    with sim.lock:
        return 200, bills.faults_json(sim)


def _clear_bill_faults(sim: Simulator, _: dict[str, Any], __: str) -> JsonReply:
    with sim.lock:
        sim.bill_faults.clear()
        return 200, bills.faults_json(sim)


Endpoint = Callable[[Simulator, dict[str, Any], str], JsonReply]
ROUTES: dict[str, dict[str, Endpoint]] = {
    "/sim/login": {"POST": _login},
    "/sim/pay": {"POST": _pay},
    "/sim/trades/": {"GET": _trade},
    "/sim/faults": {"GET": _show_faults, "POST": _add_fault, "DELETE": _clear_faults},
    "/sim/notify/": {"POST": _notify},
    "/sim/stats": {"GET": _stats},
    "/sim/reset": {"POST": _reset},
    "/sim/trade_managed": {"POST": _trade_managed},
    "/sim/tokens": {"GET": _tokens},
    "/sim/tokens/stale": {"POST": _stale},
    "/sim/subscribe": {"POST": _subscribe},
    "/sim/messages": {"GET": _messages},
    "/sim/shipping/": {"GET": _shipment, "POST": _move_shipment},
    "/sim/push": {"POST": _push},
    "/sim/bills/faults": {"GET": _show_bill_faults, "POST": _add_bill_fault,
                          "DELETE": _clear_bill_faults},
    "/sim/v3/keys": {"GET": _v3_keys, "POST": _v3_switch},
}
