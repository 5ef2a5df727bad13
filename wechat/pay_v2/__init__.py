"""WeChat Pay API v2 wire protocol: XML, signatures, endpoints. Knows nothing of Django.

The rules it follows are in docs/protocol/wechat-pay-v2.md; a bare §n anywhere in this
package is a section of that note.
"""

from .client import PrepayResult, RefundQuery, RefundResult, TradeQuery, WxPayClient, WxPayConfig
from .errors import (
    ERROR_CLASSES,
    CertificateError,
    InvalidRequest,
    OrderClosed,
    OrderNotExist,
    OrderPaid,
    OutTradeNoUsed,
    RateLimited,
    RefundNotExist,
    ReqInfoError,
    SystemBusy,
    WxPayBusinessError,
    WxPayError,
    WxPayProtocolError,
    WxPayRequestInvalid,
    WxPaySignatureError,
    WxPayUnavailable,
    XMLError,
    business_error,
)
from .refund_notify import decrypt_req_info
from .signing import HMAC_SHA256, MD5, SIGN_TYPES, nonce_str, notify_sign_type, sign, verify
from .times import BEIJING, format_wx_time, parse_wx_datetime, parse_wx_time
from .xml import MAX_BODY_BYTES, from_xml, to_xml

__all__ = [
    "BEIJING",
    "ERROR_CLASSES",
    "HMAC_SHA256",
    "MAX_BODY_BYTES",
    "MD5",
    "SIGN_TYPES",
    "CertificateError",
    "InvalidRequest",
    "OrderClosed",
    "OrderNotExist",
    "OrderPaid",
    "OutTradeNoUsed",
    "PrepayResult",
    "RateLimited",
    "RefundNotExist",
    "RefundQuery",
    "RefundResult",
    "ReqInfoError",
    "SystemBusy",
    "TradeQuery",
    "WxPayBusinessError",
    "WxPayClient",
    "WxPayConfig",
    "WxPayError",
    "WxPayProtocolError",
    "WxPayRequestInvalid",
    "WxPaySignatureError",
    "WxPayUnavailable",
    "XMLError",
    "business_error",
    "decrypt_req_info",
    "format_wx_time",
    "from_xml",
    "nonce_str",
    "notify_sign_type",
    "parse_wx_datetime",
    "parse_wx_time",
    "sign",
    "to_xml",
    "verify",
]
