"""Fulfilment through real processes (docs/INVARIANTS.md §7 ship_orders, §8): a purchase with
a delivery address on gunicorn, shipped by ``manage.py ship_orders`` run as its own process
on the same database, as the warehouse would, and received through the API."""

import pytest

from demo.miniprogram import MiniProgram
from orders.models import Order, Product

pytestmark = pytest.mark.django_db(transaction=True)

CSV_HEADER = "out_trade_no,logistics_type,express_company,tracking_no"


def buy_and_pay(phone: MiniProgram, items: list[dict], **extra) -> dict:
    placed = phone.order(items, **extra)
    phone.request_payment(placed["payment"])
    assert phone.wait_for_status(placed["out_trade_no"])["status"] == "paid"
    return placed


def ship_orders(shop, tmp_path, *lines: str):
    sheet = tmp_path / "shipments.csv"
    sheet.write_text("\n".join([CSV_HEADER, *lines]) + "\n", encoding="utf-8")
    return shop.manage("ship_orders", str(sheet))


def test_an_order_with_an_address_is_shipped_by_the_warehouse_file_and_received(
    phone, shop, tea, voucher, tmp_path
):
    items = [{"product_id": tea.pk, "quantity": 2}, {"product_id": voucher.pk, "quantity": 1}]
    placed = buy_and_pay(phone, items, remark="Please ring twice")
    number = placed["out_trade_no"]
    assert phone.call("GET", f"/orders/{number}").json()["fulfilment_status"] == "unfulfilled"

    run = ship_orders(shop, tmp_path, f"{number},express,SF,SF1234567890")

    assert run.returncode == 0, run.stderr
    assert f"{number}: shipped" in run.stdout.splitlines()
    shipped = phone.call("GET", f"/orders/{number}").json()
    assert shipped["fulfilment_status"] == "shipped"
    assert [
        {key: s[key] for key in ("logistics_type", "express_company", "tracking_no")}
        for s in shipped["shipments"]
    ] == [{"logistics_type": "express", "express_company": "SF", "tracking_no": "SF1234567890"}]
    assert shipped["shipments"][0]["shipped_at"].endswith("+08:00")

    received = phone.receive(number)

    assert (received["status"], received["fulfilment_status"]) == ("paid", "received")
    final = phone.call("GET", f"/orders/{number}").json()
    assert final["address"] == phone.address
    assert final["remark"] == "Please ring twice"
    assert (final["status"], final["fulfilment_status"]) == ("paid", "received")
    assert len(final["shipments"]) == 1
    assert phone.receive(number)["fulfilment_status"] == "received"  # again: nothing changes
    again = ship_orders(shop, tmp_path, f"{number},express,SF,SF1234567890")
    assert again.returncode == 0, again.stderr
    assert f"{number}: already shipped" in again.stdout.splitlines()


def test_the_address_never_reaches_the_server_logs(phone, shop, tea, logs, tmp_path):
    placed = buy_and_pay(phone, [{"product_id": tea.pk, "quantity": 1}])
    run = ship_orders(shop, tmp_path, f"{placed['out_trade_no']},express,SF,SF1234567890")
    assert run.returncode == 0, run.stderr
    phone.receive(placed["out_trade_no"])

    text = "".join(path.read_text(errors="replace") for path in logs.glob("gunicorn*.log"))
    assert f"order created out_trade_no={placed['out_trade_no']}" in text  # the log is real
    for personal in (phone.address["tel_number"], phone.address["detail_info"]):
        assert personal not in text + run.stdout + run.stderr


def test_without_an_address_a_shipping_order_is_400_naming_address(phone, tea, voucher):
    response = phone.call(
        "POST", "/payment/order", {"items": [{"product_id": tea.pk, "quantity": 1}]}, expect=None
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("address")
    assert set(response.json()["errors"]) == {"address"}
    assert not Order.objects.filter(user__openid=phone.openid).exists()
    assert Product.objects.get(pk=tea.pk).stock == 10
    # Nothing to ship, nothing to ask for.
    virtual = phone.order([{"product_id": voucher.pk, "quantity": 1}], address=None)
    assert phone.call("GET", f"/orders/{virtual['out_trade_no']}").json()["address"] is None


def test_receiving_before_shipping_is_409_with_the_fulfilment_status(phone, shop, tea, tmp_path):
    placed = buy_and_pay(phone, [{"product_id": tea.pk, "quantity": 1}])
    number = placed["out_trade_no"]

    early = phone.call("POST", f"/orders/{number}/receive", expect=None)

    assert early.status_code == 409
    assert early.json()["fulfilment_status"] == "unfulfilled"
    assert phone.call("GET", f"/orders/{number}").json()["fulfilment_status"] == "unfulfilled"


def test_the_warehouse_file_refuses_an_unpaid_order_and_exits_non_zero(phone, shop, tea, tmp_path):
    unpaid = phone.order([{"product_id": tea.pk, "quantity": 1}])

    run = ship_orders(shop, tmp_path, f"{unpaid['out_trade_no']},express,SF,SF1234567890")

    assert run.returncode != 0
    assert f"{unpaid['out_trade_no']}: not paid" in run.stdout
    assert phone.call("GET", f"/orders/{unpaid['out_trade_no']}").json()["shipments"] == []
