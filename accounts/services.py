from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from accounts.tokens import token_issue
from core.config import LOGIN_SETTINGS, require_settings
from core.errors import DomainError
from wechat import miniprogram
from wechat.miniprogram import WxLoginClient, WxLoginConfig


class LoginRefused(DomainError):
    """A login that could not be done; ``errcode`` is WeChat's, when it gave one."""

    message = "WeChat login failed."

    def __init__(self, errcode: int | None = None):
        super().__init__(self.message)
        self.errcode = errcode

    def extra(self) -> dict[str, object]:
        return {"errcode": self.errcode}


class LoginCodeInvalid(LoginRefused):
    status_code = 400
    message = "The login code is invalid, expired or already used; call wx.login() again."


class LoginRateLimited(LoginRefused):
    status_code = 429
    message = "WeChat is rate-limiting logins for this user; try again in a minute."


class LoginUnavailable(LoginRefused):
    status_code = 502
    message = "WeChat login is unavailable."


@lru_cache(maxsize=4)
def _login_client(config: WxLoginConfig) -> WxLoginClient:
    # One client per configuration, for the life of the process, shared by its threads
    # (gunicorn gthread): the client calls through one session (one kept-alive connection)
    # per thread, never one shared session (wechat/miniprogram/transport.py).
    return WxLoginClient(config)


@sensitive_variables()
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


# Every variable, not a list of names: Django applies the nearest decorated caller's marks
# to the frames below it too, and the WeChat client (Django-free, so undecorated) and
# requests hold the AppSecret and WeChat's answer (session_key) in theirs.
@sensitive_variables()
def user_login_with_code(*, code: str) -> LoginResult:
    """Exchange a ``wx.login()`` code for our own bearer token.

    The WeChat call happens before any database work, so no transaction waits on it.
    Raises a ``LoginRefused`` (400, 429 or 502, with WeChat's errcode) when WeChat says no.
    """
    wx_session = _code2session(code)
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


@sensitive_variables()
def _code2session(code: str) -> miniprogram.WxSession:
    """WeChat's answer, its refusals translated into ours (WeChat's text stays in the log)."""
    try:
        return login_client().code2session(code)
    except miniprogram.InvalidCode as exc:
        raise LoginCodeInvalid(exc.errcode) from None
    except miniprogram.RateLimited as exc:
        raise LoginRateLimited(exc.errcode) from None
    except miniprogram.WeChatUnavailable as exc:
        raise LoginUnavailable(exc.errcode) from None


# Every variable: the ORM's frames below hold ``fields`` (the session_key) as their own.
@sensitive_variables()
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


def user_tokens_revoke(*, users: "QuerySet[User] | Iterable[User]") -> int:
    """Make every bearer token issued so far to these users unusable ("Log out everywhere").

    Raises ``token_version`` in the database (F(), not a value read earlier), so two staff
    members revoking at once both count and a stale instance cannot lower it. The shopper's
    next request is 401 and the mini-program logs in again. Returns how many users.
    """
    if isinstance(users, QuerySet):
        selected = User.objects.filter(pk__in=users.values("pk"))
    else:
        selected = User.objects.filter(pk__in=[user.pk for user in users])
    return selected.update(token_version=F("token_version") + 1)
