"""Error reports show no API key, whichever WeChat Pay call fails (DEBUG on: the case
Django's stock filter would show everything)."""

import pytest
from django.conf import settings

from tests.factories import client_for, delivery_address, make_shopper

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("debug_on")]


def _explode(*args, **kwargs):
    # Its own frame holds the arguments it was called with: the key among them.
    raise RuntimeError("a bug deep in the signing code")


def _assert_no_key(html: str) -> None:
    assert "Local vars" in html  # the report did render frames' variables
    assert settings.WECHAT_MCH_KEY not in html


def test_500_page_of_a_prepay_failing_while_signing_shows_no_api_key(products, wxpay, monkeypatch):
    monkeypatch.setattr("wechat.pay_v2.client.sign", _explode)
    api = client_for(make_shopper())
    api.raise_request_exception = False

    response = api.post(
        "/payment/order",
        {
            "items": [{"product_id": products["tea"].pk, "quantity": 1}],
            "address": delivery_address(),
        },
        format="json",
    )

    assert response.status_code == 500
    _assert_no_key(response.content.decode())
