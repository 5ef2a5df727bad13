from django.contrib.auth import get_user_model
from django.views.decorators.debug import sensitive_variables
from rest_framework import authentication, exceptions

from accounts.tokens import InvalidToken, token_claims


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` with tokens from ``accounts.tokens``."""

    keyword = "Bearer"

    # The bearer token is a credential: no error report shows it.
    @sensitive_variables("header", "token")
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            token = header[1].decode("ascii")
            user_id, version = token_claims(token)
        except (UnicodeDecodeError, InvalidToken) as exc:
            message = str(exc) if isinstance(exc, InvalidToken) else "Token is invalid."
            raise exceptions.AuthenticationFailed(message) from None
        # The version check revokes tokens issued before "Log out everywhere".
        user = (
            get_user_model()
            .objects.filter(pk=user_id, is_active=True, token_version=version)
            .first()
        )
        if user is None:
            raise exceptions.AuthenticationFailed("Token is invalid.")
        return user, token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return self.keyword
