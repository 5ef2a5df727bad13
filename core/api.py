"""Error shapes shared by every JSON endpoint (docs/INVARIANTS.md §4).

Every error body has a human-readable ``detail``; validation errors also carry
``errors``, keyed by the offending field.
"""

from collections.abc import Mapping

from django.http import JsonResponse
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import DomainError


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know.

    A client that sends ``price`` or ``openid`` must learn that the server ignores them,
    rather than believe they counted (the price and the payer are always the server's).
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields), key=str)
            if unknown:
                raise serializers.ValidationError(
                    {_printable_name(name): ["Unknown field."] for name in unknown}
                )
        return super().to_internal_value(data)


def _printable_name(name: object) -> str:
    """An unknown field's name as the error may repeat it: JSON can carry a lone surrogate
    (``"\\ud800"``) that no UTF-8 answer can, and a name can be megabytes long."""
    text = str(name).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 64 else text[:63] + "…"


class ErrorSerializer(serializers.Serializer):
    """The shape of every error answer (for the OpenAPI schema)."""

    detail = serializers.CharField(help_text="What went wrong, for a person.")
    errors = serializers.DictField(required=False, help_text="Validation errors by field.")
    err_code = serializers.CharField(required=False, help_text="WeChat Pay's err_code.")
    errcode = serializers.IntegerField(required=False, help_text="WeChat login's errcode.")
    total_fee = serializers.IntegerField(required=False, help_text="The server's total (fen).")
    out_trade_no = serializers.CharField(required=False)
    status = serializers.CharField(required=False, help_text="The order's status.")
    fulfilment_status = serializers.CharField(
        required=False, help_text="The order's fulfilment state."
    )


_ERROR_MEANINGS = {
    400: "Invalid input (the field is named in `errors`).",
    401: "Missing, malformed or expired bearer token.",
    403: "Not allowed.",
    404: "No such order (or not yours), or no such page.",
    409: "Conflicts with the order's state, the price or the stock.",
    429: "Too many requests.",
    502: "WeChat refused or is unreachable.",
    503: "WeChat settings are missing on the server.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_MEANINGS[code]) for code in codes
    }


def api_error(status_code: int, detail: str, **extra) -> Response:
    body = {"detail": detail}
    body.update({key: value for key, value in extra.items() if value not in (None, "")})
    return Response(body, status=status_code)


def exception_handler(exc, context):
    """The one place an error becomes HTTP: domain errors (core.errors) answer their own
    status and fields; DRF's errors get the same shape."""
    if isinstance(exc, DomainError):
        return api_error(exc.status_code, str(exc), **exc.extra())
    response = drf_exception_handler(exc, context)
    if response is not None and not (isinstance(response.data, dict) and "detail" in response.data):
        response.data = {"detail": _first_message(response.data), "errors": response.data}
    return response


def _first_message(errors, path: str = "") -> str:
    """``"items.0.quantity: Ensure this value is greater than or equal to 1."``"""
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = key if key != "non_field_errors" else ""
            return _first_message(value, f"{path}.{name}" if path and name else path or name)
    if isinstance(errors, list):
        for index, value in enumerate(errors):
            if isinstance(value, dict | list) and value:
                return _first_message(value, f"{path}.{index}" if path else str(index))
            if value:
                return f"{path}: {value}" if path else str(value)
    return f"{path}: invalid" if path else "Invalid input."


def json_not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def json_bad_request(request, exception=None):
    return JsonResponse({"detail": "Bad request."}, status=400)


def json_server_error(request):
    return JsonResponse({"detail": "Server error."}, status=500)
