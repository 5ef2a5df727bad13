"""WeChat's mini-program server API at the HTTP boundary, for tests/shipping: a plain module
(the ``mini`` fixture that installs it is in conftest.py)."""

import itertools
import json
import time
from urllib.parse import parse_qsl, urlsplit

import responses
from django.conf import settings

TOKEN_PATH = "/cgi-bin/stable_token"
MANAGED_PATH = "/wxa/sec/order/is_trade_managed"
UPLOAD_PATH = "/wxa/sec/order/upload_shipping_info"
SEND_PATH = "/cgi-bin/message/subscribe/send"
OK = {"errcode": 0, "errmsg": "ok"}


class FakeMiniProgram:
    """``api.weixin.qq.com`` as the notes describe it (docs/protocol/miniprogram-server-api.md):
    stable_token gives the same token while it is valid and a new one once the old one was
    refused (or with ``force_refresh``); every call checks the token in the query string
    (40001 for one marked ``stale``); uploads and sends answer what a test queued, else ok.
    """

    def __init__(self, mock: responses.RequestsMock):
        self.mock = mock
        self._numbers = itertools.count(1)
        self.token = self._new_token()
        self.expires_in = 7200
        self.stale: set[str] = set()
        self.trade_managed = True
        self.token_answers: list[dict] = []  # queued answers of stable_token
        # False: stable_token keeps handing out a refused token until force_refresh (§1.4).
        self.renews_refused = True
        self.refuse_every_token = False
        self.token_delay = 0.0  # seconds stable_token takes to answer
        self.upload_answers: list[dict | Exception] = []
        self.send_answers: list[dict] = []

    def _new_token(self) -> str:
        return f"ACCESS-TOKEN-{next(self._numbers):03d}-" + "x" * 100

    def install(self) -> "FakeMiniProgram":
        base = settings.WECHAT_API_BASE.rstrip("/")
        for path, handler in (
            (TOKEN_PATH, self._stable_token),
            (MANAGED_PATH, self._is_trade_managed),
            (UPLOAD_PATH, self._upload),
            (SEND_PATH, self._send),
        ):
            self.mock.add_callback(responses.POST, base + path, callback=handler)
        return self

    # -- what was sent

    def requests(self, path: str) -> list[tuple[dict, dict]]:
        """(query, JSON body) of every request to ``path``, in order."""
        sent = []
        for call in self.mock.calls:
            url = urlsplit(call.request.url)
            if url.path == path:
                sent.append((dict(parse_qsl(url.query)), json.loads(call.request.body)))
        return sent

    def bodies(self, path: str) -> list[dict]:
        return [body for _query, body in self.requests(path)]

    def count(self, path: str) -> int:
        return len(self.requests(path))

    # -- WeChat

    @staticmethod
    def _reply(payload: dict):
        return 200, {}, json.dumps(payload, ensure_ascii=False)

    def _stable_token(self, request):
        body = json.loads(request.body)
        if self.token_delay:
            time.sleep(self.token_delay)
        if self.token_answers:
            return self._reply(self.token_answers.pop(0))
        if body.get("force_refresh") or (self.token in self.stale and self.renews_refused):
            self.token = self._new_token()
        return self._reply({"access_token": self.token, "expires_in": self.expires_in})

    def _token_refused(self, request) -> dict | None:
        token = dict(parse_qsl(urlsplit(request.url).query)).get("access_token")
        if token in self.stale or self.refuse_every_token:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
        if token != self.token:
            return {"errcode": 40001, "errmsg": "invalid credential, not the latest"}
        return None

    def _is_trade_managed(self, request):
        refused = self._token_refused(request)
        return self._reply(refused or {**OK, "is_trade_managed": self.trade_managed})

    def _upload(self, request):
        refused = self._token_refused(request)
        if refused:
            return self._reply(refused)
        answer = self.upload_answers.pop(0) if self.upload_answers else OK
        if isinstance(answer, Exception):
            raise answer  # the network failed: requests raises it to the client
        return self._reply(answer)

    def _send(self, request):
        refused = self._token_refused(request)
        if refused:
            return self._reply(refused)
        answer = self.send_answers.pop(0) if self.send_answers else {**OK, "msgid": 294402298}
        return self._reply(answer)
