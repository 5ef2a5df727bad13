"""GET /orders and GET /orders/<out_trade_no>: a shopper sees only their own orders."""

import pytest

from tests.factories import client_for, make_order, make_shopper

pytestmark = pytest.mark.django_db


def test_list_shows_own_orders_newest_first(api, shopper, products):
    older = make_order(shopper, products, n=2)
    newer = make_order(shopper, products, n=1)
    make_order(make_shopper(), products, n=0)

    body = api.get("/orders").json()

    assert body["count"] == 2
    assert [o["out_trade_no"] for o in body["results"]] == [newer.out_trade_no, older.out_trade_no]
    assert set(body) == {"count", "next", "previous", "results"}
    first = body["results"][0]
    assert first["items"] == [
        {"product_id": products["tea"].pk, "product_name": "Tea", "unit_price": 4500, "quantity": 1}
    ]


def test_list_is_paginated_by_20(api, shopper, products):
    for n in range(25):
        make_order(shopper, products, n=n)

    page1 = api.get("/orders").json()
    page2 = api.get(page1["next"]).json()

    assert (page1["count"], len(page1["results"]), len(page2["results"])) == (25, 20, 5)
    assert page2["next"] is None


def test_list_page_query_count_is_bounded(api, shopper, products, django_assert_max_num_queries):
    for n in range(20):
        make_order(shopper, products, n=n)
    with django_assert_max_num_queries(5):  # user, count, page, items, shipments (prefetches)
        api.get("/orders")


def test_detail_has_the_contract_fields(api, shopper, products):
    order = make_order(shopper, products)

    body = api.get(f"/orders/{order.out_trade_no}").json()

    assert {
        "out_trade_no",
        "status",
        "total_fee",
        "items",
        "created_at",
        "paid_at",
        "transaction_id",
    } <= set(body)
    assert (body["status"], body["total_fee"], body["paid_at"]) == ("unpaid", 4500, None)


def test_someone_elses_order_is_404_like_a_missing_one(api, products):
    other = make_order(make_shopper(), products)

    assert api.get(f"/orders/{other.out_trade_no}").status_code == 404
    assert api.get("/orders/NO-SUCH-ORDER-000000").status_code == 404
    assert api.get("/orders/NO-SUCH-ORDER-000000").json()["detail"]


def test_detail_query_count_is_bounded(api, shopper, products, django_assert_max_num_queries):
    order = make_order(shopper, products)
    with django_assert_max_num_queries(4):  # user, order, items, shipments
        assert api.get(f"/orders/{order.out_trade_no}").status_code == 200


def test_orders_need_a_token(anon):
    assert anon.get("/orders").status_code == 401


def test_other_users_cannot_list_my_orders(shopper, products):
    make_order(shopper, products)
    stranger = client_for(make_shopper())

    assert stranger.get("/orders").json()["count"] == 0
