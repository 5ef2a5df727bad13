"""Client for WeChat's ``code2Session`` (docs/protocol/wechat-pay-v2.md §9). No Django imports.

One ``requests.Session`` per client and thread (``transport.SessionPerThread``) keeps the
TLS connection to WeChat alive between logins; every call has a timeout (the exchange
itself is ``transport.request_json``, shared with the server API client). WeChat's error
codes become three kinds of error that the view maps to HTTP statuses: the shopper's code
is bad (400), WeChat is rate-limiting (429), or WeChat/our configuration failed (502).
"""

import logging
from dataclasses import dataclass, field

import requests

from .transport import SessionPerThread, TransportError, request_json

logger = logging.getLogger(__name__)


class Code2SessionError(Exception):
    def __init__(self, message: str, errcode: int | None = None):
        super().__init__(message)
        self.errcode = errcode


class InvalidCode(Code2SessionError):
    """The code is wrong, expired, already used, or blocked: call ``wx.login()`` again."""


class RateLimited(Code2SessionError):
    """WeChat's per-user quota (45011)."""


class WeChatUnavailable(Code2SessionError):
    """WeChat is busy or unreachable, answered nonsense, or rejected our appid/secret."""


# errcode → error class; anything else is treated as WeChat being unavailable.
_ERRORS = {
    40029: InvalidCode,  # invalid code
    40163: InvalidCode,  # code been used
    40226: InvalidCode,  # code blocked (high-risk user)
    45011: RateLimited,
}


@dataclass(frozen=True)
class WxLoginConfig:
    appid: str
    app_secret: str = field(repr=False)
    api_base: str = "https://api.weixin.qq.com"
    timeout: tuple[float, float] = (3.05, 10.0)


@dataclass(frozen=True)
class WxSession:
    openid: str
    session_key: str = field(repr=False)
    unionid: str = ""


class WxLoginClient:
    """Build one per process and reuse it, from any number of threads: each thread calls
    through a session of its own (``transport.SessionPerThread``)."""

    def __init__(self, config: WxLoginConfig, session: requests.Session | None = None):
        self.config = config
        self._sessions = SessionPerThread(session)

    @property
    def session(self) -> requests.Session:
        """The calling thread's session (``session`` given to the client: that one)."""
        return self._sessions.get()

    def code2session(self, code: str) -> WxSession:
        try:
            data, elapsed_ms = request_json(
                self.session,
                "GET",
                f"{self.config.api_base.rstrip('/')}/sns/jscode2session",
                name="code2session",
                params={
                    "appid": self.config.appid,
                    "secret": self.config.app_secret,
                    "js_code": code,
                    "grant_type": "authorization_code",
                },
                timeout=self.config.timeout,
            )
        except TransportError as exc:
            raise WeChatUnavailable(f"WeChat login {exc}.") from None
        result = self._parse(data)
        logger.info("code2session ok openid=%s in %.0f ms", result.openid, elapsed_ms)
        return result

    @staticmethod
    def _parse(data: dict) -> WxSession:
        errcode = data.get("errcode") or 0
        if errcode:
            error_class = _ERRORS.get(errcode, WeChatUnavailable)
            # errmsg carries WeChat's text and request id, never our secret.
            logger.warning("code2session errcode=%s errmsg=%s", errcode, data.get("errmsg"))
            raise error_class(f"WeChat login failed: {data.get('errmsg', '')}", errcode)
        openid, session_key = data.get("openid"), data.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str):
            raise WeChatUnavailable("WeChat login answered without an openid.")
        unionid = data.get("unionid") if isinstance(data.get("unionid"), str) else ""
        return WxSession(openid=openid, session_key=session_key, unionid=unionid)
