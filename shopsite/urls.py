import re
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.views import LoginApi
from orders.views import (
    OrderDetailApi,
    OrderListApi,
    OrderReceiveApi,
    ProductDetailApi,
    ProductListApi,
)
from payments.views import (
    OrderCloseApi,
    PaymentOrderApi,
    refundnotify,
    refundnotify_v3,
    wxnotify,
    wxnotify_v3,
)
from shipping.views import message as wechat_message
from shopsite.health import healthz

# No trailing slashes (docs/INVARIANTS.md §4).
urlpatterns = [
    path("accounts/login", LoginApi.as_view(), name="login"),
    path("payment/order", PaymentOrderApi.as_view(), name="payment-order"),
    path("payment/wxnotify", wxnotify, name="wxnotify"),
    path("payment/refundnotify", refundnotify, name="refundnotify"),
    path("payment/v3/wxnotify", wxnotify_v3, name="wxnotify-v3"),
    path("payment/v3/refundnotify", refundnotify_v3, name="refundnotify-v3"),
    path("products", ProductListApi.as_view(), name="product-list"),
    # <int:…> matches ASCII digits only: anything else is the JSON 404 of handler404.
    path("products/<int:product_id>", ProductDetailApi.as_view(), name="product-detail"),
    path("orders", OrderListApi.as_view(), name="order-list"),
    path("orders/<str:out_trade_no>", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:out_trade_no>/close", OrderCloseApi.as_view(), name="order-close"),
    path("orders/<str:out_trade_no>/receive", OrderReceiveApi.as_view(), name="order-receive"),
    path("wechat/message", wechat_message, name="wechat-message"),
    path("healthz", healthz, name="healthz"),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # The language switch in admin's header (POST, CSRF-checked); before admin's catch-all.
    path("admin/i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]

# Development and the demo only (SERVE_MEDIA): production serves MEDIA_URL from nginx or
# a bucket (docs/DEPLOY.md). serve() refuses paths outside MEDIA_ROOT.
if settings.SERVE_MEDIA and not urlsplit(settings.MEDIA_URL).netloc:
    urlpatterns.append(
        re_path(
            rf"^{re.escape(settings.MEDIA_URL.lstrip('/'))}(?P<path>.+)$",
            serve,
            {"document_root": settings.MEDIA_ROOT},
            name="media",
        )
    )

handler400 = "core.api.json_bad_request"
handler404 = "core.api.json_not_found"
handler500 = "core.api.json_server_error"
