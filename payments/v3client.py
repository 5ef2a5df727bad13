"""The WeChat Pay API v3 client for this shop's settings, and WeChat's keys to check it by.

Every answer and notify from WeChat is verified with the key its ``Wechatpay-Serial``
names (docs/protocol/wechat-pay-v3.md §3.3 to §3.5): the WeChat Pay public key
(``WECHAT_PAY_PUBLIC_KEY_PATH`` and ``WECHAT_PAY_PUBLIC_KEY_ID``), platform certificates,
or both while a merchant switches over. Certificates are downloaded from WeChat and kept
in the shared cache, so app servers fetch them once between them:

- without the public key (certificate mode), before first use and every
  ``CERTIFICATE_REFRESH`` (WeChat publishes a new certificate ahead of switching to it);
- in any mode, when a serial that is no ``PUB_KEY_ID_…`` is unknown (a merchant moving
  between the two, or a rotation since the last refresh);
- one download at a time across app servers (a lock in the shared cache), and apart from
  the very first, at most one every ``REFRESH_MIN_INTERVAL`` whether it worked or not
  (a mark in the shared cache): forged serials cannot make the shop hammer WeChat, and a
  WeChat that is down is not asked again on every request.

A serial is compared as ``KeyRing`` compares it (hex whatever its case). With the public
key configured, a cache outage costs nothing but the certificates: the key still verifies.

One client per thread (``threading.local``): a ``requests.Session`` is not documented as
thread-safe, and a threaded server (gunicorn gthread) must not share one.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.views.decorators.debug import sensitive_variables

from core.config import require_settings
from core.throttling import CACHE_ERRORS
from wechat.pay_v3 import (
    KeyRing,
    PlatformCertificate,
    UnknownSerial,
    WxPayV3Client,
    WxPayV3Config,
    WxPayV3Error,
    WxPayV3Unavailable,
    load_private_key,
)

logger = logging.getLogger(__name__)

V3_SETTINGS = (
    "WECHAT_APPID",
    "WECHAT_MCH_ID",
    "WECHAT_API_V3_KEY",
    "WECHAT_MCH_PRIVATE_KEY_PATH",
    "WECHAT_MCH_CERT_SERIAL",
)
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"

CACHE_KEY = "wxpay_v3:certificates"  # {"fetched_at": unix seconds, "pems": [PEM, …]}
LOCK_KEY = "wxpay_v3:certificates:lock"
ATTEMPT_KEY = "wxpay_v3:certificates:attempt"  # set for REFRESH_MIN_INTERVAL by each download
CERTIFICATE_REFRESH = 6 * 3600  # seconds; WeChat: refresh more often than every 12 hours
REFRESH_MIN_INTERVAL = 60  # seconds between downloads, but the first
LOCK_SECONDS = 30  # longer than a download (connect 3 s + read 10 s) can take
WAIT_FOR_OTHER_DOWNLOAD = 5.0  # seconds a server with no key waits for another's download
_MARK = 1  # the value of LOCK_KEY and ATTEMPT_KEY: only their presence is ever read

_local = threading.local()


def require_v3_configured() -> None:
    """Raise ``WeChatNotConfigured`` unless API v3 can be called (before an order is
    recorded that could never be paid)."""
    require_settings(V3_SETTINGS, "WeChat Pay API v3")
    if bool(settings.WECHAT_PAY_PUBLIC_KEY_PATH) != bool(settings.WECHAT_PAY_PUBLIC_KEY_ID):
        require_settings(
            ("WECHAT_PAY_PUBLIC_KEY_PATH", "WECHAT_PAY_PUBLIC_KEY_ID"), "WeChat Pay API v3"
        )


@sensitive_variables()
def v3_client() -> WxPayV3Client:
    """This thread's client for the current settings, holding WeChat's current keys.

    Raises ``WeChatNotConfigured`` when settings are missing, and ``WxPayV3Error`` when, in
    certificate mode, no certificate could be had from WeChat.
    """
    require_v3_configured()
    config = _config(
        settings.WECHAT_APPID,
        settings.WECHAT_MCH_ID,
        settings.WECHAT_MCH_CERT_SERIAL,
        settings.WECHAT_MCH_PRIVATE_KEY_PATH,
        settings.WECHAT_API_V3_KEY,
        settings.WECHAT_PAY_PUBLIC_KEY_PATH,
        settings.WECHAT_PAY_PUBLIC_KEY_ID,
        settings.WECHAT_PAY_API_BASE,
        tuple(settings.WECHAT_TIMEOUT),
    )
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    client = clients.get(config)
    if client is None:
        client = clients[config] = WxPayV3Client(config)
    _hold_current_keys(client)
    return client


def v3_keys_refresh(client: WxPayV3Client, serial: str) -> bool:
    """After ``UnknownSerial`` for ``serial``: download the certificates if that may help
    and no download was made within ``REFRESH_MIN_INTERVAL``; True if ``serial`` is now
    known (the caller verifies once more), False if not (refuse). Never raises for
    WeChat's failures: the caller refuses the answer or notify, and WeChat resends it."""
    if serial.startswith(PUBLIC_KEY_ID_PREFIX):
        return False  # a public-key id is configured, never downloaded: no refresh helps
    if _knows(client, serial):
        return True  # another thread's refresh brought it meanwhile
    try:
        cached = cache.get(CACHE_KEY)
        if cached and cached["fetched_at"] != getattr(client, "_certificates_fetched_at", None):
            _install(client, cached)  # another server's refresh
            if _knows(client, serial):
                return True
        if not _may_download():
            return False
        _download(client, wait=True)
    except (WxPayV3Error, *CACHE_ERRORS) as exc:
        logger.warning("wxpay_v3 certificates: refresh failed (%s)", type(exc).__name__)
        return False
    return _knows(client, serial)


def forget_clients() -> None:
    """Drop the loaded keys and this thread's clients (tests; a key file replaced on disk
    is otherwise read again only after a restart)."""
    _config.cache_clear()
    _local.clients = {}  # pragma: no mutate (equivalent: v3_client() takes None as {} too)


# -- internals ---------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _config(
    appid: str,
    mchid: str,
    serial: str,
    private_key_path: str,
    apiv3_key: str,
    public_key_path: str,
    public_key_id: str,
    api_base: str,
    timeout: tuple[float, float],
) -> WxPayV3Config:
    """Loaded once per process and settings: the key files are read here, not per call."""
    with open(private_key_path, "rb") as f:
        private_key = load_private_key(f.read())
    return WxPayV3Config(
        appid=appid,
        mchid=mchid,
        merchant_serial_no=serial,
        private_key=private_key,
        apiv3_key=apiv3_key,
        keyring=_public_key_ring(public_key_path, public_key_id),
        api_base=api_base,
        timeout=timeout,
    )


def _public_key_ring(path: str, key_id: str) -> KeyRing | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return KeyRing.from_pem(public_key_pem=f.read(), public_key_id=key_id)


def _hold_current_keys(client: WxPayV3Client) -> None:
    """Bring the client's certificates in line with the shared cache; in certificate mode
    download them when missing or due."""
    certificate_mode = client.config.keyring is None
    try:
        cached = cache.get(CACHE_KEY)
    except CACHE_ERRORS as exc:
        if client.keyring is None:
            raise WxPayV3Unavailable(f"shared cache unavailable ({type(exc).__name__})") from None
        # The keys held (the public key at least) still verify: keep using them.
        logger.warning("wxpay_v3 certificates: cache unavailable (%s)", type(exc).__name__)
        return
    if cached:
        if getattr(client, "_certificates_fetched_at", None) != cached["fetched_at"]:
            _install(client, cached)
        due = time.time() - cached["fetched_at"] >= CERTIFICATE_REFRESH
        if certificate_mode and due:
            try:
                if _may_download():
                    _download(client, wait=False)
            except (WxPayV3Error, *CACHE_ERRORS) as exc:
                # The certificates held are still good for a while: keep using them.
                logger.warning(
                    "wxpay_v3 certificates: refresh failed (%s), keeping the ones held",
                    type(exc).__name__,
                )
        return
    if certificate_mode:
        _download(client, wait=True)


def _may_download() -> bool:
    """Whether a refresh may ask WeChat now: no download (by any server, successful or
    not) within ``REFRESH_MIN_INTERVAL``. Claims the slot when it may."""
    return cache.add(ATTEMPT_KEY, _MARK, REFRESH_MIN_INTERVAL)


def _knows(client: WxPayV3Client, serial: str) -> bool:
    if client.keyring is None:
        return False
    try:
        client.keyring.key_for(serial, at=datetime.now(UTC))
    except UnknownSerial:
        return False
    return True


def _install(client: WxPayV3Client, cached: dict) -> None:
    certs = [PlatformCertificate.from_pem(pem) for pem in cached["pems"]]
    base = client.config.keyring
    client.keyring = base.with_certificates(certs) if base else KeyRing(certificates=certs)
    client._certificates_fetched_at = cached["fetched_at"]


def _download(client: WxPayV3Client, *, wait: bool) -> None:
    """Download WeChat's certificates into the shared cache and the client, one server at a
    time; a server that finds the lock taken uses the other's result (waiting for it up to
    ``WAIT_FOR_OTHER_DOWNLOAD`` seconds when ``wait``)."""
    if not cache.add(LOCK_KEY, _MARK, LOCK_SECONDS):
        deadline = time.monotonic() + (WAIT_FOR_OTHER_DOWNLOAD if wait else 0)
        while True:
            cached = cache.get(CACHE_KEY)
            if cached and cached["fetched_at"] != getattr(client, "_certificates_fetched_at", None):
                _install(client, cached)
                return
            if time.monotonic() >= deadline:
                if client.keyring is None:
                    raise WxPayV3Error("WeChat Pay certificates are being downloaded: try again")
                return
            time.sleep(0.1)
    try:
        cache.set(ATTEMPT_KEY, _MARK, REFRESH_MIN_INTERVAL)
        certs = client.download_certificates()
        now = time.time()
        # Expired certificates verify nothing: keep only the living ones (§3.4).
        pems = [c.pem() for c in certs if c.expire_time.timestamp() > now]
        if not pems:
            # Not an answer to replace the certificates held with.
            raise WxPayV3Unavailable("WeChat Pay listed no certificate that has not expired")
        cached = {"fetched_at": now, "pems": pems}
        cache.set(CACHE_KEY, cached, None)
        _install(client, cached)
        logger.info(
            "wxpay_v3 certificates downloaded serials=%s",
            ",".join(c.serial_no for c in certs),
        )
    finally:
        cache.delete(LOCK_KEY)
