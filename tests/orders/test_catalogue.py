"""The catalogue (docs/INVARIANTS.md §8): GET /products and GET /products/<id> without a
token, cheap to serve (HTTP caching and a shared cache that staff changes invalidate and
an outage does not break), product pictures through Django's storage API, the product
admin's pictures, and the demo catalogue."""

import json
import logging
from io import StringIO

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils.html import escape
from PIL import Image

from orders.models import Product
from orders.services import OrderLine, order_create
from tests.admin_forms import form_data, product_page
from tests.factories import DELIVERY, get_ok, make_shopper, reload

pytestmark = pytest.mark.django_db

LIST = "/products"
FIELDS = {"id", "name", "description", "price", "stock", "image", "requires_shipping"}
ADD_PAGE = "/admin/orders/product/add/"
CHANGELIST = "/admin/orders/product/"


def detail(product: Product) -> str:
    return f"/products/{product.pk}"


def names(body: dict) -> list[str]:
    return [p["name"] for p in body["results"]]


# -- the API --------------------------------------------------------------------------------


class TestList:
    def test_active_products_in_the_contract_shape(self, anon, products):
        response = anon.get(LIST)

        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"count", "next", "previous", "results"}
        assert body["count"] == 2
        tea, cup = body["results"]
        assert set(tea) == FIELDS
        assert tea == {
            "id": products["tea"].pk,
            "name": "Oolong tea 250g",
            "description": "",
            "price": 4500,
            "stock": 10,
            "image": None,
            "requires_shipping": True,
        }
        assert (cup["name"], cup["stock"]) == ("Tea cup", None)  # null = unlimited

    def test_paginated_by_20(self, anon, db):
        Product.objects.bulk_create(Product(name=f"Tea {n}", price=100) for n in range(25))

        page1 = anon.get(LIST).json()
        page2 = anon.get(page1["next"]).json()

        assert (page1["count"], len(page1["results"]), len(page2["results"])) == (25, 20, 5)
        assert page1["previous"] is None and page2["next"] is None
        assert page1["next"].startswith("http://testserver/products?page=2")

    def test_a_page_that_does_not_exist_is_404(self, anon, products):
        for page in ("2", "0", "abc", "99999999999999999999"):
            response = anon.get(LIST, {"page": page})
            assert response.status_code == 404, page
            assert response.json()["detail"]

    def test_a_token_is_not_needed_and_a_bad_one_is_not_looked_at(self, anon, products):
        anon.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

        assert anon.get(LIST).status_code == 200
        assert anon.get(detail(products["tea"])).status_code == 200

    def test_a_shopper_with_a_token_sees_the_same(self, api, products):
        assert names(api.get(LIST).json()) == ["Oolong tea 250g", "Tea cup"]

    @pytest.mark.parametrize("products_on_page", [1, 5, 20])
    def test_queries_do_not_grow_with_the_page(
        self, anon, db, products_on_page, django_assert_max_num_queries
    ):
        Product.objects.bulk_create(
            Product(name=f"Tea {n}", price=100, description="Green", image=f"products/{n}.png")
            for n in range(products_on_page)
        )

        with django_assert_max_num_queries(2):  # count, page
            body = anon.get(LIST).json()

        assert len(body["results"]) == products_on_page
        assert body["results"][0]["image"].startswith("http://testserver/media/products/")

    def test_only_the_page_parameter_counts(self, anon, db):
        """Other query parameters neither break the answer nor leak into the shared copy."""
        Product.objects.bulk_create(Product(name=f"Tea {n}", price=100) for n in range(25))

        tracked = anon.get(LIST, {"utm_source": "moments"}).json()
        plain = anon.get(LIST).json()

        assert tracked["count"] == plain["count"] == 25
        assert "utm_source" not in plain["next"]


class TestDetail:
    def test_an_active_product(self, anon, products):
        response = anon.get(detail(products["cup"]))

        assert response.status_code == 200
        body = response.json()
        assert set(body) == FIELDS
        assert (body["id"], body["price"], body["stock"]) == (products["cup"].pk, 1200, None)

    @pytest.mark.parametrize(
        "path",
        [
            "99999",
            "0",
            "abc",
            "-1",
            "1.5",
            "1e3",
            "%D9%A1",  # an Arabic-Indic one: int() would take it
            "99999999999999999999999999",  # beyond any integer column
            "1/",
        ],
    )
    def test_unknown_or_not_an_id_is_a_json_404(self, anon, products, path):
        response = anon.get(f"/products/{path}")

        assert response.status_code == 404
        assert response.json()["detail"]

    def test_an_inactive_product_is_404(self, anon, products):
        response = anon.get(detail(products["gone"]))

        assert response.status_code == 404
        assert response.json() == {"detail": "No such product."}


class TestSchema:
    def test_the_catalogue_is_documented_without_a_token(self):
        out = StringIO()
        call_command("spectacular", "--validate", "--format", "openapi-json", stdout=out)
        schema = json.loads(out.getvalue())

        listing = schema["paths"]["/products"]["get"]
        one = schema["paths"]["/products/{product_id}"]["get"]
        assert {"200", "404"} <= set(listing["responses"]) and {"200", "404"} <= set(
            one["responses"]
        )
        assert all(requirement == {} for requirement in listing.get("security", [{}]))
        assert one["parameters"][0]["schema"]["type"] == "integer"
        product = schema["components"]["schemas"]["ProductOutput"]
        assert set(product["properties"]) == FIELDS
        assert product["properties"]["image"]["nullable"] is True
        assert product["properties"]["stock"]["nullable"] is True


# -- cheap to serve ---------------------------------------------------------------------------


class TestCaching:
    def test_answers_say_how_long_they_may_be_kept(self, anon, products, settings):
        assert anon.get(LIST)["Cache-Control"] == "public, max-age=30"
        settings.CATALOGUE_CACHE_SECONDS = 5
        assert anon.get(detail(products["tea"]))["Cache-Control"] == "public, max-age=5"

    def test_a_second_request_within_the_ttl_reads_nothing_from_the_database(
        self, anon, products, django_assert_num_queries
    ):
        first = anon.get(LIST).json()
        anon.get(detail(products["tea"]))

        with django_assert_num_queries(0):
            again = anon.get(LIST)
            one = anon.get(detail(products["tea"]))

        assert again.json() == first
        assert again["Cache-Control"] == "public, max-age=30"
        assert one.json()["name"] == "Oolong tea 250g"

    def test_each_page_and_each_host_has_its_own_copy(self, anon, db, settings):
        settings.ALLOWED_HOSTS = ["testserver", "shop.example.com"]
        Product.objects.bulk_create(
            Product(name=f"Tea {n}", price=100, image="products/t.png") for n in range(25)
        )

        page1, page2 = anon.get(LIST).json(), anon.get(LIST, {"page": 2}).json()
        other_host = anon.get(LIST, HTTP_HOST="shop.example.com").json()

        assert len(page1["results"]) == 20 and len(page2["results"]) == 5
        assert other_host["results"][0]["image"] == "http://shop.example.com/media/products/t.png"
        assert other_host["next"].startswith("http://shop.example.com/")

    def test_zero_seconds_turns_the_shared_copy_off(self, anon, products, settings):
        settings.CATALOGUE_CACHE_SECONDS = 0
        assert anon.get(LIST).json()["results"][0]["stock"] == 10

        order_create(
            user=make_shopper(),
            lines=[OrderLine(products["tea"].pk, 3)],
            client_ip="127.0.0.1",
            address=DELIVERY,
        )

        response = anon.get(LIST)
        assert response.json()["results"][0]["stock"] == 7
        assert response["Cache-Control"] == "public, max-age=0"

    def test_a_404_is_not_kept(self, anon, products):
        gone = products["gone"]
        assert anon.get(detail(gone)).status_code == 404

        Product.objects.filter(pk=gone.pk).update(active=True)  # (no admin: no invalidation)

        assert anon.get(detail(gone)).status_code == 200


class TestStaffChangesShowAtOnce:
    """Staff edit in admin; the catalogue's shared copy is dropped when that commits."""

    def test_an_edit(self, anon, boss_client, products, django_capture_on_commit_callbacks):
        tea = products["tea"]
        assert anon.get(LIST).json()["results"][0]["name"] == "Oolong tea 250g"
        assert anon.get(detail(tea)).json()["price"] == 4500
        data = form_data(boss_client, product_page(tea), "product_form")

        with django_capture_on_commit_callbacks(execute=True):
            response = boss_client.post(
                product_page(tea), {**data, "name": "Oolong tea 500g", "price": "8000"}
            )

        assert response.status_code == 302
        assert anon.get(LIST).json()["results"][0]["name"] == "Oolong tea 500g"
        assert anon.get(detail(tea)).json()["price"] == 8000

    def test_a_stock_adjustment(
        self, anon, boss_client, products, django_capture_on_commit_callbacks
    ):
        tea = products["tea"]
        assert anon.get(detail(tea)).json()["stock"] == 10
        data = form_data(boss_client, product_page(tea), "product_form")

        with django_capture_on_commit_callbacks(execute=True):
            boss_client.post(product_page(tea), {**data, "stock_change": "5"})

        assert anon.get(detail(tea)).json()["stock"] == 15

    def test_taking_a_product_off_sale(
        self, anon, boss_client, products, django_capture_on_commit_callbacks
    ):
        tea = products["tea"]
        assert anon.get(detail(tea)).status_code == 200
        assert anon.get(LIST).json()["count"] == 2
        data = form_data(boss_client, product_page(tea), "product_form")
        del data["active"]

        with django_capture_on_commit_callbacks(execute=True):
            boss_client.post(product_page(tea), data)

        assert anon.get(detail(tea)).status_code == 404
        assert names(anon.get(LIST).json()) == ["Tea cup"]

    def test_a_new_product(self, anon, boss_client, products, django_capture_on_commit_callbacks):
        assert anon.get(LIST).json()["count"] == 2
        data = form_data(boss_client, ADD_PAGE, "product_form")

        with django_capture_on_commit_callbacks(execute=True):
            boss_client.post(ADD_PAGE, {**data, "name": "Kettle", "price": "9900"})

        assert names(anon.get(LIST).json()) == ["Oolong tea 250g", "Tea cup", "Kettle"]

    def test_deleting_products(
        self, anon, boss_client, products, django_capture_on_commit_callbacks
    ):
        tea, cup = products["tea"], products["cup"]
        assert anon.get(LIST).json()["count"] == 2

        with django_capture_on_commit_callbacks(execute=True):
            boss_client.post(f"/admin/orders/product/{tea.pk}/delete/", {"post": "yes"})
        assert names(anon.get(LIST).json()) == ["Tea cup"]

        with django_capture_on_commit_callbacks(execute=True):
            boss_client.post(
                CHANGELIST,
                {"action": "delete_selected", "_selected_action": [cup.pk], "post": "yes"},
            )
        assert anon.get(LIST).json()["count"] == 0

    def test_orders_do_not_drop_the_shared_copy(self, anon, products, django_assert_num_queries):
        """Stock moves with every order: the short max-age bounds how old it may be, rather
        than every order emptying the catalogue's cache."""
        anon.get(LIST)
        order_create(
            user=make_shopper(),
            lines=[OrderLine(products["tea"].pk, 1)],
            client_ip="127.0.0.1",
            address=DELIVERY,
        )

        with django_assert_num_queries(0):
            anon.get(LIST)


class _BrokenCache:
    """A cache whose server is gone: every call raises what redis-py raises."""

    def _down(self, *args, **kwargs):
        raise redis.ConnectionError("Error 111 connecting to redis.internal:6379.")

    get = set = add = get_many = set_many = delete = incr = _down


class TestCacheOutage:
    def test_the_catalogue_answers_from_the_database(
        self, anon, products, monkeypatch, caplog, django_assert_max_num_queries
    ):
        monkeypatch.setattr("orders.selectors.cache", _BrokenCache())
        monkeypatch.setattr("orders.selectors._last_cache_warning", None)

        with caplog.at_level(logging.WARNING, logger="orders.selectors"):
            with django_assert_max_num_queries(2):
                listing = anon.get(LIST)
            one = anon.get(detail(products["tea"]))

        assert listing.status_code == 200 and listing.json()["count"] == 2
        assert one.status_code == 200 and one.json()["name"] == "Oolong tea 250g"
        warnings = [r for r in caplog.records if "cache" in r.getMessage()]
        assert len(warnings) == 1  # not one per request

    def test_staff_can_still_save(
        self, boss_client, products, monkeypatch, django_capture_on_commit_callbacks
    ):
        monkeypatch.setattr("orders.selectors.cache", _BrokenCache())
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        with django_capture_on_commit_callbacks(execute=True):
            response = boss_client.post(product_page(tea), {**data, "price": "4800"})

        assert response.status_code == 302
        assert reload(tea).price == 4800


# -- pictures ---------------------------------------------------------------------------------


class TestPictures:
    def test_stored_by_the_default_storage_and_answered_as_an_absolute_url(
        self, anon, pictured, media_root
    ):
        body = anon.get(detail(pictured)).json()

        assert pictured.image.name.startswith("products/tea")
        assert (media_root / pictured.image.name).is_file()
        assert body["image"] == f"http://testserver/media/{pictured.image.name}"
        assert anon.get(LIST).json()["results"][0]["image"] == body["image"]

    def test_https_behind_the_proxy(self, anon, pictured, settings):
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

        body = anon.get(
            detail(pictured), HTTP_HOST="testserver", HTTP_X_FORWARDED_PROTO="https"
        ).json()

        assert body["image"].startswith("https://testserver/media/products/")

    def test_not_served_by_the_app_unless_asked(self, anon, pictured):
        assert anon.get(f"/media/{pictured.image.name}").status_code == 404

    def test_served_in_development_and_the_demo(self, anon, pictured, png, media_served):
        response = anon.get(f"/media/{pictured.image.name}")

        assert response.status_code == 200
        assert b"".join(response.streaming_content) == png
        assert response["Content-Type"] == "image/png"

    @pytest.mark.parametrize(
        ("path", "status"),
        [
            ("../../settings.py", 400),
            ("%2e%2e/%2e%2e/etc/passwd", 400),
            ("/etc/passwd", 404),
            ("products/none.png", 404),
            ("products/", 404),  # no directory listings
        ],
    )
    def test_media_serving_stays_inside_media_root(
        self, anon, pictured, media_served, path, status
    ):
        assert anon.get(f"/media/{path}").status_code == status


# -- admin ------------------------------------------------------------------------------------


class TestAdmin:
    def test_the_list_shows_a_small_picture(self, boss_client, pictured):
        page = get_ok(boss_client, CHANGELIST)

        assert f'<img src="{pictured.image.url}" alt="" width="64" height="64"' in page

    def test_the_picture_url_is_escaped(self, boss_client, products):
        Product.objects.filter(pk=products["tea"].pk).update(image="products/it's<b>.png")

        page = get_ok(boss_client, CHANGELIST)

        url = reload(products["tea"]).image.url
        assert f'src="{escape(url)}"' in page
        assert "/media/products/it's" not in page and "<b>.png" not in page

    def test_the_change_form_shows_the_picture(self, boss_client, pictured):
        page = get_ok(boss_client, product_page(pictured))

        assert f'<img src="{pictured.image.url}"' in page

    def test_a_new_product_with_description_picture_and_no_shipping(
        self, boss_client, db, png, media_root
    ):
        data = form_data(boss_client, ADD_PAGE, "product_form")

        response = boss_client.post(
            ADD_PAGE,
            {
                **data,
                "name": "Gift card",
                "price": "5000",
                "description": "Sent by WeChat message.",
                "image": SimpleUploadedFile("card.png", png, content_type="image/png"),
                "requires_shipping": "",
            },
        )

        assert response.status_code == 302
        card = Product.objects.get(name="Gift card")
        assert (card.description, card.requires_shipping) == ("Sent by WeChat message.", False)
        assert (media_root / card.image.name).read_bytes() == png

    def test_a_new_product_ships_by_default(self, boss_client, db):
        data = form_data(boss_client, ADD_PAGE, "product_form")

        boss_client.post(ADD_PAGE, {**data, "name": "Kettle", "price": "9900"})

        assert Product.objects.get(name="Kettle").requires_shipping is True

    def test_a_picture_and_description_on_an_existing_product_keep_reservations(
        self, boss_client, products, png, media_root
    ):
        tea = products["tea"]  # 10 units
        data = form_data(boss_client, product_page(tea), "product_form")
        order_create(
            user=make_shopper(),
            lines=[OrderLine(tea.pk, 2)],
            client_ip="127.0.0.1",
            address=DELIVERY,
        )

        response = boss_client.post(
            product_page(tea),
            {
                **data,
                "description": "Roasted in Anxi.",
                "image": SimpleUploadedFile("tea.png", png, content_type="image/png"),
                "requires_shipping": "",
            },
        )

        assert response.status_code == 302
        saved = reload(tea)
        assert (saved.description, saved.requires_shipping, saved.stock) == (
            "Roasted in Anxi.",
            False,
            8,
        )
        assert (media_root / saved.image.name).read_bytes() == png

    def test_a_picture_can_be_removed(self, boss_client, pictured):
        data = form_data(boss_client, product_page(pictured), "product_form")

        boss_client.post(product_page(pictured), {**data, "image-clear": "on"})

        assert not reload(pictured).image

    def test_a_file_that_is_not_a_picture_is_refused(self, boss_client, products, media_root):
        tea = products["tea"]
        data = form_data(boss_client, product_page(tea), "product_form")

        response = boss_client.post(
            product_page(tea),
            {**data, "image": SimpleUploadedFile("tea.png", b"<?php echo 1; ?>", "image/png")},
        )

        assert response.status_code == 200
        assert "Upload a valid image" in response.content.decode()
        assert not reload(tea).image
        assert not media_root.exists() or not any(media_root.rglob("*.*"))


# -- the demo catalogue -----------------------------------------------------------------------


def setup_demo_shop() -> list[dict]:
    out = StringIO()
    call_command("setup_demo_shop", "--password=a-long-demo-password", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])["products"]


class TestDemoCatalogue:
    def test_products_with_descriptions_and_generated_pictures(self, db, media_root, anon):
        listed = setup_demo_shop()

        products = list(Product.objects.order_by("pk"))
        assert [p["id"] for p in listed] == [p.pk for p in products]
        assert [p.name for p in products][:3] == [
            "Oolong tea 250g",
            "Jasmine tea 100g",
            "Celadon tea cup",
        ]
        for product in products:
            assert product.description
            with Image.open(media_root / product.image.name) as picture:
                assert picture.size[0] == picture.size[1] >= 256
        assert [p.requires_shipping for p in products].count(False) == 1
        body = anon.get(LIST).json()
        assert all(p["image"].startswith("http://testserver/media/") for p in body["results"])

    def test_idempotent(self, db, media_root):
        first = setup_demo_shop()
        files = sorted(media_root.rglob("*.png"))

        again = setup_demo_shop()

        assert again == first
        assert sorted(media_root.rglob("*.png")) == files
        assert Product.objects.count() == len(first)

    def test_a_missing_picture_file_is_made_again(self, db, media_root):
        setup_demo_shop()
        tea = Product.objects.get(name="Oolong tea 250g")
        (media_root / tea.image.name).unlink()

        setup_demo_shop()

        assert (media_root / reload(tea).image.name).is_file()

    def test_staff_edits_are_kept(self, db, media_root):
        setup_demo_shop()
        tea = Product.objects.get(name="Oolong tea 250g")
        Product.objects.filter(pk=tea.pk).update(description="Ours", image="products/ours.png")

        setup_demo_shop()

        assert (reload(tea).description, reload(tea).image.name) == ("Ours", "products/ours.png")
