"""Bearer tokens: signed, self-contained and short-lived.

A token is ``django.core.signing`` output over the user's id, time-stamped by the
signer, so checking one costs no database query beyond loading the user, and any
app server with the same ``DJANGO_SECRET_KEY`` accepts it. Its lifetime is
``ACCESS_TOKEN_TTL_SECONDS``; the mini-program logs in again when it gets a 401.
"""

from django.conf import settings
from django.core import signing

_SALT = "accounts.access-token"


class InvalidToken(Exception):
    pass


def token_issue(*, user_id: int) -> str:
    return signing.dumps({"uid": user_id}, salt=_SALT, compress=False)


def token_user_id(token: str) -> int:
    """The user id a token was issued for; ``InvalidToken`` if forged, garbled or expired."""
    try:
        payload = signing.loads(token, salt=_SALT, max_age=settings.ACCESS_TOKEN_TTL_SECONDS)
    except signing.SignatureExpired:
        raise InvalidToken("Token has expired.") from None
    except signing.BadSignature:
        raise InvalidToken("Token is invalid.") from None
    uid = payload.get("uid") if isinstance(payload, dict) else None
    if not isinstance(uid, int):
        raise InvalidToken("Token is invalid.")
    return uid
