"""The one HTTP exchange every ``api.weixin.qq.com`` call shares. No Django imports.

docs/protocol/miniprogram-server-api.md, introduction: the answer is JSON whatever the
Content-Type says (code2Session labels it ``text/plain``), and HTTP 200 does not mean success:
the caller reads ``errcode``. Anything that is not a JSON object in a 200 answer is a
:class:`TransportError`, which each client turns into its own "WeChat is unavailable" error.

Nothing here logs a URL or a query string: code2Session carries the AppSecret there and every
other call the access_token. Log lines name the call, what went wrong and how long it took.

Each client keeps one ``requests.Session`` per thread (``SessionPerThread``), so one client
per process is safe under a threaded app server (gunicorn ``gthread``, docs/DEPLOY.md §4).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests

logger = logging.getLogger("wechat.miniprogram")

_JSON = {"Content-Type": "application/json; charset=utf-8"}


class TransportError(Exception):
    """No JSON object came back: unreachable, timed out, HTTP status ≠ 200, or not JSON.

    Its text completes a sentence about the service ("… is unreachable") and never holds the
    request URL: ``requests``' own exception text would (with the secret or token in it).
    """


class SessionPerThread:
    """One ``requests.Session`` per thread, made on the thread's first call and kept for
    its life, so every thread reuses its own kept-alive connection to WeChat.

    Why not one session for all threads: requests does not promise that a ``Session`` is
    thread-safe (its cookie jar, its adapters and their pools are shared mutable state),
    and urllib3 keeps at most 10 idle connections per host by default, throwing away the
    ones beyond that after each use, so more busy threads than that would open a new
    connection per call. One session per thread costs one connection per thread: a
    server's connections to WeChat are then processes x threads.

    A ``shared`` session (tests, or a caller with its own pool) is used by every thread
    as it is: its thread safety is then the caller's choice.
    """

    def __init__(self, shared: requests.Session | None = None) -> None:
        self._shared = shared
        self._local = threading.local()

    def get(self) -> requests.Session:
        if self._shared is not None:
            return self._shared
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    name: str,
    timeout: tuple[float, float],
    params: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], float]:
    """Send one request; return WeChat's JSON object and the milliseconds it took.

    ``name`` is what log lines call the request (a path or an API name, never the URL).
    ``body`` goes as UTF-8 JSON without ``\\u`` escapes, as WeChat's own examples send it.
    """
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    started = time.monotonic()
    try:
        response = session.request(
            method,
            url,
            params=params,
            data=data,
            headers=_JSON if data is not None else None,
            timeout=timeout,
        )
    except requests.RequestException as exc:
        # The exception's text names the URL (query string included): only its type is logged.
        logger.warning("%s unreachable: %s", name, type(exc).__name__)
        raise TransportError("is unreachable") from None
    elapsed_ms = (time.monotonic() - started) * 1000
    if response.status_code != 200:
        logger.warning("%s answered HTTP %s in %.0f ms", name, response.status_code, elapsed_ms)
        raise TransportError(f"answered HTTP {response.status_code}")
    try:
        # The bytes, not .text: without a charset in the header requests would decode a
        # text/plain answer as ISO-8859-1 and garble a Chinese errmsg.
        answer = json.loads(response.content)
    except ValueError:  # UnicodeDecodeError included
        logger.warning("%s answered something that is not JSON in %.0f ms", name, elapsed_ms)
        raise TransportError("answered something that is not JSON") from None
    if not isinstance(answer, dict):
        logger.warning("%s answered JSON that is not an object in %.0f ms", name, elapsed_ms)
        raise TransportError("answered something that is not an object")
    return answer, elapsed_ms
