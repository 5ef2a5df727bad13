"""Refunds: ``/secapi/pay/refund`` (§7.1), ``/pay/refundquery`` (§7.2), refund notify (§7.3).

The real refund call needs the merchant's client certificate (mutual TLS); a plain-HTTP
simulator cannot check that, so it accepts every correctly signed request.

Refunds asked through v3 (wxsim.v3refunds) share this ledger and this completion: a refund
ends SUCCESS, or ABNORMAL / CLOSED when a ``{"refund": …}`` fault says so, and its notify
speaks the API that asked for it. Statuses are kept in v3's words; v2 answers translate them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from typing import Any

from wxsim import v3notify
from wxsim.payapi import (
    BizError,
    PayRequest,
    check_lengths,
    check_notify_url,
    check_pattern,
    positive_int,
    require,
    require_one,
)
from wxsim.protocol import random_digits, random_string, to_xml, wx_datetime, wx_time
from wxsim.state import PAID_STATES, REFUND, Refund, Simulator, Trade

try:  # Optional: the refund notify's req_info needs AES (§7.3); no hard dependency.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:  # pragma: no cover - depends on the environment
    Cipher = None  # type: ignore[assignment,misc]

PARAM_ERROR = "PARAM_ERROR"
OUT_REFUND_NO_RE = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
REFUND_LIMITS = {"out_trade_no": 32, "transaction_id": 32, "out_refund_no": 64,
                 "refund_desc": 80, "notify_url": 256, "refund_account": 30}
MAX_REFUNDS_PER_TRADE = 50  # §7.1 rules
REFUND_PROCESSING_S = 15.0  # multiplied by retry_scale; a wallet refund really takes minutes
QUERY_PAGE = 10  # refundquery by order lists at most 10 refunds per offset (§7.2)
# v2's refund_status for v3's (§7.2): CHANGE is v3's ABNORMAL, REFUNDCLOSE its CLOSED.
V2_STATUS = {"SUCCESS": "SUCCESS", "PROCESSING": "PROCESSING", "ABNORMAL": "CHANGE",
             "CLOSED": "REFUNDCLOSE"}


def aes_available() -> bool:
    return Cipher is not None


# --- /secapi/pay/refund -------------------------------------------------------------------

def refund(sim: Simulator, request: PayRequest) -> dict[str, Any]:
    require(request, "out_refund_no", "total_fee", "refund_fee")
    require_one(request, "transaction_id", "out_trade_no")
    check_lengths(request, REFUND_LIMITS, PARAM_ERROR)
    check_pattern(request, "out_refund_no", OUT_REFUND_NO_RE, PARAM_ERROR)
    check_notify_url(request, "notify_url", PARAM_ERROR)
    total_fee = positive_int(request, "total_fee", PARAM_ERROR)
    refund_fee = positive_int(request, "refund_fee", PARAM_ERROR)
    out_refund_no = request.get("out_refund_no")
    with sim.lock:
        trade = _paid_trade(sim, request)
        existing = sim.refunds.get(out_refund_no)
        if existing is not None:
            # The same out_refund_no refunds only once (§7.1): answer the first refund.
            if existing.out_trade_no != trade.out_trade_no or existing.refund_fee != refund_fee:
                raise BizError("ERROR", "退款单号已存在,参数不一致 (out_refund_no reused "
                               "with different parameters)")
            return _refund_answer(trade, existing)
        _check_refundable(trade, total_fee, refund_fee)
        record = record_refund(sim, trade, out_refund_no, refund_fee, request.get("notify_url"))
        answer = _refund_answer(trade, record)
    start_processing(sim, record)
    return answer


def start_processing(sim: Simulator, record: Refund) -> None:
    """The refund completes a while later, in the background (wallet refunds take minutes)."""
    delay = REFUND_PROCESSING_S * sim.config.retry_scale
    timer = threading.Timer(delay, complete_refund, args=(sim, record))
    timer.daemon = True
    timer.start()


def _paid_trade(sim: Simulator, request: PayRequest) -> Trade:
    transaction_id = request.get("transaction_id")
    trade = sim.find_trade(out_trade_no=request.get("out_trade_no"),
                           transaction_id=transaction_id)
    if trade is None and transaction_id:
        raise BizError("INVALID_TRANSACTIONID", "无效transaction_id (unknown transaction_id)")
    if trade is None or trade.state not in PAID_STATES:
        raise BizError("ORDERNOTEXIST", "订单不存在或未支付 (order not found or not paid)")
    return trade


def _check_refundable(trade: Trade, total_fee: int, refund_fee: int) -> None:
    if total_fee != trade.total_fee:
        raise BizError(PARAM_ERROR, "订单金额与原订单不一致 (total_fee differs from the order)")
    if refund_fee > trade.total_fee - trade.refunded_fee:
        raise BizError("ERROR", "累计退款金额大于支付金额 (refunds would exceed the paid amount)")
    if len(trade.refunds) >= MAX_REFUNDS_PER_TRADE:
        raise BizError("ERROR", "退款次数超过限制 (at most 50 refunds per order)")


def record_refund(
    sim: Simulator, trade: Trade, out_refund_no: str, refund_fee: int, notify_url: str,
    **extra: str,
) -> Refund:
    """Record an accepted refund (PROCESSING); ``extra``: api, reason, funds_account."""
    now = sim.now()
    # 29 digits like 50300103182020010413419046597.
    refund_id = "503000" + wx_time(now)[:8] + random_digits(15)
    record = Refund(out_refund_no, refund_id, trade.out_trade_no, refund_fee, now, notify_url,
                    **extra)
    trade.refunds.append(record)
    trade.state = REFUND
    sim.refunds[out_refund_no] = record
    sim.refund_index[refund_id] = out_refund_no
    return record


def _refund_answer(trade: Trade, record: Refund) -> dict[str, Any]:
    return {
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "out_refund_no": record.out_refund_no,
        "refund_id": record.refund_id,
        "refund_fee": record.refund_fee,
        "total_fee": trade.total_fee,
        "fee_type": "CNY",
        "cash_fee": trade.cash_fee,
        "cash_refund_fee": record.refund_fee,
    }


# --- completion and the refund notify -----------------------------------------------------

def complete_refund(sim: Simulator, record: Refund) -> None:
    """Timer thread: the refund succeeds (or, by a fault, ends ABNORMAL or CLOSED), then
    WeChat tells the merchant (§7.3; docs/protocol/wechat-pay-v3.md §8.5)."""
    with sim.lock:
        if sim.refunds.get(record.out_refund_no) is not record or record.status != "PROCESSING":
            return  # reset in the meantime
        now = sim.now()
        record.status = sim.faults.take_refund_outcome() or "SUCCESS"
        if record.status == "SUCCESS":
            record.success_time = wx_datetime(now)
            record.success_at = now
        if not record.notify_url:
            return
        if not aes_available():
            record.notify = "skipped: the cryptography package is not installed"
            return
        dropped = sim.faults.take_notify_drop()
        record.notify = "dropped" if dropped else "scheduled"
        trade = sim.trades[record.out_trade_no]
        v3 = record.api == "v3"
        body = (v3notify.refund_body(sim, trade, record) if v3
                else refund_notify_body(sim, trade, record))
    if dropped:
        sim.notifier.count_dropped()
    elif v3:
        v3notify.schedule(sim, record.notify_url, body, record.notify_attempts)
    else:
        sim.notifier.schedule(record.notify_url, body, record.notify_attempts)


def resend_refund_notify(
    sim: Simulator, out_trade_no: str, out_refund_no: str, copies: int, concurrent: bool
) -> list[dict[str, Any]]:
    """Duplicate a finished refund's notify now (``POST /sim/notify/<out_trade_no>`` with
    ``out_refund_no``). Raises LookupError when there is none to send."""
    with sim.lock:
        record = sim.refunds.get(out_refund_no)
        if record is None or record.out_trade_no != out_trade_no:
            raise LookupError(f"no refund {out_refund_no} of trade {out_trade_no}")
        if record.status == "PROCESSING" or not record.notify_url:
            raise LookupError(f"refund {out_refund_no} has no notify to send (yet)")
        trade = sim.trades[out_trade_no]
        v3 = record.api == "v3"
        body = (v3notify.refund_body(sim, trade, record) if v3
                else refund_notify_body(sim, trade, record))
    if v3:
        return v3notify.send_copies(sim, record.notify_url, body, copies, concurrent,
                                    record.notify_attempts)
    return sim.notifier.send_copies(record.notify_url, [body] * copies, concurrent,
                                    record.notify_attempts)


def refund_notify_body(sim: Simulator, trade: Trade, record: Refund) -> bytes:
    inner = to_xml({
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "refund_id": record.refund_id,
        "out_refund_no": record.out_refund_no,
        "total_fee": trade.total_fee,
        "refund_fee": record.refund_fee,
        "settlement_refund_fee": record.refund_fee,
        "refund_status": V2_STATUS[record.status],
        "success_time": record.success_time,
        "refund_recv_accout": "支付用户零钱",  # sic: the official field name (§7.3)
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_request_source": "API",
    }, root="root")
    # No sign on a refund notify: authenticity is that req_info decrypts with the key (§7.3).
    return to_xml({
        "return_code": "SUCCESS",
        "appid": trade.params["appid"],
        "mch_id": trade.params["mch_id"],
        "nonce_str": random_string(32),
        "req_info": encrypt_req_info(inner, sim.config.mch_key),
    })


def encrypt_req_info(plaintext: bytes, mch_key: str) -> str:
    """AES-256-ECB, key = lowercase hex MD5 of the API key as 32 ASCII bytes, PKCS#7 (§7.3)."""
    if Cipher is None:
        raise RuntimeError("the cryptography package is needed to encrypt req_info")
    key = hashlib.md5(mch_key.encode()).hexdigest().encode()  # noqa: S324 - protocol
    pad = 16 - len(plaintext) % 16
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - protocol
    data = encryptor.update(plaintext + bytes([pad]) * pad) + encryptor.finalize()
    return base64.b64encode(data).decode()


# --- /pay/refundquery ---------------------------------------------------------------------

def refundquery(sim: Simulator, request: PayRequest) -> dict[str, Any]:
    require_one(request, "refund_id", "out_refund_no", "transaction_id", "out_trade_no")
    offset_text = request.get("offset") or "0"
    if not offset_text.isdigit():
        raise BizError(PARAM_ERROR, "offset参数错误 (a non-negative integer)")
    offset = int(offset_text)
    with sim.lock:
        trade, refunds, by_order = _find_refunds(sim, request)
        if not refunds:
            raise BizError("REFUNDNOTEXIST", "退款订单查询失败 (no refund found)")
        if by_order and offset >= len(refunds):
            raise BizError(PARAM_ERROR, "offset超出范围 (offset beyond total_refund_count)")
        page = refunds[offset:offset + QUERY_PAGE] if by_order else refunds
        answer: dict[str, Any] = {
            "transaction_id": trade.transaction_id,
            "out_trade_no": trade.out_trade_no,
            "total_fee": trade.total_fee,
            "cash_fee": trade.cash_fee,
            "fee_type": "CNY",
            "refund_count": len(page),
        }
        if by_order:
            answer["total_refund_count"] = len(refunds)
        for n, record in enumerate(page):
            answer.update(_refund_item(n, record))
        return answer


def _find_refunds(sim: Simulator, request: PayRequest) -> tuple[Trade, list[Refund], bool]:
    """Priority refund_id > out_refund_no > transaction_id > out_trade_no (§7.2)."""
    out_refund_no = request.get("out_refund_no")
    if request.get("refund_id"):
        out_refund_no = sim.refund_index.get(request.get("refund_id"), "")
    if request.get("refund_id") or out_refund_no:
        record = sim.refunds.get(out_refund_no)
        if record is None:
            raise BizError("REFUNDNOTEXIST", "退款订单查询失败 (no refund found)")
        return sim.trades[record.out_trade_no], [record], False
    trade = sim.find_trade(out_trade_no=request.get("out_trade_no"),
                           transaction_id=request.get("transaction_id"))
    if trade is None:
        raise BizError("REFUNDNOTEXIST", "退款订单查询失败 (no refund found)")
    return trade, list(trade.refunds), True


def _refund_item(n: int, record: Refund) -> dict[str, Any]:
    item: dict[str, Any] = {
        f"out_refund_no_{n}": record.out_refund_no,
        f"refund_id_{n}": record.refund_id,
        f"refund_channel_{n}": "ORIGINAL",
        f"refund_fee_{n}": record.refund_fee,
        f"settlement_refund_fee_{n}": record.refund_fee,
        f"refund_status_{n}": V2_STATUS[record.status],
        f"refund_account_{n}": "REFUND_SOURCE_RECHARGE_FUNDS",
        f"refund_recv_accout_{n}": "支付用户零钱",
    }
    if record.success_time:
        item[f"refund_success_time_{n}"] = record.success_time
    return item
