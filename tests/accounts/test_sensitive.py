"""Error reports (the DEBUG 500 page, the admins' e-mail) show no secret.

Each test raises an exception deep in the login or token path, where a frame's local
variables hold the AppSecret, a session_key, a bearer token or the Django secret, and
renders Django's report for it — with DEBUG on, the case where Django's stock filter
shows everything.
"""

import sys

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.views.debug import ExceptionReporter

from accounts import services, tokens
from tests.factories import make_shopper
from tests.wx import code2session_answer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("debug_on")]

LOGIN = "/accounts/login"
SESSION_KEY = "Sk3yOfTh1sSh0pperXyZ0w=="
# Django's report shows frames' variables under this title: proof the test rendered them.
FRAME_MARKER = "Local vars"


def _report_html(request=None) -> str:
    """Django's report for the exception being handled, from the frame the test called
    into: the test's own frame holds the secret it checks for."""
    exc_type, exc_value, tb = sys.exc_info()
    return ExceptionReporter(request, exc_type, exc_value, tb.tb_next).get_traceback_html()


def _assert_hidden(html: str, *secrets: str) -> None:
    assert FRAME_MARKER in html
    for secret in secrets:
        assert secret and secret not in html


def _explode(*args, **kwargs):
    raise RuntimeError("a bug deep in the login path")


def test_500_page_of_a_login_that_fails_after_code2session_shows_no_session_key(
    http_mock, monkeypatch
):
    code2session_answer(http_mock, {"openid": "o-500", "session_key": SESSION_KEY})
    # _parse has WeChat's answer (session_key included) in its locals when this raises.
    monkeypatch.setattr("wechat.miniprogram.login.WxSession", _explode)

    response = Client(raise_request_exception=False).post(
        LOGIN, {"code": "c"}, content_type="application/json"
    )

    assert response.status_code == 500
    _assert_hidden(response.content.decode(), SESSION_KEY, settings.WECHAT_APP_SECRET)
    assert "_parse" in response.content.decode()


def test_500_page_of_a_login_that_fails_while_storing_the_shopper_shows_no_session_key(
    http_mock, monkeypatch
):
    code2session_answer(http_mock, {"openid": "o-500b", "session_key": SESSION_KEY})
    monkeypatch.setattr("accounts.services.User.objects.filter", _explode)

    response = Client(raise_request_exception=False).post(
        LOGIN, {"code": "c"}, content_type="application/json"
    )

    assert response.status_code == 500
    _assert_hidden(response.content.decode(), SESSION_KEY)


def test_report_of_a_failure_inside_the_code2session_http_call_shows_no_app_secret(
    http_mock,
):
    # requests' own frames hold the query parameters, AppSecret included.
    http_mock.get(settings.WECHAT_API_BASE + "/sns/jscode2session", body=RuntimeError("boom"))
    services._login_client.cache_clear()

    try:
        services.user_login_with_code(code="c")
    except RuntimeError:
        html = _report_html(RequestFactory().post(LOGIN))

    _assert_hidden(html, settings.WECHAT_APP_SECRET)
    assert "jscode2session" in html or "send" in html


def test_report_of_a_failure_inside_token_claims_shows_no_token(settings):
    token = tokens.token_issue(user=make_shopper())
    settings.ACCESS_TOKEN_TTL_SECONDS = "not a number"  # fails inside Fernet.decrypt

    try:
        tokens.token_claims(token)
    except TypeError:
        html = _report_html()

    _assert_hidden(html, token)


def test_report_of_a_failure_deriving_the_token_key_shows_no_secret_key(settings, monkeypatch):
    settings.SECRET_KEY = "a-secret-key-only-this-test-uses-0123456789"
    monkeypatch.setattr(tokens.HKDF, "derive", _explode)
    tokens._fernet.cache_clear()

    try:
        tokens.token_issue(user=make_shopper())
    except RuntimeError:
        html = _report_html()

    _assert_hidden(html, settings.SECRET_KEY)


def test_500_page_of_a_failure_while_authenticating_shows_no_bearer_token(monkeypatch):
    token = tokens.token_issue(user=make_shopper())
    # Fails after the token was read and checked, while the user is looked up.
    monkeypatch.setattr("accounts.authentication.get_user_model", _explode)

    response = Client(raise_request_exception=False).get(
        "/orders", HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert response.status_code == 500
    _assert_hidden(response.content.decode(), token)
