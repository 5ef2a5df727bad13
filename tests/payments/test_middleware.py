"""payments.middleware: WeChat's notifies go past the middleware they have no use for, with
the same checks and the same reply as through all of it (issue #16)."""

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import resolve
from django.utils import translation

from orders.models import Order
from payments.middleware import NotifyShortcutMiddleware
from payments.models import PaymentNotification
from tests.factories import (
    NOTIFY_SUCCESS,
    NOTIFY_URL,
    make_order,
    make_shopper,
    notify_body,
    post_notify,
    reload,
)

SHORTCUT = "payments.middleware.NotifyShortcutMiddleware"
FULL_STACK = [name for name in settings.MIDDLEWARE if name != SHORTCUT]
NOTIFY_PATHS = [
    "/payment/wxnotify",
    "/payment/refundnotify",
    "/payment/v3/wxnotify",
    "/payment/v3/refundnotify",
]


def test_it_comes_right_after_security_middleware():
    # So that the HTTPS redirect and its headers still apply to notifies.
    assert settings.MIDDLEWARE[:2] == ["django.middleware.security.SecurityMiddleware", SHORTCUT]


@pytest.mark.parametrize("path", NOTIFY_PATHS)
def test_the_four_notify_views_take_it(path):
    assert resolve(path).func.skips_middleware is True


def test_every_other_request_goes_through_the_whole_stack():
    rest = []
    middleware = NotifyShortcutMiddleware(
        lambda request: rest.append(request.path) or HttpResponse()
    )
    paths = ["/payment/order", "/payment/nothing-here", "/orders", "/admin/", "/healthz"]

    for path in paths:
        middleware(RequestFactory().post(path))

    assert rest == paths


@pytest.mark.parametrize("path", NOTIFY_PATHS)
def test_a_notify_goes_straight_to_its_view(path):
    def rest_of_the_stack(request):
        raise AssertionError("a notify went through the rest of the stack")

    response = NotifyShortcutMiddleware(rest_of_the_stack)(RequestFactory().get(path))

    assert response.status_code == 405  # its view's require_POST answered


@pytest.mark.django_db
class TestTheSameReplyAsThroughEveryMiddleware:
    @pytest.mark.parametrize("forged", [False, True])
    def test_same_body_same_headers(self, products, forged):
        key = "0" * 32 if forged else None
        past, through = (make_order(make_shopper(), products) for _ in range(2))

        shortcut = post_notify(notify_body(past, key=key))
        with override_settings(MIDDLEWARE=FULL_STACK):
            full = post_notify(
                notify_body(through, key=key, transaction_id="4200000000000000000000000002")
            )

        assert shortcut.content == full.content
        assert (shortcut.content == NOTIFY_SUCCESS) is not forged
        assert dict(shortcut.headers) == dict(full.headers)
        assert shortcut.headers["Content-Length"] == str(len(shortcut.content))
        assert shortcut.headers["X-Frame-Options"] == "DENY"
        assert shortcut.headers["X-Content-Type-Options"] == "nosniff"
        assert not shortcut.cookies

    def test_get_is_405_either_way(self):
        shortcut = post_notify(b"", REQUEST_METHOD="GET")
        with override_settings(MIDDLEWARE=FULL_STACK):
            full = post_notify(b"", REQUEST_METHOD="GET")

        assert shortcut.status_code == full.status_code == 405
        assert dict(shortcut.headers) == dict(full.headers)


@pytest.mark.django_db
class TestTheSameChecks:
    def test_a_host_not_allowed_is_400_and_nothing_is_done(self, order):
        response = post_notify(notify_body(order), HTTP_HOST="shop.attacker.example")

        assert response.status_code == 400
        assert reload(order).status == Order.Status.UNPAID
        assert not PaymentNotification.objects.exists()

    def test_plain_http_is_redirected_where_https_is_required(self, order, settings):
        settings.SECURE_SSL_REDIRECT = True

        response = post_notify(notify_body(order))

        assert response.status_code == 301
        assert response.headers["Location"] == f"https://testserver{NOTIFY_URL}"
        assert not PaymentNotification.objects.exists()

    def test_it_is_processed_in_english(self, order):
        translation.activate("zh-hans")  # what an admin page in Chinese leaves behind

        post_notify(notify_body(order))

        assert translation.get_language() == "en"
