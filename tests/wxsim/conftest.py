"""Fixtures for the simulator's own tests: a real server on a free port, real HTTP.

The signing and XML helpers here are written independently of ``wxsim.protocol`` (and
checked against the official vectors in test_protocol.py), so the simulator is tested
against the protocol sheet, not against itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import xmltodict

from wxsim.config import Config
from wxsim.server import SimHTTPServer, Simulator, make_server

# The official example's ids and key (WECHAT_PAY_V2.md §2.2).
APPID = "wxd930ea5d5a258f4f"
SECRET = "test-app-secret"
MCH_ID = "10000100"
KEY = "192006250b4c09247ec02edce69f6a2d"
SUCCESS_REPLY = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)
FAIL_REPLY = (
    b"<xml><return_code><![CDATA[FAIL]]></return_code>"
    b"<return_msg><![CDATA[busy]]></return_msg></xml>"
)


def wx_sign(params: dict[str, Any], key: str = KEY, sign_type: str = "MD5") -> str:
    pairs = sorted((k, str(v)) for k, v in params.items() if k != "sign" and v not in (None, ""))
    plain = "&".join(f"{k}={v}" for k, v in pairs) + "&key=" + key
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), plain.encode(), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(plain.encode()).hexdigest().upper()


def to_xml(fields: dict[str, Any]) -> bytes:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>".encode()


def parse_xml(body: bytes) -> dict[str, str]:
    return dict(xmltodict.parse(body)["xml"])


def signature_ok(fields: dict[str, str], sign_type: str) -> bool:
    return hmac.compare_digest(fields["sign"], wx_sign(fields, KEY, sign_type))


def wait_until(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.005)
    raise AssertionError("condition not met in time")


def new_out_trade_no() -> str:
    return "T" + secrets.token_hex(8)


class WxClient:
    """Plays the shop: builds signed XML calls by hand."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def call(
        self,
        path: str,
        params: dict[str, Any],
        *,
        key: str = KEY,
        sign_type: str | None = None,
        sign_with: str | None = None,
    ) -> dict[str, str]:
        fields = {"appid": APPID, "mch_id": MCH_ID, "nonce_str": secrets.token_hex(8), **params}
        if sign_type:
            fields["sign_type"] = sign_type
        fields["sign"] = wx_sign(fields, key, sign_with or sign_type or "MD5")
        response = self.http.post(self.base_url + path, data=to_xml(fields), timeout=5)
        assert response.status_code == 200
        return parse_xml(response.content)

    def unifiedorder(
        self, notify_url: str, sign_type: str | None = None, **overrides: Any
    ) -> dict[str, str]:
        params = {
            "body": "测试商店-商品",
            "out_trade_no": new_out_trade_no(),
            "total_fee": 101,
            "spbill_create_ip": "127.0.0.1",
            "notify_url": notify_url,
            "trade_type": "JSAPI",
            "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            **overrides,
        }
        answer = self.call("/pay/unifiedorder", params, sign_type=sign_type)
        answer["_out_trade_no"] = str(params["out_trade_no"])
        return answer

    def control(self, method: str, path: str, json: Any = None) -> requests.Response:
        return self.http.request(method, self.base_url + path, json=json, timeout=10)

    def pay(self, out_trade_no: str, **extra: Any) -> requests.Response:
        return self.control("POST", "/sim/pay", {"out_trade_no": out_trade_no, **extra})


@dataclass
class Receiver:
    """The merchant's notify endpoint: records bodies, answers from a script."""

    url: str = ""
    received: list[bytes] = field(default_factory=list)
    replies: list[tuple[int, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, body: bytes) -> tuple[int, bytes]:
        with self.lock:
            self.received.append(body)
            return self.replies.pop(0) if self.replies else (200, SUCCESS_REPLY)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        wait_until(lambda: len(self.received) >= count, timeout)
        return list(self.received)


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimHTTPServer]:
    config = Config(appid=APPID, secret=SECRET, mch_id=MCH_ID, mch_key=KEY, retry_scale=0.001)
    server = make_server(config)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def sim(sim_server: SimHTTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    simulator = sim_server.simulator
    simulator.reset()
    # Tests may swap the clock or config; monkeypatch puts them back afterwards.
    monkeypatch.setattr(simulator, "now", simulator.now)
    monkeypatch.setattr(simulator, "config", simulator.config)
    yield simulator
    simulator.reset()


@pytest.fixture
def wx(sim: Simulator, sim_server: SimHTTPServer) -> Iterator[WxClient]:
    client = WxClient(sim_server.base_url)
    yield client
    client.http.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, reply = state.next_reply(body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/payment/wxnotify"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def paid_trade(wx: WxClient, receiver: Receiver) -> dict[str, str]:
    """A paid MD5 trade whose notify has been acknowledged."""
    answer = wx.unifiedorder(receiver.url, attach="order-42")
    response = wx.pay(answer["_out_trade_no"])
    assert response.status_code == 200, response.text
    receiver.wait_for(1)
    return {**answer, **response.json()}
