"""The mini-program server API (docs/protocol/miniprogram-server-api.md), no Django."""

from .login import (
    Code2SessionError,
    InvalidCode,
    RateLimited,
    WeChatUnavailable,
    WxLoginClient,
    WxLoginConfig,
    WxSession,
)

__all__ = [
    "Code2SessionError",
    "InvalidCode",
    "RateLimited",
    "WeChatUnavailable",
    "WxLoginClient",
    "WxLoginConfig",
    "WxSession",
]
