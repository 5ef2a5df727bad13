"""A shop owner in a real browser, on a real purchase: log in, read the dashboard, find
the order, read its notification, refund part of it, export the day's orders."""

import csv
import io
import time

import pytest

from core.money import yuan
from demo.miniprogram import MiniProgram
from orders.models import Order, Product, Shipment
from payments.models import Refund
from tests.browser.pages import Problems, log_in

pytestmark = pytest.mark.django_db(transaction=True)


def buy_and_pay(phone: MiniProgram, product: Product, quantity: int) -> Order:
    placed = phone.order([{"product_id": product.pk, "quantity": quantity}])
    phone.request_payment(placed["payment"])
    assert phone.wait_for_status(placed["out_trade_no"])["status"] == "paid"
    return Order.objects.get(out_trade_no=placed["out_trade_no"])


def wait_for_refund(order: Order, status: str, timeout: float = 10) -> Refund:
    deadline = time.monotonic() + timeout
    while (refund := Refund.objects.get(order=order)).status != status:
        assert time.monotonic() < deadline, f"refund still {refund.status}"
        time.sleep(0.1)
    return refund


def test_owner_finds_a_paid_order_and_refunds_part_of_it(open_browser, shop, phone, tea, staff):
    order = buy_and_pay(phone, tea, quantity=2)
    browser = open_browser()
    page = browser.page

    log_in(browser, shop.url)
    assert page.inner_text("#revenue-today .shop-tile-value") == yuan(order.total_fee)
    assert "1 order" in page.inner_text("#revenue-today")
    assert order.out_trade_no in page.inner_text("#latest-notifications")
    browser.shot("dashboard")

    page.click("tr.model-order th a")
    page.fill("#searchbar", order.out_trade_no)
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    browser.shot("search")

    page.click(f"#result_list a:text('{order.out_trade_no}')")
    assert "Paid" in page.inner_text(".field-status_display")
    assert order.transaction_id in page.inner_text(".field-transaction_id")
    notification = page.locator("#notifications-group tbody tr.has_original")
    assert "Order marked paid" in notification.inner_text()
    browser.shot("order")

    notification.locator("a.inlineviewlink").click()
    assert "Order marked paid" in page.inner_text(".field-outcome_display")
    assert order.out_trade_no in page.inner_text(".field-raw_body")
    browser.shot("notification")

    page.goto(f"{shop.url}/admin/orders/order/?q={order.out_trade_no}")
    page.check("#result_list input.action-select")
    page.select_option("select[name=action]", "refund_action")
    page.click("button[name=index]")
    assert "¥90.00" in page.inner_text("#content-main table")
    page.fill("#id_amount", "12.30")
    page.fill("#id_reason", "One tin arrived dented")
    browser.shot("refund-page")

    page.click("input[type=submit][value=Refund]")
    assert "accepted by WeChat" in page.inner_text(".messagelist")
    assert wait_for_refund(order, Refund.Status.SUCCESS).refund_fee == 1230
    page.reload()
    assert "Refunded" in page.inner_text("#refunds-group")
    browser.shot("refunded")


def test_owner_exports_the_days_orders(open_browser, shop, phone, tea, staff):
    order = buy_and_pay(phone, tea, quantity=1)
    browser = open_browser()
    page = browser.page
    log_in(browser, shop.url)

    page.goto(f"{shop.url}/admin/orders/order/")
    page.click("#export-csv")
    browser.shot("export-page")
    with page.expect_download() as download:
        page.click("input[type=submit]")
    path = download.value.path()

    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert [(row["out_trade_no"], row["total_yuan"]) for row in rows] == [
        (order.out_trade_no, "45.00")
    ]
    assert download.value.suggested_filename.startswith("orders-")


def test_chinese_dark_admin_reads_well(open_browser, shop, phone, tea, staff):
    """For the eyes (screenshots) as much as for the asserts: Chinese labels, dark theme."""
    order = buy_and_pay(phone, tea, quantity=3)
    browser = open_browser(locale="zh-CN", color_scheme="dark")
    page = browser.page

    log_in(browser, shop.url)
    assert "今日收入" in page.inner_text("#revenue-today")
    assert page.inner_text("#revenue-today .shop-tile-value") == "¥135.00"
    browser.shot("dashboard-zh-dark")

    page.goto(f"{shop.url}/admin/orders/order/")
    assert "已支付" in page.inner_text("#result_list")
    browser.shot("orders-zh-dark")
    page.goto(f"{shop.url}/admin/orders/order/{order.pk}/change/")
    assert "订单已标记为已支付" in page.inner_text("#notifications-group")
    browser.shot("order-zh-dark")
    page.goto(f"{shop.url}/admin/payments/paymentnotification/")
    browser.shot("notifications-zh-dark")


def test_the_guard_sees_script_errors_and_server_errors(chromium):
    page = chromium.new_page()
    problems = Problems()
    problems.watch(page)
    page.route("http://shop.test/boom", lambda route: route.fulfill(status=500, body="no"))

    page.set_content("<script>console.error('bad'); throw new Error('broken')</script>")
    page.goto("http://shop.test/boom")

    assert any("console error: bad" in p for p in problems.seen)
    assert any("script error: " in p and "broken" in p for p in problems.seen)
    assert "server error: 500 http://shop.test/boom" in problems.seen


def test_owner_ships_a_paid_order_from_its_page(open_browser, shop, phone, tea, staff):
    order = buy_and_pay(phone, tea, quantity=1)
    Order.objects.filter(pk=order.pk).update(
        address={
            "user_name": "张三",
            "tel_number": "13812345678",
            "province_name": "广东省",
            "city_name": "广州市",
            "county_name": "海珠区",
            "detail_info": "新港中路397号",
            "postal_code": "510000",
        }
    )
    browser = open_browser()
    page = browser.page

    log_in(browser, shop.url)
    assert page.inner_text("#to-ship .shop-tile-value") == "1"
    page.click("#to-ship")
    page.click(f"#result_list a:text('{order.out_trade_no}')")
    assert "Not shipped" in page.inner_text(".field-fulfilment_display")
    assert "13812345678" in page.inner_text(".field-address_display")
    browser.shot("order-to-ship")

    page.click("#ship-link")
    assert "新港中路397号" in page.inner_text("#ship-order")
    page.select_option("#id_logistics_type", "express")
    page.fill("#id_express_company", "SF")
    page.fill("#id_tracking_no", "SF1234567890")
    browser.shot("ship-page")
    page.click("input[type=submit][value=Ship]")

    assert "shipped: Express delivery SF SF1234567890" in page.inner_text(".messagelist")
    assert "SF1234567890" in page.inner_text("#shipments-group")
    assert "Shipped" in page.inner_text(".field-fulfilment_display")
    assert page.locator("#ship-link").count() == 0
    browser.shot("shipped")
    assert Shipment.objects.get(order=order).tracking_no == "SF1234567890"

    # The shopper sees the shipment and confirms receipt.
    seen = phone.call("GET", f"/orders/{order.out_trade_no}").json()
    assert (seen["fulfilment_status"], seen["shipments"][0]["tracking_no"]) == (
        "shipped",
        "SF1234567890",
    )
    received = phone.call("POST", f"/orders/{order.out_trade_no}/receive").json()
    assert received["fulfilment_status"] == "received"
    page.reload()
    assert "Received" in page.inner_text(".field-fulfilment_display")


def test_owner_ships_several_orders_from_the_warehouse_file(open_browser, shop, phone, tea, staff):
    first = buy_and_pay(phone, tea, quantity=1)
    second = buy_and_pay(phone, tea, quantity=2)
    warehouse_file = "\r\n".join(
        [
            "out_trade_no,logistics_type,express_company,tracking_no",
            f"{first.out_trade_no},express,SF,SF0000000001",
            f"{second.out_trade_no},same_city,,",
            "NO-SUCH-ORDER,express,SF,SF0000000003",
            "",
        ]
    ).encode("utf-8-sig")
    browser = open_browser()
    page = browser.page
    log_in(browser, shop.url)

    page.goto(f"{shop.url}/admin/orders/order/")
    page.click("#ship-csv")
    page.set_input_files(
        "#id_file",
        files=[{"name": "shipments.csv", "mimeType": "text/csv", "buffer": warehouse_file}],
    )
    browser.shot("ship-csv-page")
    page.click("input[type=submit]")

    summary = page.inner_text("#ship-summary")
    assert summary == "3 lines: 2 shipped, 0 already shipped, 1 not shipped."
    assert page.locator("#ship-results tr.ship-ok").count() == 2
    failed = page.locator("#ship-results tr.ship-failed")
    assert "NO-SUCH-ORDER" in failed.inner_text() and "unknown order" in failed.inner_text()
    assert "1 line was not shipped" in page.inner_text(".errornote")
    browser.shot("ship-csv-results")
    shipped = Order.objects.filter(fulfilment_status="shipped")
    assert set(shipped.values_list("pk", flat=True)) == {first.pk, second.pk}

    page.goto(f"{shop.url}/admin/orders/order/?fulfilment_status__exact=shipped")
    assert page.locator("#result_list tbody tr").count() == 2
    browser.shot("shipped-orders")
