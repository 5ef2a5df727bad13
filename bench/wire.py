"""WeChat's side of a payment notify, signed independently with hashlib
(docs/protocol/wechat-pay-v2.md §2, §13)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from __future__ import annotations

import hashlib
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from demo.stack import WeChatAccount

BEIJING = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Payment:
    """One order and the payment WeChat reports for it."""

    out_trade_no: str
    total_fee: int
    openid: str
    transaction_id: str


def wx_sign(params: dict[str, str], key: str) -> str:
    items = sorted((k, v) for k, v in params.items() if k != "sign" and v not in (None, ""))
    s = "&".join(f"{k}={v}" for k, v in items) + "&key=" + key
    return hashlib.md5(s.encode("utf-8")).hexdigest().upper()  # noqa: S324 (the protocol's MD5)


def notify_body(payment: Payment, account: WeChatAccount) -> bytes:
    fields = {
        "return_code": "SUCCESS",
        "appid": account.appid,
        "mch_id": account.mch_id,
        "nonce_str": secrets.token_hex(16),
        "result_code": "SUCCESS",
        "openid": payment.openid,
        "is_subscribe": "N",
        "trade_type": "JSAPI",
        "bank_type": "OTHERS",
        "total_fee": str(payment.total_fee),
        "fee_type": "CNY",
        "cash_fee": str(payment.total_fee),
        "transaction_id": payment.transaction_id,
        "out_trade_no": payment.out_trade_no,
        "time_end": datetime.now(BEIJING).strftime("%Y%m%d%H%M%S"),
    }
    fields["sign"] = wx_sign(fields, account.mch_key)
    numeric = {"total_fee", "cash_fee"}
    parts = (
        f"<{k}>{v}</{k}>" if k in numeric else f"<{k}><![CDATA[{v}]]></{k}>"
        for k, v in fields.items()
    )
    return ("<xml>" + "".join(parts) + "</xml>").encode()


def is_success_reply(status: int, body: bytes) -> bool:
    """HTTP 200 and ``return_code`` SUCCESS, as WeChat judges a notify reply (§5.4)."""
    if status != 200:
        return False
    try:
        root = ET.fromstring(body)  # noqa: S314 (our own server's reply, on loopback)
    except ET.ParseError:
        return False
    return root.findtext("return_code") == "SUCCESS"
