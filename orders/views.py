from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.models import Order, OrderItem
from orders.selectors import order_get_for_user, order_list_for_user
from payments.lifecycle import OrderNotClosable, order_close
from payments.wxpay import WxPayError
from shopsite.api import api_error, error_responses, wechat_pay_error


class OrderItemOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderItem
        fields = ["product_id", "product_name", "unit_price", "quantity"]


class OrderOutputSerializer(serializers.ModelSerializer):
    items = OrderItemOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "out_trade_no",
            "status",
            "total_fee",
            "body",
            "items",
            "created_at",
            "expires_at",
            "paid_at",
            "transaction_id",
        ]


@extend_schema_view(
    get=extend_schema(
        responses={200: OrderOutputSerializer(many=True), **error_responses(401, 404)}
    )
)
class OrderListApi(generics.ListAPIView):
    """``GET /orders``: the caller's orders, newest first, 20 a page."""

    serializer_class = OrderOutputSerializer

    def get_queryset(self):
        return order_list_for_user(user=self.request.user)


@extend_schema_view(
    get=extend_schema(responses={200: OrderOutputSerializer, **error_responses(401, 404)})
)
class OrderDetailApi(generics.RetrieveAPIView):
    """``GET /orders/<out_trade_no>``: one of the caller's own orders."""

    serializer_class = OrderOutputSerializer

    def get_object(self):
        order = order_get_for_user(user=self.request.user, out_trade_no=self.kwargs["out_trade_no"])
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
        try:
            result = order_close(order=order)
        except OrderNotClosable as exc:
            return api_error(status.HTTP_409_CONFLICT, str(exc), status=exc.status)
        except WxPayError as exc:
            return wechat_pay_error("WeChat Pay could not close the order", exc)
        if not result.closed:
            # "paid": the payment is recorded; "unpaid": WeChat says paid but it is not
            # settled yet, so the order stays open for staff and reconciliation.
            return api_error(
                status.HTTP_409_CONFLICT,
                "WeChat reports the order paid meanwhile; it cannot be closed.",
                status=result.order.status,
            )
        return Response(OrderOutputSerializer(result.order).data)
