"""POST /payment/order with a delivery address and a remark (docs/INVARIANTS.md §8): what
ships needs an address, hostile values are 400 naming the field, the address is kept on the
order, and personal data stays out of logs and error messages."""

import json
import logging

import pytest

from orders.models import Order, Product
from orders.services import AddressRequired, DeliveryAddress, OrderLine, order_create
from tests.factories import get_ok, reload

pytestmark = pytest.mark.django_db

PAY = "/payment/order"
REQUIRED = ["user_name", "tel_number", "province_name", "city_name", "county_name", "detail_info"]


def order(api, items, headers=None, **extra):
    # json.dumps escapes what is not ASCII, so a lone surrogate can be sent, as a hostile
    # client would send it.
    body = json.dumps({"items": items, **extra})
    return api.post(PAY, body, content_type="application/json", headers=headers)


def one(product: Product, quantity: int = 1) -> list[dict]:
    return [{"product_id": product.pk, "quantity": quantity}]


def address_errors(response) -> dict:
    """The 400's errors under ``address``, after checking the answer names it."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"].startswith("address"), body
    return body["errors"]["address"]


class TestShippingOrders:
    def test_the_address_and_remark_are_kept_on_the_order_and_shown(
        self, api, products, address, wxpay
    ):
        response = order(api, one(products["tea"]), address=address, remark="Please ring twice")

        assert response.status_code == 201, response.content
        placed = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
        assert (placed.address, placed.remark) == (address, "Please ring twice")
        shown = api.get(f"/orders/{placed.out_trade_no}").json()
        assert (shown["address"], shown["remark"]) == (address, "Please ring twice")

    def test_values_are_trimmed_and_the_postal_code_is_optional(
        self, api, products, address, wxpay
    ):
        sent = {key: f"  {value}\t" for key, value in address.items() if key != "postal_code"}

        response = order(api, one(products["tea"]), address=sent, remark="  at the door \n")

        assert response.status_code == 201, response.content
        placed = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
        assert placed.address == {**address, "postal_code": ""}
        assert placed.remark == "at the door"

    def test_without_an_address_it_is_400_naming_address_and_nothing_is_reserved(
        self, api, products, wxpay
    ):
        response = order(api, one(products["tea"], 2))

        assert address_errors(response)
        assert not Order.objects.exists()
        assert reload(products["tea"]).stock == 10
        assert wxpay.requests_seen == []

    def test_a_null_address_is_no_address(self, api, products, wxpay):
        assert address_errors(order(api, one(products["tea"]), address=None))

    def test_one_shipping_product_among_virtual_ones_needs_the_address(
        self, api, products, voucher, wxpay
    ):
        items = [*one(voucher, 2), *one(products["cup"])]

        assert address_errors(order(api, items))

    @pytest.mark.parametrize("missing", REQUIRED)
    def test_an_incomplete_address_is_400_naming_the_missing_part(
        self, api, products, address, wxpay, missing
    ):
        del address[missing]

        response = order(api, one(products["tea"]), address=address)

        assert address_errors(response) == {missing: ["This field is required."]}
        assert response.json()["detail"] == f"address.{missing}: This field is required."
        assert not Order.objects.exists()

    @pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
    def test_a_blank_part_is_400_naming_it(self, api, products, address, wxpay, blank):
        address["city_name"] = blank

        assert list(address_errors(order(api, one(products["tea"]), address=address))) == [
            "city_name"
        ]


def test_paying_again_cannot_change_the_address_or_remark(api, products, address, wxpay):
    first = order(api, one(products["tea"]), address=address).json()

    response = api.post(
        PAY,
        {"out_trade_no": first["out_trade_no"], "address": address, "remark": "x"},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"address", "remark"}
    assert Order.objects.get().address == address


class TestVirtualOnlyOrders:
    def test_no_address_is_needed(self, api, voucher, wxpay):
        response = order(api, one(voucher, 2))

        assert response.status_code == 201, response.content
        placed = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
        assert (placed.address, placed.remark) == (None, "")
        assert api.get(f"/orders/{placed.out_trade_no}").json()["address"] is None

    def test_an_address_given_anyway_is_checked_and_kept(self, api, voucher, address, wxpay):
        response = order(api, one(voucher), address=address, remark="For my father")

        assert response.status_code == 201, response.content
        placed = Order.objects.get(out_trade_no=response.json()["out_trade_no"])
        assert (placed.address, placed.remark) == (address, "For my father")
        del address["user_name"]
        assert list(address_errors(order(api, one(voucher), address=address))) == ["user_name"]


class TestHostileValues:
    @pytest.mark.parametrize("part", [*REQUIRED, "postal_code"])
    @pytest.mark.parametrize(
        "bad",
        ["\x00", "\x1b[31m", "line\nbreak", "tab\there", "\x7f", "\x85", "\u202egnp.exe", "\ud800"],
    )
    def test_control_characters_are_400_naming_the_part(
        self, api, products, address, wxpay, part, bad
    ):
        address[part] = "1" + bad + "2"

        errors = address_errors(order(api, one(products["tea"]), address=address))

        assert list(errors) == [part]
        assert not Order.objects.exists()

    @pytest.mark.parametrize(
        ("part", "longest"),
        [
            ("user_name", 64),
            ("province_name", 64),
            ("city_name", 64),
            ("county_name", 64),
            ("detail_info", 256),
            ("tel_number", 32),
            ("postal_code", 16),
        ],
    )
    def test_the_longest_value_fits_and_one_more_is_400(
        self, api, products, address, wxpay, part, longest
    ):
        address[part] = "1" * longest
        assert order(api, one(products["tea"]), address=address).status_code == 201

        address[part] = "1" * (longest + 1)
        assert list(address_errors(order(api, one(products["tea"]), address=address))) == [part]

    def test_a_huge_value_is_400_not_stored(self, api, products, address, wxpay):
        address["detail_info"] = "路" * 1_000_000

        response = order(api, one(products["tea"]), address=address)

        assert list(address_errors(response)) == ["detail_info"]
        assert len(response.content) < 1000

    @pytest.mark.parametrize("value", ["广东省广州市", ["广东省"], 42, True])
    def test_an_address_that_is_not_an_object_is_400(self, api, products, wxpay, value):
        assert address_errors(order(api, one(products["tea"]), address=value))

    @pytest.mark.parametrize("value", [["张三"], {"first": "三"}, True, None])
    def test_a_part_that_is_not_text_is_400_naming_it(self, api, products, address, wxpay, value):
        address["user_name"] = value

        assert list(address_errors(order(api, one(products["tea"]), address=address))) == [
            "user_name"
        ]

    @pytest.mark.parametrize("unknown", ["userName", "national_code", "openid"])
    def test_an_unknown_key_inside_the_address_is_400_naming_it(
        self, api, products, address, wxpay, unknown
    ):
        address[unknown] = "x"

        errors = address_errors(order(api, one(products["tea"]), address=address))

        assert unknown in errors
        assert not Order.objects.exists()

    @pytest.mark.parametrize("tel", ["138-1234-5678", "+86 138 1234 5678", "020-81167888"])
    def test_phone_numbers_as_people_write_them_are_accepted(
        self, api, products, address, wxpay, tel
    ):
        address["tel_number"] = tel

        response = order(api, one(products["tea"]), address=address)

        assert response.status_code == 201, response.content
        assert Order.objects.get().address["tel_number"] == tel

    @pytest.mark.parametrize("tel", ["13812345678x", "1381234567\uff18", "138;12345678", "(138)"])
    def test_a_phone_number_of_other_characters_is_400_without_echoing_it(
        self, api, products, address, wxpay, tel
    ):
        address["tel_number"] = tel

        response = order(api, one(products["tea"]), address=address)

        assert list(address_errors(response)) == ["tel_number"]
        assert "1381234567" not in response.content.decode()
        assert "(138)" not in response.content.decode()

    @pytest.mark.parametrize(
        "remark",
        ["x" * 201, "\x00", "bell\x07", "\x7f", "\x9b", "\u202e", "\ud800", ["a"], {"a": 1}, True],
    )
    def test_a_bad_remark_is_400_naming_it(self, api, products, address, wxpay, remark):
        response = order(api, one(products["tea"]), address=address, remark=remark)

        assert response.status_code == 400
        assert response.json()["detail"].startswith("remark")
        assert "remark" in response.json()["errors"]
        assert not Order.objects.exists()

    def test_the_longest_remark_fits_and_may_have_lines(self, api, products, address, wxpay):
        remark = "line one\r\n\t" + "x" * 189

        response = order(api, one(products["tea"]), address=address, remark=remark)

        assert response.status_code == 201, response.content
        assert Order.objects.get().remark == remark


class TestIdempotencyKey:
    def test_the_same_address_again_gets_the_first_order(self, api, products, address, wxpay):
        key = {"Idempotency-Key": "checkout-1"}
        first = order(api, one(products["tea"]), key, address=address, remark="r")

        again = order(api, one(products["tea"]), key, address=dict(address), remark="r")

        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["out_trade_no"] == first.json()["out_trade_no"]
        assert Order.objects.count() == 1

    @pytest.mark.parametrize(
        "change",
        [
            {"address": {"detail_info": "新港中路398号"}},
            {"address": {"tel_number": "13900000000"}},
            {"address": {"postal_code": ""}},
            {"remark": "other"},
            {"drop_address": True},
        ],
    )
    def test_another_address_or_remark_with_the_same_key_is_409(
        self, api, products, address, wxpay, change
    ):
        key = {"Idempotency-Key": "checkout-1"}
        first = order(api, one(products["tea"]), key, address=address, remark="r").json()
        retry = {"address": {**address, **change.get("address", {})}, "remark": "r"}
        retry["remark"] = change.get("remark", "r")
        if change.get("drop_address"):
            del retry["address"]

        response = order(api, one(products["tea"]), key, **retry)

        assert response.status_code == 409
        assert response.json()["out_trade_no"] == first["out_trade_no"]
        assert "address or remark" in response.json()["detail"]
        for personal in (address["tel_number"], "13900000000", address["detail_info"]):
            assert personal not in response.content.decode()
        assert Order.objects.count() == 1
        assert reload(products["tea"]).stock == 9

    def test_other_items_with_the_same_key_still_say_items(self, api, products, address, wxpay):
        key = {"Idempotency-Key": "checkout-1"}
        first = order(api, one(products["tea"]), key, address=address).json()

        response = order(api, one(products["tea"], 2), key, address=address)

        assert response.status_code == 409
        assert f"order {first['out_trade_no']} with other items" in response.json()["detail"]


class TestPersonalData:
    def test_the_order_log_lines_carry_no_address_or_phone(
        self, api, products, address, wxpay, caplog
    ):
        key = {"Idempotency-Key": "checkout-1"}
        with caplog.at_level(logging.DEBUG):
            first = order(api, one(products["tea"]), key, address=address, remark="ring twice")
            order(api, one(products["tea"]), key, address=address, remark="ring twice")
            order(api, one(products["tea"]), key, address={**address, "county_name": "越秀区"})

        assert f"order created out_trade_no={first.json()['out_trade_no']}" in caplog.text
        for personal in (*address.values(), "越秀区", "ring twice"):
            assert personal not in caplog.text

    def test_the_missing_address_answer_has_the_error_shape(self, api, products, wxpay):
        body = order(api, one(products["tea"])).json()

        assert set(body) == {"detail", "errors"}
        assert body["detail"] == f"address: {AddressRequired.MESSAGE}"
        assert body["errors"] == {"address": [AddressRequired.MESSAGE]}


class TestService:
    """Callers other than the API (admin, scripts) get the same rule from order_create."""

    def test_an_incomplete_address_is_refused_like_a_missing_one(self, shopper, products):
        incomplete = DeliveryAddress(
            user_name="张三",
            tel_number="13812345678",
            province_name="广东省",
            city_name="",
            county_name="海珠区",
            detail_info="新港中路397号",
        )
        lines = [OrderLine(products["tea"].pk, 1)]

        for given in (None, incomplete):
            with pytest.raises(AddressRequired) as refused:
                order_create(user=shopper, lines=lines, client_ip="127.0.0.1", address=given)
            assert refused.value.status_code == 400
            assert list(refused.value.extra()["errors"]) == ["address"]
        assert not Order.objects.exists()


def test_staff_see_the_address_and_remark_as_stored(api, products, address, wxpay, boss_client):
    response = order(api, one(products["tea"]), address=address, remark="Please ring twice")
    placed = Order.objects.get(out_trade_no=response.json()["out_trade_no"])

    page = get_ok(boss_client, f"/admin/orders/order/{placed.pk}/change/")

    for shown in (*address.values(), "Please ring twice"):
        assert shown in page
