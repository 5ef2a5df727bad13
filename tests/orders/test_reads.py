"""GET /orders and GET /products at any page size and depth (issue #16): the same number of
queries whatever the page's size or depth, and deep pages exactly like shallow ones.

The API's page size is 20 (settings); 10 and 50 are set on DRF's paginator here, as a
deployment changing PAGE_SIZE would.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.pagination import PageNumberPagination

from orders.models import Order, OrderItem, Product, Shipment
from tests.factories import make_shopper

pytestmark = pytest.mark.django_db

PAGE_SIZES = [10, 20, 50]


def _fill(user, products, count: int, *, ties: bool = False) -> list[Order]:
    """``count`` orders of ``user`` with two items each, every third one shipped; with
    ``ties`` they come in pairs created at the same instant (the pk decides)."""
    now = timezone.now()
    orders = Order.objects.bulk_create(
        Order(
            out_trade_no=f"R{user.pk:04d}{n:027d}",
            user=user,
            openid=user.openid,
            body="Tea",
            total_fee=5700,
            spbill_create_ip="127.0.0.1",
            created_at=now - timedelta(minutes=(n // 2) if ties else n),
            expires_at=now + timedelta(minutes=30),
        )
        for n in range(count)
    )
    OrderItem.objects.bulk_create(
        OrderItem(order=o, product=p, product_name=p.name, unit_price=p.price, quantity=1)
        for o in orders
        for p in (products["tea"], products["cup"])
    )
    Shipment.objects.bulk_create(
        Shipment(order=o, logistics_type="express", express_company="SF", tracking_no=f"SF{i}")
        for i, o in enumerate(orders)
        if i % 3 == 0
    )
    return orders


def _queries(call) -> tuple[int, list[str], object]:
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries], response


def _newest_first(user) -> list[str]:
    return list(
        Order.objects.filter(user=user)
        .order_by("-created_at", "-pk")
        .values_list("out_trade_no", flat=True)
    )


class TestOrderList:
    def test_queries_depend_on_neither_page_size_nor_depth(
        self, api, shopper, products, monkeypatch
    ):
        _fill(shopper, products, 120)
        counts = {}
        for size in PAGE_SIZES:
            monkeypatch.setattr(PageNumberPagination, "page_size", size)
            last = -(-120 // size)
            for page in (1, last):
                count, _, response = _queries(lambda p=page: api.get("/orders", {"page": p}))
                assert response.status_code == 200
                assert len(response.json()["results"]) == min(size, 120 - (page - 1) * size)
                counts[size, page] = count

        # user, count, page, items, shipments: one each, however many orders are shown
        assert set(counts.values()) == {5}, counts

    @pytest.mark.parametrize("size", PAGE_SIZES)
    def test_pages_together_are_every_order_once_newest_first(
        self, api, shopper, products, monkeypatch, size
    ):
        _fill(shopper, products, 95, ties=True)
        _fill(make_shopper(), products, 30)  # someone else's, never shown
        monkeypatch.setattr(PageNumberPagination, "page_size", size)

        seen, url = [], "/orders"
        while url:
            body = api.get(url).json()
            assert body["count"] == 95
            seen += [o["out_trade_no"] for o in body["results"]]
            url = body["next"]

        assert seen == _newest_first(shopper)

    def test_a_deep_page_is_the_orders_at_its_place(self, api, shopper, products):
        _fill(shopper, products, 130, ties=True)

        body = api.get("/orders", {"page": 6}).json()

        page = body["results"]
        assert [o["out_trade_no"] for o in page] == _newest_first(shopper)[100:120]
        assert {len(o["items"]) for o in page} == {2}
        assert [bool(o["shipments"]) for o in page] == [
            Shipment.objects.filter(order__out_trade_no=o["out_trade_no"]).exists() for o in page
        ]
        assert body["previous"].endswith("page=5") and body["next"].endswith("page=7")

    def test_a_page_past_the_last_is_404(self, api, shopper, products):
        _fill(shopper, products, 25)

        assert api.get("/orders", {"page": 2}).status_code == 200
        assert api.get("/orders", {"page": 3}).status_code == 404

    def test_a_page_reads_its_ids_from_the_index_first(self, api, shopper, products):
        """The page's rows are fetched by id after the ids of the page are found: a deep
        page then skips index entries, not whole rows (docs/PERFORMANCE.md, reads)."""
        _fill(shopper, products, 45)

        _, sql, _ = _queries(lambda: api.get("/orders", {"page": 2}))

        rows = 'SELECT "orders_order"."id", "orders_order"."out_trade_no"'
        page = next(s for s in sql if s.startswith(rows))
        outer, inner = page.split(" IN (SELECT ", 1)
        assert "LIMIT" not in outer
        assert "LIMIT 20 OFFSET 20" in inner


class TestProductList:
    @pytest.fixture(autouse=True)
    def _from_the_database(self, settings):
        settings.CATALOGUE_CACHE_SECONDS = 0

    def test_queries_depend_on_neither_page_size_nor_depth(self, anon, db, monkeypatch):
        Product.objects.bulk_create(
            Product(name=f"Tea {n}", price=100 + n, active=n % 10 != 0, image=f"products/{n}.png")
            for n in range(130)
        )
        counts = {}
        for size in PAGE_SIZES:
            monkeypatch.setattr(PageNumberPagination, "page_size", size)
            last = -(-117 // size)
            for page in (1, last):
                count, _, response = _queries(lambda p=page: anon.get("/products", {"page": p}))
                assert response.status_code == 200
                body = response.json()
                assert body["count"] == 117
                assert len(body["results"]) == min(size, 117 - (page - 1) * size)
                counts[size, page] = count

        assert set(counts.values()) == {2}, counts  # count, page
