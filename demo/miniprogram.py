"""What a mini-program does, over real HTTP: wx.login, our API, wx.requestPayment.

The phone's side of WeChat (``wx.login()``, the tap in ``wx.requestPayment``) is played
by the simulator's control API; everything else is the shop's public API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests

from demo.stack import Simulator


class FlowError(Exception):
    pass


# What ``wx.chooseAddress()`` hands over (WeChat's own example), its keys in snake_case as
# POST /payment/order takes them. Personal data: print it with the phone masked.
SAMPLE_ADDRESS = {
    "user_name": "张三",
    "tel_number": "020-81167888",
    "province_name": "广东省",
    "city_name": "广州市",
    "county_name": "海珠区",
    "detail_info": "新港中路397号",
    "postal_code": "510000",
}


@dataclass
class MiniProgram:
    shop_url: str
    sim: Simulator
    openid: str = ""
    token: str = ""
    http: requests.Session = field(default_factory=requests.Session)
    # More app servers behind the same "load balancer": calls go round-robin over
    # shop_url and these, as a real balancer would spread one phone's requests.
    also_urls: tuple[str, ...] = ()
    # The address the shopper picks in wx.chooseAddress(), sent with every new order.
    address: dict[str, str] = field(default_factory=lambda: dict(SAMPLE_ADDRESS))
    _calls: int = 0

    def wx_login(self) -> str:
        """``wx.login()``: a fresh one-time code for this phone's user."""
        answer = self.sim.control("POST", "/sim/login", {"openid": self.openid}).json()
        self.openid = answer["openid"]
        return answer["code"]

    def login(self) -> dict:
        response = self.call("POST", "/accounts/login", {"code": self.wx_login()}, auth=False)
        self.token = response.json()["token"]
        return response.json()

    def call(
        self, method: str, path: str, json: dict | None = None, auth: bool = True, expect=(200, 201)
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        urls = (self.shop_url, *self.also_urls)
        base, self._calls = urls[self._calls % len(urls)], self._calls + 1
        response = self.http.request(method, base + path, json=json, headers=headers, timeout=30)
        if expect and response.status_code not in expect:
            raise FlowError(f"{method} {path} → {response.status_code}: {response.text[:300]}")
        return response

    def browse(self) -> list[dict]:
        """``GET /products``, no token: the catalogue's first page."""
        return self.call("GET", "/products", auth=False).json()["results"]

    def choose_address(self) -> dict[str, str]:
        """``wx.chooseAddress()``: the shopper picks a delivery address."""
        return dict(self.address)

    def order(self, items: list[dict], **extra) -> dict:
        """A new order, with the chosen delivery address (``address=None``: without)."""
        body = {"items": items, "address": self.choose_address(), **extra}
        if body["address"] is None:
            del body["address"]
        return self.call("POST", "/payment/order", body).json()

    def receive(self, out_trade_no: str) -> dict:
        """The shopper taps "received": ``POST /orders/<no>/receive``."""
        return self.call("POST", f"/orders/{out_trade_no}/receive").json()

    def request_payment(self, payment: dict) -> dict:
        """``wx.requestPayment(payment)`` and the user confirming: WeChat checks paySign."""
        response = self.sim.control("POST", "/sim/pay", {"payment": payment, "openid": self.openid})
        if response.status_code != 200:
            raise FlowError(f"wx.requestPayment failed: {response.text[:300]}")
        return response.json()

    def wait_for_status(self, out_trade_no: str, status: str = "paid", timeout: float = 15) -> dict:
        """Poll our own API: the front-end's success callback is not proof of payment."""
        deadline = time.monotonic() + timeout
        while True:
            order = self.call("GET", f"/orders/{out_trade_no}").json()
            if order["status"] == status or time.monotonic() > deadline:
                return order
            time.sleep(0.1)
