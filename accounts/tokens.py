"""Bearer tokens: opaque, short-lived and revocable per user.

A token is a Fernet token (``cryptography``: AES-128-CBC with HMAC-SHA256 and a
timestamp) over ``"<user id>:<token version>"``, under a key derived from
``DJANGO_SECRET_KEY``. So:

- it is *opaque*: nobody who holds one can read a user id out of it (no sequential ids
  to count shoppers by), and forging or altering one is detected;
- it *expires*: Fernet's timestamp is checked against ``ACCESS_TOKEN_TTL_SECONDS``;
- it is *revocable per user*: it carries the user's ``token_version``, compared on each
  request with the row that is loaded anyway; "Log out everywhere" in admin raises the
  version and every token issued before stops working at once (no extra query);
- any app server with the same ``DJANGO_SECRET_KEY`` accepts it (no shared store).
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as FernetInvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from accounts.models import User

_INFO = b"wxshop accounts.access-token v2"


class InvalidToken(Exception):
    pass


# sensitive_variables() hides every variable of these functions and of the
# cryptography frames below them (the Django secret, the derived key, the token) from
# error reports, DEBUG or not (shopsite/error_reports.py).
@lru_cache(maxsize=4)
@sensitive_variables()
def _fernet(secret_key: str) -> Fernet:
    # A key of its own, derived from the Django secret: a token can never be confused with
    # a session cookie or any other value Django signs with the secret itself.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


@sensitive_variables()
def token_issue(*, user: User) -> str:
    payload = f"{user.pk}:{user.token_version}".encode("ascii")
    return _fernet(settings.SECRET_KEY).encrypt(payload).decode("ascii")


@sensitive_variables()
def token_claims(token: str) -> tuple[int, int]:
    """``(user id, token version)``; ``InvalidToken`` if forged, garbled or expired."""
    try:
        payload = _fernet(settings.SECRET_KEY).decrypt(
            token.encode("ascii"), ttl=settings.ACCESS_TOKEN_TTL_SECONDS
        )
    except (FernetInvalidToken, UnicodeEncodeError, ValueError):
        # Fernet does not say whether the signature or the age failed; neither do we.
        raise InvalidToken("Token is invalid or has expired.") from None
    uid, _, version = payload.decode("ascii", errors="replace").partition(":")
    if not (uid.isdigit() and version.isdigit()):
        raise InvalidToken("Token is invalid.")
    return int(uid), int(version)
