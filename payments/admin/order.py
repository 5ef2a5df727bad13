"""The order page as staff use it: the orders app's OrderAdmin, plus what payments adds —
its refunds and notifications, the "Refund…" page, "Ask WeChat now" and "Close"."""

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.config import WeChatNotConfigured
from core.money import yuan
from orders.admin import OrderAdmin
from orders.models import Order
from payments.admin.inlines import NotificationInline, RefundInline
from payments.admin.refund_page import RefundAdminMixin
from payments.gateway import PayError
from payments.lifecycle import OrderNotClosable, order_close, order_reconcile
from payments.selectors import order_refund_totals
from payments.services import WeChatPayFailed

# Each order of an action is a synchronous call to WeChat: keep one request short.
MAX_ORDERS_PER_ACTION = 20


@admin.register(Order)
class ShopOrderAdmin(RefundAdminMixin, OrderAdmin):
    inlines = [*OrderAdmin.inlines, RefundInline, NotificationInline]
    actions = ["refund_action", "reconcile_action", "close_action", *OrderAdmin.actions]
    readonly_fields = [*OrderAdmin.readonly_fields, "refunds_display"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    *OrderAdmin.fieldsets[0][1]["fields"][:3],
                    "refunds_display",
                    *OrderAdmin.fieldsets[0][1]["fields"][3:],
                ]
            },
        ),
        *OrderAdmin.fieldsets[1:],
    ]

    def get_urls(self):
        return [*self.refund_urls(), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The order page's "Refund…" button, for paid orders and staff who may refund.
        context = {"can_refund": self.has_refund_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.display(description=gettext_lazy("refunds"))
    def refunds_display(self, order: Order) -> str:
        totals = order_refund_totals(order=order)
        if not totals.reserved:
            return "—"
        return _("%(refunded)s refunded, %(in_progress)s in progress; %(left)s refundable") % {
            "refunded": yuan(totals.refunded),
            "in_progress": yuan(totals.in_progress),
            "left": yuan(totals.refundable),
        }

    # -- actions: each calls a service, and says what came of it ---------------------------

    # It closes expired orders and sends pending refunds again: a change, not a look.
    @admin.action(description=gettext_lazy("Ask WeChat now"), permissions=["change"])
    def reconcile_action(self, request: HttpRequest, queryset) -> None:
        for order in self._few(request, queryset):
            try:
                done = order_reconcile(order=order)
            except (PayError, WeChatNotConfigured) as exc:
                self.message_user(request, f"{order}: {exc}", messages.ERROR)
                continue
            said = "; ".join(r.label for r in done)
            self.message_user(
                request, _("%(order)s: %(done)s") % {"order": order, "done": said}, messages.INFO
            )

    @admin.action(description=gettext_lazy("Close (unpaid orders only)"), permissions=["change"])
    def close_action(self, request: HttpRequest, queryset) -> None:
        for order in self._few(request, queryset):
            try:
                result = order_close(order=order)
            except OrderNotClosable as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            except (WeChatPayFailed, WeChatNotConfigured) as exc:
                self.message_user(request, f"{order}: {exc}", messages.ERROR)
                continue
            if result.closed:
                self.message_user(
                    request, _("%(order)s: closed") % {"order": order}, messages.SUCCESS
                )
            elif result.order.has_payment:
                self.message_user(
                    request,
                    _("%(order)s: paid meanwhile, payment recorded") % {"order": order},
                    messages.WARNING,
                )
            else:
                self.message_user(
                    request,
                    _(
                        "%(order)s: WeChat says it was paid but could not confirm the "
                        "payment; not closed, flagged, and asked again by reconciliation"
                    )
                    % {"order": order},
                    messages.WARNING,
                )

    def _few(self, request: HttpRequest, queryset) -> list[Order]:
        orders = list(queryset.order_by("pk")[: MAX_ORDERS_PER_ACTION + 1])
        if len(orders) > MAX_ORDERS_PER_ACTION:
            self.message_user(
                request,
                _("Only the first %(count)d orders were handled; select fewer at a time.")
                % {"count": MAX_ORDERS_PER_ACTION},
                messages.WARNING,
            )
        return orders[:MAX_ORDERS_PER_ACTION]
