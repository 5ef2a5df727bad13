"""CSV export of orders: a date range from the order list, or the selected orders.

Rows are streamed as the database hands them over, so a year of orders needs no more
memory than a few hundred. Amounts are yuan as exact decimal strings made from the
integer fen; times are ISO 8601 in Beijing time.
"""

import csv
from collections.abc import Iterable, Iterator
from datetime import date, datetime

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.money import yuan_decimal
from core.privacy import mask_phone
from core.times import shop_timezone, shop_today
from orders.models import Order
from orders.selectors import orders_created_between, orders_with_items

COLUMNS = [
    "out_trade_no",
    "status",
    "total_yuan",
    "openid",
    "created_at",
    "paid_at",
    "transaction_id",
    "items",
    "needs_attention",
    "fulfilment_status",
    "shipped_at",
    "recipient",
    "phone",  # masked: a file travels further than the admin
    "address",
    "postal_code",
    "remark",
]
# Excel opens a UTF-8 file as the local code page unless it starts with a BOM, which
# would garble Chinese product names.
BOM = "\ufeff"
# A cell starting with one of these is run as a formula by spreadsheets (CSV injection);
# product names are typed by staff, so such a cell gets a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _day_field(label: str, help_text: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=help_text,
    )


class ExportRangeForm(forms.Form):
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD``: both days included, Beijing time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The query's names; "from" is a Python keyword, so no class attributes.
        self.fields["from"] = _day_field(_("From"), _("First day (Beijing time)."))
        self.fields["to"] = _day_field(_("To"), _("Last day, included."))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("from") and cleaned.get("to") and cleaned["from"] > cleaned["to"]:
            raise forms.ValidationError(_("The first day comes after the last."))
        return cleaned


class _Echo:
    """A file whose write() hands the line back, for csv.writer in a streaming response."""

    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _time(moment: datetime | None) -> str:
    return (
        timezone.localtime(moment, shop_timezone()).isoformat(timespec="seconds") if moment else ""
    )


def order_csv_row(order: Order) -> list[str]:
    """One order as CSV cells, in COLUMNS order; its items must be prefetched."""
    items = "; ".join(str(item) for item in order.items.all())  # "Tea cup x 2"
    address = order.address if isinstance(order.address, dict) else {}

    def part(key: str) -> str:
        return str(address.get(key) or "").strip()

    place = " ".join(
        p
        for p in (part(k) for k in ("province_name", "city_name", "county_name", "detail_info"))
        if p
    )
    return [
        order.out_trade_no,
        order.status,
        yuan_decimal(order.total_fee),
        _cell(order.openid),
        _time(order.created_at),
        _time(order.paid_at),
        order.transaction_id or "",
        _cell(items),
        "true" if order.needs_attention else "false",
        order.fulfilment_status,
        _time(order.shipped_at),
        # What the shopper typed: cells a spreadsheet could run are defused.
        _cell(part("user_name")),
        mask_phone(part("tel_number")),
        _cell(place),
        _cell(part("postal_code")),
        _cell(order.remark),
    ]


def csv_lines(orders: Iterable[Order]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield BOM + writer.writerow(COLUMNS)
    for order in orders:
        yield writer.writerow(order_csv_row(order))


def csv_response(orders: QuerySet[Order], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(orders_with_items(orders)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ExportAdminMixin:
    """For OrderAdmin: ``export/`` (a date range) and the "Export selected" action."""

    def export_urls(self) -> list[URLPattern]:
        export = self.admin_site.admin_view(self.export_view)
        return [path("export/", export, name="orders_order_export")]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if not request.GET:
            today = shop_today()
            form = ExportRangeForm(initial={"from": today.replace(day=1), "to": today})
            return self._export_page(request, form)
        form = ExportRangeForm(request.GET)
        if not form.is_valid():
            return self._export_page(request, form, status=400)
        start, end = form.cleaned_data["from"], form.cleaned_data["to"]
        orders = orders_created_between(first=start, last=end, tz=shop_timezone())
        return csv_response(orders, _filename(start, end))

    def _export_page(
        self, request: HttpRequest, form: ExportRangeForm, status: int = 200
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("Export orders to CSV"),
            "opts": self.opts,
            "form": form,
            "columns": COLUMNS,
        }
        return TemplateResponse(request, "admin/orders/order/export.html", context, status=status)

    @admin.action(description=gettext_lazy("Export selected to CSV"), permissions=["view"])
    def export_selected_action(self, request: HttpRequest, queryset) -> StreamingHttpResponse:
        stamp = timezone.now().astimezone(shop_timezone()).strftime("%Y%m%d-%H%M%S")
        return csv_response(queryset.order_by("created_at", "pk"), f"orders-selected-{stamp}.csv")


def _filename(start: date, end: date) -> str:
    return f"orders-{start.isoformat()}-to-{end.isoformat()}.csv"
