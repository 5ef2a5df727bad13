from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from core.money import yuan
from orders.models import Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "price_display", "stock", "active", "updated_at"]
    list_filter = ["active"]
    search_fields = ["name"]

    @admin.display(description=_("price"), ordering="price")
    def price_display(self, product: Product) -> str:
        return yuan(product.price)
