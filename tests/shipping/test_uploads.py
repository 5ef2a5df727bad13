"""Uploading shipments to WeChat's order shipping management (docs/INVARIANTS.md §8;
docs/protocol/miniprogram-server-api.md §2): after the ship commits, durable, retried with
back-off, once; refusals recorded and flagged. WeChat is ``responses`` (the ``mini`` fixture)."""

import threading
from datetime import datetime, timedelta

import pytest
import requests
from django.db import connection
from django.utils import timezone

from orders.fulfilment import order_ship
from orders.models import Order, OrderItem, Product, Shipment
from shipping.tasks import upload_shipment, uploads_due_enqueue
from shipping.uploads import (
    BACKOFF_MAX_SECONDS,
    UploadOutcome,
    shipment_upload,
    trade_managed,
    upload_backoff,
)
from tests.admin_forms import CHANGELIST, action_choices, order_page, staff_with
from tests.factories import get_ok, make_order, make_shopper, reload
from tests.shipping.miniprogram_api import MANAGED_PATH, TOKEN_PATH, UPLOAD_PATH

BUSY = {"errcode": -1, "errmsg": "system error rid: 6489c1d2-1a2b3c4d-5e6f7a8b"}
REFUNDED = {"errcode": 10060004, "errmsg": "order cannot be shipped in this state rid: 1-2"}


def due_now(shipment: Shipment) -> None:
    """Time passes until the upload's next attempt is due."""
    Shipment.objects.filter(pk=shipment.pk).update(upload_next_at=timezone.now())


def between(value: datetime, before: datetime, after: datetime, seconds: float) -> bool:
    return before + timedelta(seconds=seconds) <= value <= after + timedelta(seconds=seconds)


class TestUpload:
    def test_a_shipment_is_uploaded_as_wechat_documents_it(self, mini, to_ship, ship):
        before = timezone.now()
        shipment = ship(to_ship).shipment
        after = timezone.now()

        ((query, body),) = mini.requests(UPLOAD_PATH)
        assert query == {"access_token": mini.token}
        upload_time = datetime.fromisoformat(body.pop("upload_time"))
        assert body == {
            "order_key": {"order_number_type": 2, "transaction_id": to_ship.transaction_id},
            "logistics_type": 1,
            "delivery_mode": 1,
            "shipping_list": [
                {
                    "item_desc": "Oolong tea 250g*2, Tea cup*1",
                    "tracking_no": "SF1234567890",
                    "express_company": "SF",
                    # SF needs the receiver's phone, masked but its last 4 digits (§2.4).
                    "contact": {"receiver_contact": "138****5678"},
                }
            ],
            "payer": {"openid": to_ship.openid},
        }
        assert upload_time.utcoffset() == timedelta(hours=8)  # Beijing time
        assert before - timedelta(milliseconds=1) <= upload_time <= after
        shipment = reload(shipment)
        assert (shipment.upload_status, shipment.upload_attempts, shipment.upload_error) == (
            "uploaded",
            1,
            "",
        )
        assert before <= shipment.uploaded_at <= after
        assert shipment.upload_next_at is None

    def test_nothing_is_sent_before_the_ship_commits(
        self, mini, to_ship, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks() as callbacks:
            order_ship(order=to_ship, logistics_type="virtual")
            assert len(mini.mock.calls) == 0
        assert len(callbacks) == 1
        assert Shipment.objects.get().upload_status == "not_required"  # nothing decided yet

    @pytest.mark.parametrize(
        "kind, number", [("same_city", 2), ("virtual", 3), ("self_pickup", 4)]
    )
    def test_other_logistics_types_send_their_number_and_the_goods_only(
        self, mini, to_ship, ship, kind, number
    ):
        ship(to_ship, kind)

        (body,) = mini.bodies(UPLOAD_PATH)
        assert body["logistics_type"] == number
        assert body["shipping_list"] == [{"item_desc": "Oolong tea 250g*2, Tea cup*1"}]
        assert Shipment.objects.get().upload_status == "uploaded"

    def test_other_companies_send_no_phone(self, mini, to_ship, ship):
        ship(to_ship, express_company="YTO", tracking_no="YT7000000001")

        (body,) = mini.bodies(UPLOAD_PATH)
        assert body["shipping_list"] == [
            {
                "item_desc": "Oolong tea 250g*2, Tea cup*1",
                "tracking_no": "YT7000000001",
                "express_company": "YTO",
            }
        ]

    def test_a_long_list_of_goods_is_cut_to_wechats_120_characters(
        self, mini, to_ship, products, ship
    ):
        for n in range(12):
            OrderItem.objects.create(
                order=to_ship,
                product=products["cup"],
                product_name=f"Hand-painted celadon cup no. {n}",
                unit_price=1200,
                quantity=1,
            )

        ship(to_ship)

        (body,) = mini.bodies(UPLOAD_PATH)
        desc = body["shipping_list"][0]["item_desc"]
        assert len(desc) == 120
        assert desc.startswith("Oolong tea 250g*2, Tea cup*1, Hand-painted celadon cup no. 0*1")
        assert desc.endswith("…")
        assert Shipment.objects.get().upload_status == "uploaded"


class TestTradeManaged:
    def test_not_trade_managed_is_not_required_and_nothing_uploaded(self, mini, to_ship, ship):
        mini.trade_managed = False

        ship(to_ship)

        shipment = Shipment.objects.get()
        assert (shipment.upload_status, shipment.upload_attempts) == ("not_required", 0)
        assert shipment.upload_next_at is None
        assert mini.count(MANAGED_PATH) == 1
        assert mini.count(UPLOAD_PATH) == 0

    def test_the_answer_is_kept_in_the_shared_cache(self, mini, db):
        assert trade_managed() is True
        assert trade_managed() is True
        assert mini.count(MANAGED_PATH) == 1
        assert mini.bodies(MANAGED_PATH) == [{"appid": "wxd930ea5d5a258f4f"}]

    def test_zero_asks_nothing_and_uploads_nothing(self, settings, mini, to_ship, ship):
        settings.WECHAT_TRADE_MANAGED = "0"

        ship(to_ship)

        assert Shipment.objects.get().upload_status == "not_required"
        assert len(mini.mock.calls) == 0

    def test_one_uploads_without_asking(self, settings, mini, to_ship, ship):
        settings.WECHAT_TRADE_MANAGED = "1"

        ship(to_ship)

        assert Shipment.objects.get().upload_status == "uploaded"
        assert mini.count(MANAGED_PATH) == 0

    def test_without_the_mini_program_settings_nothing_is_uploaded(
        self, settings, mini, to_ship, ship
    ):
        settings.WECHAT_APP_SECRET = ""

        result = ship(to_ship)

        assert result.shipped
        assert Shipment.objects.get().upload_status == "not_required"
        assert len(mini.mock.calls) == 0


class TestRetries:
    def test_wechat_busy_leaves_it_pending_with_the_first_retry_within_ten_seconds(
        self, mini, to_ship, ship
    ):
        mini.upload_answers = [BUSY]
        before = timezone.now()
        ship(to_ship)
        after = timezone.now()

        shipment = Shipment.objects.get()
        assert (shipment.upload_status, shipment.upload_attempts) == ("pending", 1)
        assert shipment.upload_error == "errcode -1: " + BUSY["errmsg"]
        assert between(shipment.upload_next_at, before, after, 5)
        assert not reload(to_ship).needs_attention

    def test_the_back_off_doubles_up_to_ten_minutes(self, mini, to_ship, ship):
        expected = [5, 10, 20, 40, 80, 160, 320, 600, 600]
        mini.upload_answers = [BUSY] * len(expected)
        before = timezone.now()
        shipment = ship(to_ship).shipment

        for attempt, seconds in enumerate(expected, start=1):
            if attempt > 1:
                due_now(shipment)
                before = timezone.now()
                upload_shipment.delay(shipment.pk)
            after = timezone.now()
            row = reload(shipment)
            assert (row.upload_status, row.upload_attempts) == ("pending", attempt)
            assert between(row.upload_next_at, before, after, seconds), attempt
        assert mini.count(UPLOAD_PATH) == len(expected)
        assert upload_backoff(50) == timedelta(seconds=BACKOFF_MAX_SECONDS) == timedelta(minutes=10)

    def test_an_attempt_not_due_yet_sends_nothing(self, mini, to_ship, ship):
        mini.upload_answers = [BUSY]
        shipment = ship(to_ship).shipment

        assert shipment_upload(shipment_id=shipment.pk).outcome == UploadOutcome.SKIPPED
        upload_shipment.delay(shipment.pk)

        assert mini.count(UPLOAD_PATH) == 1
        assert reload(shipment).upload_attempts == 1

    def test_a_payment_wechat_does_not_know_yet_is_tried_again(self, mini, to_ship, ship):
        # Right after payment WeChat may not know it yet (10060001, §2.4).
        mini.upload_answers = [{"errcode": 10060001, "errmsg": "payment not found"}]
        shipment = ship(to_ship).shipment
        assert reload(shipment).upload_status == "pending"

        due_now(shipment)
        upload_shipment.delay(shipment.pk)

        row = reload(shipment)
        assert (row.upload_status, row.upload_attempts, row.upload_error) == ("uploaded", 2, "")

    def test_wechat_unreachable_is_tried_again(self, mini, to_ship, ship):
        mini.upload_answers = [requests.ConnectionError("connection refused")]

        shipment = ship(to_ship).shipment

        row = reload(shipment)
        assert (row.upload_status, row.upload_attempts) == ("pending", 1)
        assert "unreachable" in row.upload_error

    def test_an_upload_still_refused_after_ten_attempts_flags_its_order_once(
        self, mini, to_ship, ship
    ):
        mini.upload_answers = [BUSY] * 11
        shipment = ship(to_ship).shipment
        for _ in range(9):  # attempts 2 to 10
            assert not reload(to_ship).needs_attention
            due_now(shipment)
            upload_shipment.delay(shipment.pk)
        assert reload(to_ship).needs_attention

        due_now(shipment)
        upload_shipment.delay(shipment.pk)

        order = reload(to_ship)
        assert order.attention_reason.count("has not accepted the shipping upload") == 1
        row = reload(shipment)
        assert (row.upload_status, row.upload_attempts) == ("pending", 11)  # still tried


class TestRefusals:
    def test_a_refusal_fails_the_upload_and_flags_the_order(self, mini, to_ship, ship):
        mini.upload_answers = [REFUNDED]

        shipment = ship(to_ship).shipment

        row = reload(shipment)
        assert row.upload_status == "failed"
        assert row.upload_error == "errcode 10060004: " + REFUNDED["errmsg"]
        assert row.upload_next_at is None
        order = reload(to_ship)
        assert order.needs_attention
        assert "WeChat refused the shipping upload (errcode 10060004" in order.attention_reason
        assert "发货信息管理" in order.attention_reason  # where staff can enter it by hand
        assert order.fulfilment_status == "shipped"  # the shipment itself stands

    def test_a_failed_upload_is_not_tried_again_by_itself(self, mini, to_ship, ship):
        mini.upload_answers = [REFUNDED]
        shipment = ship(to_ship).shipment

        due_now(shipment)
        upload_shipment.delay(shipment.pk)
        uploads_due_enqueue.delay()

        assert mini.count(UPLOAD_PATH) == 1

    def test_an_upload_wechat_would_refuse_is_not_sent(self, mini, to_ship, ship):
        # SF needs the receiver's phone: an order without an address cannot give it.
        Order.objects.filter(pk=to_ship.pk).update(address=None)

        shipment = ship(reload(to_ship)).shipment

        row = reload(shipment)
        assert row.upload_status == "failed"
        assert "SF Express needs a masked receiver_contact" in row.upload_error
        assert mini.count(UPLOAD_PATH) == 0
        assert reload(to_ship).needs_attention

    @pytest.mark.parametrize("errcode", [10060002, 10060023])
    def test_already_shipped_at_wechat_counts_as_uploaded(self, mini, to_ship, ship, errcode):
        mini.upload_answers = [{"errcode": errcode, "errmsg": "already"}]

        shipment = ship(to_ship).shipment

        row = reload(shipment)
        assert (row.upload_status, row.upload_error) == ("uploaded", "")
        assert not reload(to_ship).needs_attention

    def test_a_stale_token_is_renewed_and_the_upload_sent_again_once(
        self, settings, mini, to_ship, ship
    ):
        from shipping.access_token import access_token

        settings.WECHAT_TRADE_MANAGED = "1"  # the upload is the first call with the token
        first = access_token()
        mini.stale.add(first)

        shipment = ship(to_ship).shipment

        assert reload(shipment).upload_status == "uploaded"
        assert [q["access_token"] for q, _ in mini.requests(UPLOAD_PATH)] == [first, mini.token]
        assert mini.count(TOKEN_PATH) == 2


class TestOnce:
    def test_a_task_run_twice_uploads_once(self, mini, to_ship, ship):
        shipment = ship(to_ship).shipment

        upload_shipment.delay(shipment.pk)
        upload_shipment.delay(shipment.pk)

        assert mini.count(UPLOAD_PATH) == 1
        assert reload(shipment).upload_attempts == 1

    def test_shipping_the_same_again_uploads_nothing_more(self, mini, to_ship, ship):
        ship(to_ship)
        assert not ship(reload(to_ship)).shipped

        assert mini.count(UPLOAD_PATH) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_running_the_same_upload_at_once_send_it_once(http_mock, settings):
    from tests.shipping.miniprogram_api import FakeMiniProgram

    mini = FakeMiniProgram(http_mock).install()
    settings.WECHAT_TRADE_MANAGED = "1"
    order = make_order(
        make_shopper(),
        {"tea": Product.objects.create(name="Tea", price=4500)},
        status=Order.Status.PAID,
        transaction_id="4200000483202001042069747825",
        paid_at=timezone.now(),
    )
    shipment = Shipment.objects.create(
        order=order, logistics_type="virtual", upload_status="pending"
    )
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def work() -> None:
        try:
            barrier.wait()
            outcomes.append(shipment_upload(shipment_id=shipment.pk).outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["skipped"] * 3 + ["uploaded"]
    assert mini.count(UPLOAD_PATH) == 1


class TestDurable:
    def test_a_broker_that_is_down_never_fails_the_ship_and_the_sweep_catches_up(
        self, mini, to_ship, ship, broker_down, caplog
    ):
        with broker_down():
            result = ship(to_ship)

        assert result.shipped
        assert "could not enqueue" in caplog.text
        shipment = reload(result.shipment)
        assert shipment.upload_status == "pending"  # kept in the database, due now
        assert shipment.upload_next_at <= timezone.now()
        assert mini.count(UPLOAD_PATH) == 0

        uploads_due_enqueue.delay()  # the periodic sweep, once the broker is back

        assert reload(shipment).upload_status == "uploaded"


class TestAdmin:
    def test_the_order_page_shows_each_uploads_state(self, mini, to_ship, ship, boss_client):
        mini.upload_answers = [REFUNDED]
        ship(to_ship)

        page = get_ok(boss_client, order_page(to_ship))

        assert "Refused by WeChat" in page
        assert "errcode 10060004" in page
        assert "upload attempts" in page.lower()

    def test_retry_upload_now_uploads_a_failed_upload_again(self, mini, to_ship, ship, boss_client):
        mini.upload_answers = [REFUNDED]
        shipment = ship(to_ship).shipment

        response = boss_client.post(
            CHANGELIST,
            {"action": "retry_upload_action", "_selected_action": [to_ship.pk]},
            follow=True,
        )

        row = reload(shipment)
        assert (row.upload_status, row.upload_attempts, row.upload_error) == ("uploaded", 2, "")
        assert "1 upload to WeChat queued" in response.content.decode()

    def test_an_order_without_an_upload_to_retry_is_said_so(self, mini, to_ship, ship, boss_client):
        ship(to_ship)

        response = boss_client.post(
            CHANGELIST,
            {"action": "retry_upload_action", "_selected_action": [to_ship.pk]},
            follow=True,
        )

        assert "no upload to WeChat that failed or waits" in response.content.decode()
        assert mini.count(UPLOAD_PATH) == 1

    def test_staff_who_may_only_view_orders_cannot_retry(self, mini, to_ship, ship):
        mini.upload_answers = [REFUNDED]
        shipment = ship(to_ship).shipment
        clerk = staff_with("view_order")

        assert 'value="retry_upload_action"' not in action_choices(clerk)
        clerk.post(CHANGELIST, {"action": "retry_upload_action", "_selected_action": [to_ship.pk]})

        assert reload(shipment).upload_status == "failed"
        allowed = staff_with("view_order", "change_order")
        assert 'value="retry_upload_action"' in action_choices(allowed)
