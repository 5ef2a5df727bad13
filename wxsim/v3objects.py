"""The v3 shapes of the shared ledger: the transaction object (§6.1, §7.3) and the refund
object (§8.2, §8.5), whichever API placed the order or asked for the refund.

A bare §n in this module is a section of docs/protocol/wechat-pay-v3.md.
"""

from __future__ import annotations

from typing import Any

from wxsim.state import CLOSED, NOTPAY, PAID_STATES, REFUND, SUCCESS, Refund, Trade
from wxsim.v3wire import rfc3339

# trade_state_desc as the v3 pages show it (§6.2).
STATE_DESC = {
    NOTPAY: "订单未支付",
    SUCCESS: "支付成功",
    CLOSED: "订单已关闭",
    REFUND: "订单发生过退款,退款详情请查询退款单",
}
RECEIVED_ACCOUNT = "支付用户零钱"  # where a wallet payment's refund lands (§8.2)


def transaction_json(trade: Trade) -> dict[str, Any]:
    """The order as query answers it and the payment notify carries it, in the order of
    the note's example (§7.3). Before payment: no transaction_id, payer or success_time."""
    paid = trade.state in PAID_STATES
    data: dict[str, Any] = {
        "mchid": trade.params.get("mch_id", ""),
        "appid": trade.params.get("appid", ""),
        "out_trade_no": trade.out_trade_no,
    }
    if paid:
        data["transaction_id"] = trade.transaction_id
    data.update(
        trade_type=trade.params.get("trade_type", "JSAPI"),
        trade_state=trade.state,
        trade_state_desc=STATE_DESC[trade.state],
    )
    if paid:
        data["bank_type"] = trade.bank_type
    data["attach"] = trade.params.get("attach", "")
    if paid:
        data["success_time"] = rfc3339(trade.paid_at)
        data["payer"] = {"openid": trade.payer_openid}
        data["amount"] = {"total": trade.total_fee, "payer_total": trade.cash_fee,
                          "currency": "CNY", "payer_currency": "CNY"}
    else:
        data["payer"] = {}
        data["amount"] = {"total": trade.total_fee, "currency": "CNY"}
    if paid and trade.coupon_fee:
        data["promotion_detail"] = [{
            "coupon_id": trade.coupon_id,
            "name": "wxsim coupon",
            "scope": "GLOBAL",
            "type": "CASH",
            "amount": trade.coupon_fee,
            "stock_id": "wxsim-stock",
            "wechatpay_contribute": 0,
            "merchant_contribute": trade.coupon_fee,
            "other_contribute": 0,
            "currency": "CNY",
        }]
    return data


def _refund_amount(trade: Trade, record: Refund) -> dict[str, Any]:
    # What the payer gets back out of what the payer paid; a coupon is refunded last.
    payer_refund = min(record.refund_fee, trade.cash_fee)
    return {
        "total": trade.total_fee,
        "refund": record.refund_fee,
        "payer_total": trade.cash_fee,
        "payer_refund": payer_refund,
    }


def refund_json(trade: Trade, record: Refund) -> dict[str, Any]:
    """The refund as create and query answer it (§8.2)."""
    data: dict[str, Any] = {
        "refund_id": record.refund_id,
        "out_refund_no": record.out_refund_no,
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": RECEIVED_ACCOUNT,
    }
    if record.status == "SUCCESS":
        data["success_time"] = rfc3339(record.success_at)
    amount = _refund_amount(trade, record)
    amount["settlement_refund"] = record.refund_fee
    amount["settlement_total"] = trade.total_fee
    amount["discount_refund"] = record.refund_fee - amount["payer_refund"]
    amount["currency"] = "CNY"
    amount["from"] = []
    data.update(
        create_time=rfc3339(record.created_at),
        status=record.status,
        funds_account=record.funds_account or "UNSETTLED",
        amount=amount,
        promotion_detail=[],
    )
    return data


def refund_notice_json(trade: Trade, record: Refund) -> dict[str, Any]:
    """What a refund notify decrypts to (§8.5): ``refund_status``, not ``status``."""
    data: dict[str, Any] = {
        "mchid": trade.params.get("mch_id", ""),
        "out_trade_no": trade.out_trade_no,
        "transaction_id": trade.transaction_id,
        "out_refund_no": record.out_refund_no,
        "refund_id": record.refund_id,
        "refund_status": record.status,
    }
    if record.status == "SUCCESS":
        data["success_time"] = rfc3339(record.success_at)
    data["user_received_account"] = RECEIVED_ACCOUNT
    data["amount"] = _refund_amount(trade, record)
    return data
