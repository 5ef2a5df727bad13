"""The mini-program's access_token (docs/INVARIANTS.md §8; docs/protocol/
miniprogram-server-api.md §1.4): one token per AppID, shared by every app server and worker.

- It comes from ``stable_token`` (normal mode answers the same token while it is valid, so
  processes that ask at once never kill each other's token, unlike ``/cgi-bin/token``).
- It is kept in the shared cache (Redis when ``REDIS_URL`` is set) with its absolute expiry,
  and renewed when less than ``RENEW_MARGIN_SECONDS`` of it are left.
- One process at a time renews it: the one that takes the cache lock (``cache.add``: Redis'
  ``SET NX``, atomic across machines) re-reads the cache, asks WeChat and stores the answer.
  The others keep using the old token while it is still valid, or wait for the new one.
- A call answered 40001/40014/42001 (``AccessTokenInvalid``) renews it at once and is retried
  once (``with_access_token``); the renewal forces a new token only when WeChat hands out the
  very token it just refused (``force_refresh`` is limited to 20 a day).
- With the cache down, tokens are still had: fetched by each process without the lock, which
  stable_token makes safe (the same token for everyone).

Neither the AppSecret nor a token is ever logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.views.decorators.debug import sensitive_variables

from core.config import require_settings
from wechat.miniprogram import (
    AccessToken,
    AccessTokenInvalid,
    MiniProgramClient,
    MiniProgramConfig,
    MiniProgramUnavailable,
)

logger = logging.getLogger(__name__)

MINIPROGRAM_SETTINGS = ("WECHAT_APPID", "WECHAT_APP_SECRET")
# Renew when less than this is left (§1.4: "e.g. < 5 minutes").
RENEW_MARGIN_SECONDS = 300
# How long a process waits for another one's renewal when it has no valid token itself.
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.05

T = TypeVar("T")


def require_miniprogram_configured() -> None:
    """Raise ``WeChatNotConfigured`` unless the server API can be called (AppID and
    AppSecret): checked before anything asks for a token."""
    require_settings(MINIPROGRAM_SETTINGS, "The mini-program server API")


@lru_cache(maxsize=4)
def _client_for(config: MiniProgramConfig) -> MiniProgramClient:
    # One client per configuration, for the life of the process, shared by its threads
    # (gunicorn gthread, a threaded task worker): the client calls through one session (one
    # kept-alive connection) per thread, never one shared session
    # (wechat/miniprogram/transport.py).
    return MiniProgramClient(config)


@sensitive_variables()
def miniprogram_client() -> MiniProgramClient:
    require_miniprogram_configured()
    return _client_for(
        MiniProgramConfig(
            appid=settings.WECHAT_APPID,
            app_secret=settings.WECHAT_APP_SECRET,
            api_base=settings.WECHAT_API_BASE,
            timeout=settings.WECHAT_TIMEOUT,
        )
    )


@dataclass(frozen=True)
class CachedToken:
    """The token as the cache keeps it: absolute times in Unix seconds, so every machine
    reads the same expiry."""

    token: str = field(repr=False)
    expires_at: float
    renew_at: float

    @classmethod
    def from_answer(cls, answer: AccessToken) -> CachedToken:
        expires_at = answer.expires_at.timestamp()
        # Half the life at most: an answer with less than the margin left (WeChat renews it
        # itself near the end, §1.1) is still used a while instead of asked for at every use.
        margin = min(RENEW_MARGIN_SECONDS, answer.expires_in / 2)
        return cls(token=answer.token, expires_at=expires_at, renew_at=expires_at - margin)

    def valid(self, now: float) -> bool:
        return now < self.expires_at

    def fresh(self, now: float) -> bool:
        return now < self.renew_at


def _token_key() -> str:
    return f"wechat:access_token:{settings.WECHAT_APPID}"


def _lock_key() -> str:
    return f"wechat:access_token:{settings.WECHAT_APPID}:renewing"


def _lock_seconds() -> int:
    # Longer than a renewal can take (two stable_token calls when forced), so a lock is never
    # lost while its holder still works; short enough that a crashed holder is soon replaced.
    connect, read = settings.WECHAT_TIMEOUT
    return int(2 * (connect + read)) + 5


def cached_token() -> CachedToken | None:
    """The shared token as the cache holds it (``None``: none, or the cache is down)."""
    try:
        kept = cache.get(_token_key())
    except Exception as exc:  # redis errors: whatever the client raises
        _cache_down(exc)
        return None
    if not isinstance(kept, dict):
        return None
    try:
        return CachedToken(**kept)
    except TypeError:
        return None


def cache_token(entry: CachedToken) -> None:
    """Share ``entry`` with every process until it expires."""
    timeout = max(1, int(entry.expires_at - time.time()))
    value = {"token": entry.token, "expires_at": entry.expires_at, "renew_at": entry.renew_at}
    try:
        cache.set(_token_key(), value, timeout)
    except Exception as exc:
        _cache_down(exc)


@contextmanager
def renewal_lock() -> Iterator[bool]:
    """Take the one renewal lock of this AppID if it is free; yields whether it was taken.
    A cache that is down yields True: each process then renews on its own."""
    owner = uuid.uuid4().hex
    try:
        taken = cache.add(_lock_key(), owner, _lock_seconds())
    except Exception as exc:
        _cache_down(exc)
        yield True
        return
    try:
        yield taken
    finally:
        if taken:
            try:
                # Only our own lock: after a timeout it may be another process's by now.
                if cache.get(_lock_key()) == owner:
                    cache.delete(_lock_key())
            except Exception as exc:
                _cache_down(exc)


def access_token() -> str:
    """A valid token, renewed first if less than ``RENEW_MARGIN_SECONDS`` are left."""
    require_miniprogram_configured()
    entry = cached_token()
    if entry is not None and entry.fresh(time.time()):
        return entry.token
    return _renew(rejected=None)


def access_token_renew(*, rejected: str) -> str:
    """A token other than ``rejected``, which WeChat just refused (40001/40014/42001)."""
    require_miniprogram_configured()
    return _renew(rejected=rejected)


def with_access_token(call: Callable[[MiniProgramClient, str], T]) -> T:
    """``call(client, token)``; when WeChat refuses the token, renew it and call once more."""
    client = miniprogram_client()
    token = access_token()
    try:
        return call(client, token)
    except AccessTokenInvalid as exc:
        logger.warning("access_token refused (errcode %s): renewing it", exc.errcode)
    return call(client, access_token_renew(rejected=token))


def _usable(entry: CachedToken | None, rejected: str | None, now: float) -> bool:
    """What a process may use without renewing: after a refusal, any valid token but the
    refused one; otherwise a fresh one."""
    if entry is None or entry.token == rejected:
        return False
    return entry.valid(now) if rejected else entry.fresh(now)


def _renew(*, rejected: str | None) -> str:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with renewal_lock() as taken:
            if taken:
                return _fetch(rejected=rejected)
        # Another process renews. Until it is done, a token that is still valid serves
        # (unless it is the one refused); without one, wait for its answer.
        entry = cached_token()
        if entry is not None and entry.token != rejected and entry.valid(time.time()):
            return entry.token
        if time.monotonic() > deadline:
            raise MiniProgramUnavailable(None, "access_token: another process's renewal timed out")
        time.sleep(POLL_SECONDS)


def _fetch(*, rejected: str | None) -> str:
    """Under the lock: what another process stored meanwhile, else WeChat's answer."""
    entry = cached_token()
    if _usable(entry, rejected, time.time()):
        return entry.token
    client = miniprogram_client()
    answer = client.stable_token()
    if rejected is not None and answer.token == rejected:
        # WeChat still hands out the token it refuses: only a forced renewal replaces it.
        logger.warning("stable_token answered the refused token: forcing a new one")
        answer = client.stable_token(force_refresh=True)
    cache_token(CachedToken.from_answer(answer))
    logger.info("access_token renewed, valid %s s", answer.expires_in)
    return answer.token


def _cache_down(exc: Exception) -> None:
    logger.warning(
        "access_token: shared cache unavailable (%s), fetching without it", type(exc).__name__
    )
