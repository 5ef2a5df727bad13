"""Shipping in admin: "Ship…" on a paid order's page, "Ship from CSV…" on the order list,
and what the order page shows of fulfilment (address, remark, status, shipments).

Both pages call ``orders.fulfilment``, which ships an order once whatever is posted. The
"Ship…" page carries the order's state as it was shown: when the order changed meanwhile
(refunded, closed, shipped by someone else) the form is refused with a message rather than
acted on; the same page posted twice ships once.

Staff who may change orders see the shopper's phone number in full (they ship); staff who
may only look see it masked.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from core.display import AMBER, BLUE, GREEN, GREY, badge, moment
from core.privacy import mask_phone
from orders.admin.inlines import ReadOnlyInline
from orders.fulfilment import (
    CSV_HEADER,
    CSV_MAX_BYTES,
    CSV_MAX_LINES,
    CsvLineStatus,
    CsvRefused,
    ShipRefused,
    order_ship,
    shipment_details_clean,
    shipments_from_csv,
)
from orders.models import FulfilmentStatus, Order, Shipment
from orders.signals import shipment_upload_requested

ADDRESS_FULL = "address_display"
ADDRESS_MASKED = "address_masked_display"
# The order page's fields for fulfilment (a fieldset of OrderAdmin's).
FULFILMENT_FIELDS = [
    "fulfilment_display",
    ADDRESS_FULL,
    "remark",
    "shipped_at",
    "received_at",
]
READONLY_FIELDS = [*FULFILMENT_FIELDS, ADDRESS_MASKED]

FULFILMENT_COLOURS = {
    FulfilmentStatus.UNFULFILLED: AMBER,  # paid and waiting: see fulfilment_badge
    FulfilmentStatus.SHIPPED: BLUE,
    FulfilmentStatus.RECEIVED: GREEN,
}
CSV_LINE_COLOURS = {
    CsvLineStatus.SHIPPED: GREEN,
    CsvLineStatus.ALREADY_SHIPPED: GREY,
    CsvLineStatus.FAILED: "#b42318",
}


def fulfilment_badge(order: Order) -> SafeString:
    # "Not shipped" only calls for action on a paid order.
    waiting = order.fulfilment_status == FulfilmentStatus.UNFULFILLED
    colour = AMBER if waiting and order.status == Order.Status.PAID else GREY
    if not waiting:
        colour = FULFILMENT_COLOURS.get(order.fulfilment_status, GREY)
    return badge(order.get_fulfilment_status_display(), colour)


def shown_state(order: Order) -> str:
    """What the "Ship…" page carries back: the order's state when it was shown."""
    return f"{order.status}:{order.fulfilment_status}"


def can_be_shipped(order: Order) -> bool:
    return order.status == Order.Status.PAID and (
        order.fulfilment_status == FulfilmentStatus.UNFULFILLED
    )


def address_lines(order: Order, *, masked: bool) -> list[str]:
    """The address as a label prints it: name and phone, the place, the postcode."""
    address = order.address if isinstance(order.address, dict) else {}

    def part(key: str) -> str:
        return str(address.get(key) or "").strip()

    phone = mask_phone(part("tel_number")) if masked else part("tel_number")
    place = ("province_name", "city_name", "county_name", "detail_info")
    lines = [
        " ".join(p for p in (part("user_name"), phone) if p),
        " ".join(p for p in (part(key) for key in place) if p),
        part("postal_code"),
    ]
    return [line for line in lines if line]


class ShipmentInline(ReadOnlyInline):
    model = Shipment
    fields = [
        "logistics_type",
        "express_company",
        "tracking_no",
        "shipped",
        "shipped_by",
        "upload_status",
        "upload_attempts",
        "upload_next",
        "uploaded",
        "upload_error",
    ]
    readonly_fields = fields

    @admin.display(description=gettext_lazy("shipped at"))
    def shipped(self, shipment: Shipment) -> str:
        return moment(shipment.shipped_at)

    @admin.display(description=gettext_lazy("next upload attempt"))
    def upload_next(self, shipment: Shipment) -> str:
        if shipment.upload_status != Shipment.UploadStatus.PENDING:
            return "—"
        return moment(shipment.upload_next_at) if shipment.upload_next_at else _("now")

    @admin.display(description=gettext_lazy("uploaded at"))
    def uploaded(self, shipment: Shipment) -> str:
        return moment(shipment.uploaded_at)


class ShipForm(forms.Form):
    logistics_type = forms.ChoiceField(
        label=gettext_lazy("How it ships"),
        choices=Shipment.LogisticsType.choices,
        initial=Shipment.LogisticsType.EXPRESS,
    )
    express_company = forms.CharField(
        label=gettext_lazy("Express company"),
        required=False,
        max_length=200,  # the service says what is wrong with a long one
        help_text=gettext_lazy("WeChat's code of the company, e.g. SF, YTO, ZTO (express only)."),
    )
    tracking_no = forms.CharField(
        label=gettext_lazy("Tracking number"),
        required=False,
        max_length=200,
        help_text=gettext_lazy("Express only: letters, digits and dashes."),
    )
    shown_state = forms.CharField(widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            details = shipment_details_clean(
                logistics_type=cleaned["logistics_type"],
                express_company=cleaned["express_company"],
                tracking_no=cleaned["tracking_no"],
            )
        except ShipRefused as exc:
            self.add_error(exc.field or None, str(exc))
            return cleaned
        cleaned["express_company"], cleaned["tracking_no"] = (
            details.express_company,
            details.tracking_no,
        )
        return cleaned


class ShipCsvForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Warehouse file (CSV)"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Here, not on the class: in the language of the request.
        self.fields["file"].help_text = _(
            "UTF-8, at most %(size)d MB and %(lines)s lines; the first line is the header."
        ) % {"size": CSV_MAX_BYTES // (1024 * 1024), "lines": f"{CSV_MAX_LINES:,}"}


class ShippingAdminMixin:
    """For OrderAdmin: the "Ship…" and "Ship from CSV…" pages and the fulfilment fields."""

    def shipping_urls(self) -> list[URLPattern]:
        ship = self.admin_site.admin_view(self.ship_view)
        ship_csv = self.admin_site.admin_view(self.ship_csv_view)
        return [
            path("ship-csv/", ship_csv, name="orders_order_ship_csv"),
            path("<path:object_id>/ship/", ship, name="orders_order_ship"),
        ]

    def has_ship_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return self.has_change_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = {"can_ship": self.has_ship_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def changelist_view(self, request, extra_context=None):
        context = {"can_ship": self.has_ship_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Here rather than in OrderAdmin.actions, which payments' admin lists anew.
        if IS_POPUP_VAR not in request.GET and self.has_change_permission(request):
            action = ShippingAdminMixin.retry_upload_action
            name = "retry_upload_action"
            actions[name] = (action, name, action.short_description)
        return actions

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        # Staff who only look see the phone number masked.
        return [
            (
                name,
                {
                    **options,
                    "fields": [
                        ADDRESS_MASKED if field == ADDRESS_FULL else field
                        for field in options["fields"]
                    ],
                },
            )
            for name, options in fieldsets
        ]

    # -- the order page's fields -----------------------------------------------------------

    @admin.display(description=gettext_lazy("fulfilment"), ordering="fulfilment_status")
    def fulfilment_display(self, order: Order) -> SafeString:
        return fulfilment_badge(order)

    @admin.display(description=gettext_lazy("delivery address"))
    def address_display(self, order: Order) -> str:
        return self._address(order, masked=False)

    @admin.display(description=gettext_lazy("delivery address"))
    def address_masked_display(self, order: Order) -> str:
        return self._address(order, masked=True)

    @staticmethod
    def _address(order: Order, *, masked: bool) -> str:
        lines = address_lines(order, masked=masked)
        if not lines:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    # -- "Retry upload to WeChat now" (an action on the order list) ----------------------------

    @admin.action(description=gettext_lazy("Retry upload to WeChat now"), permissions=["change"])
    def retry_upload_action(self, request: HttpRequest, queryset) -> None:
        """Failed and waiting uploads of the selected orders, tried again now. The shipping
        app does it (``orders.signals.shipment_upload_requested``; orders imports nothing of
        it); the order page shows the result once WeChat answered."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        ids = list(
            Shipment.objects.filter(
                order__in=queryset,
                upload_status__in=[Shipment.UploadStatus.FAILED, Shipment.UploadStatus.PENDING],
            ).values_list("pk", flat=True)
        )
        if not ids:
            self.message_user(
                request,
                _("The selected orders have no upload to WeChat that failed or waits."),
                messages.WARNING,
            )
            return
        answers = shipment_upload_requested.send_robust(sender=Shipment, shipment_ids=ids)
        queued = sum(answer for _receiver, answer in answers if isinstance(answer, int))
        if not queued:
            self.message_user(
                request, _("Nothing was queued: uploads to WeChat are not set up."), messages.ERROR
            )
            return
        self.message_user(
            request,
            ngettext(
                "%(count)d upload to WeChat queued: the order page shows how it went.",
                "%(count)d uploads to WeChat queued: the order pages show how they went.",
                queued,
            )
            % {"count": queued},
            messages.SUCCESS,
        )

    # -- "Ship…" -------------------------------------------------------------------------------

    def ship_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_ship_permission(request):
            raise PermissionDenied
        order = self.get_object(request, object_id)
        if order is None:
            raise Http404(_("No such order."))
        change_url = reverse("admin:orders_order_change", args=[order.pk])
        if request.method != "POST":
            if not can_be_shipped(order):
                self.message_user(request, self._not_shippable(order), messages.WARNING)
                return HttpResponseRedirect(change_url)
            form = ShipForm(initial={"shown_state": shown_state(order)})
        else:
            form = ShipForm(request.POST)
            if form.is_valid():
                self._ship(request, order, form)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Ship order %(number)s") % {"number": order.out_trade_no},
            "opts": self.opts,
            "order": order,
            "form": form,
            "address": address_lines(order, masked=False),
            "items": list(order.items.all()),
        }
        return TemplateResponse(request, "admin/orders/order/ship.html", context)

    def _ship(self, request: HttpRequest, order: Order, form: ShipForm) -> None:
        cleaned = form.cleaned_data
        stale = cleaned["shown_state"] != shown_state(order)
        if stale and order.fulfilment_status == FulfilmentStatus.UNFULFILLED:
            # Refunded or closed while the page was open: staff decide again, seeing it.
            self.message_user(request, self._changed(order), messages.ERROR)
            return
        try:
            result = order_ship(
                order=order,
                logistics_type=cleaned["logistics_type"],
                express_company=cleaned["express_company"],
                tracking_no=cleaned["tracking_no"],
                shipped_by=request.user,
            )
        except ShipRefused as exc:
            text = _("%(order)s was not shipped: %(reason)s") % {"order": order, "reason": exc}
            if stale:
                text = f"{self._changed(order)} {exc}"
            self.message_user(request, text, messages.ERROR)
            return
        shipment = result.shipment
        how = " ".join(
            part
            for part in (
                shipment.get_logistics_type_display(),
                shipment.express_company,
                shipment.tracking_no,
            )
            if part
        )
        # The shipment itself records who shipped and when (shown in the order's page).
        if result.shipped:
            self.message_user(
                request,
                _("%(order)s shipped: %(how)s.") % {"order": order, "how": how},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                _("%(order)s had already shipped just so (%(how)s): nothing was shipped twice.")
                % {"order": order, "how": how},
                messages.INFO,
            )

    @staticmethod
    def _changed(order: Order) -> str:
        return _(
            "%(order)s changed while the page was open (now %(status)s, %(fulfilment)s): "
            "nothing was shipped."
        ) % {
            "order": order,
            "status": order.get_status_display(),
            "fulfilment": order.get_fulfilment_status_display(),
        }

    @staticmethod
    def _not_shippable(order: Order) -> str:
        return _(
            "%(order)s cannot be shipped: only paid orders not shipped yet can "
            "(it is %(status)s, %(fulfilment)s)."
        ) % {
            "order": order,
            "status": order.get_status_display(),
            "fulfilment": order.get_fulfilment_status_display(),
        }

    # -- "Ship from CSV…" ------------------------------------------------------------------

    def ship_csv_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_ship_permission(request):
            raise PermissionDenied
        results = None
        if request.method == "POST":
            form = ShipCsvForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    results = shipments_from_csv(form.cleaned_data["file"], shipped_by=request.user)
                except CsvRefused as exc:
                    form.add_error("file", str(exc))
        else:
            form = ShipCsvForm()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Ship orders from a CSV file"),
            "opts": self.opts,
            "form": form,
            "header": ",".join(CSV_HEADER),
            "results": self._csv_rows(results) if results is not None else None,
            "summary": self._csv_summary(results) if results is not None else "",
            "failed": sum(not r.ok for r in results or []),
        }
        return TemplateResponse(request, "admin/orders/order/ship_csv.html", context)

    @staticmethod
    def _csv_rows(results) -> list[dict]:
        return [
            {
                "line": result.line,
                "label": result.label,
                "ok": result.ok,
                "badge": badge(str(result.status.label), CSV_LINE_COLOURS[result.status]),
                "reason": result.reason,
            }
            for result in results
        ]

    @staticmethod
    def _csv_summary(results) -> str:
        def count(status: CsvLineStatus) -> int:
            return sum(result.status == status for result in results)

        return _(
            "%(lines)d lines: %(shipped)d shipped, %(already)d already shipped, "
            "%(failed)d not shipped."
        ) % {
            "lines": len(results),
            "shipped": count(CsvLineStatus.SHIPPED),
            "already": count(CsvLineStatus.ALREADY_SHIPPED),
            "failed": count(CsvLineStatus.FAILED),
        }
