"""Delivery of notifies to the merchant, with WeChat's retry schedule (§5.5).

One ``requests.Session`` (keep-alive, bounded timeouts) is shared by all deliveries.
Each scheduled notify runs in its own daemon thread; ``reset()`` cancels pending retries.

v2 notifies are one fixed XML body with fixed headers. v3 notifies (wxsim.v3notify) keep
their body but are signed afresh for every attempt, and any 2xx is a success: a ``Headers``
callable gives each attempt its headers (and the fault it carries, if any), ``accept``
judges the reply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from wxsim.protocol import XmlError, parse_xml

if TYPE_CHECKING:
    from wxsim.state import Simulator

# Seconds between attempts after the first one (§5.5): 15 steps, 24h4m in total.
RETRY_SCHEDULE_S = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600,
                    10800, 10800, 10800, 21600, 21600)
REPLY_KEEP_CHARS = 500
HEADERS = {"Content-Type": "text/xml", "User-Agent": "wxsim (WeChat Pay notify simulator)"}
# attempt number -> (headers, the injected fault it carries or "")
Headers = Callable[[int], tuple[dict[str, str], str]]
Accept = Callable[[int | None, bytes], bool]


def is_success_reply(status: int | None, content: bytes) -> bool:
    """Only XML whose return_code is SUCCESS counts; "success", JSON, HTML do not (§5.4)."""
    if status != 200:
        return False
    try:
        return parse_xml(content).get("return_code") == "SUCCESS"
    except XmlError:
        return False


class Notifier:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._session = requests.Session()
        # Room for the concurrent duplicate copies of POST /sim/notify.
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._stop = threading.Event()
        self._generation = 0
        self._zero_counters()

    def _zero_counters(self) -> None:
        self.delivered = self.attempts = self.pending = self.failed = self.dropped = 0

    def counters(self) -> dict[str, int]:
        with self._sim.lock:
            return {
                "delivered": self.delivered,
                "attempts": self.attempts,
                "pending": self.pending,
                "failed": self.failed,
                "dropped": self.dropped,
            }

    def reset(self) -> None:
        """Cancel every pending delivery; threads of the old generation stop counting."""
        with self._sim.lock:
            self._stop.set()
            self._stop = threading.Event()
            self._generation += 1
            self._zero_counters()

    def close(self) -> None:
        self._stop.set()
        self._session.close()

    def count_dropped(self) -> None:
        with self._sim.lock:
            self.dropped += 1

    def schedule(
        self, url: str, body: bytes, log: list[dict[str, Any]],
        headers: Headers | None = None, accept: Accept = is_success_reply,
    ) -> None:
        """Deliver ``body`` in the background, retrying until a SUCCESS reply; log attempts."""
        with self._sim.lock:
            self.pending += 1
            generation, stop = self._generation, self._stop
        thread = threading.Thread(
            target=self._deliver, args=(url, body, log, generation, stop, headers, accept),
            name="wxsim-notify", daemon=True,
        )
        thread.start()

    def _deliver(
        self, url: str, body: bytes, log: list[dict[str, Any]],
        generation: int, stop: threading.Event,
        headers: Headers | None = None, accept: Accept = is_success_reply,
    ) -> None:
        scale = self._sim.config.retry_scale
        delays = (0.0, *(step * scale for step in RETRY_SCHEDULE_S))
        delivered = False
        try:
            for number, delay in enumerate(delays, 1):
                if stop.wait(delay):
                    return
                attempt = self.send_once(url, body, number, generation, headers, accept)
                with self._sim.lock:
                    log.append(attempt)
                if attempt["success"]:
                    delivered = True
                    return
        finally:
            with self._sim.lock:
                if generation == self._generation:
                    self.pending -= 1
                    if not delivered and not stop.is_set():
                        self.failed += 1  # the whole 24 h schedule was used up

    def send_once(
        self, url: str, body: bytes, number: int = 1, generation: int | None = None,
        headers: Headers | None = None, accept: Accept = is_success_reply,
    ) -> dict[str, Any]:
        """One POST of a notify; returns the attempt record (never raises)."""
        sent, fault = headers(number) if headers is not None else (HEADERS, "")
        attempt = self.post_once(url, body, sent, accept, number)
        if fault:
            attempt["fault"] = fault
        with self._sim.lock:
            if generation is None or generation == self._generation:
                self.attempts += 1
                self.delivered += int(attempt["success"])
        return attempt

    def post_once(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        accept: Callable[[int | None, bytes], bool],
        number: int = 1,
    ) -> dict[str, Any]:
        """One POST to the merchant, uncounted (message pushes use it too); ``accept`` says
        whether the reply is a success. Returns the attempt record; never raises."""
        at, started = self._sim.now(), time.monotonic()
        status: int | None = None
        content, error = b"", ""
        timeout = self._sim.config.notify_timeout
        try:
            # WeChat follows no redirect: a 3xx (a login page) is a failure (v3 note §7.5).
            response = self._session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            )
            status, content = response.status_code, response.content
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:REPLY_KEEP_CHARS]
        success = accept(status, content)
        return {
            "attempt": number,
            "at": at,
            "status": status,
            "reply": content.decode("utf-8", "replace")[:REPLY_KEEP_CHARS],
            "success": success,
            "error": error,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
        }

    def send_copies(
        self, url: str, bodies: list[bytes], concurrent: bool, log: list[dict[str, Any]],
        headers: Headers | None = None, accept: Accept = is_success_reply,
    ) -> list[dict[str, Any]]:
        """Send each body once, now; concurrently they start together behind a barrier."""
        results: list[dict[str, Any] | None] = [None] * len(bodies)
        barrier = threading.Barrier(len(bodies)) if concurrent else None

        def send(index: int) -> None:
            if barrier is not None:
                barrier.wait(timeout=5)
            results[index] = self.send_once(
                url, bodies[index], index + 1, None, headers, accept
            )

        if concurrent:
            threads = [threading.Thread(target=send, args=(i,), daemon=True)
                       for i in range(len(bodies))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=self._sim.config.notify_timeout * 2 + 5)
        else:
            for index in range(len(bodies)):
                send(index)
        done = [r for r in results if r is not None]
        with self._sim.lock:
            log.extend(done)
        return done
