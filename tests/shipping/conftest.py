"""Fixtures for the shipping app's tests (WeChat's side of fulfilment). Each block below
belongs to the test module it names."""

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.test import Client
from django.utils import timezone

from orders.fulfilment import order_ship
from orders.models import Order
from tests.factories import make_order, make_shopper
from wxsim import push as wechat_push

# -- message push (tests/shipping/test_message_push.py) ------------------------------------------

MESSAGE_URL = "/wechat/message"
PUSH_TOKEN = "push-token-4f3c2a1b"
# Random-looking key bytes: nothing passes by zeros alone (the official key is all zeros).
PUSH_AES_KEY = "q3Zb0JH9xv8Yc2m1Lr7Tn4Wk6Pf5Ds0Ae9Gu3Ji8Kl2"
PUSH_TRANSACTION_ID = "4200002501202501018123456789"


class WeChatPush:
    """WeChat's side of message push: events signed (and encrypted) by the simulator's own
    code (``wxsim.push``, which shares nothing with the shop's), posted with the test client.

    ``mode`` is ``"safe"`` (the shop has an EncodingAESKey) or ``"plaintext"`` (it has none);
    ``use()`` sets the shop's settings to match.
    """

    def __init__(self, settings, mode: str) -> None:
        self.settings, self.client = settings, Client()
        self.use(mode)

    def use(self, mode: str) -> None:
        self.mode = mode
        self.settings.WECHAT_MESSAGE_TOKEN = PUSH_TOKEN
        self.settings.WECHAT_MESSAGE_AES_KEY = PUSH_AES_KEY if mode == "safe" else ""

    def event(self, name: str, transaction_id: str = PUSH_TRANSACTION_ID, **fields) -> dict:
        """An event as §2.8 of docs/protocol/miniprogram-server-api.md shows it."""
        return {
            "ToUserName": "gh_97417a04a28d",
            "FromUserName": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
            "CreateTime": int(time.time()),
            "MsgType": "event",
            "Event": name,
            "transaction_id": transaction_id,
            "merchant_id": "10000100",
            "sub_merchant_id": "",
            "merchant_trade_no": "T20250101000000001",
            "pay_time": 1735689630,
            **fields,
        }

    def settlement(self, settled: bool = True, **fields) -> dict:
        """``trade_manage_order_settlement``: the settlement push (receipt confirmed, settled),
        or without ``settled`` the shipping push (only the estimated settlement time)."""
        times = (
            {"confirm_receive_method": 2, "confirm_receive_time": 1735862400,
             "settlement_time": 1735862401}
            if settled
            else {"estimated_settlement_time": 1736640000}
        )
        return self.event(
            "trade_manage_order_settlement", shipped_time=1735776000, **{**times, **fields}
        )

    def signed(
        self, event: dict | bytes, *, token: str = PUSH_TOKEN, appid: str | None = None,
        timestamp: str | None = None, nonce: str = "1234567890",
    ) -> tuple[dict[str, str], bytes]:
        """The query and body WeChat would post (``event`` as bytes: sent as they are)."""
        timestamp = timestamp or str(int(time.time()))
        appid = self.settings.WECHAT_APPID if appid is None else appid
        if isinstance(event, dict):
            return wechat_push.signed_push(
                event, mode=self.mode, token=token, timestamp=timestamp, nonce=nonce,
                encoding_aes_key=PUSH_AES_KEY, appid=appid,
            )
        query = {"signature": wechat_push.signature(token, timestamp, nonce),
                 "timestamp": timestamp, "nonce": nonce}
        if self.mode == "plaintext":
            return query, event
        return self.sealed_query(query, wechat_push.encrypt(event, PUSH_AES_KEY, appid), token)

    def sealed_query(
        self, query: dict[str, str], encrypt: str, token: str = PUSH_TOKEN
    ) -> tuple[dict[str, str], bytes]:
        """A safe-mode push of ``encrypt`` as it is, signed with ``token``."""
        query = {**query, "openid": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY", "encrypt_type": "aes",
                 "msg_signature": wechat_push.signature(
                     token, query["timestamp"], query["nonce"], encrypt)}
        body = json.dumps({"ToUserName": "gh_97417a04a28d", "Encrypt": encrypt}).encode()
        return query, body

    @staticmethod
    def encrypt_raw(plain: bytes, encoding_aes_key: str = PUSH_AES_KEY) -> str:
        """``plain`` encrypted as §3.4 says, its padding left as the test made it."""
        key = base64.b64decode(encoding_aes_key + "=")
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def post(self, query: dict[str, str], body: bytes, **extra):
        path = MESSAGE_URL + "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return self.client.post(
            path, data=body, content_type="application/json", REMOTE_ADDR="101.226.103.1", **extra
        )

    def push(self, event: dict | bytes, **signing):
        """Sign and post ``event``; the response."""
        return self.post(*self.signed(event, **signing))


@pytest.fixture(params=["safe", "plaintext"])
def wechat(request, settings, db) -> WeChatPush:
    """WeChat posting message pushes, once in safe mode and once in plaintext mode."""
    return WeChatPush(settings, request.param)


@pytest.fixture
def wechat_safe(settings, db) -> WeChatPush:
    """WeChat posting message pushes in safe mode (the recommended one)."""
    return WeChatPush(settings, "safe")


@pytest.fixture
def wechat_plaintext(settings, db) -> WeChatPush:
    """WeChat posting message pushes in plaintext mode (the shop has no EncodingAESKey)."""
    return WeChatPush(settings, "plaintext")


@pytest.fixture
def trade_order(shopper, products) -> Order:
    """A paid order of WeChat transaction ``PUSH_TRANSACTION_ID``, shipped by express."""
    order = make_order(
        shopper, products, status=Order.Status.PAID, transaction_id=PUSH_TRANSACTION_ID,
        paid_at=timezone.now(),
    )
    order_ship(order=order, logistics_type="express", express_company="SF", tracking_no="SF1")
    return Order.objects.get(pk=order.pk)


@pytest.fixture
def unshipped_trade_order(shopper, products) -> Order:
    """A paid order of WeChat transaction ``PUSH_TRANSACTION_ID``, not shipped yet."""
    return make_order(
        shopper, products, status=Order.Status.PAID, transaction_id=PUSH_TRANSACTION_ID,
        paid_at=timezone.now(),
    )


@pytest.fixture
def push_simulator() -> Iterator[Any]:
    """The WeChat simulator in this process on a free port (as tests/wxsim/conftest.py runs
    it), playing the merchant of tests/settings.py, with notify retries sped up."""
    from tests.wxsim.client import APPID, KEY, MCH_ID, SECRET, WxClient
    from wxsim.config import Config
    from wxsim.server import make_server

    server = make_server(
        Config(appid=APPID, secret=SECRET, mch_id=MCH_ID, mch_key=KEY, retry_scale=0.001)
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    client = WxClient(server.base_url)
    yield client
    client.http.close()
    server.shutdown()
    server.server_close()


@pytest.fixture
def payer(transactional_db):
    """The shopper the simulator's trades are paid by (tests/wxsim/client.py's PAYER)."""
    from tests.wxsim.client import PAYER

    return make_shopper(openid=PAYER)


# -- access_token, uploads, subscribe messages, sweeps (tests/shipping/test_access_token.py,
#    test_uploads.py, test_subscribe.py, test_sweeps.py). Tasks run eagerly here (no broker):
#    ``ship`` runs what the ship's commit sets off, as a real commit would. ---------------------


@pytest.fixture
def mini(http_mock):
    """WeChat's mini-program server API (tests/shipping/miniprogram_api.py)."""
    from tests.shipping.miniprogram_api import FakeMiniProgram

    return FakeMiniProgram(http_mock).install()


@pytest.fixture
def to_ship(shopper, products) -> Order:
    """A paid order of two teas and a cup, with the delivery address (phone 13812345678)."""
    from django.utils import timezone

    from orders.models import OrderItem
    from tests.factories import delivery_address

    order = make_order(
        shopper,
        products,
        status=Order.Status.PAID,
        transaction_id="4200000483202001042069747825",
        paid_at=timezone.now(),
        address=delivery_address(),
    )
    order.items.update(product_name="Oolong tea 250g", quantity=2)
    OrderItem.objects.create(
        order=order, product=products["cup"], product_name="Tea cup", unit_price=1200, quantity=1
    )
    return order


@pytest.fixture
def ship(django_capture_on_commit_callbacks):
    """Ship an order as staff do, then run what its commit sets off (upload, message)."""

    def ship(order: Order, logistics_type: str = "express", **details):
        if logistics_type == "express":
            details = {"express_company": "SF", "tracking_no": "SF1234567890", **details}
        with django_capture_on_commit_callbacks(execute=True):
            return order_ship(order=order, logistics_type=logistics_type, **details)

    return ship


@pytest.fixture
def shipped_message(settings) -> str:
    """The shipped subscribe message configured, with the default keyword mapping."""
    settings.WECHAT_TEMPLATE_SHIPPED = "tmpl-shipped-0123456789"
    return settings.WECHAT_TEMPLATE_SHIPPED


@pytest.fixture
def broker_down():
    """A context in which the task broker cannot be reached (Redis down): enqueuing raises."""
    from contextlib import contextmanager

    from shopsite.celery import app

    def forget_connections() -> None:
        # Celery keeps one producer pool per process, made at the first enqueue (eager ones
        # included); a process started while the broker is down would have none.
        app._pool = None
        app.amqp._producer_pool = None

    @contextmanager
    def down():
        saved = app.conf.task_always_eager, app.conf.broker_url
        forget_connections()
        app.conf.task_always_eager, app.conf.broker_url = False, "redis://127.0.0.1:1/0"
        try:
            yield
        finally:
            app.conf.task_always_eager, app.conf.broker_url = saved
            forget_connections()

    return down
