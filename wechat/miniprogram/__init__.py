"""The mini-program server API (docs/protocol/miniprogram-server-api.md), no Django.

- ``login``: code2Session (docs/protocol/wechat-pay-v2.md §9).
- ``server_api``: access_token, order shipping management, subscribe messages.
- ``shipping``, ``subscribe``: their request bodies and values, as pure functions.
- ``push``: message push (消息推送): signatures, safe-mode decryption, the JSON event.
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
from .push import (
    PushAesKeyInvalid,
    PushAppIdMismatch,
    PushDecryptError,
    PushError,
    PushEvent,
    PushMalformed,
    decrypt_message,
    encrypted_field,
    parse_event,
    push_aes_key,
    verify_msg_signature,
    verify_signature,
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
    "PushAesKeyInvalid",
    "PushAppIdMismatch",
    "PushDecryptError",
    "PushError",
    "PushEvent",
    "PushMalformed",
    "RateLimited",
    "RequestInvalid",
    "ShippingItem",
    "ShippingOrder",
    "ShippingRefused",
    "WeChatUnavailable",
    "WxLoginClient",
    "WxLoginConfig",
    "WxSession",
    "decrypt_message",
    "encrypted_field",
    "keyword_kind",
    "mask_phone",
    "parse_event",
    "push_aes_key",
    "subscribe_value",
    "verify_msg_signature",
    "verify_signature",
]
