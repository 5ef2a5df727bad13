"""URL configuration for peersite project (startproject's, plus the notify)."""

from django.contrib import admin
from django.urls import path
from shop.views import wxnotify

urlpatterns = [
    path("admin/", admin.site.urls),
    path("payment/wxnotify", wxnotify),
]
