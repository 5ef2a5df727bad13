"""Faults against the real server: hostile bodies, a hanging WeChat."""

import threading
import time

import pytest
import requests

from demo.miniprogram import MiniProgram
from orders.models import Order, Product
from tests.wx import BILLION_LAUGHS

pytestmark = pytest.mark.django_db(transaction=True)

FAIL = b"<return_code><![CDATA[FAIL]]></return_code>"


@pytest.mark.parametrize("path", ["/payment/wxnotify", "/payment/refundnotify"])
def test_hostile_bodies_are_refused_promptly_and_leave_the_server_healthy(shop, path):
    bodies = [
        BILLION_LAUGHS,
        b"<xml>" + b"<a>x</a>" * 20_000 + b"</xml>",  # 160 KB: over the 64 KiB cap
        b"<xml><pad>" + b"A" * (5 * 1024 * 1024) + b"</pad></xml>",  # 5 MB
        b"\x00\xff" * 1000,
    ]
    for body in bodies:
        started = time.monotonic()
        response = requests.post(f"{shop.url}{path}", data=body, timeout=10)
        # Generous: the point is that nothing expands entities or reads 5 MB into a parser.
        assert time.monotonic() - started < 3
        assert response.status_code == 200
        assert FAIL in response.content

    assert requests.get(f"{shop.url}/healthz", timeout=5).status_code == 200


def test_a_hanging_wechat_holds_no_lock_on_the_product(shop, fresh_sim, tea):
    """unifiedorder hangs (then times out) for one shopper; another buys the same product
    meanwhile: only possible if no row lock is held while WeChat is waited on."""
    slow, quick = MiniProgram(shop.url, fresh_sim), MiniProgram(shop.url, fresh_sim)
    slow.login()
    quick.login()
    fresh_sim.control(
        "POST", "/sim/faults", {"path": "/pay/unifiedorder", "mode": "slow", "delay_ms": 4000}
    )
    results: dict[str, int] = {}

    def order_slowly():
        response = slow.call(
            "POST",
            "/payment/order",
            {"items": [{"product_id": tea.pk, "quantity": 1}], "address": slow.choose_address()},
            expect=None,
        )
        results["slow"] = response.status_code

    thread = threading.Thread(target=order_slowly)
    thread.start()
    deadline = time.monotonic() + 5
    while not Order.objects.filter(user__openid=slow.openid).exists():  # committed, waiting
        assert time.monotonic() < deadline
        time.sleep(0.05)

    started = time.monotonic()
    quick_order = quick.order([{"product_id": tea.pk, "quantity": 1}])
    quick_seconds = time.monotonic() - started
    thread.join()

    assert results["slow"] == 502  # the server's 2 s read timeout
    assert quick_order["payment"]["paySign"]
    assert quick_seconds < 1.5  # it did not queue behind the hanging call
    assert Product.objects.get(pk=tea.pk).stock == 8
