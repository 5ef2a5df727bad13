"""One HTTP server that plays api.weixin.qq.com, api.mch.weixin.qq.com (Pay v2 and, under
``/v3/``, Pay v3) and ``/sim/``.

HTTP/1.1 with keep-alive (every answer has a Content-Length), one daemon thread per
connection. Connections are counted where they are accepted, so ``/sim/stats`` shows
whether a client reuses its connections.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from wxsim import bills, control, miniapi, payapi, shipping, subscribe, v3api
from wxsim.config import Config
from wxsim.faults import BILL_PATH, MINIAPI_PATHS, PAY_PATHS, SNS_PATHS, TOKEN_PATH, PathFault
from wxsim.login import code2session, wx_error
from wxsim.refunds import refund, refundquery
from wxsim.state import Simulator
from wxsim.tokens import stable_token
from wxsim.trades import closeorder, orderquery, unifiedorder

__all__ = ["SimHTTPServer", "Simulator", "make_server"]

PAY_HANDLERS: dict[str, payapi.Handler] = {
    "/pay/unifiedorder": unifiedorder,
    "/pay/orderquery": orderquery,
    "/pay/closeorder": closeorder,
    "/secapi/pay/refund": refund,
    "/pay/refundquery": refundquery,
}
# every fault-able pay path has a handler; downloadbill answers a file (wxsim.bills)
assert set(PAY_HANDLERS) | {BILL_PATH} == set(PAY_PATHS)
MINIAPI_HANDLERS: dict[str, miniapi.Handler] = {
    TOKEN_PATH: stable_token,
    "/wxa/sec/order/is_trade_managed": shipping.is_trade_managed,
    "/wxa/sec/order/upload_shipping_info": shipping.upload_shipping_info,
    "/wxa/sec/order/get_order": shipping.get_order,
    "/wxa/sec/order/notify_confirm_receive": shipping.notify_confirm_receive,
    "/cgi-bin/message/subscribe/send": subscribe.send,
}
assert set(MINIAPI_HANDLERS) == set(MINIAPI_PATHS)
# What api.weixin.qq.com labels its JSON with (code2Session excepted, see _wechat).
JSON_CONTENT_TYPE = "application/json; encoding=utf-8"
MAX_BODY_BYTES = 1 << 20
GARBAGE = b"\x00<html><body>upstream hiccup \xff\xfe not XML, not JSON</body></html"
HTML_500 = b"<html><body><h1>500 Internal Server Error</h1></body></html>"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str  # "": no Content-Type (a v3 204)
    close: bool = False
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: int, data: dict[str, Any], content_type: str = "application/json") -> Reply:
    return Reply(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), content_type)


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections must not hold up shutdown
    request_queue_size = 128  # benchmarks open many connections at once

    def __init__(self, config: Config, simulator: Simulator | None = None) -> None:
        self.simulator = simulator or Simulator(config)
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        super().__init__((config.host, config.port), SimRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection = super().get_request()
        # Headers and body leave in separate writes; without NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every answer.
        connection[0].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.simulator.count_connection()
        return connection

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{host}:{port}"

    def server_close(self) -> None:
        super().server_close()
        self.simulator.close()


def make_server(config: Config, simulator: Simulator | None = None) -> SimHTTPServer:
    """Bind (``port=0`` picks a free port); the caller runs ``serve_forever()``."""
    return SimHTTPServer(config, simulator)


class SimRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be measured
    server_version = "wxsim/1.0"
    timeout = 60  # seconds an idle keep-alive connection is kept
    server: SimHTTPServer

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.simulator.config.verbose:
            super().log_message(format, *args)

    def _dispatch(self) -> None:
        try:
            reply = self._route()
        except Exception:  # a bug here must not kill the connection thread silently
            traceback.print_exc(file=sys.stderr)
            reply = json_reply(500, {"detail": "wxsim internal error, see its stderr"})
        self._send(reply)

    def _route(self) -> Reply:
        url = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            return Reply(413, b"request body too large", "text/plain", close=True)
        sim = self.server.simulator
        if url.path.startswith("/sim/"):
            return json_reply(*control.handle(sim, self.command, url.path, body))
        if url.path.startswith("/v3/"):
            # v3 signs the request line as sent: hand over the raw target, not a parsed one.
            answer = v3api.handle(sim, self.command, self.path, self.headers, body,
                                  self.server.base_url)
            return Reply(answer.status, answer.body, answer.content_type, headers=answer.headers)
        sim.count_request(url.path)
        if url.path in SNS_PATHS or url.path in PAY_PATHS or url.path in MINIAPI_PATHS:
            return self._wechat(sim, url.path, url.query, body)
        return Reply(404, b"404 Not Found", "text/plain")

    def _wechat(self, sim: Simulator, path: str, query: str, body: bytes) -> Reply:
        with sim.lock:
            fault = sim.faults.take(path)
            latency_ms = sim.faults.latency_ms
        time.sleep(latency_ms / 1000)
        early = _early_fault_reply(fault)
        if early is not None:
            return early
        system_error = fault is not None and fault.mode == "systemerror"
        if path in MINIAPI_PATHS:
            data = miniapi.handle(
                sim, MINIAPI_HANDLERS[path], self.command,
                dict(parse_qsl(query, keep_blank_values=True)), body,
                needs_token=path != TOKEN_PATH, system_error=system_error,
            )
            return json_reply(200, data, content_type=JSON_CONTENT_TYPE)
        if path in SNS_PATHS:
            params = dict(parse_qsl(query, keep_blank_values=True))
            data = wx_error(-1, "system error") if system_error else code2session(sim, params)
            # WeChat labels this JSON text/plain (§9); clients must parse the text anyway.
            return json_reply(200, data, content_type="text/plain")
        if path == BILL_PATH:
            bill, content_type = bills.downloadbill(sim, self.command, body,
                                                    system_error=system_error)
            return Reply(200, bill, content_type)
        answer = payapi.handle(
            sim, PAY_HANDLERS[path], self.command, body,
            system_error=system_error,
            bad_sign=fault is not None and fault.mode == "bad_sign",
        )
        # Content type of the pay API is not documented; shops must read the raw body.
        return Reply(200, answer, "text/plain; charset=UTF-8")

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers, then the blank line
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)  # CRLF after each chunk

    def _send(self, reply: Reply) -> None:
        try:
            self._write(reply)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up waiting (a slow fault beyond its timeout): nothing to tell.
            self.close_connection = True

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


def _early_fault_reply(fault: PathFault | None) -> Reply | None:
    """Faults that replace the answer entirely; ``slow`` delays it and lets it through."""
    if fault is None:
        return None
    if fault.mode == "slow":
        time.sleep(fault.delay_ms / 1000)
    elif fault.mode == "http500":
        return Reply(500, HTML_500, "text/html")
    elif fault.mode == "garbage":
        return Reply(200, GARBAGE, "text/plain")
    return None
