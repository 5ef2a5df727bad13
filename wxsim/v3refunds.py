"""v3 refunds: ``POST /v3/refund/domestic/refunds`` (§8.1) and the query by
``out_refund_no`` (§8.4), on the refund ledger v2 shares (wxsim.refunds completes them and
sends the REFUND.* notify, §8.5).

A bare §n in this module is a section of docs/protocol/wechat-pay-v3.md.
"""

from __future__ import annotations

import re
from typing import Any

from wxsim.refunds import MAX_REFUNDS_PER_TRADE, record_refund, start_processing
from wxsim.state import PAID_STATES, Simulator
from wxsim.v3objects import refund_json
from wxsim.v3wire import (
    ORDER_NOT_FOUND,
    V3Error,
    V3Request,
    currency,
    fen,
    invalid_request,
    known_fields,
    notify_url,
    obj,
    param_error,
    text,
)

# §8.1: digits, letters, "_ - * @ |", string(64).
OUT_REFUND_NO_RE = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
REFUND_FIELDS = {
    "transaction_id", "out_trade_no", "out_refund_no", "reason", "notify_url",
    "funds_account", "amount", "goods_detail",
}


def create(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    """Accept a refund (usually PROCESSING); the same out_refund_no is the same refund."""
    data = request.data
    known_fields(data, REFUND_FIELDS)
    transaction_id = text(data, "transaction_id", limit=32)
    out_trade_no = text(data, "out_trade_no", limit=32)
    if not (transaction_id or out_trade_no):
        raise param_error("transaction_id和out_trade_no必须二选一 (one of them)", "out_trade_no")
    out_refund_no = text(data, "out_refund_no", limit=64, required=True, pattern=OUT_REFUND_NO_RE)
    reason = text(data, "reason", limit=80)
    url = notify_url(data, "notify_url", required=False)
    funds_account = text(data, "funds_account", limit=32)
    if funds_account not in ("", "AVAILABLE"):
        raise param_error("funds_account仅支持AVAILABLE", "funds_account")
    amount = obj(data, "amount", required=True)
    known_fields(amount, {"refund", "total", "currency", "from"})
    refund_fee = fen(amount, "refund", prefix="amount")
    total = fen(amount, "total", prefix="amount")
    currency(amount, "amount")
    with sim.lock:
        # transaction_id wins when both are given, as in v2 (§8.1).
        trade = sim.find_trade(out_trade_no=out_trade_no, transaction_id=transaction_id)
        if trade is None or trade.state not in PAID_STATES:
            raise V3Error(404, "RESOURCE_NOT_EXISTS", "订单不存在或未支付", number=ORDER_NOT_FOUND)
        existing = sim.refunds.get(out_refund_no)
        if existing is not None:
            if existing.out_trade_no != trade.out_trade_no or existing.refund_fee != refund_fee:
                raise invalid_request("退款单号已存在,请求参数与原退款单不一致 (out_refund_no "
                                      "reused with other parameters)")
            return 200, refund_json(trade, existing)
        if total != trade.total_fee:
            raise invalid_request("订单金额与原订单不一致 (amount.total differs from the order)")
        if refund_fee > trade.total_fee - trade.refunded_fee:
            raise invalid_request("申请退款金额超过订单可退金额 (more than is left to refund)")
        if len(trade.refunds) >= MAX_REFUNDS_PER_TRADE:
            raise invalid_request("订单退款次数超过限制 (at most 50 refunds per order)")
        record = record_refund(sim, trade, out_refund_no, refund_fee, url,
                               api="v3", reason=reason, funds_account=funds_account)
        answer = refund_json(trade, record)
    start_processing(sim, record)
    return 200, answer


def query(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    """``GET /v3/refund/domestic/refunds/{out_refund_no}`` (§8.4); v2 refunds too."""
    with sim.lock:
        record = sim.refunds.get(request.params["out_refund_no"])
        if record is None:
            raise V3Error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return 200, refund_json(sim.trades[record.out_trade_no], record)
