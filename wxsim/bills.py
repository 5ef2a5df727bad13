"""``/pay/downloadbill`` (docs/protocol/wechat-pay-v2.md §14): the day's trade bill built from
the simulator's own ledger, in WeChat's format, and bill faults that make it disagree with
the shop (``/sim/bills/faults``).

Rows: payments by the Beijing day of ``time_end``, refunds by the day they were accepted
(§14.1). Money in yuan with 2 decimals, the fee with 5 (0.60% per row, rounded half up to
the fen, negative on refund rows); BOM, one backtick before every value, CRLF (§14.4).
"""

from __future__ import annotations

import gzip
import re
from datetime import date, datetime, timedelta
from typing import Any

from wxsim.payapi import SIGN_ERROR_MSG, ProtocolFail, read_request
from wxsim.protocol import BEIJING, random_digits, to_xml, wx_datetime, wx_time
from wxsim.state import PAID_STATES, Simulator

BILL_PATH = "/pay/downloadbill"
BILL_TYPES = ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND")
RATE = "0.60%"
RATE_PER_MILLE = 6  # 0.60%
HISTORY_DAYS = 92  # the last 3 months (§14.1)


def _names(text: str) -> list[str]:
    return text.split(",")


ALL_COLUMNS = _names(
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
)
# §14.5: SUCCESS has no refund columns; REFUND adds the two refund times after 代金券金额.
_REFUND_ONLY = _names(
    "微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,申请退款金额"
)
SUCCESS_COLUMNS = [c for c in ALL_COLUMNS if c not in _REFUND_ONLY]
REFUND_COLUMNS = [*ALL_COLUMNS[:14], "退款申请时间", "退款成功时间", *ALL_COLUMNS[14:]]
SUMMARY_COLUMNS = _names(
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,"
    "申请退款总金额"
)
_DATE_RE = re.compile(r"[0-9]{8}")


def _failure(return_msg: str, error_code: str) -> tuple[bytes, str]:
    # Never signed, error_code instead of err_code (§14.8).
    body = to_xml({"return_code": "FAIL", "return_msg": return_msg, "error_code": error_code})
    return body, "text/plain; charset=UTF-8"


def downloadbill(
    sim: Simulator, method: str, body: bytes, *, system_error: bool = False
) -> tuple[bytes, str]:
    """Answer one downloadbill call: (body, content type), always HTTP 200."""
    try:
        request = read_request(sim, method, body)
    except ProtocolFail as fail:
        text = "sign error" if fail.return_msg.startswith(SIGN_ERROR_MSG) else "data format error"
        return _failure(text, "20001")
    if system_error:
        return _failure("System Error", "100")
    if request.get("mch_id") != sim.config.mch_id or request.get("appid") != sim.config.appid:
        return _failure("invalid appid or mch_id", "20001")
    bill_date = request.get("bill_date")
    bill_type = request.get("bill_type") or "ALL"
    tar_type = request.get("tar_type")
    if not bill_date or not request.get("nonce_str"):
        return _failure("missing parameter", "20001")
    day = _day(sim, bill_date)
    if day is None:
        return _failure("invalid bill_date", "20001")
    if bill_type not in BILL_TYPES:
        return _failure("invalid bill_type", "20001")
    if tar_type not in ("", "GZIP"):
        return _failure("invalid tar_type, Only GZIP supported", "20001")
    with sim.lock:
        text = build_bill(sim, bill_date, bill_type)
    if text is None:
        return _failure("No Bill Exist", "20002")
    if tar_type == "GZIP":
        return gzip.compress(text, mtime=0), "application/x-gzip"
    return text, "text/plain; charset=UTF-8"


def _day(sim: Simulator, bill_date: str) -> date | None:
    """yyyyMMdd, a real day, not in the future, at most 3 months back (Beijing)."""
    if not _DATE_RE.fullmatch(bill_date):
        return None
    try:
        day = datetime.strptime(bill_date, "%Y%m%d").date()
    except ValueError:
        return None
    today = datetime.fromtimestamp(sim.now(), BEIJING).date()
    return day if today - timedelta(days=HISTORY_DAYS) <= day <= today else None


def build_bill(sim: Simulator, bill_date: str, bill_type: str = "ALL") -> bytes | None:
    """The bill file of one day (yyyyMMdd), or None when it would have no rows. Under lock."""
    fault = sim.bill_faults.get(_fault_key(bill_date), {})
    dropped = set(fault.get("drop", []))
    amounts: dict[str, int] = fault.get("amount", {})
    rows: list[tuple[str, int, dict[str, str]]] = []
    for trade in sim.trades.values():
        if trade.out_trade_no in dropped:
            continue
        if trade.state in PAID_STATES and trade.time_end[:8] == bill_date:
            rows.append((trade.time_end, 0, _payment_row(trade, amounts)))
        for refund in trade.refunds:
            if wx_time(refund.created_at)[:8] == bill_date:
                rows.append((wx_time(refund.created_at), 1, _refund_row(
                    trade_fields(trade), refund.refund_id, refund.out_refund_no,
                    refund.refund_fee, refund.status, refund.created_at, refund.success_time)))
    ordered = [row for _, _, row in sorted(rows, key=lambda r: (r[0], r[1]))]
    for extra in fault.get("extra_refunds", []):
        trade = sim.trades.get(extra["out_trade_no"])
        base = trade_fields(trade) if trade else {"商户订单号": extra["out_trade_no"]}
        ordered.append(_refund_row(base, extra["refund_id"], extra["out_refund_no"],
                                   extra["refund_fee"], "SUCCESS", sim.now(), ""))
    if bill_type == "SUCCESS":
        ordered, columns = [r for r in ordered if r["交易状态"] == "SUCCESS"], SUCCESS_COLUMNS
    elif bill_type == "REFUND":
        ordered, columns = [r for r in ordered if r["交易状态"] == "REFUND"], REFUND_COLUMNS
    elif bill_type == "RECHARGE_REFUND":
        ordered, columns = [], ALL_COLUMNS  # no refunds from the available balance here
    else:
        columns = ALL_COLUMNS
    if not ordered:
        return None
    lines = [",".join(columns)]
    lines += [",".join("`" + row.get(c, "") for c in columns) for row in ordered]
    if not fault.get("truncate"):
        lines += [",".join(SUMMARY_COLUMNS), ",".join("`" + v for v in _summary(ordered))]
    return b"\xef\xbb\xbf" + "".join(line + "\r\n" for line in lines).encode("utf-8")


def trade_fields(trade: Any) -> dict[str, str]:
    """The columns a payment and its refunds share (§14.7)."""
    return {
        "公众账号ID": trade.params.get("appid", ""),
        "商户号": trade.params.get("mch_id", ""),
        "特约商户号": "0",
        "设备号": trade.params.get("device_info", ""),
        "微信订单号": trade.transaction_id,
        "商户订单号": trade.out_trade_no,
        "用户标识": trade.payer_openid,
        "交易类型": trade.params.get("trade_type", ""),
        "付款银行": trade.bank_type,
        "货币种类": "CNY",
        "商品名称": trade.params.get("body", ""),
        "商户数据包": trade.params.get("attach", ""),
        "费率": RATE,
        "费率备注": "",
    }


def _payment_row(trade: Any, amounts: dict[str, int]) -> dict[str, str]:
    total = amounts.get(trade.out_trade_no, trade.total_fee)
    settled = max(total - trade.coupon_fee, 0)
    return {
        **trade_fields(trade),
        "交易时间": wx_datetime(trade.paid_at),
        "交易状态": "SUCCESS",
        "应结订单金额": _yuan(settled),
        "代金券金额": _yuan(trade.coupon_fee),
        "微信退款单号": "0",
        "商户退款单号": "0",
        "退款金额": "0.00",
        "充值券退款金额": "0.00",
        "退款类型": "",
        "退款状态": "",
        "手续费": _fee(settled),
        "订单金额": _yuan(total),
        "申请退款金额": "0.00",
    }


def _refund_row(
    base: dict[str, str], refund_id: str, out_refund_no: str, refund_fee: int, status: str,
    accepted_at: float, success_time: str,
) -> dict[str, str]:
    return {
        **trade_fields_defaults(),
        **base,
        "交易时间": wx_datetime(accepted_at),
        "交易状态": "REFUND",
        "应结订单金额": "0.00",
        "代金券金额": "0.00",
        "退款申请时间": wx_datetime(accepted_at),
        "退款成功时间": success_time,
        "微信退款单号": refund_id,
        "商户退款单号": out_refund_no,
        "退款金额": _yuan(refund_fee),
        "充值券退款金额": "0.00",
        "退款类型": "ORIGINAL",
        "退款状态": status,
        "手续费": _fee(refund_fee, negative=True),
        "订单金额": "0.00",
        "申请退款金额": _yuan(refund_fee),
    }


def trade_fields_defaults() -> dict[str, str]:
    return {"特约商户号": "0", "货币种类": "CNY", "费率": RATE, "交易类型": "JSAPI"}


def _summary(rows: list[dict[str, str]]) -> list[str]:
    def total(column: str) -> int:
        return sum(_fen(row.get(column, "0")) for row in rows)

    return [str(len(rows)), _yuan(total("应结订单金额")), _yuan(total("退款金额")),
            _yuan(total("充值券退款金额")), _yuan(total("手续费"), places=5),
            _yuan(total("订单金额")), _yuan(total("申请退款金额"))]


def _fee_fen(fen: int) -> int:
    return (fen * RATE_PER_MILLE + 500) // 1000  # 0.60%, half up


def _fee(fen: int, *, negative: bool = False) -> str:
    fee = _fee_fen(fen)
    return _yuan(-fee if negative else fee, places=5)


def _yuan(fen: int, places: int = 2) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}" + "0" * (places - 2)


def _fen(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    whole, _, fraction = text.lstrip("-").partition(".")
    return sign * (int(whole or "0") * 100 + int((fraction + "00")[:2]))


# --- /sim/bills/faults ----------------------------------------------------------------------

def _fault_key(bill_date: str) -> str:
    """yyyyMMdd or yyyy-MM-dd → yyyy-MM-dd; ValueError otherwise."""
    for shape in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(bill_date, shape).strftime("%Y-%m-%d")
        except ValueError:
            continue
    raise ValueError('"date" must be yyyy-MM-dd or yyyyMMdd')


def add_fault(sim: Simulator, spec: dict[str, Any]) -> dict[str, Any]:
    """Apply one ``POST /sim/bills/faults`` body (merged into the day's faults); raises
    ValueError with a readable reason. Call under the lock."""
    known = {"date", "drop", "amount", "extra_refund", "truncate"}
    if set(spec) - known or not set(spec) - {"date"} or not isinstance(spec.get("date"), str):
        raise ValueError(f'give "date" and one or more of {sorted(known - {"date"})}')
    key = _fault_key(spec["date"])
    drop = spec.get("drop", [])
    drop = [drop] if isinstance(drop, str) else drop
    if not isinstance(drop, list) or not all(isinstance(d, str) and d for d in drop):
        raise ValueError('"drop" is an out_trade_no or a list of them')
    amount = spec.get("amount", {})
    if not isinstance(amount, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in amount.values()
    ):
        raise ValueError('"amount" maps out_trade_no to a positive amount in fen')
    extra = spec.get("extra_refund")
    if extra is not None:
        extra = _extra_refund(sim, extra)
    truncate = spec.get("truncate", False)
    if not isinstance(truncate, bool):
        raise ValueError('"truncate" is true or false')
    fault = sim.bill_faults.setdefault(
        key, {"drop": [], "amount": {}, "extra_refunds": [], "truncate": False})
    fault["drop"] += [d for d in drop if d not in fault["drop"]]
    fault["amount"].update(amount)
    if extra is not None:
        fault["extra_refunds"].append(extra)
    fault["truncate"] = fault["truncate"] or truncate
    return faults_json(sim)


def _extra_refund(sim: Simulator, extra: Any) -> dict[str, Any]:
    if not isinstance(extra, dict) or set(extra) - {"out_trade_no", "refund_fee", "out_refund_no"}:
        raise ValueError('"extra_refund" is {"out_trade_no", "refund_fee", "out_refund_no"?}')
    out_trade_no, fee = extra.get("out_trade_no"), extra.get("refund_fee")
    out_refund_no = extra.get("out_refund_no") or "SIMREFUND" + random_digits(12)
    if not isinstance(out_trade_no, str) or not out_trade_no or not isinstance(out_refund_no, str):
        raise ValueError('"extra_refund" needs "out_trade_no"')
    if not isinstance(fee, int) or isinstance(fee, bool) or fee <= 0:
        raise ValueError('"extra_refund" needs "refund_fee", a positive amount in fen')
    refund_id = "503000" + wx_time(sim.now())[:8] + random_digits(15)
    return {"out_trade_no": out_trade_no, "refund_fee": fee, "out_refund_no": out_refund_no,
            "refund_id": refund_id}


def faults_json(sim: Simulator) -> dict[str, Any]:
    return {"bills": {
        day: {**fault, "drop": list(fault["drop"]), "amount": dict(fault["amount"]),
              "extra_refunds": [
                  {k: v for k, v in e.items() if k != "refund_id"} for e in fault["extra_refunds"]
              ]}
        for day, fault in sim.bill_faults.items()
    }}
