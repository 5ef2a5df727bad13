"""What the shipping app does when orders announces something (orders.signals): orders
imports nothing of shipping, so these are connected in ``ShippingConfig.ready``."""

from __future__ import annotations

import logging

from django.conf import settings

from core.config import missing_settings
from orders.models import Shipment
from shipping.access_token import MINIPROGRAM_SETTINGS
from shipping.tasks import message_enqueue, upload_enqueue
from shipping.uploads import shipment_upload_prepare, shipment_upload_retry

logger = logging.getLogger(__name__)


def shipment_recorded(sender, shipment: Shipment, **kwargs) -> None:
    """After the ship committed: mark the upload pending and enqueue it, and the shipped
    message. The row is pending before anything is enqueued: if the broker cannot take the
    task, the sweep still finds it."""
    if shipment_upload_prepare(shipment_id=shipment.pk):
        upload_enqueue(shipment.pk)
    if settings.WECHAT_TEMPLATE_SHIPPED and not missing_settings(MINIPROGRAM_SETTINGS):
        message_enqueue(shipment.pk)


def shipment_upload_requested(sender, shipment_ids: list[int], **kwargs) -> int:
    """Staff's "Retry upload to WeChat now": how many uploads were queued."""
    ids = shipment_upload_retry(shipment_ids=shipment_ids)
    for shipment_id in ids:
        upload_enqueue(shipment_id)
    return len(ids)
