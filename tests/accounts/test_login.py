import logging
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import User
from tests.factories import client_for
from tests.wx import code2session_answer

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login"
SESSION_KEY = "tiihtNczf5v6AKRyjwEUhQ=="


def login(anon, code="081Kq4Ga1MSox41ufFGa1elJ3Q2Kq4Gm"):
    return anon.post(LOGIN, {"code": code}, format="json")


def test_login_creates_shopper_and_returns_a_working_bearer_token(anon, http_mock):
    code2session_answer(
        http_mock, {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "session_key": SESSION_KEY}
    )

    response = login(anon)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.ACCESS_TOKEN_TTL_SECONDS
    user = User.objects.get(openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    assert user.session_key == SESSION_KEY
    assert not user.has_usable_password()
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert anon.get("/orders").status_code == 200


def test_login_sends_appid_secret_and_code_to_code2session(anon, http_mock):
    code2session_answer(http_mock, {"openid": "o1", "session_key": SESSION_KEY})

    login(anon, code="the-code")

    sent = http_mock.calls[0].request
    params = dict(parse_qsl(urlsplit(sent.url).query))
    assert params == {
        "appid": settings.WECHAT_APPID,
        "secret": settings.WECHAT_APP_SECRET,
        "js_code": "the-code",
        "grant_type": "authorization_code",
    }
    assert http_mock.calls[0].request.req_kwargs["timeout"] == settings.WECHAT_TIMEOUT


def test_second_login_updates_the_same_user_and_stores_unionid(anon, http_mock):
    code2session_answer(http_mock, {"openid": "o-same", "session_key": "old"})
    code2session_answer(http_mock, {"openid": "o-same", "session_key": "new", "unionid": "u-1"})

    assert login(anon, "c1").status_code == 200
    assert login(anon, "c2").status_code == 200

    user = User.objects.get(openid="o-same")
    assert (user.session_key, user.unionid) == ("new", "u-1")
    assert User.objects.filter(openid="o-same").count() == 1


def test_session_key_is_never_returned_or_logged(anon, http_mock, caplog):
    code2session_answer(http_mock, {"openid": "o-secret", "session_key": SESSION_KEY})

    with caplog.at_level(logging.DEBUG):
        response = login(anon)

    assert SESSION_KEY not in response.content.decode()
    assert SESSION_KEY not in caplog.text
    assert settings.WECHAT_APP_SECRET not in caplog.text


@pytest.mark.parametrize(
    ("errcode", "status"),
    [(40029, 400), (40163, 400), (40226, 400), (45011, 429), (-1, 502), (40125, 502)],
)
def test_code2session_errcodes_map_to_statuses(anon, http_mock, errcode, status):
    code2session_answer(http_mock, {"errcode": errcode, "errmsg": "nope, rid: 1"})

    response = login(anon)

    assert response.status_code == status
    assert response.json()["errcode"] == errcode
    assert response.json()["detail"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("errcode", "status", "detail"),
    [
        (
            40163,
            400,
            "The login code is invalid, expired or already used; call wx.login() again.",
        ),
        (45011, 429, "WeChat is rate-limiting logins for this user; try again in a minute."),
        (40125, 502, "WeChat login is unavailable."),
    ],
)
def test_refused_logins_answer_exactly(anon, http_mock, errcode, status, detail):
    code2session_answer(http_mock, {"errcode": errcode, "errmsg": "nope, rid: 1"})

    response = login(anon)

    assert (response.status_code, response.json()) == (
        status,
        {"detail": detail, "errcode": errcode},
    )


def test_unreachable_wechat_answers_without_an_errcode(anon, http_mock):
    http_mock.add(
        responses.GET,
        settings.WECHAT_API_BASE + "/sns/jscode2session",
        body=requests.exceptions.ConnectionError(),
    )

    response = login(anon)

    assert (response.status_code, response.json()) == (
        502,
        {"detail": "WeChat login is unavailable."},
    )


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.ConnectTimeout(),
        requests.exceptions.ReadTimeout(),
        requests.exceptions.ConnectionError(),
    ],
)
def test_unreachable_wechat_is_502(anon, http_mock, failure):
    http_mock.add(responses.GET, settings.WECHAT_API_BASE + "/sns/jscode2session", body=failure)

    response = login(anon)

    assert response.status_code == 502
    assert "unavailable" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [("<html>busy</html>", 200), ("[]", 200), ('{"session_key": "x"}', 200), ("{}", 503)],
)
def test_nonsense_from_wechat_is_502(anon, http_mock, body, status):
    http_mock.add(
        responses.GET, settings.WECHAT_API_BASE + "/sns/jscode2session", body=body, status=status
    )

    assert login(anon).status_code == 502


@pytest.mark.parametrize(
    "payload",
    [{}, {"code": ""}, {"code": ["a"]}, {"code": {"a": 1}}, {"code": "x" * 129}, {"code": None}],
)
def test_bad_login_input_is_400_naming_the_field(anon, payload):
    response = anon.post(LOGIN, payload, format="json")

    assert response.status_code == 400
    assert "code" in response.json()["errors"]
    assert response.json()["detail"].startswith("code")


def test_malformed_json_is_400(anon):
    response = anon.post(LOGIN, data=b'{"code": ', content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()


def test_login_without_wechat_settings_is_503(anon, settings):
    settings.WECHAT_APP_SECRET = ""

    response = login(anon)

    assert response.status_code == 503
    assert "WECHAT_APP_SECRET" in response.json()["detail"]


def test_login_is_throttled_per_client(anon, http_mock, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
    for n in range(3):
        code2session_answer(http_mock, {"openid": f"o-{n}", "session_key": "k"})
        assert login(anon, f"c{n}").status_code == 200

    response = login(anon, "c4")

    assert response.status_code == 429
    assert len(http_mock.calls) == 3  # WeChat was not asked


def test_login_query_count_is_bounded(anon, http_mock, django_assert_max_num_queries):
    code2session_answer(http_mock, {"openid": "o-q", "session_key": "k"})
    code2session_answer(http_mock, {"openid": "o-q", "session_key": "k2"})
    with django_assert_max_num_queries(4):
        assert login(anon, "first").status_code == 200
    with django_assert_max_num_queries(2):
        assert login(anon, "again").status_code == 200


class TestBearerToken:
    def test_missing_token_is_401(self, anon):
        response = anon.get("/orders")
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"

    @pytest.mark.parametrize(
        "header",
        [
            "Bearer",
            "Bearer a b",
            "Bearer not-a-token",
            "Bearer eyJ1aWQiOjF9:1tX:forged",
            "Bearer é",
        ],
    )
    def test_malformed_or_forged_token_is_401(self, anon, shopper, header):
        anon.credentials(HTTP_AUTHORIZATION=header)
        assert anon.get("/orders").status_code == 401

    def test_token_signed_with_another_key_is_401(self, shopper, settings):
        client = client_for(shopper)
        settings.SECRET_KEY = "another-secret-key-for-this-test-only"
        assert client.get("/orders").status_code == 401

    def test_expired_token_is_401(self, shopper, monkeypatch):
        client = client_for(shopper)
        later = time.time() + settings.ACCESS_TOKEN_TTL_SECONDS + 5
        monkeypatch.setattr("django.core.signing.time.time", lambda: later)

        response = client.get("/orders")

        assert response.status_code == 401
        assert "expired" in response.json()["detail"]

    def test_token_of_a_deactivated_user_is_401(self, shopper):
        client = client_for(shopper)
        User.objects.filter(pk=shopper.pk).update(is_active=False)
        assert client.get("/orders").status_code == 401
