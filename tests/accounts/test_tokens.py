"""Bearer tokens: opaque, tamper-proof, expiring, and revocable per user from admin."""

import base64
import binascii
import contextlib
import time

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client

from accounts import tokens
from accounts.models import User
from accounts.services import user_tokens_revoke
from tests.factories import client_for, make_shopper
from tests.wx import code2session_answer

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"
ACTION = "log_out_everywhere"


def _decodings(token: str) -> list[bytes]:
    """Everything a curious holder might base64-decode out of a token."""
    candidates = [token, *token.replace(":", ".").split(".")]
    decoded = []
    for text in candidates:
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            with contextlib.suppress(binascii.Error, ValueError):
                decoded.append(decode(text + "=" * (-len(text) % 4)))
    return decoded


def _orders(client) -> int:
    return client.get("/orders").status_code


def _log_out_everywhere(client: Client, *users: User):
    return client.post(USERS, {"action": ACTION, "_selected_action": [u.pk for u in users]})


# -- what a token is ----------------------------------------------------------------------------


def test_a_token_reveals_no_user_id():
    user = make_shopper(pk=987654)
    token = tokens.token_issue(user=user)

    assert "987654" not in token and "uid" not in token
    decodings = _decodings(token)
    assert decodings, "the token decodes (Fernet is base64): the check below looked inside"
    for data in decodings:
        assert b"987654" not in data
        assert b"uid" not in data
    # Not even a stable identifier: two tokens for the same user share nothing visible.
    assert tokens.token_issue(user=user)[10:] != token[10:]


def test_a_tampered_token_is_401(shopper):
    token = tokens.token_issue(user=shopper)
    middle = len(token) // 2
    flipped = "A" if token[middle] != "A" else "B"
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token[:middle]}{flipped}{token[middle + 1 :]}")

    assert _orders(client) == 401
    assert _orders(Client(HTTP_AUTHORIZATION=f"Bearer {token}")) == 200


def test_an_expired_token_is_401(shopper):
    payload = f"{shopper.pk}:{shopper.token_version}".encode()
    fernet = tokens._fernet(settings.SECRET_KEY)
    issued_long_ago = int(time.time()) - settings.ACCESS_TOKEN_TTL_SECONDS - 5
    issued_just_now = int(time.time()) - settings.ACCESS_TOKEN_TTL_SECONDS + 60
    expired = fernet.encrypt_at_time(payload, issued_long_ago).decode()
    fresh = fernet.encrypt_at_time(payload, issued_just_now).decode()

    response = Client(HTTP_AUTHORIZATION=f"Bearer {expired}").get("/orders")

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert _orders(Client(HTTP_AUTHORIZATION=f"Bearer {fresh}")) == 200


# -- "Log out everywhere" -----------------------------------------------------------------------


def test_log_out_everywhere_revokes_the_users_tokens_and_no_one_elses(boss_client, http_mock):
    shopper = make_shopper(openid="o-revoked")
    bystander = make_shopper()
    old, other = client_for(shopper), client_for(bystander)
    assert (_orders(old), _orders(other)) == (200, 200)

    response = _log_out_everywhere(boss_client, shopper)

    assert response.status_code == 302
    assert _orders(old) == 401
    assert _orders(other) == 200
    assert User.objects.get(pk=shopper.pk).token_version == shopper.token_version + 1
    # The shopper's phone logs in again on the 401, and the new token works.
    code2session_answer(http_mock, {"openid": "o-revoked", "session_key": "k"})
    login = Client().post("/accounts/login", {"code": "c"}, content_type="application/json")
    assert login.status_code == 200
    assert _orders(Client(HTTP_AUTHORIZATION=f"Bearer {login.json()['token']}")) == 200


def test_log_out_everywhere_says_what_it_did(boss_client):
    users = [make_shopper(), make_shopper()]

    page = boss_client.get(_log_out_everywhere(boss_client, *users)["Location"]).content.decode()

    assert "2 users logged out everywhere" in page


def test_log_out_everywhere_needs_the_change_user_permission():
    shopper = make_shopper()
    token_client = client_for(shopper)
    clerk = User.objects.create_user("clerk", password="long-pass-123", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_user"))
    staff = Client()
    staff.force_login(clerk)

    assert ACTION not in staff.get(USERS).content.decode()
    _log_out_everywhere(staff, shopper)

    assert User.objects.get(pk=shopper.pk).token_version == shopper.token_version
    assert _orders(token_client) == 200

    clerk.user_permissions.add(Permission.objects.get(codename="change_user"))
    assert ACTION in staff.get(USERS).content.decode()
    _log_out_everywhere(staff, shopper)
    assert _orders(token_client) == 401


def test_revoking_counts_in_the_database_not_from_a_stale_copy():
    shopper = make_shopper()
    stale = User.objects.get(pk=shopper.pk)

    assert user_tokens_revoke(users=[shopper]) == 1
    assert user_tokens_revoke(users=User.objects.filter(pk=stale.pk)) == 1

    assert User.objects.get(pk=shopper.pk).token_version == 2
