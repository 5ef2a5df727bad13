"""Rules of shipping/uploads.py a mutation run found unpinned: the setting behind the first
retry; ``WECHAT_TRADE_MANAGED=0`` asking nothing; the cache key, lifetime and outage of the
trade-managed answer; which shipments preparing and staff's retry may touch, and when the
retried ones are due; the sweep's order and size; the claim an attempt holds; the exact
error, attempt count, result and log line each outcome leaves; the flag reasons staff read;
an attempt finishing after another worker decided the row; what a non-express upload and an
order without a transaction id send."""

import logging
import time
from datetime import timedelta

import pytest
import responses
from django.conf import settings as django_settings
from django.core.cache import cache
from django.utils import timezone

from orders.fulfilment import order_ship
from orders.models import Order, OrderItem, Shipment
from shipping.uploads import (
    UploadOutcome,
    UploadResult,
    shipment_upload,
    shipment_upload_prepare,
    shipment_upload_retry,
    trade_managed,
    upload_backoff,
    uploads_apply,
    uploads_due,
)
from tests.factories import make_order, reload
from tests.shipping.miniprogram_api import MANAGED_PATH, OK, UPLOAD_PATH

BUSY = {"errcode": -1, "errmsg": "system error rid: 6489c1d2-1a2b3c4d-5e6f7a8b"}
REFUNDED = {"errcode": 10060004, "errmsg": "order cannot be shipped in this state rid: 1-2"}
NOT_CONFIGURED = "The mini-program server API is not configured: set WECHAT_APP_SECRET."
UNREACHABLE = "/wxa/sec/order/upload_shipping_info is unreachable"
MANAGED_KEY = "wechat:is_trade_managed:wxd930ea5d5a258f4f"


@pytest.fixture
def shipment(to_ship, django_capture_on_commit_callbacks) -> Shipment:
    """``to_ship`` shipped by SF, its upload pending and due, not tried yet."""
    with django_capture_on_commit_callbacks():
        result = order_ship(
            order=to_ship, logistics_type="express", express_company="SF", tracking_no="SF1"
        )
    assert shipment_upload_prepare(shipment_id=result.shipment.pk)
    return reload(result.shipment)


@pytest.fixture
def uploads_log(caplog):
    """The messages shipping.uploads logs, INFO and up."""
    caplog.set_level(logging.INFO, logger="shipping.uploads")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "shipping.uploads"]


def while_uploading(mini, happen) -> None:
    """``happen()`` runs while WeChat handles the upload, before it answers."""
    url = django_settings.WECHAT_API_BASE.rstrip("/") + UPLOAD_PATH
    answer = mini._upload

    def upload(request):
        happen()
        return answer(request)

    mini.mock.remove(responses.POST, url)
    mini.mock.add_callback(responses.POST, url, callback=upload)


def another_shipment(order: Order, **fields) -> Shipment:
    return Shipment.objects.create(order=order, logistics_type="virtual", **fields)


def later(monkeypatch, seconds: float) -> None:
    """The clock (the cache's too) moves ``seconds`` ahead."""
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + seconds)


class TestBackoff:
    def test_the_first_retry_waits_what_the_setting_says_then_doubles(self, settings):
        settings.SHIPPING_UPLOAD_RETRY_FIRST_SECONDS = 1

        waits = [upload_backoff(n).total_seconds() for n in (1, 2, 3, 4)]

        assert waits == [1, 2, 4, 8]

    def test_without_the_setting_the_first_retry_waits_five_seconds(self, settings):
        del settings.SHIPPING_UPLOAD_RETRY_FIRST_SECONDS

        assert upload_backoff(1) == timedelta(seconds=5)
        assert upload_backoff(2) == timedelta(seconds=10)


class TestWhetherUploadsApply:
    def test_zero_means_no_uploads_and_no_question_to_wechat(self, settings, mini, db):
        settings.WECHAT_TRADE_MANAGED = "0"

        assert uploads_apply() is False
        assert trade_managed() is False
        assert len(mini.mock.calls) == 0

    def test_zero_leaves_a_new_shipment_not_required(self, settings, mini, to_ship):
        settings.WECHAT_TRADE_MANAGED = "0"
        row = another_shipment(to_ship)

        assert shipment_upload_prepare(shipment_id=row.pk) is False
        assert (reload(row).upload_status, reload(row).upload_next_at) == ("not_required", None)

    def test_preparing_makes_that_shipment_pending_and_due_now_and_no_other(self, mini, to_ship):
        row, other = another_shipment(to_ship), another_shipment(to_ship)
        before = timezone.now()

        assert shipment_upload_prepare(shipment_id=row.pk) is True

        row = reload(row)
        assert row.upload_status == "pending"
        assert before <= row.upload_next_at <= timezone.now()
        assert reload(other).upload_status == "not_required"

    @pytest.mark.parametrize(
        "decided",
        [
            {"upload_status": "failed"},
            {"upload_status": "not_required", "upload_attempts": 1},
            {"upload_status": "not_required", "uploaded_at": timezone.now()},
        ],
        ids=["failed", "tried", "uploaded"],
    )
    def test_a_shipment_already_decided_is_not_prepared_again(self, mini, to_ship, decided):
        row = another_shipment(to_ship, **decided)

        assert shipment_upload_prepare(shipment_id=row.pk) is False
        assert reload(row).upload_status == decided["upload_status"]


class TestTradeManagedAnswer:
    def test_it_is_kept_under_the_mini_programs_appid(self, mini, db, uploads_log):
        assert trade_managed() is True

        assert cache.get(MANAGED_KEY) is True
        assert uploads_log() == ["is_trade_managed answered True"]

    def test_a_kept_answer_is_used_without_asking(self, mini, db):
        cache.set(MANAGED_KEY, False)

        assert trade_managed() is False
        assert mini.count(MANAGED_PATH) == 0

    def test_it_is_kept_an_hour(self, mini, db, monkeypatch):
        trade_managed()
        later(monkeypatch, 59 * 60)
        trade_managed()
        assert mini.count(MANAGED_PATH) == 1

        later(monkeypatch, 61 * 60)
        trade_managed()

        assert mini.count(MANAGED_PATH) == 2

    def test_with_the_cache_down_wechat_is_asked_every_time_and_it_is_logged(
        self, settings, mini, db, uploads_log
    ):
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
                "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
            }
        }

        assert trade_managed() is True
        assert trade_managed() is True

        assert mini.count(MANAGED_PATH) == 2
        assert (
            uploads_log()
            == [
                "is_trade_managed: shared cache unavailable, answer not kept",
                "is_trade_managed answered True",
            ]
            * 2
        )


class TestStaffRetry:
    def test_failed_and_pending_uploads_among_those_chosen_become_due_now(
        self, mini, to_ship, uploads_log
    ):
        waiting = timezone.now() + timedelta(minutes=10)
        failed = another_shipment(to_ship, upload_status="failed")
        pending = another_shipment(to_ship, upload_status="pending", upload_next_at=waiting)
        uploaded = another_shipment(to_ship, upload_status="uploaded")
        not_required = another_shipment(to_ship)
        not_chosen = another_shipment(to_ship, upload_status="failed")
        chosen = [failed.pk, pending.pk, uploaded.pk, not_required.pk]
        before = timezone.now()

        assert shipment_upload_retry(shipment_ids=chosen) == [failed.pk, pending.pk]

        after = timezone.now()
        for row in (reload(failed), reload(pending)):
            assert row.upload_status == "pending"
            assert before <= row.upload_next_at <= after
        assert [reload(r).upload_status for r in (uploaded, not_required, not_chosen)] == [
            "uploaded",
            "not_required",
            "failed",
        ]
        assert uploads_log() == [f"shipment uploads retried by staff ids={[failed.pk, pending.pk]}"]

    def test_nothing_to_retry_is_not_logged(self, mini, to_ship, uploads_log):
        uploaded = another_shipment(to_ship, upload_status="uploaded")

        assert shipment_upload_retry(shipment_ids=[uploaded.pk]) == []
        assert uploads_log() == []


class TestSweep:
    def test_the_longest_waiting_come_first(self, to_ship):
        now = timezone.now()
        minute = timedelta(minutes=1)
        for pk, next_at in [
            (40, now - minute),
            (50, None),
            (60, now - 5 * minute),
            (30, now - minute),  # as long as 40: the lower id first
            (20, now + minute),
        ]:
            another_shipment(to_ship, pk=pk, upload_status="pending", upload_next_at=next_at)

        assert uploads_due(now=now) == [50, 60, 30, 40]
        assert uploads_due(now=now, limit=2) == [50, 60]

    def test_a_sweep_takes_at_most_500(self, to_ship):
        Shipment.objects.bulk_create(
            Shipment(order=to_ship, logistics_type="virtual", upload_status="pending")
            for _ in range(501)
        )

        assert len(uploads_due()) == 500


class TestClaim:
    def test_while_wechat_is_called_the_upload_is_not_due_for_two_minutes(self, mini, shipment):
        seen = []

        def look():
            now = timezone.now()
            seen.append((reload(shipment).upload_next_at - now, uploads_due(now=now)))
            seen.append(uploads_due(now=now + timedelta(seconds=121)))

        while_uploading(mini, look)

        shipment_upload(shipment_id=shipment.pk)

        (claim, due_meanwhile), due_after = seen
        assert timedelta(seconds=119) < claim <= timedelta(seconds=120)
        assert due_meanwhile == []
        assert due_after == [shipment.pk]


class TestOutcomes:
    def test_an_accepted_upload_is_uploaded_and_logged(self, mini, shipment, uploads_log):
        assert shipment_upload(shipment_id=shipment.pk) == UploadResult(UploadOutcome.UPLOADED)
        assert uploads_log() == [
            "is_trade_managed answered True",
            f"shipment uploaded out_trade_no={shipment.order.out_trade_no}",
        ]

    def test_not_trade_managed_is_not_required_and_logged(self, mini, shipment, uploads_log):
        mini.trade_managed = False

        assert shipment_upload(shipment_id=shipment.pk) == UploadResult(UploadOutcome.NOT_REQUIRED)
        assert uploads_log() == [
            "is_trade_managed answered False",
            f"shipment upload not required out_trade_no={shipment.order.out_trade_no}",
        ]

    def test_wechat_busy_says_when_and_why_and_logs_the_attempt(self, mini, shipment, uploads_log):
        mini.upload_answers = [BUSY]

        result = shipment_upload(shipment_id=shipment.pk)

        error = "errcode -1: " + BUSY["errmsg"]
        assert result == UploadResult(UploadOutcome.RETRY, retry_in=5, detail=error)
        assert uploads_log()[-1] == (
            f"shipment upload not accepted out_trade_no={shipment.order.out_trade_no} "
            "attempt=1 retry_in=5s error=MiniProgramBusy"
        )

    def test_wechat_unreachable_is_recorded_without_an_errcode(self, mini, shipment):
        import requests

        mini.upload_answers = [requests.ConnectionError("connection refused")]

        result = shipment_upload(shipment_id=shipment.pk)

        assert (result.outcome, result.detail) == (UploadOutcome.RETRY, UNREACHABLE)
        assert reload(shipment).upload_error == UNREACHABLE

    @pytest.mark.parametrize("managed", ["auto", "1"])
    def test_settings_removed_before_the_attempt_wait_like_a_busy_wechat(
        self, settings, mini, shipment, managed
    ):
        settings.WECHAT_TRADE_MANAGED = managed
        settings.WECHAT_APP_SECRET = ""

        result = shipment_upload(shipment_id=shipment.pk)

        assert result == UploadResult(UploadOutcome.RETRY, retry_in=5, detail=NOT_CONFIGURED)
        row = reload(shipment)
        assert (row.upload_status, row.upload_attempts, row.upload_error) == (
            "pending",
            1,
            NOT_CONFIGURED,
        )

    def test_the_tenth_attempt_flags_the_order_with_the_last_error(self, mini, shipment):
        Shipment.objects.filter(pk=shipment.pk).update(upload_attempts=9)
        mini.upload_answers = [BUSY]

        shipment_upload(shipment_id=shipment.pk)

        assert reload(shipment.order).attention_reason == (
            "WeChat has not accepted the shipping upload after 10 attempts "
            f"(last: errcode -1: {BUSY['errmsg']}); it is tried again every 10 minutes."
        )

    def test_a_refusal_is_failed_flagged_and_logged(self, mini, shipment, uploads_log):
        mini.upload_answers = [REFUNDED]

        result = shipment_upload(shipment_id=shipment.pk)

        error = "errcode 10060004: " + REFUNDED["errmsg"]
        assert result == UploadResult(UploadOutcome.FAILED, detail=error)
        assert reload(shipment).upload_attempts == 1
        assert reload(shipment.order).attention_reason == (
            f"WeChat refused the shipping upload ({error}). Enter the shipping in the "
            "mini-program console (发货信息管理), or fix the cause and use "
            "“Retry upload to WeChat now”."
        )
        assert uploads_log()[-1] == (
            f"shipment upload refused out_trade_no={shipment.order.out_trade_no} errcode=10060004"
        )

    def test_an_upload_refused_before_sending_counts_no_attempt(self, mini, shipment):
        Order.objects.filter(pk=shipment.order_id).update(address=None)

        result = shipment_upload(shipment_id=shipment.pk)

        assert result.outcome == UploadOutcome.FAILED
        row = reload(shipment)
        assert (row.upload_status, row.upload_attempts) == ("failed", 0)
        assert mini.count(UPLOAD_PATH) == 0


class TestOnlyThisRow:
    @pytest.mark.parametrize(
        "answer, status", [(BUSY, "pending"), (REFUNDED, "failed"), (OK, "uploaded")]
    )
    def test_an_attempt_changes_no_other_pending_upload(self, mini, shipment, answer, status):
        other = another_shipment(shipment.order, upload_status="pending")
        mini.upload_answers = [answer]

        shipment_upload(shipment_id=shipment.pk)

        assert reload(shipment).upload_status == status
        other = reload(other)
        assert (other.upload_status, other.upload_attempts, other.upload_error) == (
            "pending",
            0,
            "",
        )
        assert other.upload_next_at is None

    @pytest.mark.parametrize("answer", [BUSY, REFUNDED, OK])
    def test_an_attempt_that_outlived_its_claim_leaves_another_workers_upload_alone(
        self, mini, shipment, answer
    ):
        uploaded_at = timezone.now() - timedelta(seconds=30)

        def another_worker_uploads_it():
            Shipment.objects.filter(pk=shipment.pk).update(
                upload_status="uploaded",
                upload_attempts=1,
                uploaded_at=uploaded_at,
                upload_next_at=None,
            )

        while_uploading(mini, another_worker_uploads_it)
        mini.upload_answers = [answer]

        shipment_upload(shipment_id=shipment.pk)

        row = reload(shipment)
        assert (row.upload_status, row.upload_attempts, row.upload_error) == (
            "uploaded",
            1,
            "",
        )
        assert (row.uploaded_at, row.upload_next_at) == (uploaded_at, None)


class TestWhatIsSent:
    def test_a_non_express_shipment_sends_the_goods_only_whatever_it_carries(
        self, mini, to_ship, ship
    ):
        ship(to_ship, "same_city", express_company="SF", tracking_no="SC-0001")

        (body,) = mini.bodies(UPLOAD_PATH)
        assert body["shipping_list"] == [{"item_desc": "Oolong tea 250g*2, Tea cup*1"}]

    def test_goods_of_exactly_120_characters_are_sent_whole(self, mini, to_ship, ship):
        name = "x" * (120 - len("Oolong tea 250g*2, Tea cup*1, ") - len("*1"))
        OrderItem.objects.create(
            order=to_ship,
            product_id=to_ship.items.first().product_id,
            product_name=name,
            unit_price=1200,
            quantity=1,
        )

        ship(to_ship)

        (body,) = mini.bodies(UPLOAD_PATH)
        assert body["shipping_list"][0]["item_desc"] == f"Oolong tea 250g*2, Tea cup*1, {name}*1"

    def test_an_order_without_a_transaction_id_is_not_sent(self, mini, shopper, products):
        order = make_order(
            shopper,
            products,
            status=Order.Status.PAID,
            transaction_id="",
            paid_at=timezone.now(),
        )
        row = another_shipment(order, upload_status="pending")

        result = shipment_upload(shipment_id=row.pk)

        assert result.outcome == UploadOutcome.FAILED
        assert reload(row).upload_error == (
            "give transaction_id, or mchid and out_trade_no (not both)"
        )
        assert mini.count(UPLOAD_PATH) == 0
