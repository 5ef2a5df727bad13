from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.views import LoginApi
from orders.views import OrderDetailApi, OrderListApi
from payments.views import OrderCloseApi, PaymentOrderApi, refundnotify, wxnotify
from shopsite.health import healthz

# No trailing slashes (docs/INVARIANTS.md §4).
urlpatterns = [
    path("accounts/login", LoginApi.as_view(), name="login"),
    path("payment/order", PaymentOrderApi.as_view(), name="payment-order"),
    path("payment/wxnotify", wxnotify, name="wxnotify"),
    path("payment/refundnotify", refundnotify, name="refundnotify"),
    path("orders", OrderListApi.as_view(), name="order-list"),
    path("orders/<str:out_trade_no>", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:out_trade_no>/close", OrderCloseApi.as_view(), name="order-close"),
    path("healthz", healthz, name="healthz"),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # The language switch in admin's header (POST, CSRF-checked); before admin's catch-all.
    path("admin/i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]

handler400 = "core.api.json_bad_request"
handler404 = "core.api.json_not_found"
handler500 = "core.api.json_server_error"
