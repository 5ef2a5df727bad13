"""v3 orders: JSAPI prepay (§4), query (§6.1) and close (§6.3), on the ledger v2 shares.

A bare §n in this module is a section of docs/protocol/wechat-pay-v3.md.

A v3 order is a ledger trade with the v2 field names (so unifiedorder's re-entry rule,
orderquery, closeorder, refunds and bills see it as any other), ``api`` ``"v3"``, the
prepay body kept for v3's own re-entry rule, and ``sign_type`` ``RSA`` for its paySign.
The payment itself is ``POST /sim/pay`` (wxsim.trades), whatever the API.
"""

from __future__ import annotations

import re
from typing import Any

from wxsim.state import CLOSED, PAID_STATES, Simulator, Trade
from wxsim.trades import RSA, issue_prepay
from wxsim.v3objects import transaction_json
from wxsim.v3wire import (
    APPID_MCHID_MISMATCH,
    OPENID_MISSING,
    ORDER_EXPIRED,
    ORDER_NOT_FOUND,
    ORDER_PAID,
    REENTRY_DIFFERS,
    V3Error,
    V3Request,
    currency,
    fen,
    invalid_request,
    known_fields,
    notify_url,
    obj,
    param_error,
    parse_rfc3339,
    text,
)

# §4.1: digits, letters, "_ - *" (some pages add "|"), 6 to 32.
OUT_TRADE_NO_RE = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
TRANSACTION_ID_RE = re.compile(r"[0-9A-Za-z]{1,32}")
JSAPI_FIELDS = {
    "appid", "mchid", "description", "out_trade_no", "time_expire", "attach", "notify_url",
    "goods_tag", "support_fapiao", "amount", "payer", "detail", "scene_info", "settle_info",
}
UNPAYABLE_AFTER_S = 7 * 24 * 3600  # without time_expire an order is unpayable after 7 days


def _not_found() -> V3Error:
    return V3Error(404, "ORDER_NOT_EXIST", "订单不存在", number=ORDER_NOT_FOUND)


def jsapi(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    """``POST /v3/pay/transactions/jsapi`` → ``{"prepay_id"}`` (§4)."""
    data = request.data
    params, expires_at = _validate_jsapi(sim, request)
    out_trade_no = params["out_trade_no"]
    with sim.lock:
        now = sim.now()
        trade = sim.trades.get(out_trade_no)
        if trade is None:
            trade = Trade(out_trade_no, params, RSA, now, "", 0.0, api="v3", v3_request=data,
                          expires_at=expires_at or now + UNPAYABLE_AFTER_S)
            sim.trades[out_trade_no] = trade
            issue_prepay(sim, trade, now)
        else:
            _reenter(sim, trade, data, now)
        return 200, {"prepay_id": trade.prepay_id}


def _validate_jsapi(sim: Simulator, request: V3Request) -> tuple[dict[str, str], float]:
    """The prepay body's fields (§4.1), as v2 field names, and time_expire (0: none)."""
    data = request.data
    known_fields(data, JSAPI_FIELDS)
    appid = text(data, "appid", limit=32, required=True)
    mchid = text(data, "mchid", limit=32, required=True)
    if mchid != request.mchid:
        raise param_error("mchid与Authorization中的商户号不一致 (mchid differs from "
                          "Authorization)", "mchid")
    if appid != sim.config.appid:
        raise V3Error(400, "APPID_MCHID_NOT_MATCH", "AppID和mch_id不匹配 (appid not bound)",
                      number=APPID_MCHID_MISMATCH)
    description = text(data, "description", limit=127, required=True)
    out_trade_no = text(data, "out_trade_no", limit=32, required=True, pattern=OUT_TRADE_NO_RE)
    time_expire = text(data, "time_expire", limit=64)
    attach = text(data, "attach", limit=128)
    url = notify_url(data, "notify_url", required=True)
    amount = obj(data, "amount", required=True)
    known_fields(amount, {"total", "currency"})
    total = fen(amount, "total", prefix="amount")
    currency(amount, "amount")
    payer = obj(data, "payer")
    known_fields(payer, {"openid"})
    openid = text(payer, "openid", limit=128)
    if not openid:
        raise param_error("JSAPI支付必须传openid", "payer.openid", number=OPENID_MISSING)
    for name in ("goods_tag", "support_fapiao", "detail", "scene_info", "settle_info"):
        if name in data and data[name] is None:
            raise param_error(f"{name}不能为null (omit absent fields)", name)
    params = {
        "appid": appid, "mch_id": mchid, "body": description, "out_trade_no": out_trade_no,
        "total_fee": str(total), "notify_url": url, "trade_type": "JSAPI", "openid": openid,
    }
    if attach:
        params["attach"] = attach
    return params, parse_rfc3339(time_expire, "time_expire") if time_expire else 0.0


def _reenter(sim: Simulator, trade: Trade, data: dict[str, Any], now: float) -> None:
    """Same number again (§4.3): identical parameters give a usable prepay_id."""
    if trade.state in PAID_STATES:
        raise V3Error(403, "ORDERPAID", "该订单已支付", number=ORDER_PAID)
    if trade.state == CLOSED:
        raise V3Error(400, "ORDER_CLOSED", "该订单已关闭")
    if trade.api != "v3":
        raise V3Error(403, "OUT_TRADE_NO_USED", "商户订单号重复 (placed through API v2)")
    if data != trade.v3_request:
        raise invalid_request("请求重入时,参数与首次请求时不一致", number=REENTRY_DIFFERS)
    if trade.expires_at and now >= trade.expires_at:
        raise invalid_request("该订单已失效", number=ORDER_EXPIRED)
    if now >= trade.prepay_expires_at:
        issue_prepay(sim, trade, now)  # the same order, a fresh 2-hour prepay_id (§4.2)


def _query_mchid(request: V3Request) -> str:
    mchid = request.query.get("mchid", "")
    if not mchid:
        raise V3Error(400, "PARAM_ERROR", "缺少参数mchid (query string)", detail={
            "field": "mchid", "location": "query", "issue": "missing"})
    return mchid


def query_by_number(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    """``GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=`` (§6.1)."""
    mchid = _query_mchid(request)
    with sim.lock:
        trade = sim.trades.get(request.params["out_trade_no"])
        # Another merchant's order is as unknown as a wrong number (§6.1).
        if trade is None or mchid != request.mchid:
            raise _not_found()
        return 200, transaction_json(trade)


def query_by_id(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    """``GET /v3/pay/transactions/id/{transaction_id}?mchid=`` (§6.1)."""
    mchid = _query_mchid(request)
    transaction_id = request.params["transaction_id"]
    if not TRANSACTION_ID_RE.fullmatch(transaction_id):
        raise param_error("transaction_id格式错误", "transaction_id")
    with sim.lock:
        trade = sim.find_trade(transaction_id=transaction_id)
        if trade is None or mchid != request.mchid:
            raise _not_found()
        return 200, transaction_json(trade)


def close(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    """``POST …/out-trade-no/{out_trade_no}/close`` with ``{"mchid"}`` → 204 (§6.3).

    Closing a closed order succeeds again. Unlike v2 (``--close-min-seconds``), no minimum
    age: the current v3 page states none.
    """
    known_fields(request.data, {"mchid"})
    if text(request.data, "mchid", limit=32, required=True) != request.mchid:
        raise param_error("mchid与Authorization中的商户号不一致", "mchid")
    with sim.lock:
        trade = sim.trades.get(request.params["out_trade_no"])
        if trade is None:
            raise _not_found()
        if trade.state in PAID_STATES:
            # The older pages' spelling here, ORDERPAID at prepay: shops must take both (§10.3).
            raise V3Error(400, "ORDER_PAID", "订单已支付,不能关单,请发起退款", number=ORDER_PAID)
        trade.state = CLOSED
    return 204, None
