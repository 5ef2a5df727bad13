from django.conf import settings
from django.core.paginator import Paginator
from django.utils.cache import patch_cache_control
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ErrorSerializer, error_responses
from orders.fulfilment import order_receive
from orders.models import Order, OrderItem, Product, Shipment
from orders.selectors import (
    catalogue_cached,
    order_get_for_user,
    order_list_for_user,
    product_get_active,
    product_list_active,
)


class OrderItemOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderItem
        fields = ["product_id", "product_name", "unit_price", "quantity"]


class ShipmentOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Shipment
        fields = ["logistics_type", "express_company", "tracking_no", "shipped_at", "upload_status"]


class AddressOutputSerializer(serializers.Serializer):
    """The delivery address as wx.chooseAddress gave it; the shopper's own, so in full."""

    user_name = serializers.CharField(required=False)
    tel_number = serializers.CharField(required=False)
    province_name = serializers.CharField(required=False)
    city_name = serializers.CharField(required=False)
    county_name = serializers.CharField(required=False)
    detail_info = serializers.CharField(required=False)
    postal_code = serializers.CharField(required=False)


class OrderOutputSerializer(serializers.ModelSerializer):
    items = OrderItemOutputSerializer(many=True, read_only=True)
    address = AddressOutputSerializer(read_only=True, allow_null=True)
    shipments = ShipmentOutputSerializer(many=True, read_only=True)

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
            "address",
            "remark",
            "fulfilment_status",
            "shipments",
        ]


class IdsFirstPaginator(Paginator):
    """Django's paginator, except that a page finds its rows' ids first and then reads
    those rows by id, in one query (``WHERE id IN (SELECT id … LIMIT … OFFSET …)``).

    An OFFSET walks past every earlier row of the list. Walking the index
    ``order_user_created_id`` for ids only, PostgreSQL reads index entries (an Index Only
    Scan) instead of one table row per order skipped: page 5,000 of a shopper with 10^5
    orders takes ~11 ms instead of ~260 ms (docs/PERFORMANCE.md, "Reads at scale"). Same
    pages, same count, same number of queries as the plain paginator."""

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = self.object_list.prefetch_related(None).values("pk")[bottom:top]
        return self._get_page(self.object_list.filter(pk__in=ids), number, self)


class OrderPagination(PageNumberPagination):
    django_paginator_class = IdsFirstPaginator


@extend_schema_view(
    get=extend_schema(
        responses={200: OrderOutputSerializer(many=True), **error_responses(401, 404)}
    )
)
class OrderListApi(generics.ListAPIView):
    """``GET /orders``: the caller's orders, newest first, 20 a page."""

    serializer_class = OrderOutputSerializer
    pagination_class = OrderPagination

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


class OrderReceiveApi(APIView):
    """``POST /orders/<out_trade_no>/receive``: the shopper confirms the goods arrived."""

    @extend_schema(
        request=None, responses={200: OrderOutputSerializer, **error_responses(401, 404, 409)}
    )
    def post(self, request, out_trade_no: str):
        order = order_get_for_user(user=request.user, out_trade_no=out_trade_no)
        if order is None:
            raise NotFound("No such order.")
        order_receive(order=order)  # ReceiveRefused answers 409 (core.api)
        return Response(OrderOutputSerializer(order).data)


# -- the catalogue (docs/INVARIANTS.md §8) ------------------------------------------------------


class ProductOutputSerializer(serializers.ModelSerializer):
    image = serializers.SerializerMethodField(help_text="Absolute URL of the picture, or null.")

    class Meta:
        model = Product
        fields = ["id", "name", "description", "price", "stock", "image", "requires_shipping"]
        read_only_fields = fields  # an answer: every field is always there
        extra_kwargs = {
            "price": {"help_text": "In fen."},
            "stock": {"help_text": "Units left to sell; null = unlimited."},
        }

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_image(self, product: Product) -> str | None:
        if not product.image:
            return None
        # Relative for files under MEDIA_URL, already absolute from a bucket (left as is).
        return self.context["request"].build_absolute_uri(product.image.url)


class CatalogueApiMixin:
    """Public and cheap to serve: no token is read (a stale one must not turn a browse into
    a 401), answers may be kept CATALOGUE_CACHE_SECONDS by clients and proxies, and are kept
    that long in the shared cache (orders.selectors.catalogue_cached)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    serializer_class = ProductOutputSerializer

    def answer(self, request, build) -> Response:
        seconds = settings.CATALOGUE_CACHE_SECONDS
        key = self.cache_key(request)
        data = build() if key is None else catalogue_cached(key=key, seconds=seconds, build=build)
        response = Response(data)
        patch_cache_control(response, public=True, max_age=seconds)
        return response

    @staticmethod
    def cache_key(request) -> str | None:
        """The absolute URL (the answer's links and picture URLs carry scheme and host),
        when it asks for nothing but a page: other query parameters (tracking tags) are
        answered but not kept, so they can neither fill the cache nor reach a copy others
        are served."""
        params = request.query_params
        if set(params) - {"page"} or len(params.getlist("page")) > 1:
            return None
        return request.build_absolute_uri()


@extend_schema_view(
    get=extend_schema(
        responses={
            200: ProductOutputSerializer(many=True),
            404: OpenApiResponse(ErrorSerializer, description="No such page."),
        },
        auth=[],
    )
)
class ProductListApi(CatalogueApiMixin, generics.ListAPIView):
    """``GET /products``: products on sale, 20 a page; no token needed."""

    def get_queryset(self):
        return product_list_active()

    def list(self, request, *args, **kwargs):
        return self.answer(request, lambda: super(ProductListApi, self).list(request).data)


@extend_schema_view(
    get=extend_schema(
        responses={
            200: ProductOutputSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No such product on sale."),
        },
        auth=[],
    )
)
class ProductDetailApi(CatalogueApiMixin, generics.RetrieveAPIView):
    """``GET /products/<id>``: one product on sale; no token needed."""

    def retrieve(self, request, *args, product_id: int, **kwargs):
        def build():
            product = product_get_active(product_id=product_id)
            if product is None:
                raise NotFound("No such product.")
            return self.get_serializer(product).data

        return self.answer(request, build)
