"""v3 trade bill: ``GET /v3/bill/tradebill`` (§9.1) hands out a ``download_url`` and the SHA1
of the file; the signed ``GET`` of that URL answers the file itself, unsigned (§9.2).

A bare §n in this module is a section of docs/protocol/wechat-pay-v3.md.

The file is v2's (wxsim.bills, §9.3), from the same ledger with the same bill faults; like
v2 here, any day up to today is served at once. A download link lives 5 minutes.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from wxsim.bills import BILL_TYPES, HISTORY_DAYS, build_bill
from wxsim.protocol import BEIJING
from wxsim.state import Simulator
from wxsim.v3wire import V3Error, V3Request, invalid_request

V3_BILL_TYPES = (*BILL_TYPES, "ALL_SPECIAL", "SUC_SPECIAL", "REF_SPECIAL")
DOWNLOAD_TTL_S = 300  # "5 minutes now" (§9.1)
DOWNLOAD_PATH = "/v3/billdownload/file"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _query_error(message: str, name: str) -> V3Error:
    return V3Error(400, "PARAM_ERROR", message,
                   detail={"field": name, "location": "query", "issue": message})


def tradebill(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    query = request.query
    unknown = sorted(set(query) - {"bill_date", "bill_type", "tar_type"})
    if unknown:
        raise _query_error(f"参数中含有非法的额外参数 ({unknown[0]})", unknown[0])
    bill_date = query.get("bill_date", "")
    if not _DATE.fullmatch(bill_date):
        raise _query_error("bill_date格式错误,应为yyyy-MM-DD (e.g. 2025-01-01)", "bill_date")
    bill_type = query.get("bill_type") or "ALL"
    if bill_type not in V3_BILL_TYPES:
        raise _query_error(f"bill_type取值错误 (one of {', '.join(V3_BILL_TYPES)})", "bill_type")
    tar_type = query.get("tar_type", "")
    if tar_type not in ("", "GZIP"):
        raise _query_error("tar_type取值错误,仅支持GZIP", "tar_type")
    with sim.lock:
        now = sim.now()
        _check_day(bill_date, now)
        # The *_SPECIAL bills are for special merchants: this one has none.
        text = build_bill(sim, bill_date.replace("-", ""), bill_type) if (
            bill_type in BILL_TYPES) else None
        if text is None:
            raise V3Error(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        token = secrets.token_urlsafe(24)
        sim.bill_downloads[token] = {
            "file": gzip.compress(text, mtime=0) if tar_type else text,
            "expires_at": now + DOWNLOAD_TTL_S,
        }
    return 200, {
        "hash_type": "SHA1",
        # Of the uncompressed file, whatever tar_type says (§9.1).
        "hash_value": hashlib.sha1(text, usedforsecurity=False).hexdigest(),
        "download_url": f"{request.origin}{DOWNLOAD_PATH}?token={token}",
    }


def _check_day(bill_date: str, now: float) -> None:
    """A real Beijing day, not in the future, within the last 3 months."""
    try:
        day = datetime.strptime(bill_date, "%Y-%m-%d").date()
    except ValueError:
        raise invalid_request("bill_date不是有效的日期") from None
    today = datetime.fromtimestamp(now, BEIJING).date()
    if day > today:
        raise invalid_request("bill_date不能晚于今天 (in the future)")
    if day < today - timedelta(days=HISTORY_DAYS):
        raise invalid_request("只能下载三个月以内的账单 (more than 3 months ago)")


def download(sim: Simulator, request: V3Request) -> tuple[int, Any]:
    """The file (gzip when asked so), raw bytes: the caller leaves it unsigned (§9.2)."""
    with sim.lock:
        entry = sim.bill_downloads.get(request.query.get("token", ""))
        if entry is None:
            raise V3Error(404, "RESOURCE_NOT_EXISTS", "下载链接不存在 (unknown token)")
        if sim.now() >= entry["expires_at"]:
            raise invalid_request("下载链接已过期,请重新申请账单 (download_url expired)")
        return 200, entry["file"]
