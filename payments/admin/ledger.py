import ipaddress
import json

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.display import moment
from core.money import yuan
from payments.badges import outcome_badge, refund_status_badge
from payments.models import LedgerArchive, PaymentNotification, Refund
from payments.notify import NotReprocessable, notification_reprocess

# Reprocessing is quick (no call to WeChat), but a page of messages should stay readable.
MAX_REPROCESS_PER_ACTION = 50

Outcome = PaymentNotification.Outcome
REPROCESS_MESSAGE_LEVEL = {
    Outcome.PAID: messages.SUCCESS,
    Outcome.REFUND_RECORDED: messages.SUCCESS,
    Outcome.DUPLICATE: messages.INFO,
    Outcome.NOT_PAID: messages.INFO,
    Outcome.FLAGGED: messages.WARNING,
}


class OriginFilter(admin.SimpleListFilter):
    title = gettext_lazy("origin")
    parameter_name = "origin"

    def lookups(self, request, model_admin):
        return [("wechat", _("Sent by WeChat")), ("reprocess", _("Reprocessed in admin"))]

    def queryset(self, request, queryset):
        if self.value() in ("wechat", "reprocess"):
            return queryset.filter(reprocess_of__isnull=self.value() == "wechat")
        return queryset


class RepliedFilter(admin.SimpleListFilter):
    """What WeChat was told, from fixed choices: Django's filter for a plain text column
    lists the column's distinct values first, a scan of the whole ledger per page view."""

    title = gettext_lazy("reply to WeChat")
    parameter_name = "replied"

    def lookups(self, request, model_admin):
        return [("SUCCESS", "SUCCESS"), ("FAIL", "FAIL")]

    def queryset(self, request, queryset):
        if self.value() in ("SUCCESS", "FAIL"):
            return queryset.filter(replied=self.value())
        return queryset


class LedgerPaginator(Paginator):
    """Counts from PostgreSQL's estimate when an exact ``COUNT(*)`` would be expensive.

    Counting 10^7 ledger rows reads 10^7 index entries on every page view, and counting a
    filter no index serves (an outcome) reads the whole table: seconds either way. The
    planner knows both the cost of the count and roughly its answer (from the statistics
    autovacuum keeps) for the price of a plan. Above ``exact_cost_limit`` (in the planner's
    units: ~20,000 is a 150 MB scan) the estimate is shown, with "about" (the pagination
    template); below it, and on other databases, the count is exact."""

    exact_cost_limit = 20_000
    estimated = False

    @cached_property
    def count(self) -> int:
        if connection.vendor != "postgresql":
            return super().count
        cost, rows = _planner_cost_and_rows(self.object_list)
        if cost <= self.exact_cost_limit:
            return super().count
        self.estimated = True
        return rows


def _planner_cost_and_rows(queryset) -> tuple[float, int]:
    """The plan of reading the rows' ids, as a count would (no ordering)."""
    plan = json.loads(queryset.order_by().values("pk").explain(format="json"))[0]["Plan"]
    return float(plan["Total Cost"]), int(plan["Plan Rows"])


def _is_ip_address(term: str) -> bool:
    try:
        ipaddress.ip_address(term)
    except ValueError:
        return False
    return True


class ReadOnlyEvidenceAdmin(admin.ModelAdmin):
    """Rows that record what happened with money: nobody may add, change or delete one."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PaymentNotification)
class PaymentNotificationAdmin(ReadOnlyEvidenceAdmin):
    """The notify ledger, payments and refunds alike."""

    list_display = [
        "received",
        "kind_display",
        "api_version",
        "out_trade_no",
        "out_refund_no",
        "outcome_display",
        "signature_valid",
        "replied",
        "reprocess_of_display",
    ]
    list_filter = [
        "kind",
        "api_version",
        "outcome",
        "signature_valid",
        RepliedFilter,
        OriginFilter,
        "received_at",
    ]
    # The ledger grows to 10^7 rows and more (docs/PERFORMANCE.md): nothing on this page may
    # read all of it. No date hierarchy (it lists every distinct day, month or year of the
    # rows first; "received at" filters days instead), no second count of the whole
    # ledger, no facet counts, an estimated count when large (LedgerPaginator), and
    # exact searches that the indexes serve (get_search_results).
    paginator = LedgerPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    search_fields = ["out_trade_no", "transaction_id", "out_refund_no", "remote_addr"]
    search_help_text = gettext_lazy(
        "Order number, WeChat transaction id, refund number or sender IP (exactly)."
    )
    actions = ["reprocess_action"]
    readonly_fields = [
        "received_at",
        "kind",
        "api_version",
        "remote_addr",
        "order",
        "refund",
        "out_trade_no",
        "transaction_id",
        "out_refund_no",
        "signature_valid",
        "outcome_display",
        "detail",
        "replied",
        "processed_at",
        "reprocess_of",
        "reprocessed_as",
        "body_truncated",
        "headers_display",
        "raw_body",
    ]
    fields = readonly_fields

    def get_queryset(self, request):
        # The list never shows raw bodies (up to 64 KiB each): do not fetch them for it.
        return super().get_queryset(request).defer("raw_body")

    def get_search_results(self, request, queryset, search_term):
        """Each term is a number, matched exactly (``=``, as their indexes are: Django's
        ``=field`` search compares ``UPPER()``s, which no index serves), or an IP address,
        matched against the sender (not indexed: narrow it with "received at")."""
        for term in search_term.split():
            if _is_ip_address(term):
                queryset = queryset.filter(remote_addr=term)
            else:
                queryset = queryset.filter(
                    Q(out_trade_no=term) | Q(transaction_id=term) | Q(out_refund_no=term)
                )
        return queryset, False

    @admin.display(description=gettext_lazy("received at"), ordering="received_at")
    def received(self, notification: PaymentNotification) -> str:
        return moment(notification.received_at)

    @admin.display(description=gettext_lazy("kind"), ordering="kind")
    def kind_display(self, notification: PaymentNotification) -> str:
        refund = notification.kind == PaymentNotification.Kind.REFUND
        return _("Refund") if refund else _("Payment")

    @admin.display(description=gettext_lazy("outcome"), ordering="outcome")
    def outcome_display(self, notification: PaymentNotification) -> SafeString:
        return outcome_badge(notification)

    @admin.display(description=gettext_lazy("signature headers"))
    def headers_display(self, notification: PaymentNotification) -> SafeString | str:
        """v3: the Wechatpay-* headers as received (evidence; a reprocess verifies the
        body with them again). v2 notifies are signed inside the body: none."""
        if not notification.headers:
            return "—"
        text = json.dumps(notification.headers, ensure_ascii=False, indent=1, sort_keys=True)
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)

    @admin.display(description=gettext_lazy("reprocess of"), ordering="reprocess_of")
    def reprocess_of_display(self, notification: PaymentNotification) -> str:
        return f"#{notification.reprocess_of_id}" if notification.reprocess_of_id else ""

    @admin.display(description=gettext_lazy("processed again as"))
    def reprocessed_as(self, notification: PaymentNotification) -> SafeString | str:
        rows = notification.reprocesses.order_by("pk").defer("raw_body")
        links = format_html_join(
            ", ",
            '<a href="{}">#{}</a> {}',
            ((_change_url(row), row.pk, outcome_badge(row)) for row in rows),
        )
        return links or "—"

    # -- processing a stored body again ------------------------------------------------------

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.reprocess_paymentnotification")

    @admin.action(
        description=gettext_lazy("Reprocess: process the stored body again"),
        permissions=["reprocess"],
    )
    def reprocess_action(self, request: HttpRequest, queryset) -> None:
        originals = list(queryset.order_by("pk")[: MAX_REPROCESS_PER_ACTION + 1])
        if len(originals) > MAX_REPROCESS_PER_ACTION:
            self.message_user(
                request,
                _("Only the first %(count)d were reprocessed; select fewer at a time.")
                % {"count": MAX_REPROCESS_PER_ACTION},
                messages.WARNING,
            )
        for original in originals[:MAX_REPROCESS_PER_ACTION]:
            self._reprocess(request, original)

    def _reprocess(self, request: HttpRequest, original: PaymentNotification) -> None:
        try:
            row = notification_reprocess(notification=original)
        except NotReprocessable:
            self.message_user(
                request,
                _("#%(pk)s: only the start of its body was kept; it cannot be processed again.")
                % {"pk": original.pk},
                messages.WARNING,
            )
            return
        self.log_addition(request, row, _("Reprocess of #%(pk)s") % {"pk": original.pk})
        self.message_user(
            request,
            _("#%(pk)s processed again as #%(new)s: %(outcome)s. %(detail)s")
            % {
                "pk": original.pk,
                "new": row.pk,
                "outcome": row.get_outcome_display(),
                "detail": row.detail,
            },
            REPROCESS_MESSAGE_LEVEL.get(row.outcome, messages.ERROR),
        )


def _change_url(notification: PaymentNotification) -> str:
    return reverse("admin:payments_paymentnotification_change", args=[notification.pk])


@admin.register(Refund)
class RefundAdmin(ReadOnlyEvidenceAdmin):
    """Refunds are made from an order ("Refund…" action) and changed only by WeChat's
    answers, so here they are evidence to read."""

    list_display = [
        "created",
        "out_refund_no",
        "order",
        "amount",
        "status_display",
        "requested_by",
        "succeeded",
    ]
    list_filter = ["status", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["=out_refund_no", "=refund_id", "=order__out_trade_no"]
    search_help_text = gettext_lazy("Refund number, WeChat refund id or order number (exactly).")
    list_select_related = ["order", "requested_by"]
    readonly_fields = [
        "out_refund_no",
        "order",
        "amount",
        "status_display",
        "reason",
        "refund_id",
        "requested_by",
        "created_at",
        "updated_at",
        "succeeded_at",
        "recv_account",
        "last_error",
    ]
    fields = readonly_fields

    @admin.display(description=gettext_lazy("amount"), ordering="refund_fee")
    def amount(self, refund: Refund) -> str:
        return yuan(refund.refund_fee)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, refund: Refund) -> SafeString:
        return refund_status_badge(refund)

    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created(self, refund: Refund) -> str:
        return moment(refund.created_at)

    @admin.display(description=gettext_lazy("refunded at"), ordering="succeeded_at")
    def succeeded(self, refund: Refund) -> str:
        return moment(refund.succeeded_at)


@admin.register(LedgerArchive)
class LedgerArchiveAdmin(ReadOnlyEvidenceAdmin):
    """What ``archive_notifications`` moved out of the ledger, file by file: where the rows
    went, which ids and days they covered, and the hash that ``--verify`` checks the file
    against (docs/OPERATIONS.md). Read-only: only the command writes these."""

    list_display = [
        "file",
        "rows",
        "first_id",
        "last_id",
        "first_received_at",
        "last_received_at",
        "cut_off",
        "created_at",
    ]
    list_filter = ["created_at"]
    search_fields = ["=sha256"]
    search_help_text = gettext_lazy("The file's SHA-256 (exactly).")
    # The page: the list's columns with the hash after the file.
    fields = [list_display[0], "sha256", *list_display[1:]]
    readonly_fields = fields
