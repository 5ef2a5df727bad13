import logging
import re
from collections.abc import Callable

from django.core.validators import RegexValidator
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictSerializer, api_error, error_responses
from core.client_ip import client_ip
from core.throttling import FailOpenScopedRateThrottle
from core.validators import refuse_control_characters_in_line, refuse_control_characters_in_text
from orders.models import Order
from orders.selectors import order_get_for_user
from orders.services import DeliveryAddress, OrderLine, order_create
from orders.views import OrderOutputSerializer
from payments.lifecycle import OrderPaidWhileClosing, order_close
from payments.middleware import skips_middleware
from payments.models import PaymentNotification
from payments.notify import (
    notification_receive,
    notification_receive_v3,
    refund_notification_receive,
    refund_notification_receive_v3,
    v3_reply_status,
)
from payments.services import payment_prepare, payment_require_configured
from wechat.pay_v2 import MAX_BODY_BYTES
from wechat.pay_v3 import MAX_NOTIFY_BYTES

logger = logging.getLogger(__name__)

# Exactly WeChat's expected bytes (docs/protocol/wechat-pay-v2.md §5.4): no declaration, no
# whitespace.
NOTIFY_SUCCESS = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)
NOTIFY_FAIL = (
    b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[%s]]></return_msg></xml>"
)


class OrderLineInputSerializer(StrictSerializer):
    product_id = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    quantity = serializers.IntegerField(min_value=1, max_value=9999)


def _line(max_length: int, *validators, **kwargs) -> serializers.CharField:
    """One line a shopper typed: trimmed, not blank, no control characters. Refusals never
    repeat the value (it may be a phone number)."""
    return serializers.CharField(
        max_length=max_length,
        validators=[refuse_control_characters_in_line, *validators],
        **kwargs,
    )


PHONE = RegexValidator(r"^[0-9+\- ]+$", "Enter a phone number: digits, +, - and spaces only.")


@extend_schema_serializer(component_name="DeliveryAddressInput")
class AddressInputSerializer(StrictSerializer):
    """What ``wx.chooseAddress`` gives, its keys in snake_case (userName → user_name, …)."""

    user_name = _line(64, help_text="The receiver's name.")
    tel_number = _line(32, PHONE, help_text="The receiver's phone: digits, +, - and spaces.")
    province_name = _line(64)
    city_name = _line(64)
    county_name = _line(64)
    detail_info = _line(256, help_text="Street, building, room.")
    postal_code = _line(16, required=False, allow_blank=True, default="")


class PaymentParamsSerializer(serializers.Serializer):
    """Exactly what wx.requestPayment takes (docs/protocol/wechat-pay-v2.md §4.1,
    docs/protocol/wechat-pay-v3.md §5.1), names and all: spread it in."""

    timeStamp = serializers.CharField(help_text="Unix seconds, as a string.")
    nonceStr = serializers.CharField()
    package = serializers.CharField(help_text="prepay_id=<id>")
    signType = serializers.ChoiceField(
        choices=["MD5", "HMAC-SHA256", "RSA"],
        help_text=(
            "The order's own: MD5 or HMAC-SHA256 for an order placed with WeChat Pay API v2 "
            "(WECHAT_SIGN_TYPE), RSA for one placed with API v3."
        ),
    )
    paySign = serializers.CharField(
        help_text=(
            "v2: MD5 or HMAC-SHA256 of appId, timeStamp, nonceStr, package and signType with "
            "the API key; v3: Base64 SHA256-RSA signature of "
            "appId\\ntimeStamp\\nnonceStr\\npackage\\n with the merchant's private key."
        )
    )


IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


class PaymentOrderApi(APIView):
    """``POST /payment/order``: create an order (201) or pay an unpaid one again (200).

    A new order sent again with the same ``Idempotency-Key`` gets the first one (200).
    Refusals are the services' domain errors, answered by core.api's exception handler.
    """

    # Per shopper: every request may be a unifiedorder call.
    throttle_classes = (FailOpenScopedRateThrottle,)
    throttle_scope = "order"

    @extend_schema_serializer(component_name="PaymentOrderInput")
    class InputSerializer(StrictSerializer):
        items = OrderLineInputSerializer(
            many=True,
            required=False,
            min_length=1,
            max_length=50,
            help_text="A new order, 1 to 50 lines.",
        )
        total_fee = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=2**31 - 1,
            help_text="The total the shopper saw (fen); 409 if the server's differs.",
        )
        out_trade_no = serializers.RegexField(
            r"^[0-9A-Za-z_\-|*]{1,32}$", required=False, help_text="Pay this unpaid order again."
        )
        address = AddressInputSerializer(
            required=False,
            allow_null=True,
            help_text=(
                "A new order's delivery address; required when any product requires_shipping "
                "(400 naming address otherwise), kept when given for virtual products only."
            ),
        )
        remark = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=200,
            validators=[refuse_control_characters_in_text],
            help_text="A new order's note from the shopper, at most 200 characters.",
        )

        def validate(self, attrs):
            if ("items" in attrs) == ("out_trade_no" in attrs):
                raise serializers.ValidationError(
                    "Send either items (a new order) or out_trade_no (pay an existing order)."
                )
            if "out_trade_no" in attrs and ({"address", "remark"} & set(attrs)):
                # Paying again cannot change what was ordered: say so rather than ignore it.
                raise serializers.ValidationError(
                    {
                        name: ["Only for a new order (with items)."]
                        for name in ("address", "remark")
                        if name in attrs
                    }
                )
            return attrs

    @extend_schema_serializer(component_name="PaymentOrderOutput")
    class OutputSerializer(serializers.Serializer):
        out_trade_no = serializers.CharField()
        total_fee = serializers.IntegerField(help_text="fen")
        payment = PaymentParamsSerializer()

    @extend_schema(
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                pattern=IDEMPOTENCY_KEY.pattern.join("^$"),
                description=(
                    "For a new order: a retry with the same key gets the same order (200) "
                    "instead of a second one; the same key with other items is 409."
                ),
            )
        ],
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            **error_responses(400, 401, 403, 404, 409, 429, 502, 503),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            message = "Idempotency-Key must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -."
            return api_error(
                status.HTTP_400_BAD_REQUEST, message, errors={"Idempotency-Key": [message]}
            )
        payment_require_configured()  # 503 before anything is recorded that could not be paid
        if "out_trade_no" in data:
            order, created = self._own_order(request, data["out_trade_no"]), False
        else:
            made = order_create(
                user=request.user,
                lines=[OrderLine(**line) for line in data["items"]],
                client_ip=client_ip(request) or "127.0.0.1",
                expected_total_fee=data.get("total_fee"),
                idempotency_key=key or "",
                address=DeliveryAddress(**data["address"]) if data.get("address") else None,
                remark=data.get("remark", ""),
            )
            # A retry of a request that made its order is paid for as an existing order.
            order, created = made.order, made.created
        params = payment_prepare(order=order)
        return Response(
            {"out_trade_no": order.out_trade_no, "total_fee": order.total_fee, "payment": params},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @staticmethod
    def _own_order(request, out_trade_no: str) -> Order:
        order = order_get_for_user(user=request.user, out_trade_no=out_trade_no)
        if order is None:
            raise NotFound("No such order.")
        return order


class OrderCloseApi(APIView):
    """``POST /orders/<out_trade_no>/close``: the owner gives up an unpaid order."""

    @extend_schema(
        request=None,
        responses={200: OrderOutputSerializer, **error_responses(401, 404, 409, 502, 503)},
    )
    def post(self, request, out_trade_no: str):
        order = order_get_for_user(user=request.user, out_trade_no=out_trade_no)
        if order is None:
            raise NotFound("No such order.")
        result = order_close(order=order)
        if not result.closed:
            # "paid": the payment is recorded; "unpaid": WeChat says paid but it is not
            # settled yet, so the order stays open for staff and reconciliation.
            raise OrderPaidWhileClosing(result.order)
        return Response(OrderOutputSerializer(result.order).data)


@skips_middleware
@csrf_exempt
@require_POST
def wxnotify(request):
    """``POST /payment/wxnotify``: WeChat's payment result. Not in a request transaction, and
    past the session, CSRF and auth middleware (payments.middleware), as are the other
    notifies."""
    return _notify_reply(request, notification_receive)


@skips_middleware
@csrf_exempt
@require_POST
def refundnotify(request):
    """``POST /payment/refundnotify``: WeChat's refund result (docs/protocol/wechat-pay-v2.md
    §7.3), same rules."""
    return _notify_reply(request, refund_notification_receive)


def _notify_reply(request, receive: Callable[..., PaymentNotification]) -> HttpResponse:
    """SUCCESS only once the result is committed: ``receive`` returns after the commit."""
    body = request.read(MAX_BODY_BYTES + 1)
    try:
        notification = receive(body=body, remote_addr=client_ip(request) or None)
    except Exception:
        # Not even the ledger row could be written (database down?). Answer FAIL so
        # WeChat retries, and keep the evidence in the log: a notify holds no secret
        # (a refund notify's req_info is encrypted).
        logger.exception("notify could not be recorded; body=%r", body[:4096])
        return HttpResponse(NOTIFY_FAIL % b"error", content_type="text/xml")
    if notification.replied == "SUCCESS":
        return HttpResponse(NOTIFY_SUCCESS, content_type="text/xml")
    # The outcome is one of our own constants: nothing from the request is echoed.
    return HttpResponse(NOTIFY_FAIL % notification.outcome.encode(), content_type="text/xml")


# -- API v3 (docs/protocol/wechat-pay-v3.md §7, §8.5) ------------------------------------------


@skips_middleware
@csrf_exempt
@require_POST
def wxnotify_v3(request):
    """``POST /payment/v3/wxnotify``: WeChat's payment result, API v3. Not in a request
    transaction."""
    return _notify_v3_reply(request, notification_receive_v3)


@skips_middleware
@csrf_exempt
@require_POST
def refundnotify_v3(request):
    """``POST /payment/v3/refundnotify``: WeChat's refund result, API v3, same rules."""
    return _notify_v3_reply(request, refund_notification_receive_v3)


def _notify_v3_reply(request, receive: Callable[..., PaymentNotification]) -> HttpResponse:
    """204 only once the result is committed (``receive`` returns after the commit);
    otherwise ``{"code": "FAIL", "message"}`` with 401, 400 or 500 (v3_reply_status), and
    WeChat sends it again."""
    # The body as received: the signature covers these bytes, never re-encoded JSON.
    body = request.read(MAX_NOTIFY_BYTES + 1)
    try:
        notification = receive(
            body=body, headers=request.headers, remote_addr=client_ip(request) or None
        )
    except Exception:
        # Not even the ledger row could be written (database down?): 500, so WeChat
        # retries, and the evidence in the log. A v3 notify holds no secret: its resource
        # is encrypted, its headers are a public signature.
        logger.exception(
            "v3 notify could not be recorded; serial=%r body=%r",
            request.headers.get("Wechatpay-Serial", "")[:64],
            body[:4096],
        )
        return _v3_fail(500, "error")
    status_code = v3_reply_status(notification)
    if status_code == 204:
        return HttpResponse(status=204)
    # The outcome is one of our own constants: nothing from the request is echoed.
    return _v3_fail(status_code, notification.outcome)


def _v3_fail(status_code: int, message: str) -> JsonResponse:
    return JsonResponse({"code": "FAIL", "message": message}, status=status_code)
