"""Shipping with WeChat in admin: the message push ledger (read-only evidence) and the
subscribe messages sent for orders."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from core.display import AMBER, BLUE, GREEN, GREY, RED, badge, moment
from shipping.models import MessageEvent

# -- message push events (GET, POST /wechat/message) ------------------------------------------

_Outcome = MessageEvent.Outcome
MESSAGE_OUTCOME_COLOUR = {
    _Outcome.RECEIVED: BLUE,
    _Outcome.APPLIED: GREEN,
    _Outcome.RECORDED: GREEN,
    _Outcome.DUPLICATE: GREY,
    _Outcome.UNKNOWN_ORDER: AMBER,
    _Outcome.REJECTED: RED,
    _Outcome.MALFORMED: RED,
    _Outcome.ERROR: RED,
}


@admin.register(MessageEvent)
class MessageEventAdmin(admin.ModelAdmin):
    """Every message push as received: evidence of what WeChat said, nobody may add, change
    or delete one. An order's events are this list filtered by the order (the order page's
    link, ``?order__id__exact=<pk>``)."""

    list_display = [
        "received",
        "event",
        "transaction_id",
        "order_link",
        "outcome_display",
        "verified",
        "remote_addr",
    ]
    list_filter = ["outcome", "event", "verified", "received_at"]
    date_hierarchy = "received_at"
    search_fields = ["=transaction_id", "=order__out_trade_no", "=remote_addr"]
    search_help_text = gettext_lazy(
        "WeChat transaction id, order number or sender IP (exactly)."
    )
    list_select_related = ["order"]
    readonly_fields = [
        "received_at",
        "remote_addr",
        "query",
        "verified",
        "event",
        "transaction_id",
        "event_time",
        "order",
        "outcome_display",
        "detail",
        "processed_at",
        "payload",
        "body_truncated",
        "raw_body",
    ]
    fields = readonly_fields

    def get_queryset(self, request):
        # The list never shows raw bodies (up to 64 KiB each): do not fetch them for it.
        return super().get_queryset(request).defer("raw_body", "payload")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=gettext_lazy("received at"), ordering="received_at")
    def received(self, event: MessageEvent) -> str:
        return moment(event.received_at)

    @admin.display(description=gettext_lazy("order"), ordering="order__out_trade_no")
    def order_link(self, event: MessageEvent) -> SafeString | str:
        if event.order_id is None:
            return "—"
        url = reverse("admin:orders_order_change", args=[event.order_id])
        return format_html('<a href="{}">{}</a>', url, event.order.out_trade_no)

    @admin.display(description=gettext_lazy("outcome"), ordering="outcome")
    def outcome_display(self, event: MessageEvent) -> SafeString:
        colour = MESSAGE_OUTCOME_COLOUR.get(event.outcome, GREY)
        return badge(event.get_outcome_display(), colour)


# -- subscribe messages -------------------------------------------------------------------------

# Imported beside the admin that shows it (the top of the file is the message push admin's).
from shipping.models import SubscribeMessage  # noqa: E402

_Status = SubscribeMessage.Status
SUBSCRIBE_STATUS_COLOUR = {
    _Status.SENT: GREEN,
    _Status.NOT_SUBSCRIBED: GREY,
    _Status.FAILED: RED,
}


@admin.register(SubscribeMessage)
class SubscribeMessageAdmin(admin.ModelAdmin):
    """The subscribe messages sent for orders, or why not: a record of what the shop did,
    nobody may add, change or delete one."""

    list_display = ["created", "order_link", "template_id", "status_display", "errcode"]
    list_filter = ["status", "template_id", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["=order__out_trade_no", "=template_id"]
    search_help_text = gettext_lazy("Order number or template id (exactly).")
    list_select_related = ["order"]
    readonly_fields = [
        "created_at", "order", "template_id", "status_display", "errcode", "detail",
    ]  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=gettext_lazy("sent at"), ordering="created_at")
    def created(self, message: SubscribeMessage) -> str:
        return moment(message.created_at)

    @admin.display(description=gettext_lazy("order"), ordering="order__out_trade_no")
    def order_link(self, message: SubscribeMessage) -> SafeString:
        url = reverse("admin:orders_order_change", args=[message.order_id])
        return format_html('<a href="{}">{}</a>', url, message.order.out_trade_no)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, message: SubscribeMessage) -> SafeString:
        colour = SUBSCRIBE_STATUS_COLOUR.get(message.status, GREY)
        return badge(message.get_status_display(), colour)
