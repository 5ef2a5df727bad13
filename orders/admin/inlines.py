"""What an order's page shows below it: its lines, read-only (payments adds its own)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from core.money import yuan
from orders.models import OrderItem


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class OrderItemInline(ReadOnlyInline):
    model = OrderItem
    fields = ["product", "product_name", "unit_price_display", "quantity", "line_total_display"]
    readonly_fields = fields

    @admin.display(description=_("unit price"))
    def unit_price_display(self, item: OrderItem) -> str:
        return yuan(item.unit_price)

    @admin.display(description=_("line total"))
    def line_total_display(self, item: OrderItem) -> str:
        return yuan(item.line_total)
