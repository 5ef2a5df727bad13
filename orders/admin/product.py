"""Products. Stock is never typed as a number on an existing product: shoppers take units
while the page is open, so staff add or remove units and the change is applied to the
stock as it is when they save. Every change staff make here shows in the catalogue
(GET /products) as soon as it commits."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.money import yuan
from core.validators import refuse_control_characters
from orders.models import Product
from orders.selectors import catalogue_cache_invalidate
from orders.services import product_stock_adjust, product_stock_limit, product_stock_unlimit

THUMBNAIL_PIXELS = 64


class ProductAddForm(forms.ModelForm):
    """A new product: nobody can have ordered it yet, so its stock is typed as a number."""

    class Meta:
        model = Product
        fields = ["name", "description", "price", "stock", "image", "requires_shipping", "active"]

    def clean_name(self) -> str:
        # The name is sent to WeChat as the order's body (in XML).
        return refuse_control_characters(self.cleaned_data["name"])


class ProductChangeForm(ProductAddForm):
    unlimited = forms.BooleanField(
        label=gettext_lazy("Unlimited stock"),
        required=False,
        help_text=gettext_lazy("Ticked: any quantity can be ordered and no stock is counted."),
    )
    stock_change = forms.IntegerField(
        label=gettext_lazy("Add or remove units"),
        required=False,
        min_value=-(2**31),
        max_value=2**31 - 1,
        help_text=gettext_lazy(
            "Units received (e.g. 20) or taken away (e.g. -2). Added to the stock as it is "
            "when you save, so units ordered meanwhile stay reserved. For a product whose "
            "stock was unlimited, the number of units it now has."
        ),
    )

    class Meta(ProductAddForm.Meta):
        fields = ["name", "description", "price", "image", "requires_shipping", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unlimited"].initial = self.instance.stock is None

    def clean(self):
        cleaned = super().clean()
        unlimited, change = cleaned.get("unlimited"), cleaned.get("stock_change")
        stock = self.instance.stock  # as it is now, not as the page showed it
        if unlimited:
            if change:
                self.add_error("stock_change", _("Untick “Unlimited stock” to count units."))
        elif stock is None:
            if change is None:
                self.add_error(
                    "stock_change",
                    _("Enter how many units there are: the stock was unlimited."),
                )
            elif change < 0:
                self.add_error("stock_change", _("The stock cannot be negative."))
        elif change and stock + change < 0:
            self.add_error(
                "stock_change",
                _("Only %(left)d left to sell: remove at most %(left)d.") % {"left": stock},
            )
        return cleaned


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "name",
        "price_display",
        "stock",
        "requires_shipping",
        "active",
        "updated_at",
    ]
    list_display_links = ["name"]
    list_filter = ["active", "requires_shipping"]
    search_fields = ["name"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ProductChangeForm if obj is not None else ProductAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "description", "price", "stock", "image", "requires_shipping", "active"]
        return [
            "name",
            "description",
            "price",
            "stock_display",
            "unlimited",
            "stock_change",
            "thumbnail",
            "image",
            "requires_shipping",
            "active",
        ]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["stock_display", "thumbnail"]

    def save_model(self, request, obj: Product, form, change: bool) -> None:
        # After the commit: a catalogue request in between would keep the old row under
        # the new cache version (orders.selectors.catalogue_cache_invalidate).
        transaction.on_commit(catalogue_cache_invalidate)
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Not obj.save(): it would write back the stock read with this copy of the row,
        # undoing orders placed since. Only the fields staff changed, then the stock. A
        # new picture is written to the storage by the save (the image field's pre_save).
        editable = ("name", "description", "price", "image", "requires_shipping", "active")
        changed = [name for name in editable if name in form.changed_data]
        if changed:
            obj.save(update_fields=[*changed, "updated_at"])
        self._save_stock(request, obj, form.cleaned_data)
        obj.refresh_from_db(fields=["stock"])

    def delete_model(self, request, obj: Product) -> None:
        transaction.on_commit(catalogue_cache_invalidate)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        transaction.on_commit(catalogue_cache_invalidate)
        super().delete_queryset(request, queryset)

    def _save_stock(self, request: HttpRequest, product: Product, cleaned: dict) -> None:
        change = cleaned.get("stock_change")
        if cleaned.get("unlimited"):
            if product.stock is not None:
                product_stock_unlimit(product_id=product.pk)
        elif product.stock is None:
            if not product_stock_limit(product_id=product.pk, stock=change):
                self.message_user(
                    request,
                    _("%(product)s: someone else set its stock meanwhile; it was left as is.")
                    % {"product": product},
                    messages.WARNING,
                )
        elif change and not product_stock_adjust(product_id=product.pk, by=change):
            self.message_user(
                request,
                _("%(product)s: the stock was not changed: fewer units were left than removed.")
                % {"product": product},
                messages.WARNING,
            )

    @admin.display(description=gettext_lazy("stock"))
    def stock_display(self, product: Product) -> str:
        if product.stock is None:
            return _("Unlimited")
        return _("%(count)d left to sell (units in unpaid orders already taken off)") % {
            "count": product.stock
        }

    @admin.display(description=gettext_lazy("picture"))
    def thumbnail(self, product: Product) -> str:
        if not product.image:
            return "—"
        # format_html escapes the URL: a stored name is text, never markup.
        return format_html(
            '<img src="{}" alt="" width="{}" height="{}" style="object-fit: cover">',
            product.image.url,
            THUMBNAIL_PIXELS,
            THUMBNAIL_PIXELS,
        )

    @admin.display(description=gettext_lazy("price"), ordering="price")
    def price_display(self, product: Product) -> str:
        return yuan(product.price)
