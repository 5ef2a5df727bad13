"""Payments in admin: the notification ledger and refunds (read-only evidence), and the
order page with its refunds, notifications and WeChat actions."""

from payments.admin.ledger import LedgerArchiveAdmin, PaymentNotificationAdmin, RefundAdmin
from payments.admin.order import ShopOrderAdmin
from payments.admin.statements import StatementAdmin, StatementLineAdmin

__all__ = [
    "LedgerArchiveAdmin",
    "PaymentNotificationAdmin",
    "RefundAdmin",
    "ShopOrderAdmin",
    "StatementAdmin",
    "StatementLineAdmin",
]
