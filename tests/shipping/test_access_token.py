"""The access_token (docs/INVARIANTS.md §8; docs/protocol/miniprogram-server-api.md §1): from
stable_token, shared through the cache with its expiry, renewed early by one process at a
time, and at once when a call says it is no longer valid.

Several processes sharing a real Redis: tests/e2e/test_access_token_concurrency.py."""

import logging
import threading
import time

import pytest
from django.conf import settings

from core.config import WeChatNotConfigured
from shipping.access_token import (
    RENEW_MARGIN_SECONDS,
    CachedToken,
    access_token,
    access_token_renew,
    cache_token,
    cached_token,
    renewal_lock,
    require_miniprogram_configured,
    with_access_token,
)
from tests.shipping.miniprogram_api import MANAGED_PATH, TOKEN_PATH
from wechat.miniprogram import AccessTokenInvalid, CredentialsRejected


def managed(client, token) -> bool:
    return client.is_trade_managed(token)


def entry(token: str, *, left: float, renew_in: float | None = None) -> CachedToken:
    now = time.time()
    renew_at = now + (renew_in if renew_in is not None else left - RENEW_MARGIN_SECONDS)
    return CachedToken(token=token, expires_at=now + left, renew_at=renew_at)


class TestFetchAndShare:
    def test_the_first_use_asks_stable_token_and_later_uses_share_it(self, mini):
        assert access_token() == mini.token
        assert access_token() == mini.token

        ((query, body),) = mini.requests(TOKEN_PATH)
        assert query == {}  # the credentials go in the JSON body
        assert body == {
            "grant_type": "client_credential",
            "appid": settings.WECHAT_APPID,
            "secret": settings.WECHAT_APP_SECRET,
            "force_refresh": False,
        }

    def test_it_is_kept_in_the_shared_cache_with_its_expiry(self, mini):
        before = time.time()
        access_token()
        after = time.time()

        kept = cached_token()
        assert kept.token == mini.token
        assert before + 7200 <= kept.expires_at <= after + 7200
        assert kept.renew_at == kept.expires_at - RENEW_MARGIN_SECONDS == kept.expires_at - 300

    def test_a_token_with_less_than_five_minutes_left_is_renewed(self, mini):
        cache_token(entry("OLD-TOKEN", left=299))

        assert access_token() == mini.token
        assert mini.count(TOKEN_PATH) == 1

    def test_a_token_with_more_left_is_used_as_it_is(self, mini):
        cache_token(entry("OLD-TOKEN", left=301))

        assert access_token() == "OLD-TOKEN"
        assert mini.count(TOKEN_PATH) == 0

    def test_an_expired_token_is_never_used(self, mini):
        cache_token(entry("OLD-TOKEN", left=-1))

        assert access_token() == mini.token

    def test_a_short_lived_answer_is_not_asked_for_again_at_every_use(self, mini):
        # Near its own renewal WeChat may answer with less than our margin left (§1.1).
        mini.expires_in = 240
        for _ in range(3):
            assert access_token() == mini.token
        assert mini.count(TOKEN_PATH) == 1
        kept = cached_token()
        assert kept.expires_at - 240 < kept.renew_at < kept.expires_at

    def test_without_appid_or_secret_nothing_is_asked(self, settings, mini):
        settings.WECHAT_APP_SECRET = ""

        with pytest.raises(WeChatNotConfigured, match="WECHAT_APP_SECRET"):
            require_miniprogram_configured()
        with pytest.raises(WeChatNotConfigured):
            access_token()
        assert mini.count(TOKEN_PATH) == 0

    def test_a_refused_app_secret_is_reported_and_nothing_kept(self, mini):
        mini.token_answers = [{"errcode": 40125, "errmsg": "invalid appsecret rid: 1-2-3"}]

        with pytest.raises(CredentialsRejected):
            access_token()
        assert cached_token() is None
        # The lock was given back: the next use asks again.
        assert access_token() == mini.token
        assert mini.count(TOKEN_PATH) == 2

    def test_neither_secret_nor_token_is_logged(self, mini, caplog):
        caplog.set_level(logging.DEBUG)
        first = access_token()
        mini.stale.add(first)
        with_access_token(managed)

        for secret in (settings.WECHAT_APP_SECRET, first, mini.token):
            assert secret not in caplog.text


class TestOneRenewalAtATime:
    def test_twenty_threads_needing_a_token_at_once_ask_once(self, mini):
        mini.token_delay = 0.2  # a slow answer: the others arrive while it is on its way
        barrier = threading.Barrier(20)
        tokens: list[str] = []

        def use() -> None:
            barrier.wait()
            tokens.append(access_token())

        threads = [threading.Thread(target=use) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert tokens == [mini.token] * 20
        assert mini.count(TOKEN_PATH) == 1

    def test_while_another_process_renews_the_old_token_is_still_used(self, mini):
        cache_token(entry("OLD-TOKEN", left=200))

        with renewal_lock() as held:
            assert held
            assert access_token() == "OLD-TOKEN"
        assert mini.count(TOKEN_PATH) == 0

    def test_without_a_valid_token_a_process_waits_for_the_one_renewing(self, mini):
        got: list[str] = []
        with renewal_lock() as held:
            assert held
            waiting = threading.Thread(target=lambda: got.append(access_token()))
            waiting.start()
            cache_token(entry("RENEWED-ELSEWHERE", left=7200))
        waiting.join()

        assert got == ["RENEWED-ELSEWHERE"]
        assert mini.count(TOKEN_PATH) == 0

    def test_the_lock_is_taken_by_one_holder_only(self, mini):
        with renewal_lock() as first, renewal_lock() as second:
            assert (first, second) == (True, False)
        with renewal_lock() as again:
            assert again


class TestRefused:
    def test_a_refused_token_is_renewed_and_the_call_retried_once(self, mini):
        first = access_token()
        mini.stale.add(first)

        assert with_access_token(managed) is True

        used = [query["access_token"] for query, _ in mini.requests(MANAGED_PATH)]
        assert used == [first, mini.token] and mini.token != first
        assert [body["force_refresh"] for body in mini.bodies(TOKEN_PATH)] == [False, False]
        assert access_token() == mini.token  # kept for everyone

    @pytest.mark.parametrize("errcode", [40001, 40014, 42001])
    def test_every_invalid_token_errcode_renews(self, mini, errcode):
        first = access_token()
        mini.stale.add(first)
        mini.mock.calls.reset()

        def refused_once(client, token):
            if token == first:
                raise AccessTokenInvalid(errcode, "token refused")
            return client.is_trade_managed(token)

        assert with_access_token(refused_once) is True
        assert mini.count(TOKEN_PATH) == 1

    def test_when_stable_token_hands_out_the_refused_token_again_it_is_forced(self, mini):
        first = access_token()
        mini.stale.add(first)
        mini.renews_refused = False

        assert with_access_token(managed) is True

        assert [body["force_refresh"] for body in mini.bodies(TOKEN_PATH)] == [False, False, True]
        assert cached_token().token == mini.token != first

    def test_a_token_another_process_renewed_meanwhile_is_taken_without_asking(self, mini):
        first = access_token()
        cache_token(entry("RENEWED-ELSEWHERE", left=7200))

        assert access_token_renew(rejected=first) == "RENEWED-ELSEWHERE"
        assert mini.count(TOKEN_PATH) == 1

    def test_a_call_refused_twice_is_not_retried_again(self, mini):
        mini.refuse_every_token = True

        with pytest.raises(AccessTokenInvalid):
            with_access_token(managed)
        assert mini.count(MANAGED_PATH) == 2


class TestCacheDown:
    def test_with_the_cache_unreachable_a_token_is_still_had(self, settings, mini, caplog):
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
                "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
            }
        }

        assert access_token() == mini.token
        assert "cache unavailable" in caplog.text
