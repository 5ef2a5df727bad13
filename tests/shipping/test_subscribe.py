"""The "shipped" subscribe message (docs/INVARIANTS.md §8; docs/protocol/miniprogram-server-api.md
§4): sent once per order when WECHAT_TEMPLATE_SHIPPED is set, values cut to their keyword's
rule; a shopper who did not subscribe (43101) is recorded and never blocks the shipment."""

import pytest
from django.core.checks import run_checks
from django.utils import timezone

from shipping.models import SubscribeMessage
from shipping.tasks import send_shipped_message
from tests.factories import reload
from tests.shipping.miniprogram_api import SEND_PATH, UPLOAD_PATH

BUSY = {"errcode": -1, "errmsg": "system error"}
NOT_SUBSCRIBED = {"errcode": 43101, "errmsg": "user refuse to accept the msg rid: 1-2-3"}


def beijing_minute(moment) -> str:
    local = timezone.localtime(moment)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


class TestSent:
    def test_shipping_sends_the_message_with_each_value_fitting_its_keyword(
        self, mini, to_ship, ship, shipped_message
    ):
        shipment = ship(to_ship).shipment

        ((query, body),) = mini.requests(SEND_PATH)
        assert query == {"access_token": mini.token}
        assert body == {
            "touser": to_ship.openid,
            "template_id": shipped_message,
            "data": {
                "character_string1": {"value": to_ship.out_trade_no},
                "thing2": {"value": "Oolong tea 250g*2, …"},  # thing: 20 characters at most
                "thing3": {"value": "SF"},
                "character_string4": {"value": "SF1234567890"},
                "time5": {"value": beijing_minute(shipment.shipped_at)},
            },
            "miniprogram_state": "formal",
            "lang": "zh_CN",
        }
        message = SubscribeMessage.objects.get()
        assert (message.order, message.template_id, message.status, message.errcode) == (
            to_ship,
            shipped_message,
            "sent",
            None,
        )
        assert reload(shipment).upload_status == "uploaded"  # the upload went its own way

    def test_the_keywords_are_a_setting(self, settings, mini, to_ship, ship, shipped_message):
        settings.WECHAT_TEMPLATE_SHIPPED_FIELDS = (
            " amount1 = total_fee , thing2=express_company,phrase3=status "
        )

        ship(to_ship, "same_city")

        (body,) = mini.bodies(SEND_PATH)
        assert body["data"] == {
            "amount1": {"value": "¥45.00"},
            "thing2": {"value": "同城配送"},  # no company: how it ships, as the shopper reads it
            "phrase3": {"value": "已发货"},
        }

    def test_it_is_sent_once_however_often_the_task_runs(
        self, mini, to_ship, ship, shipped_message
    ):
        shipment = ship(to_ship).shipment

        send_shipped_message.delay(shipment.pk)
        send_shipped_message.delay(shipment.pk)

        assert mini.count(SEND_PATH) == 1
        assert SubscribeMessage.objects.count() == 1

    def test_without_a_template_nothing_is_sent(self, mini, to_ship, ship):
        ship(to_ship)

        assert mini.count(SEND_PATH) == 0
        assert not SubscribeMessage.objects.exists()
        assert mini.count(UPLOAD_PATH) == 1


class TestRefused:
    def test_not_subscribed_is_recorded_and_never_blocks_the_shipment(
        self, mini, to_ship, ship, shipped_message
    ):
        mini.send_answers = [NOT_SUBSCRIBED]

        result = ship(to_ship)
        send_shipped_message.delay(result.shipment.pk)  # never asked again

        assert result.shipped
        message = SubscribeMessage.objects.get()
        assert (message.status, message.errcode) == ("not_subscribed", 43101)
        assert mini.count(SEND_PATH) == 1
        order = reload(to_ship)
        assert (order.fulfilment_status, order.needs_attention) == ("shipped", False)
        assert reload(result.shipment).upload_status == "uploaded"

    def test_wechat_busy_is_tried_again_by_the_task(self, mini, to_ship, ship, shipped_message):
        mini.send_answers = [BUSY]

        ship(to_ship)

        assert mini.count(SEND_PATH) == 2
        assert SubscribeMessage.objects.get().status == "sent"

    def test_busy_every_time_ends_failed_after_the_tasks_retries(
        self, mini, to_ship, ship, shipped_message
    ):
        mini.send_answers = [BUSY] * 20

        ship(to_ship)

        message = SubscribeMessage.objects.get()
        assert (message.status, message.errcode) == ("failed", -1)
        assert mini.count(SEND_PATH) == send_shipped_message.max_retries + 1

    def test_a_refused_template_fails_at_once(self, mini, to_ship, ship, shipped_message):
        mini.send_answers = [{"errcode": 40037, "errmsg": "invalid template_id"}]

        ship(to_ship)

        message = SubscribeMessage.objects.get()
        assert (message.status, message.errcode) == ("failed", 40037)
        assert "invalid template_id" in message.detail
        assert mini.count(SEND_PATH) == 1


class TestConfiguration:
    @pytest.mark.parametrize(
        "fields",
        ["thing2=nothing_we_have", "thing2", "colour1=items", "thing1=items,thing1=status", ""],
    )
    def test_a_mapping_that_cannot_work_is_a_system_check_error(
        self, settings, shipped_message, fields
    ):
        settings.WECHAT_TEMPLATE_SHIPPED_FIELDS = fields

        (error,) = [m for m in run_checks() if m.id == "shipping.E001"]
        assert "WECHAT_TEMPLATE_SHIPPED_FIELDS" in error.msg

    def test_the_default_mapping_passes(self, shipped_message):
        assert "shipping.E001" not in [m.id for m in run_checks()]


class TestAdmin:
    def test_staff_read_the_messages_and_cannot_change_them(
        self, mini, to_ship, ship, shipped_message, boss_client
    ):
        from tests.factories import get_ok

        mini.send_answers = [NOT_SUBSCRIBED]
        ship(to_ship)
        message = SubscribeMessage.objects.get()

        listing = get_ok(boss_client, "/admin/shipping/subscribemessage/")
        assert to_ship.out_trade_no in listing
        assert "the shopper did not subscribe" in listing
        page = get_ok(boss_client, f"/admin/shipping/subscribemessage/{message.pk}/change/")
        assert 'name="_save"' not in page
        assert boss_client.get("/admin/shipping/subscribemessage/add/").status_code == 403
        delete = f"/admin/shipping/subscribemessage/{message.pk}/delete/"
        assert boss_client.post(delete, {"post": "yes"}).status_code == 403
        assert SubscribeMessage.objects.count() == 1
