"""Payments in admin: the notification ledger and refunds (read-only evidence), and the
order page with its refunds, notifications and WeChat actions."""

from payments.admin.ledger import PaymentNotificationAdmin, RefundAdmin
from payments.admin.order import ShopOrderAdmin

__all__ = ["PaymentNotificationAdmin", "RefundAdmin", "ShopOrderAdmin"]
