"""Statements in admin (docs/INVARIANTS.md §10): WeChat's daily bills as imported (read-only
evidence, the raw file for download) and their lines, where staff resolve each mismatch
with a note ("Resolve…", needs ``payments.change_statementline``)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.money import yuan
from payments.admin.ledger import ReadOnlyEvidenceAdmin
from payments.models import Statement, StatementLine
from payments.statements import LinesAlreadyResolved, statement_lines_resolve


@admin.register(Statement)
class StatementAdmin(ReadOnlyEvidenceAdmin):
    list_display = [
        "bill_date",
        "api_version",
        "status",
        "trade_count",
        "paid",
        "refunded",
        "fees",
        "mismatch_count",
        "lines_link",
        "file_link",
        "imported_at",
    ]
    list_filter = ["status", "api_version"]
    date_hierarchy = "bill_date"
    readonly_fields = [
        "bill_date",
        "api_version",
        "status",
        "file_link",
        "file_sha256",
        "wechat_hash",
        "imported_at",
        "superseded_by",
        "trade_count",
        "paid",
        "refunded",
        "fees",
        "mismatch_count",
        "lines_link",
        "detail",
    ]
    exclude = ["file", "paid_total", "refund_total", "fee_total"]

    @admin.display(description=gettext_lazy("paid"), ordering="paid_total")
    def paid(self, obj: Statement) -> str:
        return yuan(obj.paid_total)

    @admin.display(description=gettext_lazy("refunded"), ordering="refund_total")
    def refunded(self, obj: Statement) -> str:
        return yuan(obj.refund_total)

    @admin.display(description=gettext_lazy("WeChat's fees"), ordering="fee_total")
    def fees(self, obj: Statement) -> str:
        return yuan(obj.fee_total)

    @admin.display(description=gettext_lazy("lines"))
    def lines_link(self, obj: Statement) -> str:
        url = reverse("admin:payments_statementline_changelist") + f"?statement__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("lines"))

    @admin.display(description=gettext_lazy("bill file"))
    def file_link(self, obj: Statement) -> str:
        if not obj.file:
            return "—"
        url = reverse("admin:payments_statement_file", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("download"))

    def get_urls(self):
        view = self.admin_site.admin_view(self.file_view)
        return [path("<int:pk>/file/", view, name="payments_statement_file"), *super().get_urls()]

    def file_view(self, request: HttpRequest, pk: int) -> FileResponse:
        """The raw bill, for staff who may view statements (through the app, never a public
        media URL: the file holds every payer's openid)."""
        if not self.has_view_permission(request):
            raise Http404
        statement = Statement.objects.filter(pk=pk).first()
        if statement is None or not statement.file:
            raise Http404
        return FileResponse(
            statement.file.open("rb"),
            as_attachment=True,
            filename=f"wechat-bill-{statement.bill_date:%Y%m%d}-{statement.api_version}.csv",
        )


class OpenFilter(admin.SimpleListFilter):
    title = gettext_lazy("resolved")
    parameter_name = "resolved"

    def lookups(self, request, model_admin):
        return [("open", _("Open mismatches")), ("resolved", _("Resolved"))]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.exclude(mismatch="").filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


class ResolveForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("Resolution note"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text=gettext_lazy("What was found and done (required)."),
    )

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError(_("A note is required."))
        return note


@admin.register(StatementLine)
class StatementLineAdmin(ReadOnlyEvidenceAdmin):
    list_display = [
        "statement",
        "line_no",
        "trade_time",
        "order_link",
        "transaction_id",
        "trade_state",
        "paid",
        "out_refund_no",
        "refunded",
        "mismatch",
        "resolved_at",
    ]
    list_filter = ["mismatch", OpenFilter, "statement"]
    list_select_related = ["statement", "order"]
    search_fields = ["=out_trade_no", "=transaction_id", "=out_refund_no"]
    search_help_text = gettext_lazy(
        "Order number, WeChat transaction id or refund number (exactly)."
    )
    actions = ["resolve_action"]
    readonly_fields = [f.name for f in StatementLine._meta.fields]

    def has_change_permission(self, request, obj=None) -> bool:
        # Lines are evidence: no change form; "Resolve…" is the only way to act on them.
        return False

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("payments.change_statementline")

    @admin.display(description=gettext_lazy("order"), ordering="out_trade_no")
    def order_link(self, obj: StatementLine) -> str:
        if obj.order_id is None:
            return obj.out_trade_no or "—"
        url = reverse("admin:orders_order_change", args=[obj.order_id])
        return format_html('<a href="{}">{}</a>', url, obj.out_trade_no)

    @admin.display(description=gettext_lazy("paid"), ordering="total_fee")
    def paid(self, obj: StatementLine) -> str:
        return yuan(obj.total_fee)

    @admin.display(description=gettext_lazy("refunded"), ordering="refund_fee")
    def refunded(self, obj: StatementLine) -> str:
        return yuan(obj.refund_fee)

    @admin.action(description=gettext_lazy("Resolve…"), permissions=["resolve"])
    def resolve_action(self, request: HttpRequest, queryset) -> HttpResponse | None:
        ids = list(queryset.exclude(mismatch="").values_list("pk", flat=True))
        if not ids:
            self.message_user(request, _("None of these lines has a mismatch."), messages.INFO)
            return None
        form = ResolveForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                count = statement_lines_resolve(
                    line_ids=ids, user=request.user, note=form.cleaned_data["note"]
                )
            except LinesAlreadyResolved as exc:
                self.message_user(
                    request,
                    _("Nothing resolved: line(s) %(lines)s were resolved meanwhile.")
                    % {"lines": ", ".join(map(str, exc.line_nos))},
                    messages.ERROR,
                )
                return None
            self.message_user(request, _("%(count)d line(s) resolved.") % {"count": count})
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Resolve statement lines"),
            "opts": self.model._meta,
            "form": form,
            "lines": StatementLine.objects.filter(pk__in=ids).select_related("statement"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "ids": ids,
        }
        return TemplateResponse(request, "admin/payments/statementline/resolve.html", context)
