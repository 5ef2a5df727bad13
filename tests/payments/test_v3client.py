"""The shop's API v3 client (payments/v3client.py): WeChat's keys from the settings, the
public key or platform certificates kept in the shared cache, refreshed when due or when a
serial is unknown, one download at a time (docs/protocol/wechat-pay-v3.md §3.3 to §3.5)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import functools
import threading
import time

import pytest

from core.config import WeChatNotConfigured
from payments import v3client
from payments.v3client import v3_client, v3_keys_refresh
from tests.wx_v3 import (
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    FakeCertificates,
    new_rsa_key,
    self_signed_certificate,
    signed_headers,
    utc,
)
from wechat.pay_v3 import WxPayV3Error, WxPayV3SignatureError, verify_signature

pytestmark = pytest.mark.usefixtures("pay_v3")

NEW_SERIAL = "7132D72A03E93CDDF8C03BBD1F37EEDF1A58F0E5"
STRANGER_SERIAL = "0A0B0C0D0E0F"


@functools.cache
def rotated():
    """The certificate WeChat rotates to: a key and a serial the shop does not hold yet."""
    key = new_rsa_key()
    cert = self_signed_certificate(key, int(NEW_SERIAL, 16), utc(2024, 12, 31), utc(2029, 12, 31))
    return key, cert


def certificate_mode(settings) -> None:
    """No WeChat Pay public key: platform certificates only (§3.4)."""
    settings.WECHAT_PAY_PUBLIC_KEY_PATH = ""
    settings.WECHAT_PAY_PUBLIC_KEY_ID = ""
    v3client.forget_clients()


def another_server() -> None:
    """What another app server (or a restart) starts from: nothing but the shared cache."""
    v3client.forget_clients()


def verifies(client, key, serial: str) -> bool:
    """Whether ``client`` holds the key to accept what WeChat signed with ``key`` under
    ``serial`` (§3.2)."""
    body = b'{"prepay_id":"wx1"}'
    headers = signed_headers(key, serial, body, timestamp=int(time.time()))
    if client.keyring is None:
        return False
    try:
        verify_signature(headers, body, client.keyring, now=time.time())
    except WxPayV3SignatureError:
        return False
    return True


_real_time = time.time


def later(monkeypatch, seconds: float) -> None:
    """The clock ``seconds`` ahead of the real one (the cache's expiry follows it too)."""
    start = _real_time()
    monkeypatch.setattr(time, "time", lambda: start + seconds)


def serve(http_mock, platform) -> FakeCertificates:
    """WeChat serving its one platform certificate (tests add more, or make it fail)."""
    return FakeCertificates(
        http_mock, (platform.key, PLATFORM_SERIAL), [(platform.certificate, PLATFORM_SERIAL)]
    )


class TestPublicKeyMode:
    def test_the_public_key_verifies_without_any_download(self, http_mock, platform, wechat_key):
        certificates = serve(http_mock, platform)
        client = v3_client()

        assert client.keyring.serials == {PUBLIC_KEY_ID}
        assert verifies(client, wechat_key, PUBLIC_KEY_ID)
        assert certificates.calls == 0

    def test_one_client_per_thread_reused_for_its_connections(self):
        mine = v3_client()
        theirs = []
        thread = threading.Thread(target=lambda: theirs.append(v3_client()))
        thread.start()
        thread.join()

        assert v3_client() is mine
        assert theirs[0] is not mine

    def test_a_public_key_id_is_never_refreshed(self, http_mock, platform):
        certificates = serve(http_mock, platform)
        client = v3_client()

        assert v3_keys_refresh(client, "PUB_KEY_ID_0000000000000000000000000099") is False
        assert certificates.calls == 0

    def test_an_unknown_certificate_serial_asks_wechat_at_most_once_a_minute(
        self, http_mock, platform, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        # Merchants with the public key get no certificates (§3.3): WeChat refuses.
        certificates.failure = (404, "RESOURCE_NOT_EXISTS")
        client = v3_client()

        assert v3_keys_refresh(client, STRANGER_SERIAL) is False
        assert v3_keys_refresh(client, "0A0B0C0D0E10") is False
        assert certificates.calls == 1  # forged serials cannot make the shop hammer WeChat

        later(monkeypatch, v3client.REFRESH_MIN_INTERVAL + 1)
        assert v3_keys_refresh(client, STRANGER_SERIAL) is False
        assert certificates.calls == 2

    def test_while_switching_both_the_key_and_the_certificates_verify(
        self, http_mock, wechat_key, platform
    ):
        certificates = serve(http_mock, platform)
        client = v3_client()

        assert v3_keys_refresh(client, PLATFORM_SERIAL) is True

        assert verifies(client, wechat_key, PUBLIC_KEY_ID)
        assert verifies(client, platform.key, PLATFORM_SERIAL)
        another_server()
        assert verifies(v3_client(), platform.key, PLATFORM_SERIAL)  # from the shared cache
        assert certificates.calls == 1

    def test_a_cache_outage_does_not_stop_the_public_key(self, monkeypatch, wechat_key):
        class BrokenCache:
            def __getattr__(self, name):
                def fail(*args, **kwargs):
                    raise ConnectionError("Redis is down")

                return fail

        monkeypatch.setattr(v3client, "cache", BrokenCache())

        assert verifies(v3_client(), wechat_key, PUBLIC_KEY_ID)


class TestSettings:
    @pytest.mark.parametrize(
        "name", ["WECHAT_API_V3_KEY", "WECHAT_MCH_PRIVATE_KEY_PATH", "WECHAT_MCH_CERT_SERIAL"]
    )
    def test_a_missing_setting_is_named(self, settings, name):
        setattr(settings, name, "")

        with pytest.raises(WeChatNotConfigured, match=name):
            v3_client()

    def test_a_public_key_without_its_id_is_refused(self, settings):
        settings.WECHAT_PAY_PUBLIC_KEY_ID = ""

        with pytest.raises(WeChatNotConfigured, match="WECHAT_PAY_PUBLIC_KEY_ID"):
            v3_client()


class TestCertificateMode:
    def test_first_use_downloads_the_certificates_for_every_server(
        self, settings, http_mock, platform
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)

        assert verifies(v3_client(), platform.key, PLATFORM_SERIAL)
        another_server()
        assert verifies(v3_client(), platform.key, PLATFORM_SERIAL)
        assert certificates.calls == 1

    def test_without_a_first_download_nothing_can_be_verified(self, settings, http_mock, platform):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        certificates.failure = (500, "SYSTEM_ERROR")

        with pytest.raises(WxPayV3Error):
            v3_client()

    def test_the_certificates_are_downloaded_again_when_due(
        self, settings, http_mock, platform, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        v3_client()
        key, cert = rotated()
        certificates.certificates.append((cert, NEW_SERIAL))

        later(monkeypatch, v3client.CERTIFICATE_REFRESH - 60)
        assert not verifies(v3_client(), key, NEW_SERIAL)
        later(monkeypatch, v3client.CERTIFICATE_REFRESH)
        client = v3_client()

        assert certificates.calls == 2
        assert verifies(client, key, NEW_SERIAL)

    def test_a_failed_refresh_keeps_the_certificates_and_waits_a_minute(
        self, settings, http_mock, platform, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        v3_client()
        certificates.failure = (503, "SERVICE_UNAVAILABLE")

        later(monkeypatch, v3client.CERTIFICATE_REFRESH)
        client = v3_client()
        v3_client()

        assert verifies(client, platform.key, PLATFORM_SERIAL)
        assert certificates.calls == 2  # not once per call while WeChat is down
        later(monkeypatch, v3client.CERTIFICATE_REFRESH + v3client.REFRESH_MIN_INTERVAL + 1)
        v3_client()
        assert certificates.calls == 3

    def test_an_unknown_serial_brings_the_rotated_certificate_once(
        self, settings, http_mock, platform, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        client = v3_client()
        key, cert = rotated()
        certificates.certificates.append((cert, NEW_SERIAL))
        assert v3_keys_refresh(client, NEW_SERIAL) is False  # just downloaded: not again
        assert certificates.calls == 1

        later(monkeypatch, v3client.REFRESH_MIN_INTERVAL + 1)
        assert v3_keys_refresh(client, NEW_SERIAL) is True
        assert verifies(client, key, NEW_SERIAL)
        assert v3_keys_refresh(client, STRANGER_SERIAL) is False
        assert certificates.calls == 2

        later(monkeypatch, 2 * (v3client.REFRESH_MIN_INTERVAL + 1))
        assert v3_keys_refresh(client, STRANGER_SERIAL) is False
        assert certificates.calls == 3

    def test_a_serial_is_known_whatever_its_case(self, settings, http_mock, platform):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        client = v3_client()

        assert v3_keys_refresh(client, PLATFORM_SERIAL.lower()) is True
        assert certificates.calls == 1

    def test_another_servers_refresh_is_picked_up_from_the_cache(
        self, settings, http_mock, platform, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        mine = v3_client()
        key, cert = rotated()
        certificates.certificates.append((cert, NEW_SERIAL))
        later(monkeypatch, v3client.REFRESH_MIN_INTERVAL + 1)
        thread = threading.Thread(target=lambda: v3_keys_refresh(v3_client(), NEW_SERIAL))
        thread.start()
        thread.join()

        assert v3_keys_refresh(mine, NEW_SERIAL) is True
        assert verifies(mine, key, NEW_SERIAL)
        assert certificates.calls == 2

    def test_an_answer_with_no_living_certificate_keeps_the_ones_held(
        self, settings, http_mock, platform, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        v3_client()
        old_key = new_rsa_key()
        expired = self_signed_certificate(old_key, 0xABCDEF, utc(2020, 1, 1), utc(2021, 1, 1))
        certificates.certificates = [(expired, "ABCDEF")]

        later(monkeypatch, v3client.CERTIFICATE_REFRESH)
        client = v3_client()
        another_server()

        assert verifies(client, platform.key, PLATFORM_SERIAL)
        assert verifies(v3_client(), platform.key, PLATFORM_SERIAL)


class TestOneDownloadAtATime:
    def test_a_server_waits_for_the_download_another_is_making(self, settings, http_mock, platform):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        v3_client()
        theirs = v3client.cache.get(v3client.CACHE_KEY)
        v3client.cache.delete(v3client.CACHE_KEY)
        another_server()
        # Another server holds the lock: it is downloading.
        assert v3client.cache.add(v3client.LOCK_KEY, 1, v3client.LOCK_SECONDS)
        clients = []
        waiting = threading.Thread(target=lambda: clients.append(v3_client()))
        waiting.start()
        v3client.cache.set(v3client.CACHE_KEY, theirs, None)  # …and finishes
        waiting.join()

        assert clients[0].keyring.serials == {PLATFORM_SERIAL}
        assert certificates.calls == 1  # the first server's only

    def test_a_download_that_never_finishes_is_an_error_not_a_hang(
        self, settings, http_mock, platform, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        monkeypatch.setattr(v3client, "WAIT_FOR_OTHER_DOWNLOAD", 0.3)
        assert v3client.cache.add(v3client.LOCK_KEY, 1, v3client.LOCK_SECONDS)

        with pytest.raises(WxPayV3Error, match="try again"):
            v3_client()
        assert certificates.calls == 0

    def test_the_lock_is_released_after_a_failed_download(self, settings, http_mock, platform):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        certificates.failure = (500, "SYSTEM_ERROR")
        with pytest.raises(WxPayV3Error):
            v3_client()

        certificates.failure = None
        assert v3_client().keyring.serials == {PLATFORM_SERIAL}
        assert certificates.calls == 2
