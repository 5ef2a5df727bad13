"""Trades: unifiedorder (§3), orderquery (§6.1), closeorder (§6.2), and the payment itself.

The payment is what the phone does after ``wx.requestPayment``; here it is triggered by
``POST /sim/pay`` and followed by the signed payment notify (§5). One ledger for both APIs:
a trade placed through v3 (wxsim.v3trades) is paid here too, its ``paySign`` RSA
(docs/protocol/wechat-pay-v3.md §5.2) and its notify v3's (wxsim.v3notify).
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

from wxsim import v3notify
from wxsim.payapi import (
    BizError,
    PayRequest,
    check_ip,
    check_lengths,
    check_notify_url,
    check_pattern,
    positive_int,
    require,
    require_one,
)
from wxsim.protocol import random_digits, random_string, sign, signed_xml, wx_time
from wxsim.state import CLOSED, NOTPAY, PAID_STATES, REFUND, SUCCESS, Simulator, Trade
from wxsim.v3keys import rsa_verify

PREPAY_TTL_S = 2 * 3600  # prepay_id is valid 2 hours (§3.3)
TRADE_TYPES = ("JSAPI", "NATIVE", "APP", "MWEB")
OUT_TRADE_NO_RE = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
BEIJING_TIME_RE = re.compile(r"[0-9]{14}")
# Longest values per field (§3.1; the longer figure where the official pages disagree).
UNIFIEDORDER_LIMITS = {
    "appid": 32, "mch_id": 32, "device_info": 32, "sign": 64, "sign_type": 32,
    "body": 128, "detail": 6144, "attach": 127, "fee_type": 16, "spbill_create_ip": 64,
    "time_start": 14, "time_expire": 14, "goods_tag": 32, "notify_url": 256,
    "trade_type": 16, "product_id": 32, "limit_pay": 32, "openid": 128, "receipt": 8,
    "profit_sharing": 16, "scene_info": 256,
}
STATE_DESC = {
    NOTPAY: "订单未支付",
    SUCCESS: "支付成功",
    CLOSED: "订单已关闭",
    REFUND: "订单发生过退款,退款详情请查询退款单",
}
MISMATCHED_PAYER = "下单账号与支付账号不一致,请核实后再支付"
PREPAY_EXPIRED = "该订单已过期,请重新下单"


class PayRefused(Exception):
    """The simulated phone cannot pay: HTTP status and the text WeChat would show."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# --- unifiedorder -------------------------------------------------------------------------

def unifiedorder(sim: Simulator, request: PayRequest) -> dict[str, Any]:
    _validate_unifiedorder(request)
    # Re-entry compares everything except what changes per call anyway (§3.3).
    params = {k: v for k, v in request.fields.items() if k not in ("nonce_str", "sign") and v}
    out_trade_no = request.get("out_trade_no")
    with sim.lock:
        now = sim.now()
        trade = sim.trades.get(out_trade_no)
        if trade is None:
            trade = Trade(out_trade_no, params, request.sign_type, now, "", 0.0)
            sim.trades[out_trade_no] = trade
            issue_prepay(sim, trade, now)
        else:
            _reenter(sim, trade, params, now)
        answer: dict[str, Any] = {"trade_type": params["trade_type"], "prepay_id": trade.prepay_id}
    if params["trade_type"] == "NATIVE":
        answer["code_url"] = "weixin://wxpay/bizpayurl?pr=" + random_string(7)
    return answer


def _validate_unifiedorder(request: PayRequest) -> None:
    invalid = "INVALID_REQUEST"
    require(request, "body", "out_trade_no", "total_fee", "spbill_create_ip",
            "notify_url", "trade_type")
    trade_type = request.get("trade_type")
    if trade_type not in TRADE_TYPES:
        raise BizError(invalid, f"trade_type参数错误 (one of {', '.join(TRADE_TYPES)})")
    if trade_type == "JSAPI":
        require(request, "openid")  # JSAPI支付必须传openid (§3.1)
    if trade_type == "NATIVE":
        require(request, "product_id")
    check_lengths(request, UNIFIEDORDER_LIMITS, invalid)
    check_pattern(request, "out_trade_no", OUT_TRADE_NO_RE, invalid)
    positive_int(request, "total_fee", invalid)
    if request.get("fee_type") not in ("", "CNY"):
        raise BizError(invalid, "fee_type参数错误 (domestic merchants: CNY only)")
    check_ip(request, "spbill_create_ip", invalid)
    check_notify_url(request, "notify_url", invalid)
    for name in ("time_start", "time_expire"):
        check_pattern(request, name, BEIJING_TIME_RE, invalid)


def _reenter(sim: Simulator, trade: Trade, params: dict[str, str], now: float) -> None:
    if trade.state in PAID_STATES:
        raise BizError("ORDERPAID", "该订单已支付 (order already paid)")
    if trade.state == CLOSED:
        raise BizError("ORDERCLOSED", "该订单已关闭 (order closed)")
    if params != trade.params:
        changed = sorted(k for k in params.keys() | trade.params.keys()
                         if params.get(k) != trade.params.get(k))
        raise BizError("OUT_TRADE_NO_USED",
                       f"商户订单号重复 (re-entry with different {', '.join(changed)})")
    if now >= trade.prepay_expires_at:
        issue_prepay(sim, trade, now)  # same trade, fresh 2-hour prepay_id (§3.3)


def issue_prepay(sim: Simulator, trade: Trade, now: float) -> None:
    # Shaped like wx201410272009395522657a690389285100: "wx" + Beijing time + hex.
    trade.prepay_id = "wx" + wx_time(now) + secrets.token_hex(10)
    trade.prepay_expires_at = now + PREPAY_TTL_S
    sim.prepay_index[trade.prepay_id] = trade.out_trade_no


# --- orderquery / closeorder --------------------------------------------------------------

def orderquery(sim: Simulator, request: PayRequest) -> dict[str, Any]:
    require_one(request, "transaction_id", "out_trade_no")
    with sim.lock:
        trade = sim.find_trade(out_trade_no=request.get("out_trade_no"),
                               transaction_id=request.get("transaction_id"))
        if trade is None:
            raise BizError("ORDERNOTEXIST", "订单不存在 (order does not exist)")
        answer: dict[str, Any] = {
            "out_trade_no": trade.out_trade_no,
            "trade_state": trade.state,
            "trade_state_desc": STATE_DESC[trade.state],
            "total_fee": trade.total_fee,
            "attach": trade.params.get("attach", ""),
        }
        if trade.state in PAID_STATES:
            answer.update(payment_fields(trade))
        return answer


def closeorder(sim: Simulator, request: PayRequest) -> dict[str, Any]:
    require(request, "out_trade_no")
    with sim.lock:
        trade = sim.trades.get(request.get("out_trade_no"))
        if trade is None:
            raise BizError("ORDERNOTEXIST", "订单不存在 (order does not exist)")
        if trade.state in PAID_STATES:
            raise BizError("ORDERPAID", "订单已支付,不能发起关单 (order paid, cannot close)")
        if trade.state == CLOSED:
            raise BizError("ORDERCLOSED", "订单已关闭 (order already closed)")
        if sim.now() - trade.created_at < sim.config.close_min_seconds:
            # §6.2: the minimum gap between unifiedorder and closeorder is 5 minutes.
            raise BizError("SYSTEMERROR", "订单创建5分钟内不能关闭 "
                           "(order cannot be closed within 5 minutes of creation)")
        trade.state = CLOSED
    return {"result_msg": "OK"}


# --- the payment (POST /sim/pay) and its notify -------------------------------------------

PAY_SIGN_FAILED = "支付验证签名失败"
REQUEST_PAYMENT_FIELDS = ("timeStamp", "nonceStr", "package", "signType", "paySign")
RSA = "RSA"  # v3's signType (docs/protocol/wechat-pay-v3.md §5.1); v3 trades carry it


def check_request_payment(sim: Simulator, payment: dict[str, Any]) -> str:
    """What WeChat checks when a mini-program calls ``wx.requestPayment(payment)`` (§4).

    Returns the prepay_id. The sign type must be the trade's own, and paySign must sign
    appId (not passed, but signed), timeStamp, nonceStr, package and signType (§4.2). A v3
    trade's is ``RSA``: the merchant key's signature over the four lines appId, timeStamp,
    nonceStr and package, each ending in a newline (docs/protocol/wechat-pay-v3.md §5.2),
    verified with the merchant's public key.
    """
    if set(payment) != set(REQUEST_PAYMENT_FIELDS) or not all(
        isinstance(payment[name], str) for name in REQUEST_PAYMENT_FIELDS
    ):
        raise PayRefused(400, f"requestPayment takes exactly the strings {REQUEST_PAYMENT_FIELDS}")
    if not re.fullmatch(r"[0-9]{10}", payment["timeStamp"]):
        raise PayRefused(400, f"{PAY_SIGN_FAILED}: timeStamp must be 10 digits of seconds")
    prepay_id = payment["package"].removeprefix("prepay_id=")
    with sim.lock:
        trade = sim.find_trade(prepay_id=prepay_id)
        sign_type = trade.sign_type if trade else ""
    if trade is None or not payment["package"].startswith("prepay_id="):
        raise PayRefused(409, PREPAY_EXPIRED)
    if payment["signType"] != sign_type or not _pay_sign_ok(sim, payment, sign_type):
        raise PayRefused(400, PAY_SIGN_FAILED)
    return prepay_id


def _pay_sign_ok(sim: Simulator, payment: dict[str, str], sign_type: str) -> bool:
    if sign_type == RSA:
        lines = (sim.config.appid, payment["timeStamp"], payment["nonceStr"], payment["package"])
        message = "".join(line + "\n" for line in lines).encode("utf-8")
        return rsa_verify(sim.v3.merchant_public_key, message, payment["paySign"])
    signed = {"appId": sim.config.appid, **{k: payment[k] for k in REQUEST_PAYMENT_FIELDS[:4]}}
    return hmac.compare_digest(payment["paySign"], sign(signed, sim.config.mch_key, sign_type))


def pay_trade(
    sim: Simulator, *, out_trade_no: str = "", prepay_id: str = "", openid: str = "",
    coupon_fee: int = 0, bank_type: str = "OTHERS",
) -> dict[str, str]:
    """The user pays: mark the trade paid, then deliver the notify in the background."""
    with sim.lock:
        trade = sim.find_trade(out_trade_no=out_trade_no, prepay_id=prepay_id)
        if trade is None:
            raise PayRefused(404, "no such trade (unifiedorder was never answered for it)")
        _check_payable(sim, trade, prepay_id, openid, coupon_fee)
        _mark_paid(sim, trade, openid or trade.openid or "o" + random_string(27), coupon_fee,
                   bank_type)
        dropped = sim.faults.take_notify_drop()
        trade.notifies_dropped += int(dropped)
        v3 = trade.api == "v3"
        body = v3notify.payment_body(sim, trade) if v3 else payment_notify_body(sim, trade)
        url = trade.params["notify_url"]
    if dropped:
        sim.notifier.count_dropped()
    elif v3:
        v3notify.schedule(sim, url, body, trade.notify_attempts)
    else:
        sim.notifier.schedule(url, body, trade.notify_attempts)
    return {
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "notify": "dropped" if dropped else "scheduled",
    }


def _check_payable(
    sim: Simulator, trade: Trade, prepay_id: str, openid: str, coupon_fee: int
) -> None:
    if trade.state in PAID_STATES:
        raise PayRefused(409, "ORDERPAID: 该订单已支付 (order already paid)")
    if trade.state == CLOSED:
        raise PayRefused(409, "ORDERCLOSED: 该订单已关闭 (order closed)")
    # An older prepay_id than the current one has necessarily expired (§3.3); so has a v3
    # order past its time_expire (docs/protocol/wechat-pay-v3.md §4.1).
    now = sim.now()
    if (prepay_id and prepay_id != trade.prepay_id) or now >= trade.prepay_expires_at or (
        trade.expires_at and now >= trade.expires_at
    ):
        raise PayRefused(409, PREPAY_EXPIRED)
    # The failure this whole project is about (§4.3): the payer must be the orderer.
    if openid and trade.openid and openid != trade.openid:
        raise PayRefused(409, MISMATCHED_PAYER)
    if not 0 <= coupon_fee <= trade.total_fee:
        raise PayRefused(400, "coupon_fee must be between 0 and total_fee")


def _mark_paid(
    sim: Simulator, trade: Trade, payer: str, coupon_fee: int, bank_type: str
) -> None:
    now = sim.now()
    trade.state = SUCCESS
    trade.payer_openid = payer
    trade.time_end = wx_time(now)
    trade.paid_at = now
    # 28 digits like 4200000483202001042069747825: prefix, 3 digits, Beijing date, 10 digits.
    trade.transaction_id = "4200000" + random_digits(3) + trade.time_end[:8] + random_digits(10)
    trade.bank_type = bank_type
    trade.coupon_fee = coupon_fee
    trade.cash_fee = trade.total_fee - coupon_fee
    trade.coupon_id = random_digits(10) if coupon_fee else ""
    sim.transaction_index[trade.transaction_id] = trade.out_trade_no


def payment_fields(trade: Trade) -> dict[str, Any]:
    """The payment facts, as both the notify (§5.1) and orderquery (§6.1) carry them."""
    fields: dict[str, Any] = {
        "openid": trade.payer_openid,
        "is_subscribe": "N",
        "trade_type": trade.params["trade_type"],
        "bank_type": trade.bank_type,
        "total_fee": trade.total_fee,
        "fee_type": "CNY",
        "cash_fee": trade.cash_fee,
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "attach": trade.params.get("attach", ""),
        "time_end": trade.time_end,
    }
    if trade.coupon_fee:
        # Fields the shop may not model but must include when verifying the sign (§2.1).
        fields.update(coupon_fee=trade.coupon_fee, coupon_count=1,
                      coupon_id_0=trade.coupon_id, coupon_fee_0=trade.coupon_fee)
    return fields


def payment_notify_body(sim: Simulator, trade: Trade) -> bytes:
    fields: dict[str, Any] = {
        "return_code": "SUCCESS",
        "appid": trade.params["appid"],
        "mch_id": trade.params["mch_id"],
        "device_info": trade.params.get("device_info", ""),
        "nonce_str": random_string(32),
        "result_code": "SUCCESS",
        **payment_fields(trade),
    }
    # Signed with the order's sign type but WITHOUT a sign_type field, as WeChat really
    # does for HMAC-SHA256 orders (§5.3); a verifier that assumes MD5 fails here.
    return signed_xml(fields, sim.config.mch_key, trade.sign_type)


def resend_notify(
    sim: Simulator, out_trade_no: str, copies: int, concurrent: bool
) -> list[dict[str, Any]]:
    """Duplicate notifies now (identical bodies, as WeChat's parallel servers send them; a
    v3 notify signed afresh each time)."""
    with sim.lock:
        trade = sim.trades.get(out_trade_no)
        if trade is None:
            raise PayRefused(404, "no such trade")
        if trade.state not in PAID_STATES:
            raise PayRefused(409, f"trade is {trade.state}, only paid trades are notified")
        v3 = trade.api == "v3"
        body = v3notify.payment_body(sim, trade) if v3 else payment_notify_body(sim, trade)
        url = trade.params["notify_url"]
    if v3:
        return v3notify.send_copies(sim, url, body, copies, concurrent, trade.notify_attempts)
    return sim.notifier.send_copies(url, [body] * copies, concurrent, trade.notify_attempts)
