"""Rules of payments/v3client.py a mutation run found unpinned: how long a server waits for
another's certificate download and what it takes from it, how long the download lock and
the once-a-minute mark last, keys not rebuilt when nothing changed, which certificates a
download keeps, and what the shop logs and raises (docs/protocol/wechat-pay-v3.md §3.4)."""

# A bare §n in this file is a section of docs/protocol/wechat-pay-v3.md.

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from core.config import WeChatNotConfigured
from payments import v3client
from payments.v3client import v3_client, v3_keys_refresh
from tests.payments.test_v3client import (
    NEW_SERIAL,
    STRANGER_SERIAL,
    certificate_mode,
    later,
    rotated,
    serve,
    verifies,
)
from tests.wx_v3 import (
    APIV3_KEY,
    APPID,
    BASE,
    MCHID,
    MERCHANT_SERIAL,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    FakeCertificates,
    new_rsa_key,
    pem_of,
    self_signed_certificate,
    utc,
)
from wechat.pay_v3 import WxPayV3Client, WxPayV3Config, WxPayV3Error, WxPayV3Unavailable

pytestmark = pytest.mark.usefixtures("pay_v3")

_real_time = time.time


class VirtualClock:
    """v3client's clock while it waits for another server's download: monotonic seconds
    pass only while it sleeps, and ``at(moment, event)`` runs ``event`` (another server
    finishing) once the clock reaches ``moment``. The wall clock stays the real one."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[float] = []
        self._events: list[tuple[float, object]] = []

    def at(self, moment: float, event) -> None:
        self._events.append((moment, event))

    def time(self) -> float:
        return time.time()  # whatever later() made of it

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds
        for moment, event in list(self._events):
            if moment <= self.now:
                self._events.remove((moment, event))
                event()


@pytest.fixture
def clock(monkeypatch) -> VirtualClock:
    virtual = VirtualClock()
    monkeypatch.setattr(v3client, "time", virtual)
    return virtual


def another_server_downloading() -> None:
    """Another app server holds the download lock (§3.4: one download at a time)."""
    assert v3client.cache.add(v3client.LOCK_KEY, 1, v3client.LOCK_SECONDS)


def another_server_finishes(*certificates) -> None:
    """…and puts what it downloaded in the shared cache."""
    pems = [pem_of(cert) for cert in certificates]
    v3client.cache.set(v3client.CACHE_KEY, {"fetched_at": time.time(), "pems": pems}, None)


# -- waiting for another server's download -----------------------------------------------------


class TestWaitingForAnotherDownload:
    def test_a_first_use_takes_the_other_servers_download_within_a_tenth_of_a_second(
        self, settings, http_mock, platform, clock
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        another_server_downloading()
        clock.at(0.25, lambda: another_server_finishes(platform.certificate))

        client = v3_client()

        assert client.keyring.serials == {PLATFORM_SERIAL}
        assert 0.25 <= clock.now <= 0.35
        assert certificates.calls == 0  # the other server's download only

    def test_a_refresh_waits_for_newer_certificates_not_the_ones_it_holds(
        self, settings, http_mock, platform, clock, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        client = v3_client()
        held = client.keyring
        key, cert = rotated()
        later(monkeypatch, v3client.REFRESH_MIN_INTERVAL + 1)
        another_server_downloading()
        clock.at(1.0, lambda: another_server_finishes(platform.certificate, cert))

        assert v3_keys_refresh(client, NEW_SERIAL) is True

        assert clock.now >= 1.0
        assert client.keyring is not held
        assert verifies(client, key, NEW_SERIAL)
        assert certificates.calls == 1  # the first use's only

    def test_a_refresh_gives_up_after_waiting_five_seconds(
        self, http_mock, platform, clock, caplog
    ):
        certificates = serve(http_mock, platform)
        client = v3_client()
        another_server_downloading()

        assert v3_keys_refresh(client, STRANGER_SERIAL) is False

        wait = v3client.WAIT_FOR_OTHER_DOWNLOAD
        assert wait <= clock.now < wait + 0.2
        assert certificates.calls == 0

    def test_a_first_use_that_finds_no_download_finished_says_to_try_again(
        self, settings, http_mock, platform, clock
    ):
        serve(http_mock, platform)
        certificate_mode(settings)
        another_server_downloading()

        with pytest.raises(WxPayV3Error) as caught:
            v3_client()

        assert str(caught.value) == "WeChat Pay certificates are being downloaded: try again"
        assert clock.now >= v3client.WAIT_FOR_OTHER_DOWNLOAD

    def test_a_due_refresh_does_not_wait_for_another_servers_download(
        self, settings, http_mock, platform, clock, monkeypatch
    ):
        certificates = serve(http_mock, platform)
        certificate_mode(settings)
        v3_client()
        later(monkeypatch, v3client.CERTIFICATE_REFRESH)
        another_server_downloading()

        client = v3_client()

        assert clock.naps == []  # the certificates held are good for hours yet
        assert verifies(client, platform.key, PLATFORM_SERIAL)
        assert certificates.calls == 1


# -- how long the lock and the once-a-minute mark last -----------------------------------------


def test_the_download_lock_lapses_after_lock_seconds(settings, http_mock, platform, monkeypatch):
    # A server that dies mid-download (no `finally`) blocks the others LOCK_SECONDS at most.
    seen = {}

    class Registration:
        def add_callback(self, method, url, callback):
            self.answer = callback

    wechat = Registration()
    certificates = FakeCertificates(
        wechat, (platform.key, PLATFORM_SERIAL), [(platform.certificate, PLATFORM_SERIAL)]
    )

    def answer(request):
        start = _real_time()
        for seconds in (v3client.LOCK_SECONDS - 1, v3client.LOCK_SECONDS + 1):
            monkeypatch.setattr(time, "time", lambda seconds=seconds: start + seconds)
            seen[seconds] = v3client.cache.add(v3client.LOCK_KEY, "theirs", 5)
        monkeypatch.setattr(time, "time", _real_time)
        return wechat.answer(request)

    http_mock.add_callback("GET", f"{BASE}/v3/certificates", callback=answer)
    certificate_mode(settings)

    v3_client()

    assert seen == {v3client.LOCK_SECONDS - 1: False, v3client.LOCK_SECONDS + 1: True}
    assert certificates.calls == 1


def test_the_claim_to_ask_wechat_lasts_a_minute(monkeypatch):
    assert v3client._may_download() is True
    assert v3client._may_download() is False
    later(monkeypatch, v3client.REFRESH_MIN_INTERVAL - 1)
    assert v3client._may_download() is False
    later(monkeypatch, v3client.REFRESH_MIN_INTERVAL + 1)
    assert v3client._may_download() is True


def test_a_refresh_that_found_the_lock_taken_may_ask_again_a_minute_later(
    http_mock, platform, clock, monkeypatch
):
    certificates = serve(http_mock, platform)
    client = v3_client()
    another_server_downloading()
    assert v3_keys_refresh(client, STRANGER_SERIAL) is False  # waited, nothing came
    v3client.cache.delete(v3client.LOCK_KEY)

    later(monkeypatch, v3client.REFRESH_MIN_INTERVAL - 1)
    assert v3_keys_refresh(client, STRANGER_SERIAL) is False
    assert certificates.calls == 0
    later(monkeypatch, v3client.REFRESH_MIN_INTERVAL + 1)
    assert v3_keys_refresh(client, PLATFORM_SERIAL) is True
    assert certificates.calls == 1


# -- keys rebuilt only when the cache changed --------------------------------------------------


def test_unchanged_certificates_are_not_loaded_again(settings, http_mock, platform):
    serve(http_mock, platform)
    certificate_mode(settings)
    client = v3_client()
    held = client.keyring

    assert v3_client().keyring is held
    assert v3_keys_refresh(client, STRANGER_SERIAL) is False  # just downloaded: not again
    assert client.keyring is held


def test_certificates_another_server_cached_after_this_client_was_made_are_picked_up(
    http_mock, platform
):
    # Public-key mode: this client has never loaded a certificate.
    certificates = serve(http_mock, platform)
    client = v3_client()
    another_server_finishes(platform.certificate)

    assert v3_keys_refresh(client, PLATFORM_SERIAL) is True
    assert certificates.calls == 0


def test_a_client_holding_no_key_yet_knows_no_serial(http_mock, platform, merchant_key):
    certificates = serve(http_mock, platform)
    client = WxPayV3Client(
        WxPayV3Config(
            appid=APPID,
            mchid=MCHID,
            merchant_serial_no=MERCHANT_SERIAL,
            private_key=merchant_key,
            apiv3_key=APIV3_KEY,
            keyring=None,
        )
    )

    assert v3_keys_refresh(client, STRANGER_SERIAL) is False
    assert certificates.calls == 1
    assert client.keyring.serials == {PLATFORM_SERIAL}


# -- which certificates a download keeps -------------------------------------------------------


def test_a_certificate_expiring_at_the_moment_of_download_is_not_kept(
    settings, http_mock, platform, monkeypatch
):
    now = int(_real_time()) + 600
    moment = datetime.fromtimestamp(now, UTC)
    edge_key, last_second_key = new_rsa_key(), new_rsa_key()
    edge = self_signed_certificate(edge_key, 0xED6E, utc(2024, 1, 1), moment)
    last_second = self_signed_certificate(
        last_second_key, 0xED6F, utc(2024, 1, 1), moment + timedelta(seconds=1)
    )
    certificates = serve(http_mock, platform)
    certificates.certificates += [(edge, "ED6E"), (last_second, "ED6F")]
    certificate_mode(settings)
    monkeypatch.setattr(time, "time", lambda: now)

    client = v3_client()

    assert client.keyring.serials == {PLATFORM_SERIAL, "ED6F"}
    assert len(v3client.cache.get(v3client.CACHE_KEY)["pems"]) == 2


def test_a_first_download_whose_only_certificate_expires_meanwhile_says_so(
    settings, http_mock, monkeypatch
):
    # The answer verifies (its certificate is valid when it arrives), but the certificate
    # has expired by the time the download would be kept: nothing to keep.
    key = new_rsa_key()
    expiry = datetime.fromtimestamp(int(_real_time()) + 60, UTC)
    short = self_signed_certificate(key, 0xABCDEF, utc(2024, 1, 1), expiry)
    FakeCertificates(http_mock, (key, "ABCDEF"), [(short, "ABCDEF")])
    certificate_mode(settings)
    later(monkeypatch, 120)  # the wall clock; the client checks the answer's time by its own

    with pytest.raises(WxPayV3Unavailable) as caught:
        v3_client()

    assert str(caught.value) == "WeChat Pay listed no certificate that has not expired"


# -- what the shop logs ------------------------------------------------------------------------


def ours(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "payments.v3client"]


def test_a_download_logs_the_serials_it_brought(settings, http_mock, platform, caplog):
    certificates = serve(http_mock, platform)
    _, cert = rotated()
    certificates.certificates.append((cert, NEW_SERIAL))
    certificate_mode(settings)
    caplog.set_level(logging.INFO, logger="payments.v3client")

    v3_client()

    assert ours(caplog) == [
        f"wxpay_v3 certificates downloaded serials={PLATFORM_SERIAL},{NEW_SERIAL}"
    ]


def test_a_failed_refresh_logs_why(http_mock, platform, caplog):
    certificates = serve(http_mock, platform)
    certificates.failure = (503, "SERVICE_UNAVAILABLE")
    client = v3_client()

    assert v3_keys_refresh(client, STRANGER_SERIAL) is False

    assert ours(caplog) == ["wxpay_v3 certificates: refresh failed (SystemBusy)"]


# -- when certificates are due, and a cache outage -----------------------------------------------


def test_certificates_are_due_exactly_certificate_refresh_after_their_download(
    settings, http_mock, platform, monkeypatch
):
    certificates = serve(http_mock, platform)
    certificate_mode(settings)
    start = _real_time()
    monkeypatch.setattr(time, "time", lambda: start)
    v3_client()

    monkeypatch.setattr(time, "time", lambda: start + v3client.CERTIFICATE_REFRESH - 0.01)
    v3_client()
    assert certificates.calls == 1
    monkeypatch.setattr(time, "time", lambda: start + v3client.CERTIFICATE_REFRESH)
    v3_client()
    assert certificates.calls == 2


def test_with_the_public_key_certificates_are_never_due(http_mock, platform, monkeypatch):
    # Another server's refresh brought certificates; hours later this one does not ask again.
    certificates = serve(http_mock, platform)
    another_server_finishes(platform.certificate)
    later(monkeypatch, v3client.CERTIFICATE_REFRESH + 1)

    client = v3_client()

    assert client.keyring.serials == {PUBLIC_KEY_ID, PLATFORM_SERIAL}
    assert certificates.calls == 0


class BrokenCache:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("Redis is down")

        return fail


def test_a_cache_outage_without_any_key_is_an_error_that_says_so(settings, monkeypatch):
    certificate_mode(settings)
    monkeypatch.setattr(v3client, "cache", BrokenCache())

    with pytest.raises(WxPayV3Unavailable) as caught:
        v3_client()

    assert str(caught.value) == "shared cache unavailable (ConnectionError)"


def test_a_cache_outage_with_the_public_key_is_logged(monkeypatch, caplog):
    monkeypatch.setattr(v3client, "cache", BrokenCache())

    assert v3_client().keyring.serials == {PUBLIC_KEY_ID}
    assert ours(caplog) == ["wxpay_v3 certificates: cache unavailable (ConnectionError)"]


def test_a_failed_due_refresh_is_logged(settings, http_mock, platform, monkeypatch, caplog):
    certificates = serve(http_mock, platform)
    certificate_mode(settings)
    v3_client()
    certificates.failure = (503, "SERVICE_UNAVAILABLE")
    later(monkeypatch, v3client.CERTIFICATE_REFRESH)
    caplog.clear()

    v3_client()

    assert ours(caplog) == [
        "wxpay_v3 certificates: refresh failed (SystemBusy), keeping the ones held"
    ]


@pytest.mark.parametrize(
    "given, missing",
    [
        ({"WECHAT_PAY_PUBLIC_KEY_ID": ""}, "WECHAT_PAY_PUBLIC_KEY_ID"),
        ({"WECHAT_PAY_PUBLIC_KEY_PATH": ""}, "WECHAT_PAY_PUBLIC_KEY_PATH"),
    ],
)
def test_the_public_key_and_its_id_come_together(settings, given, missing):
    for name, value in given.items():
        setattr(settings, name, value)

    with pytest.raises(WeChatNotConfigured) as caught:
        v3client.require_v3_configured()

    assert str(caught.value) == f"WeChat Pay API v3 is not configured: set {missing}."


def test_a_missing_v3_setting_names_the_feature(settings):
    settings.WECHAT_API_V3_KEY = ""

    with pytest.raises(WeChatNotConfigured) as caught:
        v3client.require_v3_configured()

    assert str(caught.value) == "WeChat Pay API v3 is not configured: set WECHAT_API_V3_KEY."


def test_certificate_mode_needs_neither_public_key_setting(settings):
    certificate_mode(settings)

    v3client.require_v3_configured()


def test_a_public_key_file_in_der_is_refused_as_not_pem(settings, tmp_path, wechat_key):
    """The file is read as bytes: a DER key (the binary form, a likely mix-up) is refused
    with the reason the operator needs, not a text decoding error."""
    der = tmp_path / "pub_key.der"
    der.write_bytes(
        wechat_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings.WECHAT_PAY_PUBLIC_KEY_PATH = str(der)
    v3client.forget_clients()

    with pytest.raises(ValueError) as caught:
        v3_client()

    assert str(caught.value) == "not a PEM public key"


def test_wechat_pay_v3_is_called_as_long_as_the_settings_say(settings, http_mock, platform):
    serve(http_mock, platform)
    certificate_mode(settings)
    settings.WECHAT_TIMEOUT = (1.5, 4.0)

    v3_client()

    [call] = http_mock.calls
    assert call.request.req_kwargs["timeout"] == (1.5, 4.0)
