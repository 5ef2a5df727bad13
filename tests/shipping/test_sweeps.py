"""The periodic tasks (CELERY_BEAT_SCHEDULE): uploads whose time has come are sent again from
the database (what a broker outage dropped is not lost), and paid orders nearing WeChat's
shipping deadline are flagged once. Also the warning when no broker runs them."""

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.utils import timezone

from orders.models import Order, Shipment
from orders.services import order_attention_acknowledge
from shipping.tasks import unshipped_orders_flag, uploads_due_enqueue
from tests.factories import make_order, reload
from tests.shipping.miniprogram_api import UPLOAD_PATH

DEADLINE = "WeChat expects shipping"


def paid_order(shopper, products, n: int, *, hours_ago: float = 1, **fields) -> Order:
    return make_order(
        shopper,
        products,
        n=n,
        status=Order.Status.PAID,
        transaction_id=f"42000004832020010420697478{n:02d}",
        paid_at=timezone.now() - timedelta(hours=hours_ago),
        **fields,
    )


class TestUploadSweep:
    def test_it_sends_the_pending_uploads_that_are_due_and_no_other(
        self, settings, mini, shopper, products
    ):
        settings.WECHAT_TRADE_MANAGED = "1"
        now = timezone.now()
        states = {
            "due": ("pending", now - timedelta(seconds=1)),
            "never tried": ("pending", None),
            "later": ("pending", now + timedelta(minutes=5)),
            "uploaded": ("uploaded", None),
            "failed": ("failed", None),
            "not required": ("not_required", None),
        }
        orders = {}
        for n, (name, (status, next_at)) in enumerate(states.items()):
            orders[name] = paid_order(shopper, products, n, fulfilment_status="shipped")
            Shipment.objects.create(
                order=orders[name],
                logistics_type="virtual",
                upload_status=status,
                upload_next_at=next_at,
            )

        uploads_due_enqueue.delay()

        sent = {body["order_key"]["transaction_id"] for body in mini.bodies(UPLOAD_PATH)}
        assert sent == {orders["due"].transaction_id, orders["never tried"].transaction_id}
        status = {name: order.shipments.get().upload_status for name, order in orders.items()}
        assert status == {
            "due": "uploaded",
            "never tried": "uploaded",
            "later": "pending",
            "uploaded": "uploaded",
            "failed": "failed",
            "not required": "not_required",
        }

    def test_the_sweeps_are_scheduled_and_registered(self, settings):
        from shopsite.celery import app

        # What a worker does at start: import every app's tasks module (autodiscovery).
        app.loader.import_default_modules()
        tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
        sweeps = {"shipping.tasks.uploads_due_enqueue", "shipping.tasks.unshipped_orders_flag"}
        assert sweeps <= tasks
        assert tasks <= set(app.tasks)
        due = settings.CELERY_BEAT_SCHEDULE["shipping-uploads-due"]["schedule"]
        assert due <= 60  # a lost upload waits a minute at most


class TestDeadline:
    def test_paid_orders_unshipped_36_hours_after_payment_are_flagged_once(
        self, mini, shopper, products
    ):
        late = paid_order(shopper, products, 1, hours_ago=37)
        recent = paid_order(shopper, products, 2, hours_ago=35)
        shipped = paid_order(shopper, products, 3, hours_ago=40, fulfilment_status="shipped")
        unpaid = make_order(shopper, products, n=4 * 60 * 24)

        unshipped_orders_flag.delay()
        unshipped_orders_flag.delay()

        flagged = reload(late)
        assert flagged.needs_attention
        assert flagged.attention_reason.count(DEADLINE) == 1
        assert "48 hours" in flagged.attention_reason
        for order in (recent, shipped, unpaid):
            assert not reload(order).needs_attention

    def test_an_acknowledged_flag_is_not_raised_again(self, mini, shopper, products):
        late = paid_order(shopper, products, 1, hours_ago=37)
        unshipped_orders_flag.delay()
        assert order_attention_acknowledge(
            order_id=late.pk, shown_reason=reload(late).attention_reason
        )

        unshipped_orders_flag.delay()

        assert not reload(late).needs_attention

    @pytest.mark.parametrize("hours, flagged", [(12, True), (0, False)])
    def test_the_margin_is_a_setting(self, settings, mini, shopper, products, hours, flagged):
        settings.SHIPPING_FLAG_AFTER_HOURS = hours
        order = paid_order(shopper, products, 1, hours_ago=13)

        unshipped_orders_flag.delay()

        assert reload(order).needs_attention is flagged

    def test_nothing_is_flagged_when_not_trade_managed(self, settings, mini, shopper, products):
        settings.WECHAT_TRADE_MANAGED = "0"
        order = paid_order(shopper, products, 1, hours_ago=47)

        unshipped_orders_flag.delay()

        assert not reload(order).needs_attention


class TestBrokerCheck:
    def check_ids(self) -> list[str]:
        return [message.id for message in run_checks()]

    def test_no_broker_with_debug_off_is_a_warning(self, settings):
        settings.CELERY_BROKER_URL, settings.DEBUG = "", False
        (warning,) = [m for m in run_checks() if m.id == "shopsite.W005"]
        assert "CELERY_BROKER_URL" in warning.hint or "REDIS_URL" in warning.hint

    @pytest.mark.parametrize(
        "broker, debug", [("", True), ("redis://127.0.0.1:6379/0", False)]
    )
    def test_a_broker_or_debug_on_is_fine(self, settings, broker, debug):
        settings.CELERY_BROKER_URL, settings.DEBUG = broker, debug
        assert "shopsite.W005" not in self.check_ids()
