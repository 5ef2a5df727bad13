from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.tokens import token_issue
from core.config import LOGIN_SETTINGS, require_settings
from wechat.miniprogram import WxLoginClient, WxLoginConfig


@lru_cache(maxsize=4)
def _login_client(config: WxLoginConfig) -> WxLoginClient:
    # One client (one connection pool) per configuration, for the life of the process.
    return WxLoginClient(config)


def login_client() -> WxLoginClient:
    require_settings(LOGIN_SETTINGS, "WeChat login")
    return _login_client(
        WxLoginConfig(
            appid=settings.WECHAT_APPID,
            app_secret=settings.WECHAT_APP_SECRET,
            api_base=settings.WECHAT_API_BASE,
            timeout=settings.WECHAT_TIMEOUT,
        )
    )


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str
    expires_in: int


def user_login_with_code(*, code: str) -> LoginResult:
    """Exchange a ``wx.login()`` code for our own bearer token.

    The WeChat call happens before any database work, so no transaction waits on it.
    """
    wx_session = login_client().code2session(code)
    user = _user_upsert(
        openid=wx_session.openid,
        unionid=wx_session.unionid,
        session_key=wx_session.session_key,
    )
    return LoginResult(
        user=user,
        token=token_issue(user=user),
        expires_in=settings.ACCESS_TOKEN_TTL_SECONDS,
    )


def _user_upsert(*, openid: str, unionid: str, session_key: str) -> User:
    fields = {"session_key": session_key, "last_wechat_login": timezone.now()}
    if unionid:
        fields["unionid"] = unionid
    updated = User.objects.filter(openid=openid).update(**fields)
    if not updated:
        try:
            with transaction.atomic():
                user = User(openid=openid, username=f"wx_{openid}"[:150], **fields)
                user.set_unusable_password()
                user.save()
                return user
        except IntegrityError:
            # The same shopper's first login raced in from another request.
            User.objects.filter(openid=openid).update(**fields)
    return User.objects.get(openid=openid)
