"""The order ``body`` sent to WeChat: at most 128 UTF-8 bytes, no control characters.

WeChat's ``body`` is String(128) counted in bytes; a character count let 40 emoji (160
bytes) through. A product name with an escape sequence made unifiedorder's XML
impossible to write after the order had been created and its stock reserved.
"""

import unicodedata

import pytest

from orders.models import Order, Product
from orders.services import _order_body
from tests.factories import delivery_address, make_order

pytestmark = pytest.mark.django_db

PAY = "/payment/order"
ELLIPSIS = "…"


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


@pytest.mark.parametrize(("length", "kept"), [(127, True), (128, True), (129, False)])
def test_ascii_body_is_cut_at_128_bytes(length, kept):
    body = _order_body(names=["a" * length])

    assert utf8_len(body) <= 128
    if kept:
        assert body == "a" * length
    else:
        assert body == "a" * 125 + ELLIPSIS
        assert utf8_len(body) == 128


def test_four_byte_characters_are_counted_in_bytes_and_never_split():
    body = _order_body(names=["🍵" * 40])  # 160 bytes in 40 characters

    assert utf8_len(body) <= 128
    assert body == "🍵" * 31 + ELLIPSIS  # 124 + 3 bytes: a 32nd would not fit beside "…"


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (42, "茶" * 42),  # 126 bytes: fits
        (43, "茶" * 41 + ELLIPSIS),  # 129 bytes: cut to 123 + 3
    ],
    ids=["126-bytes", "129-bytes"],
)
def test_three_byte_characters_are_counted_in_bytes(count, expected):
    body = _order_body(names=["茶" * count])

    assert body == expected
    assert utf8_len(body) <= 128


def test_several_products_keep_their_count_when_the_first_name_is_cut():
    body = _order_body(names=["茶" * 60, "Tea cup"])

    assert utf8_len(body) <= 128
    assert body.endswith(f"{ELLIPSIS} 等2件商品")
    assert body.startswith("茶" * 30)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Tea\x1b[31m", "Tea[31m"),
        ("Oolong\ttea\r\n250g", "Oolong tea 250g"),
        ("\x00\x07Tea\x7f\x9b", "Tea"),
        ("\x1b", "商品"),  # nothing left: still a body WeChat accepts
    ],
)
def test_control_characters_never_reach_the_body(name, expected):
    body = _order_body(names=[name])

    assert body == expected
    assert not has_control(body)


def test_checkout_of_a_product_named_with_an_escape_sequence_succeeds(api, wxpay):
    product = Product.objects.create(name="Tea\x1b[31m", price=100, stock=3)

    response = api.post(
        PAY,
        {"items": [{"product_id": product.pk, "quantity": 1}], "address": delivery_address()},
        format="json",
    )

    assert response.status_code == 201, response.content
    sent = wxpay.calls()[0]["body"]
    assert sent == "Tea[31m"
    assert not has_control(sent)
    order = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
    assert order.body == sent
    # The item keeps the name as it was: only what goes on the wire is cleaned.
    assert order.items.get().product_name == "Tea\x1b[31m"


def test_checkout_of_emoji_names_sends_at_most_128_bytes(api, wxpay):
    product = Product.objects.create(name="🍵" * 40, price=100, stock=None)

    response = api.post(
        PAY,
        {"items": [{"product_id": product.pk, "quantity": 1}], "address": delivery_address()},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert utf8_len(wxpay.calls()[0]["body"]) <= 128


def test_an_order_whose_stored_body_cannot_be_sent_is_a_clean_502_and_stays_payable(
    api, shopper, products, wxpay
):
    # Stored before bodies were cleaned: WeChat cannot be asked, the shopper gets JSON.
    order = make_order(shopper, products, body="Tea\x1b[31m")

    response = api.post(PAY, {"out_trade_no": order.out_trade_no}, format="json")

    assert response.status_code == 502
    assert response.json()["detail"]
    assert response.json()["out_trade_no"] == order.out_trade_no
    assert wxpay.requests_seen == []
    order.refresh_from_db()
    assert (order.status, order.prepay_id) == ("unpaid", "")
    assert order.is_payable
