"""Every refusal of POST /payment/order and POST /orders/<no>/close, body and status exactly:
the public contract (docs/INVARIANTS.md §4) whichever layer the refusal comes from."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order, Product
from tests.factories import (
    TRANSACTION_ID,
    client_for,
    delivery_address,
    make_order,
    make_shopper,
    notify_body,
    post_notify,
)

pytestmark = pytest.mark.django_db

PAY = "/payment/order"


def order_items(api, items, headers=None, **extra):
    return api.post(
        PAY,
        {"items": items, "address": delivery_address(), **extra},
        format="json",
        **(headers or {}),
    )


def answer(response) -> tuple[int, dict]:
    return response.status_code, response.json()


def close(api, order: Order):
    return api.post(f"/orders/{order.out_trade_no}/close")


# -- creating an order -------------------------------------------------------------------------


def test_an_inactive_product_is_400(api, products, wxpay):
    gone = products["gone"].pk

    assert answer(order_items(api, [{"product_id": gone, "quantity": 1}])) == (
        400,
        {"detail": f"Product {gone} does not exist or is not on sale."},
    )


def test_a_total_beyond_wechats_range_is_400(api, wxpay):
    dear = Product.objects.create(name="Dear", price=2**31 - 1, stock=None)

    assert answer(order_items(api, [{"product_id": dear.pk, "quantity": 2}])) == (
        400,
        {"detail": "The order total is too large."},
    )


def test_another_total_is_409_with_the_servers(api, products, wxpay):
    tea = products["tea"].pk

    assert answer(order_items(api, [{"product_id": tea, "quantity": 2}], total_fee=1)) == (
        409,
        {
            "detail": "total_fee 1 does not match the current price 9000 (fen); refresh the cart.",
            "total_fee": 9000,
        },
    )


def test_short_stock_is_409(api, products, wxpay):
    tea = products["tea"].pk

    assert answer(order_items(api, [{"product_id": tea, "quantity": 11}])) == (
        409,
        {"detail": "Not enough stock for 'Oolong tea 250g': 10 left."},
    )


def test_staff_without_an_openid_is_403(boss, products, wxpay):
    tea = products["tea"].pk

    assert answer(order_items(client_for(boss), [{"product_id": tea, "quantity": 1}])) == (
        403,
        {"detail": "Only shoppers who logged in through WeChat can order."},
    )


def test_one_unpaid_order_too_many_is_409(api, products, wxpay, settings):
    settings.ORDER_MAX_UNPAID_PER_SHOPPER = 1
    tea = products["tea"].pk
    assert order_items(api, [{"product_id": tea, "quantity": 1}]).status_code == 201

    assert answer(order_items(api, [{"product_id": tea, "quantity": 1}])) == (
        409,
        {
            "detail": "You have 1 unpaid orders, the most one shopper may hold: "
            "pay or close one first."
        },
    )


def test_a_key_reused_with_other_items_is_409_naming_its_order(api, products, wxpay):
    tea = products["tea"].pk
    key = {"HTTP_IDEMPOTENCY_KEY": "k1"}
    first = order_items(api, [{"product_id": tea, "quantity": 1}], key).json()["out_trade_no"]

    assert answer(order_items(api, [{"product_id": tea, "quantity": 2}], key)) == (
        409,
        {
            "detail": f"This Idempotency-Key was used for order {first} with other items; "
            "send a new key for a new order.",
            "out_trade_no": first,
        },
    )


def test_a_malformed_key_is_400_naming_the_header(api, products, wxpay):
    message = "Idempotency-Key must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -."
    tea = products["tea"].pk

    response = order_items(api, [{"product_id": tea, "quantity": 1}], {"HTTP_IDEMPOTENCY_KEY": "?"})

    assert answer(response) == (400, {"detail": message, "errors": {"Idempotency-Key": [message]}})


def test_without_wechat_pay_settings_it_is_503(api, products, settings):
    settings.WECHAT_MCH_KEY = ""
    tea = products["tea"].pk

    assert answer(order_items(api, [{"product_id": tea, "quantity": 1}])) == (
        503,
        {"detail": "WeChat Pay is not configured: set WECHAT_MCH_KEY."},
    )


# -- paying an order ---------------------------------------------------------------------------


def test_someone_elses_order_is_404(api, products, wxpay):
    theirs = make_order(make_shopper(), products)

    assert answer(api.post(PAY, {"out_trade_no": theirs.out_trade_no}, format="json")) == (
        404,
        {"detail": "No such order."},
    )


@pytest.mark.parametrize("status", ["paid", "closed"])
def test_an_order_no_longer_unpaid_is_409_with_its_status(api, shopper, products, wxpay, status):
    order = make_order(
        shopper, products, status=status, transaction_id=TRANSACTION_ID, paid_at=timezone.now()
    )
    number = order.out_trade_no

    assert answer(api.post(PAY, {"out_trade_no": number}, format="json")) == (
        409,
        {
            "detail": f"Order {number} is {status} and cannot be paid.",
            "status": status,
            "out_trade_no": number,
        },
    )


def test_an_expired_order_is_409(api, shopper, products, wxpay):
    order = make_order(shopper, products, expires_at=timezone.now() - timedelta(seconds=1))
    number = order.out_trade_no

    assert answer(api.post(PAY, {"out_trade_no": number}, format="json")) == (
        409,
        {
            "detail": f"Order {number} is unpaid and cannot be paid.",
            "status": "unpaid",
            "out_trade_no": number,
        },
    )


def test_wechat_refusing_is_502_with_its_err_code_and_the_order(api, products, wxpay):
    wxpay.err_code = "NOAUTH"
    tea = products["tea"].pk

    status, body = answer(order_items(api, [{"product_id": tea, "quantity": 1}]))

    number = Order.objects.get().out_trade_no
    assert (status, body) == (
        502,
        {
            "detail": "WeChat Pay refused or is unavailable: "
            "WeChat Pay business error NOAUTH: test",
            "err_code": "NOAUTH",
            "out_trade_no": number,
        },
    )


def test_wechat_unreachable_is_502_without_an_err_code(api, products, wxpay):
    wxpay.http_status = 500
    tea = products["tea"].pk

    status, body = answer(order_items(api, [{"product_id": tea, "quantity": 1}]))

    assert (status, set(body)) == (502, {"detail", "out_trade_no"})
    assert body["detail"].startswith("WeChat Pay refused or is unavailable: ")


# -- closing an order --------------------------------------------------------------------------


def test_closing_a_paid_order_is_409_with_its_status(api, shopper, products, wxpay):
    order = make_order(shopper, products)
    post_notify(notify_body(order))

    assert answer(close(api, order)) == (
        409,
        {"detail": f"Order {order.out_trade_no} is paid and cannot be closed.", "status": "paid"},
    )


def _old_order_with_prepay(shopper, products) -> Order:
    past = timezone.now() - timedelta(minutes=6)
    return make_order(
        shopper, products, prepay_id="wx1", created_at=past, expires_at=past + timedelta(minutes=30)
    )


def test_closing_an_order_paid_meanwhile_is_409(api, shopper, products, wxpay):
    order = _old_order_with_prepay(shopper, products)
    wxpay.path_errors["/pay/closeorder"] = "ORDERPAID"
    wxpay.path_fields["/pay/orderquery"] = {"trade_state": "USERPAYING"}

    assert answer(close(api, order)) == (
        409,
        {
            "detail": "WeChat reports the order paid meanwhile; it cannot be closed.",
            "status": "unpaid",
        },
    )


def test_wechat_failing_to_close_is_502_with_its_err_code(api, shopper, products, wxpay):
    order = _old_order_with_prepay(shopper, products)
    wxpay.path_errors["/pay/closeorder"] = "SYSTEMERROR"

    assert answer(close(api, order)) == (
        502,
        {
            "detail": "WeChat Pay could not close the order: "
            "WeChat Pay business error SYSTEMERROR: test",
            "err_code": "SYSTEMERROR",
        },
    )
