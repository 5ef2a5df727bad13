"""Order shipping management (发货信息管理) on api.weixin.qq.com, WeChat's side.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

The payments are the simulator's own trade ledger: a payment exists once ``POST /sim/pay``
paid it (and, as at WeChat, only then). Uploads are checked field by field with the errcodes
of §2.7; where the notes give a range, not a code per field, the choice is written beside the
check. Shipping is recorded per transaction_id; ``get_order`` reports it with an
``order_state`` (§2.5) that the control calls can move on (receipt confirmed, settled).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from wxsim.miniapi import ApiError, number, ok, text
from wxsim.state import PAID_STATES, REFUND, Shipment, Simulator, Trade

EXPRESS = 1
UNIFIED, SPLIT = 1, 2
TO_SHIP, SHIPPED, RECEIVED, SETTLED, REFUNDED = 1, 2, 3, 4, 5
MAX_ITEM_DESC = 120
MAX_CODE_BYTES = 128
MAX_ENTRIES = 15
SF_EXPRESS = "SF"
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
MASKED_PHONE = re.compile(r"\+?[0-9]{0,5}\*+[0-9]{4}")
# Automatic receipt after shipping (§2.2, community): T+10 days express, T+2 otherwise.
AUTO_CONFIRM_S = {EXPRESS: 10 * 86400}
AUTO_CONFIRM_OTHER_S = 2 * 86400
NOT_FOUND = "支付单不存在"


def is_trade_managed(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    if text(body, "appid", 41002, "appid missing") != sim.config.appid:
        raise ApiError(40013, "invalid appid")
    with sim.lock:
        return ok(is_trade_managed=sim.trade_managed)


# --- upload_shipping_info (§2.4) ------------------------------------------------------------

def upload_shipping_info(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    key = _upload_key(body)
    logistics_type = number(body, "logistics_type", range(1, 5), 10060005, "物流类型有误")
    mode = number(body, "delivery_mode", (UNIFIED, SPLIT), 268485224, "发货模式非法")
    all_delivered = True
    if mode == SPLIT:
        if logistics_type != EXPRESS:
            raise ApiError(10060006, "非快递发货不允许分拆发货")
        all_delivered = body.get("is_all_delivered")
        if not isinstance(all_delivered, bool):
            raise ApiError(10060007, "分拆发货必须填写is_all_delivered")
    entries = _shipping_list(body.get("shipping_list"), mode, logistics_type)
    upload_time = body.get("upload_time")
    if not isinstance(upload_time, str) or not RFC3339.fullmatch(upload_time):
        raise ApiError(268485216, "上传时间非法,请按照RFC 3339格式填写")
    upload_ts = datetime.fromisoformat(upload_time).timestamp()
    payer = body.get("payer")
    if not isinstance(payer, dict) or not isinstance(payer.get("openid"), str):
        raise ApiError(47001, "data format error: payer.openid")
    with sim.lock:
        trade = _find_payment(sim, key)
        if payer["openid"] != trade.payer_openid:
            raise ApiError(10060031, "支付者openid与支付单不一致")
        if trade.state == REFUND:
            raise ApiError(10060004, "支付单处于不可发货的状态")
        shipment = sim.shipments.get(trade.transaction_id)
        if shipment is None:
            sim.shipments[trade.transaction_id] = Shipment(
                trade.transaction_id, trade.out_trade_no, logistics_type, mode, entries,
                upload_time, upload_ts, sim.now(), all_delivered,
            )
        else:
            _update(shipment, logistics_type, mode, entries, upload_time, upload_ts, all_delivered)
    return ok()


def _upload_key(body: dict[str, Any]) -> dict[str, str]:
    order_key = body.get("order_key")
    if not isinstance(order_key, dict):
        raise ApiError(47001, "data format error: order_key")
    kind = number(order_key, "order_number_type", (1, 2), 268485194, "order_number_type非法")
    if kind == 2:
        tid = text(order_key, "transaction_id", 268485195, "缺少transaction_id")
        return {"transaction_id": tid}
    return {
        "mch_id": text(order_key, "mchid", 268485196, "缺少mchid"),
        "out_trade_no": text(order_key, "out_trade_no", 268485197, "缺少out_trade_no"),
    }


def _shipping_list(value: object, mode: int, logistics_type: int) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ApiError(47001, "data format error: shipping_list")
    if mode == UNIFIED and len(value) != 1:
        raise ApiError(268485228, "统一发货模式下,物流信息列表长度必须为1")
    if not 1 <= len(value) <= MAX_ENTRIES:
        raise ApiError(10060024, "物流信息列表长度有误")
    return [_entry(entry, logistics_type) for entry in value]


def _entry(entry: object, logistics_type: int) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ApiError(47001, "data format error: shipping_list")
    desc = entry.get("item_desc")
    if not isinstance(desc, str) or not desc.strip():
        raise ApiError(10060008, "商品描述字段不能为空")
    if len(desc) > MAX_ITEM_DESC:
        raise ApiError(10060009, "商品描述字段不能超过120个字")
    tracking_no, company = entry.get("tracking_no", ""), entry.get("express_company", "")
    if not isinstance(tracking_no, str) or not isinstance(company, str):
        raise ApiError(47001, "data format error: tracking_no/express_company")
    if logistics_type == EXPRESS:
        if not tracking_no:
            raise ApiError(268485226, "快递发货需要填写物流单号")
        if not company:
            raise ApiError(268485227, "快递发货需要填写物流公司")
    # Lengths of §2.4; which of 10060025/10060026 is which is this simulator's choice.
    if len(company.encode("utf-8")) > MAX_CODE_BYTES:
        raise ApiError(10060025, "物流公司编码过长")
    if len(tracking_no.encode("utf-8")) > MAX_CODE_BYTES:
        raise ApiError(10060026, "物流单号过长")
    contact = entry.get("contact", {})
    phones = [contact.get(n) for n in ("receiver_contact", "consignor_contact")] if isinstance(
        contact, dict) else None
    if phones is None or any(p is not None and not isinstance(p, str) for p in phones):
        raise ApiError(47001, "data format error: contact")
    # 10060014 (a field error of §2.7) for the phone rules, which the notes give no code.
    if any(p and not MASKED_PHONE.fullmatch(p) for p in phones):
        raise ApiError(10060014, "联系方式需掩码,仅保留后4位")
    if company == SF_EXPRESS and not any(phones):
        raise ApiError(10060014, "顺丰快递需要填写收件人或寄件人联系方式")
    return {k: v for k, v in entry.items() if k in (
        "item_desc", "tracking_no", "express_company", "contact")}


def _find_payment(sim: Simulator, key: dict[str, str]) -> Trade:
    """The paid trade the key names; anything else is "payment not found" (10060001)."""
    trade = sim.find_trade(transaction_id=key.get("transaction_id", ""),
                           out_trade_no=key.get("out_trade_no", ""))
    if trade is None or trade.state not in PAID_STATES:
        raise ApiError(10060001, NOT_FOUND)
    if "mch_id" in key and trade.params.get("mch_id") != key["mch_id"]:
        raise ApiError(10060001, NOT_FOUND)
    return trade


def _update(
    shipment: Shipment, logistics_type: int, mode: int, entries: list[dict[str, Any]],
    upload_time: str, upload_ts: float, all_delivered: bool,
) -> None:
    """A second upload for the same payment: §2.4's rules, in this order."""
    if shipment.confirm_receive_time or shipment.settlement_time:
        raise ApiError(10060004, "支付单处于不可发货的状态")
    same = (logistics_type, mode, entries) == (
        shipment.logistics_type, shipment.delivery_mode, shipment.shipping_list)
    if same and all_delivered == shipment.all_delivered:
        raise ApiError(10060023, "发货信息未更新")
    if upload_ts <= shipment.upload_ts:
        raise ApiError(10060014, "更新发货信息的上传时间必须晚于之前的请求")
    if mode == SPLIT and shipment.delivery_mode == SPLIT and not shipment.all_delivered:
        # More parcels of a split shipment: not a change of what was uploaded.
        if len(shipment.shipping_list) + len(entries) > MAX_ENTRIES:
            raise ApiError(10060024, "物流信息列表长度有误")
        shipment.shipping_list = shipment.shipping_list + entries
    elif shipment.changes >= 1:
        raise ApiError(10060003, "支付单已使用重新发货机会")
    else:
        shipment.changes += 1
        shipment.logistics_type, shipment.delivery_mode = logistics_type, mode
        shipment.shipping_list = entries
    shipment.all_delivered = all_delivered
    shipment.upload_time, shipment.upload_ts = upload_time, upload_ts


# --- get_order (§2.5), notify_confirm_receive (§2.6) -----------------------------------------

def get_order(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    with sim.lock:
        trade = _find_payment(sim, _merchant_key(body))
        return ok(order=order_json(sim, trade))


def order_state(trade: Trade, shipment: Shipment | None) -> int:
    if shipment is not None and shipment.settlement_time:
        return SETTLED
    if trade.state == REFUND:
        return REFUNDED
    if shipment is not None and shipment.confirm_receive_time:
        return RECEIVED
    if shipment is not None and shipment.all_delivered:
        return SHIPPED
    return TO_SHIP


def order_json(sim: Simulator, trade: Trade) -> dict[str, Any]:
    shipment = sim.shipments.get(trade.transaction_id)
    order: dict[str, Any] = {
        "transaction_id": trade.transaction_id,
        "merchant_id": trade.params.get("mch_id", ""),
        "sub_merchant_id": "",
        "merchant_trade_no": trade.out_trade_no,
        "description": trade.params.get("body", ""),
        "paid_amount": trade.total_fee,
        "openid": trade.payer_openid,
        "trade_create_time": int(trade.created_at),
        "pay_time": int(trade.paid_at),
        "in_complaint": False,
        "order_state": order_state(trade, shipment),
    }
    if shipment is not None:
        order["shipping"] = {
            "delivery_mode": shipment.delivery_mode,
            "logistics_type": shipment.logistics_type,
            "finish_shipping": shipment.all_delivered,
            "goods_desc": shipment.shipping_list[0]["item_desc"],
            "finish_shipping_count": shipment.changes,
            "shipping_list": [
                {
                    "tracking_no": entry.get("tracking_no", ""),
                    "express_company": entry.get("express_company", ""),
                    "goods_desc": entry["item_desc"],
                    "upload_time": int(shipment.upload_ts),  # a number here (§6)
                }
                for entry in shipment.shipping_list
            ],
        }
    return order


def notify_confirm_receive(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    key = _merchant_key(body)
    received_time = body.get("received_time")
    if type(received_time) is not int:
        raise ApiError(10060029, "确认收货时间有误")
    with sim.lock:
        trade = _find_payment(sim, key)
        shipment = sim.shipments.get(trade.transaction_id)
        if order_state(trade, shipment) != SHIPPED or shipment is None:
            raise ApiError(10060028, "当前支付单未发货,无法提醒确认收货")
        if shipment.logistics_type != EXPRESS:
            raise ApiError(10060032, "非快递发货不支持提醒确认收货")
        if shipment.reminded_at:
            raise ApiError(10060030, "该支付单已提醒过确认收货")
        if received_time < int(shipment.shipped_at):
            raise ApiError(10060029, "确认收货时间有误")
        shipment.reminded_at = sim.now()
        shipment.received_time = received_time
    return ok()


def _merchant_key(body: dict[str, Any]) -> dict[str, str]:
    """get_order's and notify_confirm_receive's names: merchant_id, merchant_trade_no (§6)."""
    if isinstance(body.get("transaction_id"), str) and body["transaction_id"]:
        return {"transaction_id": body["transaction_id"]}
    return {
        "mch_id": text(body, "merchant_id", 47001, "data format error: merchant_id"),
        "out_trade_no": text(body, "merchant_trade_no", 47001,
                             "data format error: merchant_trade_no"),
    }


# --- what the user and WeChat do later (control calls, §2.2, §2.8) --------------------------

class ShippingStateError(Exception):
    """The control call does not fit the payment's state: HTTP status and why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def shipped(sim: Simulator, transaction_id: str) -> tuple[Trade, Shipment]:
    """The paid trade and its complete shipping, under the caller's lock."""
    trade = sim.find_trade(transaction_id=transaction_id)
    if trade is None or trade.state not in PAID_STATES:
        raise ShippingStateError(404, f"no paid trade {transaction_id}")
    shipment = sim.shipments.get(transaction_id)
    if shipment is None or not shipment.all_delivered:
        raise ShippingStateError(409, "the trade is not shipped (upload_shipping_info first)")
    return trade, shipment


def confirm_receive(sim: Simulator, transaction_id: str, *, by_user: bool = True) -> None:
    """The user confirms receipt (method 2), or WeChat does after the deadline (method 1)."""
    with sim.lock:
        _, shipment = shipped(sim, transaction_id)
        if not shipment.confirm_receive_time:
            shipment.confirm_receive_time = sim.now()
            shipment.confirm_receive_method = 2 if by_user else 1


def settle(sim: Simulator, transaction_id: str) -> None:
    """The funds are settled: confirmed automatically first if the user never did."""
    with sim.lock:
        confirm_receive(sim, transaction_id, by_user=False)
        _, shipment = shipped(sim, transaction_id)
        if not shipment.settlement_time:
            shipment.settlement_time = sim.now()


def settlement_event(sim: Simulator, transaction_id: str, *, settled: bool) -> dict[str, Any]:
    """``trade_manage_order_settlement`` (§2.8) for a shipped trade: the shipping push (with
    ``estimated_settlement_time``) or, with ``settled``, the settlement push (which settles
    the trade here first, so get_order agrees with the event)."""
    if settled:
        settle(sim, transaction_id)
    with sim.lock:
        trade, shipment = shipped(sim, transaction_id)
        event: dict[str, Any] = {
            "ToUserName": sim.config.original_id,
            "FromUserName": trade.payer_openid,
            "CreateTime": int(sim.now()),
            "MsgType": "event",
            "Event": "trade_manage_order_settlement",
            "transaction_id": trade.transaction_id,
            "merchant_id": trade.params.get("mch_id", ""),
            "sub_merchant_id": "",
            "merchant_trade_no": trade.out_trade_no,
            "pay_time": int(trade.paid_at),
            "shipped_time": int(shipment.shipped_at),
        }
        if settled:
            event["confirm_receive_method"] = shipment.confirm_receive_method
            event["confirm_receive_time"] = int(shipment.confirm_receive_time)
            event["settlement_time"] = int(shipment.settlement_time)
        else:
            delay = AUTO_CONFIRM_S.get(shipment.logistics_type, AUTO_CONFIRM_OTHER_S)
            event["estimated_settlement_time"] = int(shipment.shipped_at + delay)
        return event


def shipment_json(sim: Simulator, transaction_id: str) -> dict[str, Any]:
    with sim.lock:
        trade = sim.find_trade(transaction_id=transaction_id)
        if trade is None or trade.state not in PAID_STATES:
            raise ShippingStateError(404, f"no paid trade {transaction_id}")
        shipment = sim.shipments.get(transaction_id)
        return {
            "order_state": order_state(trade, shipment),
            "shipment": shipment.as_json() if shipment else None,
        }
