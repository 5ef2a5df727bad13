"""Shipping uploaded to WeChat on the task queue (docs/INVARIANTS.md §8), all real processes:
two gunicorn servers, a Celery worker with beat, Redis as broker and shared cache, the
simulator as WeChat, the suite's database. The warehouse ships with ``manage.py ship_orders``
as its own process; the worker uploads; WeChat's message push reaches the live
``/wechat/message``."""

import time

import pytest

from demo.miniprogram import MiniProgram
from orders.models import Order, Shipment
from shipping.models import MessageEvent
from tests.livestack import MESSAGE_AES_KEY, MESSAGE_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

CSV_HEADER = "out_trade_no,logistics_type,express_company,tracking_no"
UPLOAD_PATH = "/wxa/sec/order/upload_shipping_info"
# Generous: a retried upload and the 1 s sweep come round in seconds; a slow CI machine waits.
WAIT_SECONDS = 90


def wait_until(probe, what: str):
    """Poll ``probe()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WAIT_SECONDS} s")
        time.sleep(0.2)


def buy(phone: MiniProgram, tea) -> tuple[str, str]:
    placed = phone.order([{"product_id": tea.pk, "quantity": 1}])
    paid = phone.request_payment(placed["payment"])
    assert phone.wait_for_status(placed["out_trade_no"])["status"] == "paid"
    return placed["out_trade_no"], paid["transaction_id"]


def ship(server, tmp_path, number: str, tracking_no: str = "SF1234567890") -> None:
    sheet = tmp_path / f"ship-{number}.csv"
    sheet.write_text(f"{CSV_HEADER}\n{number},express,SF,{tracking_no}\n", encoding="utf-8")
    run = server.manage("ship_orders", str(sheet))
    assert run.returncode == 0, run.stderr
    assert f"{number}: shipped" in run.stdout.splitlines()


def uploaded(phone: MiniProgram, number: str) -> dict | None:
    order = phone.call("GET", f"/orders/{number}").json()
    statuses = [s["upload_status"] for s in order["shipments"]]
    return order if statuses == ["uploaded"] else None


def wechat_shipment(sim, transaction_id: str) -> dict | None:
    return sim.control("GET", f"/sim/shipping/{transaction_id}").json()["shipment"]


def upload_requests(sim) -> int:
    return sim.control("GET", "/sim/stats").json()["requests"].get(UPLOAD_PATH, 0)


def test_the_worker_uploads_what_the_warehouse_ships(queue_phone, queue_stack, tea, tmp_path):
    number, transaction_id = buy(queue_phone, tea)
    assert wechat_shipment(queue_phone.sim, transaction_id) is None

    ship(queue_stack.servers[0], tmp_path, number)

    order = wait_until(lambda: uploaded(queue_phone, number), "the upload")
    assert order["fulfilment_status"] == "shipped"
    at_wechat = wechat_shipment(queue_phone.sim, transaction_id)
    assert [(e["tracking_no"], e["express_company"]) for e in at_wechat["shipping_list"]] == [
        ("SF1234567890", "SF")
    ]
    assert at_wechat["changes"] == 0  # one upload accepted, never replaced
    worker_log = queue_stack.worker.log_path.read_text(errors="replace")
    assert f"shipment uploaded out_trade_no={number}" in worker_log  # the worker did it
    assert queue_phone.address["tel_number"] not in worker_log


def test_wechat_down_during_the_upload_is_retried_and_uploaded_once(
    queue_phone, queue_stack, tea, tmp_path
):
    number, transaction_id = buy(queue_phone, tea)
    fault = {"path": UPLOAD_PATH, "mode": "systemerror", "count": 2}
    assert queue_phone.sim.control("POST", "/sim/faults", fault).status_code == 200

    ship(queue_stack.servers[0], tmp_path, number)

    wait_until(lambda: uploaded(queue_phone, number), "the retried upload")
    assert upload_requests(queue_phone.sim) >= 3  # two refused, then accepted
    assert queue_phone.sim.control("GET", "/sim/faults").json()["paths"] == {}
    at_wechat = wechat_shipment(queue_phone.sim, transaction_id)
    assert at_wechat["changes"] == 0  # accepted once: never a second upload of it
    shipment = Shipment.objects.get(order__out_trade_no=number)
    assert (shipment.upload_attempts, shipment.upload_error) == (3, "")


def test_a_stale_access_token_is_renewed_and_the_upload_accepted(
    queue_phone, queue_stack, tea, tmp_path
):
    first, _ = buy(queue_phone, tea)
    ship(queue_stack.servers[0], tmp_path, first)
    wait_until(lambda: uploaded(queue_phone, first), "the first upload")
    stale = queue_phone.sim.control("POST", "/sim/tokens/stale", {"errcode": 40001}).json()
    assert stale["stale"] >= 1

    second, transaction_id = buy(queue_phone, tea)
    ship(queue_stack.servers[0], tmp_path, second, tracking_no="SF2234567890")

    wait_until(lambda: uploaded(queue_phone, second), "the upload after the stale token")
    assert wechat_shipment(queue_phone.sim, transaction_id)["shipping_list"][0]["tracking_no"] == (
        "SF2234567890"
    )
    tokens = queue_phone.sim.control("GET", "/sim/tokens").json()
    assert tokens["current"] not in {t["token"] for t in tokens["tokens"] if t["stale_errcode"]}
    # Renewed within the attempt (a refused token is not WeChat being down): no retry.
    assert Shipment.objects.get(order__out_trade_no=second).upload_attempts == 1


def test_wechat_pushes_the_settlement_and_the_order_is_received_once(
    queue_phone, queue_stack, tea, tmp_path
):
    number, transaction_id = buy(queue_phone, tea)
    ship(queue_stack.servers[0], tmp_path, number)
    wait_until(lambda: uploaded(queue_phone, number), "the upload")
    url = f"{queue_stack.servers[1].url}/wechat/message"
    settlement = {"transaction_id": transaction_id, "settled": True}
    push = {"url": url, "mode": "safe", "aes_key": MESSAGE_AES_KEY, "settlement": settlement}

    forged = queue_phone.sim.control("POST", "/sim/push", {**push, "token": "not-the-token"})

    assert [a["status"] for a in forged.json()["attempts"]] == [403]
    assert queue_phone.call("GET", f"/orders/{number}").json()["fulfilment_status"] == "shipped"
    assert not MessageEvent.objects.filter(outcome=MessageEvent.Outcome.APPLIED).exists()

    real = queue_phone.sim.control(
        "POST", "/sim/push", {**push, "token": MESSAGE_TOKEN, "copies": 2}
    )

    assert [(a["status"], a["reply"]) for a in real.json()["attempts"]] == [(200, "success")] * 2
    order = queue_phone.call("GET", f"/orders/{number}").json()
    assert (order["status"], order["fulfilment_status"]) == ("paid", "received")
    again = queue_phone.sim.control(
        "POST", "/sim/push", {"url": url, "token": MESSAGE_TOKEN, "mode": "safe",
                              "aes_key": MESSAGE_AES_KEY, "event": real.json()["event"]}
    )  # fmt: skip
    assert [a["status"] for a in again.json()["attempts"]] == [200]
    events = MessageEvent.objects.filter(transaction_id=transaction_id)
    assert events.filter(outcome=MessageEvent.Outcome.APPLIED).count() == 1
    assert events.filter(outcome=MessageEvent.Outcome.DUPLICATE).count() == 2
    assert Order.objects.get(out_trade_no=number).fulfilment_status == "received"


def test_redis_down_while_shipping_loses_no_upload(
    own_redis_phone, own_queue_stack, own_redis, tea, tmp_path
):
    """The broker stops mid-way: the ship still succeeds, the upload waits in the database as
    pending, and once Redis is back the sweep enqueues it and the worker uploads it."""
    phone, server = own_redis_phone, own_queue_stack.servers[0]
    number, transaction_id = buy(phone, tea)

    own_redis.stop()
    ship(server, tmp_path, number)

    shipment = Shipment.objects.get(order__out_trade_no=number)
    assert shipment.upload_status == Shipment.UploadStatus.PENDING
    assert wechat_shipment(phone.sim, transaction_id) is None
    assert phone.call("GET", f"/orders/{number}").json()["shipments"][0]["upload_status"] == (
        "pending"
    )

    own_redis.start()  # the same port, empty: whatever was queued before is gone

    wait_until(lambda: uploaded(phone, number), "the upload after Redis came back")
    assert wechat_shipment(phone.sim, transaction_id)["shipping_list"][0]["tracking_no"] == (
        "SF1234567890"
    )
    assert wechat_shipment(phone.sim, transaction_id)["changes"] == 0
    assert Shipment.objects.get(order__out_trade_no=number).upload_attempts == 1
