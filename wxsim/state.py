"""The simulator's memory: login codes, the trade ledger, refunds, access tokens, shipping,
subscriptions, counters.

Every mutation happens under ``Simulator.lock``; HTTP handler threads and notify
threads share one ``Simulator``. Network I/O never happens while holding the lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from wxsim.config import Config
from wxsim.faults import Faults
from wxsim.notify import Notifier
from wxsim.v3keys import V3Keys

# Trade states this simulator produces (orderquery trade_state, §6.1).
NOTPAY, SUCCESS, CLOSED, REFUND = "NOTPAY", "SUCCESS", "CLOSED", "REFUND"
PAID_STATES = (SUCCESS, REFUND)


@dataclass
class LoginCode:
    openid: str
    issued_at: float
    used: bool = False


@dataclass
class WxUser:
    openid: str
    session_key: str
    unionid: str = ""


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    refund_fee: int
    created_at: float
    notify_url: str = ""
    # SUCCESS, CLOSED, PROCESSING, ABNORMAL (docs/protocol/wechat-pay-v3.md §8.2); the v2
    # answers and notify translate them (wxsim.refunds).
    status: str = "PROCESSING"
    success_time: str = ""
    api: str = "v2"  # which API asked for it: the notify speaks that API's language
    reason: str = ""  # v3 only: the refund's reason, echoed nowhere but kept for re-entry
    funds_account: str = ""
    success_at: float = 0.0
    notify: str = "none"  # what became of the refund notify: none/scheduled/dropped/skipped...
    notify_attempts: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "out_refund_no": self.out_refund_no,
            "refund_id": self.refund_id,
            "refund_fee": self.refund_fee,
            "status": self.status,
            "success_time": self.success_time,
            "api": self.api,
            "notify_url": self.notify_url,
            "notify": self.notify,
            "notify_attempts": list(self.notify_attempts),
        }


@dataclass
class Trade:
    out_trade_no: str
    # The unifiedorder fields except nonce_str/sign: re-entry must repeat them exactly (§3.3).
    params: dict[str, str]
    sign_type: str
    created_at: float
    prepay_id: str
    prepay_expires_at: float
    state: str = NOTPAY
    transaction_id: str = ""
    payer_openid: str = ""
    time_end: str = ""
    paid_at: float = 0.0  # Unix seconds of time_end (get_order's pay_time)
    bank_type: str = ""
    cash_fee: int = 0
    coupon_fee: int = 0
    coupon_id: str = ""
    refunds: list[Refund] = field(default_factory=list)
    notify_attempts: list[dict[str, Any]] = field(default_factory=list)
    notifies_dropped: int = 0
    # Which API placed it: "v2" (unifiedorder) or "v3" (JSAPI prepay). Either API queries,
    # closes and refunds it (one merchant, one ledger); the payment notify speaks this one.
    api: str = "v2"
    v3_request: dict[str, Any] = field(default_factory=dict)  # the prepay body, for re-entry
    expires_at: float = 0.0  # v3 time_expire: unpayable afterwards (0: 7 days, §4.1)

    @property
    def openid(self) -> str:
        return self.params.get("openid", "")

    @property
    def total_fee(self) -> int:
        return int(self.params["total_fee"])

    @property
    def refunded_fee(self) -> int:
        # A CLOSED refund gave nothing back: its amount is refundable again (§8.3 of the v3 note).
        return sum(r.refund_fee for r in self.refunds if r.status != "CLOSED")

    def as_json(self) -> dict[str, Any]:
        return {
            "out_trade_no": self.out_trade_no,
            "state": self.state,
            "api": self.api,
            "total_fee": self.total_fee,
            "openid": self.openid,
            "sign_type": self.sign_type,
            "trade_type": self.params.get("trade_type", ""),
            "attach": self.params.get("attach", ""),
            "notify_url": self.params.get("notify_url", ""),
            "prepay_id": self.prepay_id,
            "prepay_expires_at": self.prepay_expires_at,
            "created_at": self.created_at,
            "transaction_id": self.transaction_id,
            "payer_openid": self.payer_openid,
            "time_end": self.time_end,
            "cash_fee": self.cash_fee,
            "coupon_fee": self.coupon_fee,
            "refunded_fee": self.refunded_fee,
            "notify_attempts": list(self.notify_attempts),
            "notifies_dropped": self.notifies_dropped,
            "refunds": [r.as_json() for r in self.refunds],
        }


@dataclass
class AccessTokenRecord:
    """One access_token from stable_token (docs/protocol/miniprogram-server-api.md §1)."""

    token: str
    issued_at: float
    expires_at: float
    # Set by POST /sim/tokens/stale: the errcode every use answers from then on.
    stale_errcode: int = 0
    replaced: bool = False  # a force refresh cut its life short (§1.1: it lingers 5 minutes)
    still_current: bool = False  # stale, yet stable_token keeps answering it (a glitch)
    uses: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Shipment:
    """The shipping WeChat holds for one payment (docs/protocol/miniprogram-server-api.md §2)."""

    transaction_id: str
    out_trade_no: str
    logistics_type: int
    delivery_mode: int
    shipping_list: list[dict[str, Any]]
    upload_time: str  # the last accepted upload's RFC 3339 string, as sent
    upload_ts: float  # the same as Unix seconds (an update must be later, §2.4)
    shipped_at: float  # sim.now() of the first upload
    all_delivered: bool = True
    changes: int = 0  # accepted updates after the first upload: one allowed (§2.4)
    confirm_receive_time: float = 0.0
    confirm_receive_method: int = 0  # 1 automatic, 2 by the user (§2.8)
    settlement_time: float = 0.0
    reminded_at: float = 0.0  # notify_confirm_receive, once per order (§2.6)
    received_time: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Simulator:
    """All simulator state, guarded by ``lock``. ``now`` is injectable for expiry tests."""

    def __init__(self, config: Config, now: Callable[[], float] = time.time) -> None:
        self.config = config
        self.now = now
        self.lock = threading.RLock()
        self.faults = Faults()
        self.notifier = Notifier(self)
        # WeChat Pay v3's keys: made once, kept across resets (the shop holds their files).
        self.v3 = V3Keys(config)
        self._clear_ledgers()

    def _clear_ledgers(self) -> None:
        self.codes: dict[str, LoginCode] = {}
        self.users: dict[str, WxUser] = {}
        self.code2session_calls: dict[str, deque[float]] = {}
        self.trades: dict[str, Trade] = {}
        self.prepay_index: dict[str, str] = {}  # every prepay_id ever issued -> out_trade_no
        self.transaction_index: dict[str, str] = {}
        self.refunds: dict[str, Refund] = {}  # out_refund_no -> Refund (unique per merchant)
        self.refund_index: dict[str, str] = {}  # refund_id -> out_refund_no
        # POST /sim/bills/faults: how the bill of a day (yyyy-MM-dd) disagrees with the ledger.
        self.bill_faults: dict[str, dict[str, Any]] = {}
        self.requests: Counter[str] = Counter()
        self.connections_accepted = 0
        # The mini-program server API (docs/protocol/miniprogram-server-api.md).
        self.tokens: dict[str, AccessTokenRecord] = {}
        self.current_token = ""  # what stable_token answers without force_refresh
        self.force_refreshes: deque[float] = deque()
        self.trade_managed = self.config.trade_managed
        self.shipments: dict[str, Shipment] = {}  # by transaction_id
        self.subscriptions: Counter[tuple[str, str]] = Counter()  # (openid, template_id)
        self.messages: list[dict[str, Any]] = []  # subscribe messages sent
        self.pushes: list[dict[str, Any]] = []  # message pushes delivered by POST /sim/push
        # WeChat Pay v3: the key mode now (POST /sim/v3/keys switches it), how many v3
        # notifies went out (both modes alternate keys), the bills handed out for download.
        self.v3_mode = self.config.v3_keys
        self.v3_notifies = 0
        self.bill_downloads: dict[str, dict[str, Any]] = {}  # token -> file and expiry

    def reset(self) -> None:
        """Forget everything and cancel pending notify retries (``POST /sim/reset``)."""
        with self.lock:
            self._clear_ledgers()
            self.faults.clear()
            self.notifier.reset()

    def close(self) -> None:
        self.notifier.close()

    def count_request(self, path: str) -> None:
        with self.lock:
            self.requests[path] += 1

    def count_connection(self) -> None:
        with self.lock:
            self.connections_accepted += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "connections_accepted": self.connections_accepted,
                "notifies": self.notifier.counters(),
                "pushes": {
                    "sent": len(self.pushes),
                    "accepted": sum(1 for push in self.pushes if push["success"]),
                },
                "messages": len(self.messages),
            }

    def find_trade(
        self, *, out_trade_no: str = "", transaction_id: str = "", prepay_id: str = ""
    ) -> Trade | None:
        """Look a trade up; transaction_id wins over out_trade_no as in orderquery (§6.1)."""
        with self.lock:
            if transaction_id:
                out_trade_no = self.transaction_index.get(transaction_id, "")
            elif prepay_id:
                out_trade_no = self.prepay_index.get(prepay_id, "")
            return self.trades.get(out_trade_no) if out_trade_no else None
