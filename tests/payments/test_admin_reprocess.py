"""Reprocessing stored notifications: a new ledger row, the original untouched, payments
still applied exactly once (payments.notify.notification_reprocess + the admin action)."""

import pytest
from django.contrib.auth.models import Permission
from django.forms.models import model_to_dict
from django.test import Client

from accounts.models import User
from orders.models import Order
from payments.models import PaymentNotification
from payments.notify import NotReprocessable, notification_reprocess
from tests.factories import TRANSACTION_ID, make_order, make_refund, notify_body, notify_refund

pytestmark = pytest.mark.django_db

Outcome = PaymentNotification.Outcome
LEDGER = "/admin/payments/paymentnotification/"


def reprocess(client: Client, *rows: PaymentNotification):
    data = {"action": "reprocess_action", "_selected_action": [r.pk for r in rows]}
    return client.post(LEDGER, data, follow=True)


def failed_notify(order: Order, transaction_id: str = TRANSACTION_ID) -> PaymentNotification:
    """A notify stored but not applied, as when the database failed mid-way."""
    return PaymentNotification.objects.create(
        raw_body=notify_body(order, transaction_id=transaction_id).decode(),
        remote_addr="101.226.103.1",
        out_trade_no=order.out_trade_no,
        outcome=Outcome.ERROR,
        detail="Processing failed: OperationalError",
        replied="FAIL",
    )


def test_a_failed_notify_reprocessed_pays_the_order_in_a_new_row(shopper, products):
    order = make_order(shopper, products)
    original = failed_notify(order)
    before = model_to_dict(original)

    row = notification_reprocess(notification=original)

    assert (row.outcome, row.replied, row.reprocess_of) == (Outcome.PAID, "SUCCESS", original)
    assert row.raw_body == original.raw_body
    assert row.remote_addr is None
    assert row.order == order
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    original.refresh_from_db()
    assert model_to_dict(original) == before  # the evidence is never changed


def test_a_paid_notify_reprocessed_is_a_duplicate(paid):
    original = PaymentNotification.objects.get()

    again = notification_reprocess(notification=original)
    once_more = notification_reprocess(notification=again)

    assert [again.outcome, once_more.outcome] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert once_more.reprocess_of == original  # always the first row
    assert Order.objects.get(pk=paid.pk).transaction_id == original.transaction_id


def test_a_forged_body_stays_rejected(shopper, products):
    order = make_order(shopper, products)
    forged = PaymentNotification.objects.create(
        raw_body=notify_body(order, key="0" * 32).decode(), outcome=Outcome.REJECTED
    )

    assert notification_reprocess(notification=forged).outcome == Outcome.REJECTED
    assert Order.objects.get(pk=order.pk).status == Order.Status.UNPAID


def test_a_truncated_body_cannot_be_reprocessed(db):
    cut = PaymentNotification.objects.create(raw_body="<xml>", body_truncated=True)

    with pytest.raises(NotReprocessable):
        notification_reprocess(notification=cut)
    assert PaymentNotification.objects.count() == 1


def test_a_refund_notify_reprocessed_is_a_duplicate(paid, wxpay, refund_certificate):
    notify_refund(make_refund(paid, 1000))
    original = PaymentNotification.objects.get(kind="refund")

    row = notification_reprocess(notification=original)

    assert (row.kind, row.outcome, row.refund) == ("refund", Outcome.DUPLICATE, original.refund)


def test_the_admin_action_reports_each_outcome(boss_client, paid, shopper, products):
    paid_row = PaymentNotification.objects.get()
    unpaid = make_order(shopper, products, n=1)
    failed = failed_notify(unpaid, transaction_id="4200000483202001042069740001")
    cut = PaymentNotification.objects.create(raw_body="<xml>", body_truncated=True)

    text = reprocess(boss_client, paid_row, failed, cut).content.decode()

    new_paid = PaymentNotification.objects.get(reprocess_of=paid_row)
    new_failed = PaymentNotification.objects.get(reprocess_of=failed)
    assert f"#{paid_row.pk} processed again as #{new_paid.pk}: Duplicate" in text
    assert f"#{failed.pk} processed again as #{new_failed.pk}: Order marked paid" in text
    assert f"#{cut.pk}: only the start of its body was kept" in text
    assert Order.objects.get(pk=unpaid.pk).status == Order.Status.PAID


def test_the_original_links_to_its_reprocesses(boss_client, paid):
    original = PaymentNotification.objects.get()
    again = notification_reprocess(notification=original)

    page = boss_client.get(f"{LEDGER}{original.pk}/change/").content.decode()
    listing = boss_client.get(f"{LEDGER}?origin=reprocess").content.decode()

    assert f'href="{LEDGER}{again.pk}/change/"' in page
    assert f"#{original.pk}" in listing
    assert f'href="{LEDGER}{original.pk}/change/"' not in listing


def test_reprocess_needs_its_own_permission(paid):
    clerk = User.objects.create_user("clerk", password="a-long-test-password", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_paymentnotification"))
    client = Client()
    client.force_login(clerk)

    assert "reprocess_action" not in client.get(LEDGER).content.decode()
    reprocess(client, PaymentNotification.objects.get())
    assert PaymentNotification.objects.count() == 1

    clerk.user_permissions.add(Permission.objects.get(codename="reprocess_paymentnotification"))
    reprocess(client, PaymentNotification.objects.get())
    assert PaymentNotification.objects.count() == 2
