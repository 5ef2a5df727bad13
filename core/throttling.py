"""Throttles keyed by the real client address that let requests through when the cache is down.

A throttle is protection, not a function of the shop: when Redis is unreachable,
refusing every login (or answering 500, which DRF's throttle does by itself) would turn
a cache outage into a shop outage. So a cache error allows the request and logs a
warning, at most once a minute per process so an outage does not flood the log.
"""

import logging
import threading
import time

from rest_framework.throttling import ScopedRateThrottle

from core.client_ip import client_ip

logger = logging.getLogger(__name__)

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis is a dependency, but the throttle does not need it
    RedisError = OSError

# What a cache backend raises when its server is down or slow: redis-py's own errors,
# and socket errors from anything else (memcached clients, a refused connection).
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)

WARNING_INTERVAL_SECONDS = 60.0
_warning_lock = threading.Lock()
_last_warning_monotonic: float | None = None


def _warn_cache_unavailable(scope: str, exc: Exception) -> None:
    global _last_warning_monotonic
    now = time.monotonic()
    with _warning_lock:
        if (
            _last_warning_monotonic is not None
            and now - _last_warning_monotonic < WARNING_INTERVAL_SECONDS
        ):
            return
        _last_warning_monotonic = now
    logger.warning(
        "throttle %r not enforced: cache unavailable (%s: %s); allowing requests "
        "(this warning repeats at most every %.0f s)",
        scope,
        type(exc).__name__,
        exc,
        WARNING_INTERVAL_SECONDS,
    )


class FailOpenScopedRateThrottle(ScopedRateThrottle):
    """DRF's ``ScopedRateThrottle`` (rate from ``DEFAULT_THROTTLE_RATES[view.throttle_scope]``)

    with two changes: anonymous callers are keyed by ``client_ip`` (so a forged
    ``X-Forwarded-For`` is not a fresh identity), and a cache error allows the request.
    """

    def get_ident(self, request) -> str:
        return client_ip(request)

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as exc:
            _warn_cache_unavailable(getattr(view, "throttle_scope", "") or "", exc)
            return True
