"""The admin site: Django's, with the shop's name and a dashboard on the index page."""

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from shopsite.dashboard import dashboard_for


class ShopAdminSite(admin.AdminSite):
    site_header = _("Shop administration")
    site_title = _("Shop admin")
    index_title = _("Dashboard")
    # Extends the stock admin/index.html: the dashboard above the usual list of models.
    index_template = "admin/shop_index.html"

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        context = {"dashboard": dashboard_for(request.user), **(extra_context or {})}
        return super().index(request, extra_context=context)
