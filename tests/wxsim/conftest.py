"""Fixtures for the simulator's own tests: a real server on a free port, real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.wx_v3 import new_rsa_key, private_pem
from tests.wxsim.client import (
    APPID,
    KEY,
    MCH_ID,
    SECRET,
    UPLOAD,
    V3_APIV3_KEY,
    V3_MERCHANT_SERIAL,
    Receiver,
    V3Caller,
    WxClient,
    shipping_upload,
)
from wechat.pay_v3 import KeyRing, WxPayV3Client, WxPayV3Config
from wxsim.config import Config
from wxsim.server import SimHTTPServer, Simulator, make_server


@pytest.fixture(scope="session")
def v3_merchant_key() -> rsa.RSAPrivateKey:
    """The tests' merchant (WeChat Pay v3): its private key signs, the simulator holds the
    public half, read from the PEM file of ``v3_merchant_key_file``."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def v3_merchant_key_file(v3_merchant_key, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v3-merchant") / "apiclient_key.pem"
    path.write_text(private_pem(v3_merchant_key))
    return path


@pytest.fixture(scope="session")
def sim_server(v3_merchant_key_file) -> Iterator[SimHTTPServer]:
    config = Config(appid=APPID, secret=SECRET, mch_id=MCH_ID, mch_key=KEY, retry_scale=0.001,
                    apiv3_key=V3_APIV3_KEY, v3_merchant_key=str(v3_merchant_key_file),
                    v3_merchant_serial=V3_MERCHANT_SERIAL)
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
    yield from _serve(Receiver(), "/payment/wxnotify")


@pytest.fixture
def push_receiver() -> Iterator[Receiver]:
    """The shop's message URL (its own server): answers ``success`` like a verified push
    (docs/protocol/miniprogram-server-api.md §3.5)."""
    yield from _serve(Receiver(default_reply=(200, b"success")), "/wechat/message")


def _serve(state: Receiver, path: str) -> Iterator[Receiver]:
    """Run an HTTP server that hands every POST to ``state``, for the fixture's duration."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            status, reply = state.next_reply(
                body, query, self.headers.get("Content-Type", ""), dict(self.headers.items())
            )
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
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


@pytest.fixture
def access_token(wx: WxClient) -> str:
    """A valid token from stable_token (docs/protocol/miniprogram-server-api.md §1)."""
    return wx.token()


@pytest.fixture
def shipped_trade(wx: WxClient, paid_trade: dict[str, str], access_token: str) -> dict[str, str]:
    """``paid_trade`` with one express parcel uploaded (order_state 2)."""
    answer = wx.api(UPLOAD, shipping_upload(paid_trade["transaction_id"]), access_token)
    assert answer == {"errcode": 0, "errmsg": "ok"}, answer
    return paid_trade


# --- WeChat Pay v3 ---------------------------------------------------------------------------


@pytest.fixture
def v3_receiver() -> Iterator[Receiver]:
    """The shop's v3 notify URL: answers 204 unless told otherwise (v3 note §7.5)."""
    yield from _serve(Receiver(default_reply=(204, b"")), "/payment/v3/wxnotify")


@pytest.fixture
def v3_keyring(sim: Simulator) -> KeyRing:
    """What the shop is given in public-key mode: WeChat Pay's public key and its id, read
    from the simulator as from its wechatpay_pub_key.pem."""
    return KeyRing.from_pem(public_key_pem=sim.v3.public_key_pem(),
                            public_key_id=sim.v3.public_key_id)


@pytest.fixture
def v3(sim: Simulator, sim_server: SimHTTPServer, v3_merchant_key, v3_keyring) -> Iterator[
    WxPayV3Client
]:
    """The shop's own v3 client against the simulator: two implementations that must agree.
    Its clock is the simulator's, so a test that moves time moves both."""
    config = WxPayV3Config(
        appid=APPID, mchid=MCH_ID, merchant_serial_no=V3_MERCHANT_SERIAL,
        private_key=v3_merchant_key, apiv3_key=V3_APIV3_KEY, keyring=v3_keyring,
        api_base=sim_server.base_url, clock=lambda: sim.now(),
    )
    client = WxPayV3Client(config)
    yield client
    client.close()


@pytest.fixture
def v3_by_hand(sim: Simulator, sim_server: SimHTTPServer, v3_merchant_key) -> Iterator[V3Caller]:
    caller = V3Caller(sim_server.base_url, v3_merchant_key, clock=lambda: sim.now())
    yield caller
    caller.http.close()
