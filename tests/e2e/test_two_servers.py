"""Two app servers on one database and one Redis, as behind a load balancer (docs/INVARIANTS.md §3).

Notifies, scarce-stock orders and reconciliations are spread across both at once: the
outcome must be what one server gives — paid exactly once, never oversold, never a 5xx.
"""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
import redis
import requests
from django.core.management import call_command
from django.db import connection

from demo.miniprogram import MiniProgram
from orders.models import Order, Product
from payments.models import PaymentNotification
from tests.e2e.conftest import REDIS_URL
from tests.factories import notify_body

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_token_from_one_server_works_on_the_other(two_shops, fresh_sim):
    phone = MiniProgram(two_shops[0].url, fresh_sim)
    phone.login()

    response = requests.get(
        f"{two_shops[1].url}/orders", headers={"Authorization": f"Bearer {phone.token}"}, timeout=10
    )

    assert response.status_code == 200
    # The login throttle counts in the shared Redis, not in each server's memory.
    assert redis.Redis.from_url(REDIS_URL).keys("*throttle_login*")


def test_scarce_stock_is_never_oversold_across_servers(two_shops, fresh_sim):
    product = Product.objects.create(name="Limited teapot", price=9900, stock=5)
    phones = []
    for n in range(16):
        phone = MiniProgram(two_shops[n % 2].url, fresh_sim)
        phone.login()
        phones.append(phone)

    def order(phone: MiniProgram) -> int:
        return phone.call(
            "POST",
            "/payment/order",
            {"items": [{"product_id": product.pk, "quantity": 1}], "address": phone.address},
            expect=None,
        ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = sorted(pool.map(order, phones))

    assert statuses == [201] * 5 + [409] * 11
    assert Product.objects.get(pk=product.pk).stock == 0
    assert Order.objects.filter(items__product=product).count() == 5


def test_duplicate_notifies_spread_over_both_servers_pay_once(two_shops, fresh_sim, tea):
    phone = MiniProgram(two_shops[0].url, fresh_sim)
    phone.login()
    placed = phone.order([{"product_id": tea.pk, "quantity": 1}])
    order = Order.objects.get(out_trade_no=placed["out_trade_no"])
    body = notify_body(order)  # signed with the simulator's (= the test settings') key
    barrier = threading.Barrier(16)

    def deliver(n: int) -> tuple[int, bytes]:
        barrier.wait()
        response = requests.post(f"{two_shops[n % 2].url}/payment/wxnotify", data=body, timeout=10)
        return response.status_code, response.content

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(deliver, range(16)))

    assert {status for status, _ in replies} == {200}
    assert all(b"SUCCESS" in content for _, content in replies)
    outcomes = sorted(PaymentNotification.objects.values_list("outcome", flat=True))
    assert outcomes == ["duplicate"] * 15 + ["paid"]


def test_reconcile_on_several_machines_and_notifies_agree(two_shops, fresh_sim, tea, pay_settings):
    """Notifies dropped, then reconciliation from three processes at once plus a notify."""
    fresh_sim.control("POST", "/sim/faults", {"notify": "drop", "count": 6})
    phone = MiniProgram(two_shops[1].url, fresh_sim)
    phone.login()
    placed = [phone.order([{"product_id": tea.pk, "quantity": 1}]) for _ in range(6)]
    for order in placed:
        phone.request_payment(order["payment"])

    def reconcile(_: int) -> str:
        out = StringIO()
        try:
            call_command("reconcile_orders", "--min-age-minutes", "0", stdout=out)
        finally:
            connection.close()
        return out.getvalue()

    with ThreadPoolExecutor(max_workers=3) as pool:
        outputs = list(pool.map(reconcile, range(3)))

    orders = Order.objects.filter(out_trade_no__in=[o["out_trade_no"] for o in placed])
    assert {o.status for o in orders} == {"paid"}
    recorded = [re.search(r"(\d+)  payment recorded \(paid\)", out) for out in outputs]
    assert sum(int(match.group(1)) for match in recorded if match) == 6
    assert Product.objects.get(pk=tea.pk).stock == 4
