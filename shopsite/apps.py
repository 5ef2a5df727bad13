from django.contrib.admin.apps import AdminConfig


class ShopAdminConfig(AdminConfig):
    """``django.contrib.admin`` whose default site (``admin.site``) is the shop's own, so
    every ``@admin.register`` and ``admin.site.urls`` stay as they are."""

    default_site = "shopsite.admin_site.ShopAdminSite"

    def ready(self) -> None:
        super().ready()  # admin's autodiscovery
        # The site's own system checks (WeChat settings, shared cache): the top layer
        # registers them, so no app has to import the site.
        from shopsite import checks  # noqa: F401
