"""The mini-program server API (docs/protocol/miniprogram-server-api.md), no Django.

- ``login``: code2Session (docs/protocol/wechat-pay-v2.md §9).
- ``server_api``: access_token, order shipping management, subscribe messages.
- ``shipping``, ``subscribe``: their request bodies and values, as pure functions.
- ``errors``: WeChat's errcodes as the classes a caller branches on.
- ``transport``: the HTTP exchange both clients share.
"""

from .errors import (
    AccessTokenInvalid,
    AlreadyShipped,
    CredentialsRejected,
    MiniProgramApiError,
    MiniProgramBusy,
    MiniProgramRateLimited,
    MiniProgramUnavailable,
    NotSubscribed,
    PaymentNotFound,
    RequestInvalid,
    ShippingRefused,
)
from .login import (
    Code2SessionError,
    InvalidCode,
    RateLimited,
    WeChatUnavailable,
    WxLoginClient,
    WxLoginConfig,
    WxSession,
)
from .server_api import AccessToken, MiniProgramClient, MiniProgramConfig
from .shipping import (
    DeliveryMode,
    LogisticsType,
    OrderState,
    ShippingItem,
    ShippingOrder,
    mask_phone,
)
from .subscribe import keyword_kind, subscribe_value

__all__ = [
    "AccessToken",
    "AccessTokenInvalid",
    "AlreadyShipped",
    "Code2SessionError",
    "CredentialsRejected",
    "DeliveryMode",
    "InvalidCode",
    "LogisticsType",
    "MiniProgramApiError",
    "MiniProgramBusy",
    "MiniProgramClient",
    "MiniProgramConfig",
    "MiniProgramRateLimited",
    "MiniProgramUnavailable",
    "NotSubscribed",
    "OrderState",
    "PaymentNotFound",
    "RateLimited",
    "RequestInvalid",
    "ShippingItem",
    "ShippingOrder",
    "ShippingRefused",
    "WeChatUnavailable",
    "WxLoginClient",
    "WxLoginConfig",
    "WxSession",
    "keyword_kind",
    "mask_phone",
    "subscribe_value",
]
