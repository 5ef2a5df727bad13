"""Simulator configuration: the one mini-program and the one merchant it knows."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEMO_APPID = "wx0000000000demo"
DEMO_SECRET = "demo-app-secret"  # noqa: S105 - a public demo value
DEMO_MCH_ID = "1900000109"
# 32 characters like a real APIv2 key (§2.1 step 5). A demo value, never a real one.
DEMO_MCH_KEY = "wxsimDemoMchKey0123456789abcdefX"
# The mini-program's original id (原始ID), the ToUserName of its message pushes.
DEMO_ORIGINAL_ID = "gh_00000000demo"
# 32 ASCII characters like a real APIv3 key (docs/protocol/wechat-pay-v3.md §1.1): it only
# encrypts notify resources and platform certificates. A demo value, never a real one.
DEMO_APIV3_KEY = "wxsimDemoApiV3Key0123456789abcdX"
# How WeChat Pay v3 signs its answers and notifies (docs/protocol/wechat-pay-v3.md §3.3-§3.5):
# with the WeChat Pay public key (new merchants), platform certificates (older ones), or
# both while a merchant switches over.
V3_KEY_MODES = ("public-key", "certificate", "both")
_HEX_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")


@dataclass(frozen=True)
class Config:
    appid: str = DEMO_APPID
    secret: str = DEMO_SECRET
    mch_id: str = DEMO_MCH_ID
    mch_key: str = DEMO_MCH_KEY
    host: str = "127.0.0.1"
    port: int = 0
    # Multiplies WeChat's notify retry schedule (§5.5) and the refund processing delay,
    # so tests can watch a day of retries in a fraction of a second.
    retry_scale: float = 1.0
    # WeChat refuses closeorder within 5 minutes of unifiedorder (§6.2).
    close_min_seconds: float = 300.0
    # WeChat counts a notify as failed when the reply takes longer than 5 s (§5.2 rule 5).
    notify_timeout: float = 5.0
    # What is_trade_managed answers until POST /sim/trade_managed changes it
    # (docs/protocol/miniprogram-server-api.md §2.1).
    trade_managed: bool = True
    # Lifetime of an access_token from stable_token: "up to 7200" seconds (§1.1 of the same).
    token_ttl: int = 7200
    original_id: str = DEMO_ORIGINAL_ID
    verbose: bool = False
    # WeChat Pay v3 (wxsim/v3keys.py). The simulator's own keys are made at start; the
    # merchant's key is read from v3_merchant_key (a private key, public key or certificate
    # PEM), or made at start too when empty.
    v3_keys: str = "public-key"
    apiv3_key: str = DEMO_APIV3_KEY
    v3_merchant_key: str = ""
    v3_merchant_serial: str = ""

    def __post_init__(self) -> None:
        if len(self.mch_key) != 32 or not self.mch_key.isascii():
            raise ValueError("mch_key must be 32 ASCII characters, like a WeChat APIv2 key")
        for name in ("appid", "secret", "mch_id", "original_id"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if self.retry_scale < 0 or self.close_min_seconds < 0:
            raise ValueError("retry_scale and close_min_seconds must be >= 0")
        if self.token_ttl < 1:
            raise ValueError("token_ttl must be at least 1 second")
        if self.v3_keys not in V3_KEY_MODES:
            raise ValueError(f"v3_keys must be one of {', '.join(V3_KEY_MODES)}")
        if len(self.apiv3_key) != 32 or not self.apiv3_key.isascii():
            raise ValueError("apiv3_key must be 32 ASCII characters, like a WeChat APIv3 key")
        if self.v3_merchant_serial and not _HEX_SERIAL.fullmatch(self.v3_merchant_serial):
            raise ValueError("v3_merchant_serial must be a hex certificate serial")
