from django.contrib.admin.apps import AdminConfig


class ShopAdminConfig(AdminConfig):
    """``django.contrib.admin`` whose default site (``admin.site``) is the shop's own, so
    every ``@admin.register`` and ``admin.site.urls`` stay as they are."""

    default_site = "shopsite.admin_site.ShopAdminSite"
