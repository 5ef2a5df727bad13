"""Injected faults: what a flaky WeChat looks like, on demand, for tests and demos.

Not thread-safe by itself: the Simulator calls it under its lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SNS_PATHS = ("/sns/jscode2session",)
PAY_PATHS = (
    "/pay/unifiedorder",
    "/pay/orderquery",
    "/pay/closeorder",
    "/secapi/pay/refund",
    "/pay/refundquery",
    "/pay/downloadbill",  # answers a bill file, not signed XML (wxsim.bills)
)
BILL_PATH = "/pay/downloadbill"

# The mini-program server API (docs/protocol/miniprogram-server-api.md), JSON like SNS_PATHS.
TOKEN_PATH = "/cgi-bin/stable_token"  # noqa: S105 - a path, not a password
MINIAPI_PATHS = (
    TOKEN_PATH,
    "/wxa/sec/order/is_trade_managed",
    "/wxa/sec/order/upload_shipping_info",
    "/wxa/sec/order/get_order",
    "/wxa/sec/order/notify_confirm_receive",
    "/cgi-bin/message/subscribe/send",
)
# WeChat Pay v3 (wxsim/v3api.py), by the path templates of docs/protocol/wechat-pay-v3.md.
V3_PATHS = (
    "/v3/pay/transactions/jsapi",
    "/v3/pay/transactions/out-trade-no/{out_trade_no}",
    "/v3/pay/transactions/id/{transaction_id}",
    "/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
    "/v3/refund/domestic/refunds",
    "/v3/refund/domestic/refunds/{out_refund_no}",
    "/v3/bill/tradebill",
    "/v3/billdownload/file",  # the bill file itself: not signed, so no signature faults
    "/v3/certificates",
)
V3_UNSIGNED_PATHS = ("/v3/billdownload/file",)
WECHAT_PATHS = SNS_PATHS + PAY_PATHS + MINIAPI_PATHS + V3_PATHS

# systemerror: a signed SYSTEMERROR answer (errcode -1 on the JSON paths; v3: 500
# SYSTEM_ERROR), nothing recorded; http500: an HTML 500 page; slow: sleep delay_ms, then
# answer normally; garbage: HTTP 200 with a body that is neither XML nor JSON;
# bad_sign: the normal answer with a tampered sign (XML paths) or Wechatpay-Signature (v3).
# v3 only: stale_timestamp: signed correctly, 10 minutes ago (outside the 5-minute window);
# wrong_serial: signed, but Wechatpay-Serial names a key the shop cannot know;
# error: the answer {"code", "message"} with HTTP "status" (default 400), nothing recorded.
PATH_MODES = ("systemerror", "http500", "slow", "garbage", "bad_sign",
              "stale_timestamp", "wrong_serial", "error")
V3_ONLY_MODES = ("stale_timestamp", "wrong_serial", "error")
SIGNATURE_MODES = ("bad_sign", "stale_timestamp", "wrong_serial")
# The first attempt of the next v3 notifies carries one of these (the shop must refuse it
# with a 4xx/5xx; WeChat's retry then brings a good one); "probe" is WeChat's signature probe
# (docs/protocol/wechat-pay-v3.md §3.7). "drop" swallows the next notify of either API.
NOTIFY_MODES = ("drop", "bad_sign", "stale_timestamp", "wrong_serial", "probe")
# How the next refunds end instead of SUCCESS (v3 REFUND.ABNORMAL / REFUND.CLOSED, v2 CHANGE /
# REFUNDCLOSE).
REFUND_OUTCOMES = ("ABNORMAL", "CLOSED")


@dataclass
class Queued:
    mode: str
    remaining: int


@dataclass
class PathFault:
    mode: str
    remaining: int
    delay_ms: int = 0
    status: int = 0  # mode "error": the HTTP status, code and message of the answer
    code: str = ""
    message: str = ""


class Faults:
    def __init__(self) -> None:
        self.by_path: dict[str, list[PathFault]] = {}
        self.notify_drop = 0
        self.latency_ms = 0
        self.notify_v3: list[Queued] = []  # oldest first
        self.refund_outcomes: list[Queued] = []

    def add(self, spec: dict[str, object]) -> None:
        """Apply one ``POST /sim/faults`` body; raises ValueError with a readable reason."""
        known = {"path", "mode", "count", "delay_ms", "notify", "latency_ms", "refund",
                 "status", "code", "message"}
        if not spec or set(spec) - known:
            raise ValueError(f"expected keys among {sorted(known)}")
        count = _non_negative_int(spec, "count", 1)
        if "latency_ms" in spec:
            self.latency_ms = _non_negative_int(spec, "latency_ms", 0)
        if "notify" in spec:
            if spec["notify"] not in NOTIFY_MODES:
                raise ValueError(f'"notify" must be one of {list(NOTIFY_MODES)}')
            if spec["notify"] == "drop":
                self.notify_drop += count
            elif count:
                self.notify_v3.append(Queued(str(spec["notify"]), count))
        if "refund" in spec:
            if spec["refund"] not in REFUND_OUTCOMES:
                raise ValueError(f'"refund" must be one of {list(REFUND_OUTCOMES)}')
            if count:
                self.refund_outcomes.append(Queued(str(spec["refund"]), count))
        if "path" in spec:
            self._add_path_fault(spec, count)

    def _add_path_fault(self, spec: dict[str, object], count: int) -> None:
        path, mode = spec.get("path"), spec.get("mode")
        if path not in WECHAT_PATHS:
            raise ValueError(f'"path" must be one of {list(WECHAT_PATHS)}')
        if mode not in PATH_MODES:
            raise ValueError(f'"mode" must be one of {list(PATH_MODES)}')
        v3 = path in V3_PATHS
        signed = (path in PAY_PATHS and path != BILL_PATH) or (v3 and path not in V3_UNSIGNED_PATHS)
        if mode in SIGNATURE_MODES and not signed:
            raise ValueError(f"{mode} applies to the signed XML paths and signed v3 paths only")
        if mode in V3_ONLY_MODES and not v3:
            raise ValueError(f"{mode} applies to the v3 paths only")
        delay_ms = _non_negative_int(spec, "delay_ms", 0)
        fault = PathFault(str(mode), count, delay_ms)
        if mode == "error":
            status = _non_negative_int(spec, "status", 400)
            code, message = spec.get("code"), spec.get("message", "")
            if not (400 <= status <= 599 and isinstance(code, str) and code
                    and isinstance(message, str)):
                raise ValueError('mode "error" takes "code", "status" 400-599 and "message"?')
            fault.status, fault.code, fault.message = status, code, message
        if count:
            self.by_path.setdefault(str(path), []).append(fault)

    def take(self, path: str) -> PathFault | None:
        """Consume one use of the oldest fault queued for ``path``."""
        queue = self.by_path.get(path)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return PathFault(fault.mode, 1, fault.delay_ms, fault.status, fault.code, fault.message)

    def take_notify_drop(self) -> bool:
        if self.notify_drop <= 0:
            return False
        self.notify_drop -= 1
        return True

    def take_notify_v3(self) -> str:
        """The defect of the next v3 notify's first attempt, or ""."""
        return _take(self.notify_v3)

    def take_refund_outcome(self) -> str:
        """How the next refund ends instead of SUCCESS, or ""."""
        return _take(self.refund_outcomes)

    def clear(self) -> None:
        self.by_path.clear()
        self.notify_drop = 0
        self.latency_ms = 0
        self.notify_v3.clear()
        self.refund_outcomes.clear()

    def as_json(self) -> dict[str, object]:
        shown: dict[str, object] = {
            "paths": {p: [_shown(f) for f in q] for p, q in self.by_path.items() if q},
            "notify_drop": self.notify_drop,
            "latency_ms": self.latency_ms,
        }
        # Only when set: the answer of a cleared simulator stays what it always was.
        if self.notify_v3:
            shown["notify_v3"] = [{"mode": q.mode, "count": q.remaining} for q in self.notify_v3]
        if self.refund_outcomes:
            shown["refund"] = [
                {"outcome": q.mode, "count": q.remaining} for q in self.refund_outcomes
            ]
        return shown


def _shown(fault: PathFault) -> dict[str, object]:
    data = asdict(fault)
    if fault.mode != "error":
        for name in ("status", "code", "message"):
            del data[name]
    return data


def _take(queue: list[Queued]) -> str:
    if not queue:
        return ""
    entry = queue[0]
    entry.remaining -= 1
    if entry.remaining <= 0:
        queue.pop(0)
    return entry.mode


def _non_negative_int(spec: dict[str, object], name: str, default: int) -> int:
    value = spec.get(name, default)
    # bool is an int subclass; {"count": true} is a client bug, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f'"{name}" must be a non-negative integer')
    return value
