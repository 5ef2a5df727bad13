"""v3 notifies (§7, §8.5): a JSON envelope whose ``resource`` is AES-256-GCM under the APIv3
key, delivered with WeChat's retry schedule by wxsim.notify.

A bare §n in this module is a section of docs/protocol/wechat-pay-v3.md.

The body is built once; every attempt is signed afresh (a retry a day later carries a fresh
timestamp, §3.6) by the key the key mode picks (§3.5). Any 2xx is a success (§7.5) unless
it says ``{"code": "FAIL"}``. A
notify fault (``POST /sim/faults {"notify": …}``) spoils the first attempt only: a shop
that refuses it gets the good retry.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from wxsim.notify import Headers
from wxsim.protocol import wx_time
from wxsim.state import Refund, Simulator, Trade
from wxsim.v3keys import encrypt_resource
from wxsim.v3objects import refund_notice_json, transaction_json
from wxsim.v3wire import dumps, rfc3339

USER_AGENT = "wxsim (WeChat Pay v3 notify simulator)"
REFUND_EVENTS = {
    "SUCCESS": ("REFUND.SUCCESS", "退款成功"),
    "ABNORMAL": ("REFUND.ABNORMAL", "退款异常"),
    "CLOSED": ("REFUND.CLOSED", "退款关闭"),
}


def accept(status: int | None, content: bytes) -> bool:
    """Any 2xx, with no body or any body but ``{"code": "FAIL"}`` (§7.5: the older pages'
    answer of a refusal, which WeChat retried). Redirects and timeouts are failures."""
    if status is None or not 200 <= status < 300:
        return False
    try:
        answer = json.loads(content) if content.strip() else None
    except ValueError:  # "success", HTML...: the status decides
        return True
    return not (isinstance(answer, dict) and answer.get("code") == "FAIL")


def _envelope(
    sim: Simulator, event_type: str, summary: str, kind: str, plaintext: dict[str, Any]
) -> bytes:
    now = sim.now()
    resource = encrypt_resource(
        sim.v3.apiv3_key, dumps(plaintext), associated_data=kind, original_type=kind
    )
    digits = "".join(secrets.choice(string.digits) for _ in range(7))
    return dumps({
        "id": "EV-" + wx_time(now) + digits,  # like EV-2018022511223320873
        "create_time": rfc3339(now),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": resource,
    })


def payment_body(sim: Simulator, trade: Trade) -> bytes:
    """TRANSACTION.SUCCESS (§7.1): only successful payments are notified."""
    return _envelope(sim, "TRANSACTION.SUCCESS", "支付成功", "transaction",
                     transaction_json(trade))


def refund_body(sim: Simulator, trade: Trade, record: Refund) -> bytes:
    event_type, summary = REFUND_EVENTS[record.status]
    return _envelope(sim, event_type, summary, "refund", refund_notice_json(trade, record))


def signer_headers(sim: Simulator, body: bytes, sequence: int, fault: str = "") -> Headers:
    """Each attempt's headers: signed now, by the key of the mode now; ``fault`` on the
    first attempt only."""

    def build(number: int) -> tuple[dict[str, str], str]:
        defect = fault if number == 1 else ""
        with sim.lock:
            mode, now = sim.v3_mode, sim.now()
        signer = sim.v3.notify_signer(mode, sequence)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **sim.v3.signed_headers(signer, body, now, defect),
        }
        return headers, defect

    return build


def next_sequence(sim: Simulator) -> int:
    """Which notify this is (under the lock): in ``both`` mode they alternate keys."""
    sim.v3_notifies += 1
    return sim.v3_notifies


def schedule(sim: Simulator, url: str, body: bytes, log: list[dict[str, Any]]) -> None:
    """Deliver in the background with WeChat's retries; a queued notify fault applies."""
    with sim.lock:
        fault = sim.faults.take_notify_v3()
        sequence = next_sequence(sim)
    sim.notifier.schedule(url, body, log, signer_headers(sim, body, sequence, fault), accept)


def send_copies(
    sim: Simulator, url: str, body: bytes, copies: int, concurrent: bool,
    log: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The same notify ``copies`` times now, each signed afresh (duplicate delivery)."""
    with sim.lock:
        sequence = next_sequence(sim)
    return sim.notifier.send_copies(
        url, [body] * copies, concurrent, log, signer_headers(sim, body, sequence), accept
    )
