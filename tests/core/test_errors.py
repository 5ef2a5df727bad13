"""core.errors: a domain error carries its HTTP meaning, and core.api's one exception
handler answers every one of them, whatever layer raised it."""

from django.core.exceptions import ImproperlyConfigured

from core.api import exception_handler
from core.config import WeChatNotConfigured
from core.errors import DomainError


class Refused(DomainError):
    status_code = 409

    def __init__(self, message: str, number: str):
        super().__init__(message)
        self.number = number

    def extra(self) -> dict:
        return {"out_trade_no": self.number, "err_code": None}


def test_a_domain_error_answers_its_status_detail_and_extra_fields():
    response = exception_handler(Refused("Not now.", "N1"), {})

    # Empty extra fields are left out, as they always were.
    assert (response.status_code, response.data) == (
        409,
        {"detail": "Not now.", "out_trade_no": "N1"},
    )


def test_a_domain_error_that_names_no_status_is_a_400():
    class Unnamed(DomainError):
        pass

    response = exception_handler(Unnamed("Bad input."), {})

    assert (response.status_code, response.data) == (400, {"detail": "Bad input."})


def test_missing_settings_are_503_and_still_improperly_configured():
    exc = WeChatNotConfigured("WeChat Pay is not configured: set WECHAT_MCH_KEY.")

    response = exception_handler(exc, {})

    assert isinstance(exc, ImproperlyConfigured)
    assert (response.status_code, response.data) == (
        503,
        {"detail": "WeChat Pay is not configured: set WECHAT_MCH_KEY."},
    )


def test_other_exceptions_are_left_to_django_and_drf():
    assert exception_handler(RuntimeError("a bug"), {}) is None
