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
WECHAT_PATHS = SNS_PATHS + PAY_PATHS + MINIAPI_PATHS

# systemerror: a signed SYSTEMERROR answer (errcode -1 on the JSON paths), nothing recorded;
# http500: an HTML 500 page; slow: sleep delay_ms, then answer normally;
# garbage: HTTP 200 with a body that is neither XML nor JSON;
# bad_sign: the normal answer with a tampered sign (XML paths only).
PATH_MODES = ("systemerror", "http500", "slow", "garbage", "bad_sign")


@dataclass
class PathFault:
    mode: str
    remaining: int
    delay_ms: int = 0


class Faults:
    def __init__(self) -> None:
        self.by_path: dict[str, list[PathFault]] = {}
        self.notify_drop = 0
        self.latency_ms = 0

    def add(self, spec: dict[str, object]) -> None:
        """Apply one ``POST /sim/faults`` body; raises ValueError with a readable reason."""
        known = {"path", "mode", "count", "delay_ms", "notify", "latency_ms"}
        if not spec or set(spec) - known:
            raise ValueError(f"expected keys among {sorted(known)}")
        count = _non_negative_int(spec, "count", 1)
        if "latency_ms" in spec:
            self.latency_ms = _non_negative_int(spec, "latency_ms", 0)
        if "notify" in spec:
            if spec["notify"] != "drop":
                raise ValueError('"notify" must be "drop"')
            self.notify_drop += count
        if "path" in spec:
            self._add_path_fault(spec, count)

    def _add_path_fault(self, spec: dict[str, object], count: int) -> None:
        path, mode = spec.get("path"), spec.get("mode")
        if path not in WECHAT_PATHS:
            raise ValueError(f'"path" must be one of {list(WECHAT_PATHS)}')
        if mode not in PATH_MODES:
            raise ValueError(f'"mode" must be one of {list(PATH_MODES)}')
        if mode == "bad_sign" and (path not in PAY_PATHS or path == BILL_PATH):
            raise ValueError("bad_sign applies to the signed XML paths only")
        delay_ms = _non_negative_int(spec, "delay_ms", 0)
        if count:
            self.by_path.setdefault(str(path), []).append(PathFault(str(mode), count, delay_ms))

    def take(self, path: str) -> PathFault | None:
        """Consume one use of the oldest fault queued for ``path``."""
        queue = self.by_path.get(path)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return PathFault(fault.mode, 1, fault.delay_ms)

    def take_notify_drop(self) -> bool:
        if self.notify_drop <= 0:
            return False
        self.notify_drop -= 1
        return True

    def clear(self) -> None:
        self.by_path.clear()
        self.notify_drop = 0
        self.latency_ms = 0

    def as_json(self) -> dict[str, object]:
        return {
            "paths": {p: [asdict(f) for f in q] for p, q in self.by_path.items() if q},
            "notify_drop": self.notify_drop,
            "latency_ms": self.latency_ms,
        }


def _non_negative_int(spec: dict[str, object], name: str, default: int) -> int:
    value = spec.get(name, default)
    # bool is an int subclass; {"count": true} is a client bug, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f'"{name}" must be a non-negative integer')
    return value
