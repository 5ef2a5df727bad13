from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound

from core.api import error_responses
from orders.models import Order, OrderItem
from orders.selectors import order_get_for_user, order_list_for_user


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
