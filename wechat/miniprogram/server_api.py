"""Client for the mini-program server API: access_token, order shipping management and
subscribe messages. No Django imports.

A bare §n in this module is a section of docs/protocol/miniprogram-server-api.md.

Every call is a POST of JSON to ``api.weixin.qq.com`` with the token in the query string
(introduction of the notes), through ``transport.request_json`` (a pooled session per thread, a
timeout on every call). WeChat's ``errcode`` becomes one of the classes of ``errors``; the
token itself is never logged and never put in an error: log lines carry the path, the errcode,
WeChat's request id and the time taken.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from .errors import MiniProgramUnavailable, RequestInvalid, api_error
from .shipping import (
    DeliveryMode,
    ShippingItem,
    ShippingOrder,
    merchant_order_key,
    shipping_body,
    shipping_order,
    unix_seconds,
    upload_order_key,
)
from .subscribe import keyword_kind, subscribe_value
from .transport import SessionPerThread, TransportError, request_json

logger = logging.getLogger("wechat.miniprogram")

API_BASE = "https://api.weixin.qq.com"
MINIPROGRAM_STATES = ("developer", "trial", "formal")  # §4.2
LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")
_RID = re.compile(r"rid: ([0-9A-Za-z-]+)")


@dataclass(frozen=True)
class MiniProgramConfig:
    appid: str
    app_secret: str = field(repr=False)
    api_base: str = API_BASE
    # (connect, read) seconds; connect slightly above a multiple of 3 s (TCP retransmit).
    timeout: tuple[float, float] = (3.05, 10.0)

    def __post_init__(self) -> None:
        for name in ("appid", "app_secret"):
            if not getattr(self, name):
                raise ValueError(f"MiniProgramConfig.{name} must not be empty")


@dataclass(frozen=True)
class AccessToken:
    """A token and its lifetime (§1.1). ``obtained_at`` is taken *before* asking, so the
    expiry computed from it errs early, never late."""

    token: str = field(repr=False)
    expires_in: int  # seconds, anywhere from ~300 to 7200 with the stable API (§1.1)
    obtained_at: datetime  # aware, UTC

    @property
    def expires_at(self) -> datetime:
        return self.obtained_at + timedelta(seconds=self.expires_in)

    def expires_within(self, seconds: float, *, now: datetime | None = None) -> bool:
        """True when less than ``seconds`` of life are left: renew it (§1.4)."""
        return (now or datetime.now(UTC)) + timedelta(seconds=seconds) >= self.expires_at


class MiniProgramClient:
    """Build one per process and reuse it, from any number of threads: each thread calls
    through a ``requests.Session`` of its own that keeps its connection alive
    (``transport.SessionPerThread``)."""

    def __init__(self, config: MiniProgramConfig, session: requests.Session | None = None):
        self.config = config
        self._sessions = SessionPerThread(session)

    @property
    def session(self) -> requests.Session:
        """The calling thread's session (``session`` given to the client: that one)."""
        return self._sessions.get()

    # --- §1 access_token ------------------------------------------------------------------

    def stable_token(self, force_refresh: bool = False) -> AccessToken:
        """``POST /cgi-bin/stable_token`` (§1.1). ``force_refresh`` replaces the token (at most
        20 times a day, 30 s apart): only when the normal answer is the token just refused."""
        obtained_at = datetime.now(UTC)
        data = self._post(
            "/cgi-bin/stable_token",
            {
                "grant_type": "client_credential",
                "appid": self.config.appid,
                "secret": self.config.app_secret,
                "force_refresh": bool(force_refresh),
            },
        )
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not (isinstance(token, str) and token and type(expires_in) is int and expires_in > 0):
            raise MiniProgramUnavailable(None, "stable_token answered without a token")
        return AccessToken(token=token, expires_in=expires_in, obtained_at=obtained_at)

    # --- §2 order shipping management -----------------------------------------------------

    def is_trade_managed(self, access_token: str) -> bool:
        """``POST /wxa/sec/order/is_trade_managed`` (§2.3): are our payments frozen until
        shipping is recorded?"""
        data = self._post(
            "/wxa/sec/order/is_trade_managed", {"appid": self.config.appid}, access_token
        )
        managed = data.get("is_trade_managed")
        if not isinstance(managed, bool):
            raise MiniProgramUnavailable(None, "is_trade_managed answered without a boolean")
        return managed

    def upload_shipping_info(
        self,
        access_token: str,
        *,
        transaction_id: str = "",
        mchid: str = "",
        out_trade_no: str = "",
        logistics_type: int,
        shipping_list: Sequence[ShippingItem],
        upload_time: datetime,
        payer_openid: str,
        delivery_mode: int = DeliveryMode.UNIFIED,
        is_all_delivered: bool | None = None,
    ) -> None:
        """``POST /wxa/sec/order/upload_shipping_info`` (§2.4). Identify the payment by
        ``transaction_id`` or by ``mchid`` + ``out_trade_no``. A body that breaks §2.4 raises
        RequestInvalid before anything is sent."""
        body = shipping_body(
            order_key=upload_order_key(transaction_id, mchid, out_trade_no),
            logistics_type=logistics_type, delivery_mode=delivery_mode,
            shipping_list=shipping_list, upload_time=upload_time,
            payer_openid=payer_openid, is_all_delivered=is_all_delivered,
        )
        self._post("/wxa/sec/order/upload_shipping_info", body, access_token)

    def get_order(
        self, access_token: str, *,
        transaction_id: str = "", merchant_id: str = "", merchant_trade_no: str = "",
    ) -> ShippingOrder:
        """``POST /wxa/sec/order/get_order`` (§2.5): note ``merchant_id``/``merchant_trade_no``,
        not the upload's ``mchid``/``out_trade_no``."""
        body = merchant_order_key(transaction_id, merchant_id, merchant_trade_no)
        return shipping_order(self._post("/wxa/sec/order/get_order", body, access_token))

    def notify_confirm_receive(
        self, access_token: str, *,
        transaction_id: str = "", merchant_id: str = "", merchant_trade_no: str = "",
        received_time: datetime,
    ) -> None:
        """``POST /wxa/sec/order/notify_confirm_receive`` (§2.6): remind the user to confirm
        receipt; once per order, express only, after shipping."""
        body: dict[str, Any] = merchant_order_key(transaction_id, merchant_id, merchant_trade_no)
        body["received_time"] = unix_seconds(received_time, "received_time")
        self._post("/wxa/sec/order/notify_confirm_receive", body, access_token)

    # --- §4 subscribe messages ------------------------------------------------------------

    def send_subscribe_message(
        self,
        access_token: str,
        *,
        touser: str,
        template_id: str,
        data: Mapping[str, str],
        page: str = "",
        miniprogram_state: str = "formal",
        lang: str = "zh_CN",
    ) -> int | None:
        """``POST /cgi-bin/message/subscribe/send`` (§4.2); returns WeChat's ``msgid``.

        ``data`` maps the template's keywords to values (``{"thing1": "Oolong tea"}``); a value
        that breaks its keyword's rule (§4.3, make it fit with ``subscribe_value``) raises
        RequestInvalid before sending. ``43101`` is NotSubscribed: drop it, never retry.
        """
        for name, value in (("touser", touser), ("template_id", template_id)):
            if not isinstance(value, str) or not value:
                raise RequestInvalid(None, f"{name} is required")
        if miniprogram_state not in MINIPROGRAM_STATES:
            raise RequestInvalid(None, f"miniprogram_state must be one of {MINIPROGRAM_STATES}")
        if lang not in LANGS:
            raise RequestInvalid(None, f"lang must be one of {LANGS}")
        body: dict[str, Any] = {
            "touser": touser,
            "template_id": template_id,
            "data": _keyword_data(data),
            "miniprogram_state": miniprogram_state,
            "lang": lang,
        }
        if page:
            body["page"] = page
        answer = self._post("/cgi-bin/message/subscribe/send", body, access_token)
        msgid = answer.get("msgid")
        return msgid if type(msgid) is int else None

    # --- the common rules -----------------------------------------------------------------

    def _post(
        self, path: str, body: Mapping[str, Any], access_token: str | None = None
    ) -> dict[str, Any]:
        """POST ``body``; return the answer once ``errcode`` says success (absent or 0).

        Without ``access_token`` the call is the token fetch itself, whose 40001 means a bad
        AppSecret rather than a bad token (§1.2).
        """
        params = None
        if access_token is not None:
            if not isinstance(access_token, str) or not access_token:
                raise RequestInvalid(None, "access_token is empty")  # WeChat: 41001
            params = {"access_token": access_token}
        try:
            data, elapsed_ms = request_json(
                self.session,
                "POST",
                self.config.api_base.rstrip("/") + path,
                name=path,
                timeout=self.config.timeout,
                params=params,
                body=body,
            )
        except TransportError as exc:
            raise MiniProgramUnavailable(None, f"{path} {exc}") from None
        errcode = data.get("errcode") or 0
        if type(errcode) is not int:
            raise MiniProgramUnavailable(None, f"{path} answered a non-numeric errcode")
        if errcode:
            errmsg = data.get("errmsg") if isinstance(data.get("errmsg"), str) else ""
            if access_token:
                errmsg = errmsg.replace(access_token, "<access_token>")
            rid = _RID.search(errmsg)
            logger.warning(
                "%s errcode=%s rid=%s in %.0f ms",
                path, errcode, rid.group(1) if rid else "-", elapsed_ms,
            )
            raise api_error(errcode, errmsg, fetching_token=access_token is None)
        logger.info("%s ok in %.0f ms", path, elapsed_ms)
        return data


def _keyword_data(data: Mapping[str, str]) -> dict[str, dict[str, str]]:
    if not isinstance(data, Mapping) or not data:
        raise RequestInvalid(None, "data needs at least one keyword")
    wrapped = {}
    for key, value in data.items():
        try:
            fits = isinstance(value, str) and subscribe_value(keyword_kind(key), value) == value
        except ValueError as exc:
            raise RequestInvalid(None, f"{key}: {exc}") from None
        if not fits:
            raise RequestInvalid(None, f"{key} breaks its rule: make it fit with subscribe_value")
        wrapped[key] = {"value": value}
    return wrapped
