"""Unknown fields are named in a 400, whatever their names are made of (never a 500)."""

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

LONE_SURROGATE_KEY = b'{"\\ud800": 1}'


def test_a_lone_surrogate_field_name_is_refused_with_a_400_that_can_be_sent():
    response = APIClient().post(
        "/accounts/login", data=LONE_SURROGATE_KEY, content_type="application/json"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == {"\\ud800": ["Unknown field."]}


def test_a_lone_surrogate_inside_the_address_is_refused_too(api, products):
    response = api.post(
        "/payment/order",
        data=b'{"items": [{"product_id": %d, "quantity": 1}], "address": {"\\udfff": "x"}}'
        % products["tea"].pk,
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "address" in response.json()["errors"]


def test_a_megabyte_field_name_is_named_briefly():
    name = "k" * 1_000_000
    response = APIClient().post("/accounts/login", data={name: 1, "code": "c"}, format="json")

    assert response.status_code == 400
    (named,) = response.json()["errors"]
    assert len(named) == 64 and named.endswith("…")
