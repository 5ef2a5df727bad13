"""The caller's address: throttle key, spbill_create_ip and the notify ledger (issue item 11).

Behind DEPLOY.md's nginx (``X-Forwarded-For $proxy_add_x_forwarded_for``) gunicorn sees
REMOTE_ADDR 127.0.0.1 and a header whose last entry nginx appended; everything left of
it is whatever the client wrote.
"""

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from rest_framework.request import Request

from core.client_ip import client_ip
from payments.models import PaymentNotification
from tests.factories import delivery_address, make_order, notify_body, post_notify
from tests.wx import code2session_answer

LOGIN = "/accounts/login"
NGINX = "127.0.0.1"
SHOPPER_IP = "203.0.113.7"


def _login(client, n: int, **extra):
    return client.post(LOGIN, {"code": f"code-{n}"}, format="json", **extra)


def _meta(forwarded_for: str | None, remote_addr: str = NGINX) -> dict:
    meta = {"REMOTE_ADDR": remote_addr}
    if forwarded_for is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return meta


@pytest.mark.django_db
def test_rotating_x_forwarded_for_does_not_escape_the_login_throttle_without_proxies(
    anon, http_mock, settings, login_rate_3_per_min
):
    settings.TRUSTED_PROXIES = 0
    for n in range(8):
        code2session_answer(http_mock, {"openid": f"o-rot-{n}", "session_key": "k"})

    statuses = [
        _login(anon, n, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(8)
    ]

    assert statuses == [200, 200, 200] + [429] * 5


@pytest.mark.django_db
def test_behind_one_proxy_the_address_nginx_appended_is_the_throttle_key(
    anon, http_mock, settings, login_rate_3_per_min
):
    settings.TRUSTED_PROXIES = 1
    for n in range(5):
        code2session_answer(http_mock, {"openid": f"o-px-{n}", "session_key": "k"})

    # The client rotates what it writes; nginx appends the address it saw.
    statuses = [_login(anon, n, **_meta(f"10.0.0.{n}, {SHOPPER_IP}")).status_code for n in range(4)]
    other_shopper = _login(anon, 4, **_meta("10.0.0.9, 198.51.100.20"))

    assert statuses == [200, 200, 200, 429]
    assert other_shopper.status_code == 200
    assert cache.get(f"throttle_login_{SHOPPER_IP}") is not None
    assert cache.get(f"throttle_login_{NGINX}") is None


@pytest.mark.django_db
def test_behind_one_proxy_the_ledger_records_the_address_nginx_saw(shopper, products, settings):
    settings.TRUSTED_PROXIES = 1
    order = make_order(shopper, products)

    post_notify(notify_body(order), **_meta(f"1.1.1.1, {SHOPPER_IP}"))

    assert PaymentNotification.objects.get().remote_addr == SHOPPER_IP


@pytest.mark.django_db
def test_behind_one_proxy_spbill_create_ip_is_the_address_nginx_saw(api, products, wxpay, settings):
    settings.TRUSTED_PROXIES = 1

    response = api.post(
        "/payment/order",
        {
            "items": [{"product_id": products["tea"].pk, "quantity": 1}],
            "address": delivery_address(),
        },
        format="json",
        **_meta(f"8.8.8.8, {SHOPPER_IP}"),
    )

    assert response.status_code == 201
    assert wxpay.calls()[0]["spbill_create_ip"] == SHOPPER_IP


@pytest.mark.django_db
def test_spoofed_garbage_in_the_ledger_falls_back_to_remote_addr(shopper, products, settings):
    settings.TRUSTED_PROXIES = 1
    order = make_order(shopper, products)

    post_notify(notify_body(order), **_meta("'); DROP TABLE orders;--"))

    assert PaymentNotification.objects.get().remote_addr == NGINX


@pytest.mark.parametrize(
    ("trusted", "forwarded_for", "expected"),
    [
        # No trusted proxy: the header is the client's word and is ignored.
        (0, SHOPPER_IP, NGINX),
        (0, f"1.2.3.4, {SHOPPER_IP}", NGINX),
        # One proxy: the right-most entry is what nginx saw.
        (1, SHOPPER_IP, SHOPPER_IP),
        (1, f"6.6.6.6, {SHOPPER_IP}", SHOPPER_IP),
        (1, f"6.6.6.6,{SHOPPER_IP}  ", SHOPPER_IP),
        (1, "2001:db8::1", "2001:db8::1"),
        (1, "2001:DB8:0::1", "2001:db8::1"),  # normalised
        # Two proxies: the second from the right (the outer one appended it).
        (2, f"6.6.6.6, {SHOPPER_IP}, 10.0.0.2", SHOPPER_IP),
        # Garbage, too few entries, empty entries, a port, a missing header: REMOTE_ADDR.
        (1, "not-an-ip", NGINX),
        (1, f"{SHOPPER_IP}, <script>", NGINX),
        (1, f"{SHOPPER_IP}:443", NGINX),
        (1, f"{SHOPPER_IP},", NGINX),
        (1, "", NGINX),
        (1, None, NGINX),
        (2, SHOPPER_IP, NGINX),
        (3, f"1.2.3.4, {SHOPPER_IP}", NGINX),
    ],
)
def test_client_ip(settings, trusted, forwarded_for, expected):
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", **_meta(forwarded_for))

    assert client_ip(request) == expected


def test_client_ip_works_on_a_drf_request_and_is_derived_once(settings):
    settings.TRUSTED_PROXIES = 1
    django_request = RequestFactory().get("/", **_meta(f"1.2.3.4, {SHOPPER_IP}"))
    drf_request = Request(django_request)

    assert client_ip(drf_request) == SHOPPER_IP
    # Derived once per request: a later change of the setting (or of META) is not seen,
    # and the Django request behind the DRF one shares the answer.
    settings.TRUSTED_PROXIES = 0
    assert client_ip(drf_request) == SHOPPER_IP
    assert client_ip(django_request) == SHOPPER_IP


def test_the_trusted_proxies_setting_is_read_from_the_environment(monkeypatch):
    import importlib

    import shopsite.settings as production_settings

    monkeypatch.setenv("TRUSTED_PROXIES", "1")
    try:
        assert importlib.reload(production_settings).TRUSTED_PROXIES == 1
        monkeypatch.delenv("TRUSTED_PROXIES")
        assert importlib.reload(production_settings).TRUSTED_PROXIES == 0
    finally:
        importlib.reload(production_settings)
