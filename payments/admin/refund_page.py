"""The "Refund…" action and its confirmation page: refund_create (recorded) then
refund_submit (WeChat), with an amount typed in yuan and converted to fen exactly.

Each time the page is shown it carries a new one-time key; refund_create makes at most one
refund per key, so a double click, a resubmitted page or two tabs posting the same page
refund once.
"""

import secrets
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.config import WeChatNotConfigured
from core.money import fen_from_yuan, yuan, yuan_decimal
from core.validators import refuse_control_characters
from orders.models import Order
from payments.models import Refund
from payments.refunds import RefundError, RefundRequest, refund_create, refund_submit
from payments.selectors import order_refund_totals


class RefundForm(forms.Form):
    # DecimalField parses the text with Decimal, never float, and refuses a third decimal.
    amount = forms.DecimalField(
        label=gettext_lazy("Amount (yuan)"),
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text=gettext_lazy("In yuan, e.g. 12.50. At most what is still refundable."),
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=80,
        required=False,
        help_text=gettext_lazy("Shown to the buyer in WeChat (optional)."),
    )

    # The page's one-time key (Refund.request_key): 32 random bytes, URL-safe base64.
    request_key = forms.RegexField(
        regex=r"^[A-Za-z0-9_-]{32,64}$",
        widget=forms.HiddenInput,
        error_messages={
            "required": gettext_lazy("This page is out of date: open it again."),
            "invalid": gettext_lazy("This page is out of date: open it again."),
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.fields["request_key"].initial = secrets.token_urlsafe(32)

    def clean_reason(self) -> str:
        return refuse_control_characters(self.cleaned_data["reason"])

    @property
    def refund_fee(self) -> int:
        return fen_from_yuan(self.cleaned_data["amount"])


class RefundAdminMixin:
    """For OrderAdmin: the action, its page, and what it says afterwards."""

    def has_refund_permission(self, request: HttpRequest) -> bool:
        # A refund changes the order as well (its refundable amount, maybe its status):
        # who may not change orders may not refund them either.
        return request.user.has_perm("payments.add_refund") and self.has_change_permission(request)

    @admin.action(description=gettext_lazy("Refund…"), permissions=["refund"])
    def refund_action(self, request: HttpRequest, queryset) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, _("Choose exactly one order to refund."), messages.WARNING)
            return None
        url = reverse("admin:orders_order_refund", args=[queryset.get().pk])
        return HttpResponseRedirect(url)

    def refund_urls(self) -> list[URLPattern]:
        refund = self.admin_site.admin_view(self.refund_view)
        return [path("<path:object_id>/refund/", refund, name="orders_order_refund")]

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_refund_permission(request):
            raise PermissionDenied
        order = self.get_object(request, object_id)
        if order is None:
            raise Http404(_("No such order."))
        data = request.POST if request.method == "POST" else None
        form = RefundForm(data, initial={"amount": self._refundable(order)})
        if request.method == "POST" and form.is_valid():
            made = self._refund(request, order, form)
            if made is not None:
                self._refund_message(request, made)
                change = reverse("admin:orders_order_change", args=[order.pk])
                return HttpResponseRedirect(change)
        return TemplateResponse(
            request, "admin/orders/order/refund.html", self._refund_context(request, order, form)
        )

    @staticmethod
    def _refund(request: HttpRequest, order: Order, form: RefundForm) -> RefundRequest | None:
        """The refund recorded and sent; None with the form's errors when refused.

        A page submitted again gets the refund its first submission made, not sent from
        here again: the first request may be sending it right now, and a pending one is
        sent again by reconciliation.
        """
        try:
            made = refund_create(
                order=order,
                refund_fee=form.refund_fee,
                reason=form.cleaned_data["reason"],
                requested_by=request.user,
                request_key=form.cleaned_data["request_key"],
            )
            if not made.created:
                return made
            return RefundRequest(refund_submit(refund=made.refund), created=True)
        except RefundError as exc:
            form.add_error("amount", str(exc))
        except WeChatNotConfigured as exc:
            form.add_error(None, str(exc))
        return None

    @staticmethod
    def _refundable(order: Order) -> str:
        return yuan_decimal(order_refund_totals(order=order).refundable)

    def _refund_context(self, request: HttpRequest, order: Order, form: RefundForm) -> dict:
        totals = order_refund_totals(order=order)
        return {
            **self.admin_site.each_context(request),
            "title": _("Refund order %(number)s") % {"number": order.out_trade_no},
            "opts": self.opts,
            "order": order,
            "form": form,
            "paid": yuan(order.total_fee),
            "refunded": yuan(totals.refunded),
            "in_progress": yuan(totals.in_progress),
            "abnormal": yuan(totals.abnormal) if totals.abnormal else "",
            "refundable": yuan(totals.refundable),
        }

    def _refund_message(self, request: HttpRequest, made: RefundRequest) -> None:
        refund = made.refund
        if not made.created:
            self.message_user(
                request,
                _(
                    "This refund page was already submitted: no second refund was made. "
                    "Refund %(number)s is the one it made."
                )
                % {"number": refund.out_refund_no},
                messages.INFO,
            )
        what = {
            "number": refund.out_refund_no,
            "amount": yuan(refund.refund_fee),
            "error": refund.last_error,
        }
        if refund.status == Refund.Status.PROCESSING:
            text = _(
                "Refund %(number)s of %(amount)s accepted by WeChat. The buyer gets the money "
                "within minutes (WeChat wallet) or a few working days (bank card)."
            )
            level = messages.SUCCESS
        elif refund.status == Refund.Status.FAILED:
            text = _(
                "Refund %(number)s of %(amount)s refused by WeChat, nothing was refunded: %(error)s"
            )
            level = messages.ERROR
        elif refund.status == Refund.Status.PENDING and not refund.last_error:
            text = _(
                "Refund %(number)s of %(amount)s is recorded and on its way to WeChat. If "
                "WeChat does not confirm it, it is sent again automatically with the same "
                "refund number."
            )
            level = messages.INFO
        elif refund.status == Refund.Status.PENDING:
            text = _(
                "Refund %(number)s of %(amount)s is recorded but WeChat did not confirm it "
                "(%(error)s). It is sent again automatically with the same refund number; "
                "“Ask WeChat now” does it at once."
            )
            level = messages.WARNING
        else:
            text = _("Refund %(number)s of %(amount)s: %(status)s")
            what["status"] = refund.get_status_display()
            level = messages.INFO
        self.message_user(request, text % what, level)
