"""Error shapes shared by every JSON endpoint (DESIGN §4).

Every error body has a human-readable ``detail``; validation errors also carry
``errors``, keyed by the offending field.
"""

from collections.abc import Mapping

from django.http import JsonResponse
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from shopsite.wechat import WeChatNotConfigured


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know.

    A client that sends ``price`` or ``openid`` must learn that the server ignores them,
    rather than believe they counted (the price and the payer are always the server's).
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def api_error(status_code: int, detail: str, **extra) -> Response:
    body = {"detail": detail}
    body.update({key: value for key, value in extra.items() if value not in (None, "")})
    return Response(body, status=status_code)


def exception_handler(exc, context):
    if isinstance(exc, WeChatNotConfigured):
        return api_error(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc))
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
